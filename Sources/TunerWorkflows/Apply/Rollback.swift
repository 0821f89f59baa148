import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// What happened to one thing a rollback restores.
public struct RestoredItem: Equatable, Sendable {
    /// What a rollback restores: a setting, a file or a module.
    public enum Kind: String, Sendable {
        case sysctl, file, module
        case nftTable = "nft-table"
    }

    /// A setting's value, a file's size or a module's state.
    public enum State: Equatable, Sendable, CustomStringConvertible {
        case value(Int)
        case fileBytes(Int)
        case module(loaded: Bool)
        /// No such setting or file.
        case absent
        /// Not read: a module under `--root`, never loaded into the running kernel.
        case notRead

        public var description: String {
            switch self {
            case .value(let value): return String(value)
            case .fileBytes(let bytes): return "\(bytes) bytes"
            case .module(let loaded): return Rollback.moduleState(loaded)
            case .absent: return "absent"
            case .notRead: return "-"
            }
        }

        package init(fileContent: String?) {
            self = fileContent.map { .fileBytes($0.utf8.count) } ?? .absent
        }
    }

    public var kind: Kind
    /// The setting's key or the file's path (under the root).
    public var target: String
    /// Before the rollback and after it.
    public var before: State
    public var after: State
    /// `rolled-back`, `unchanged` (already at the recorded value), `failed`,
    /// or `skipped` (a module under `--root`: never loaded into the running kernel).
    public var result: String
    public var error: String?
}

/// The outcome of `cttune rollback`.
public struct RollbackOutcome {
    /// The entry undone.
    public var target: JournalEntry
    /// This rollback's own journal entry; `nil` when nothing needed restoring.
    public var journalID: String?
    public var items: [RestoredItem]
    public var changed: Bool
    public var error: TunerError?
}

/// Restores what a journal entry changed: the old runtime values and files,
/// removing the files it created. A rollback is itself journaled (so it can
/// be rolled back) and idempotent: what already has its recorded value is
/// left alone, so a second rollback changes nothing.
public enum Rollback {
    /// Entry `id`, or the last apply not yet rolled back.
    static func target(_ id: String?, in journal: Journal) throws -> JournalEntry {
        if let id { return try journal.load(id) }
        guard let last = try journal.entries().last(where: { $0.command == "apply" && $0.status != .rolledBack }) else {
            throw TunerError.journalEntryNotFound(id: nil, directory: journal.directoryPath)
        }
        return last
    }

    /// Rolls back entry `id`, or the last apply when `id` is nil.
    ///
    /// Unloaded modules are loaded back last unloaded first (the journal's
    /// reverse order), after the blacklist file that would stop them is gone.
    ///
    /// - Parameters:
    ///   - modules: how modules are loaded; libkmod's probe by default.
    ///   - check: report what would be restored and write nothing (no lock either).
    public static func run(
        _ id: String?, under root: SystemRoot, lockWaitSeconds: Double = ApplyLock.defaultWaitSeconds,
        modules: ModuleOperations? = nil, check: Bool = false
    ) throws -> RollbackOutcome {
        let lock = check ? nil : try ApplyLock(root: root, waitSeconds: lockWaitSeconds)
        defer { withExtendedLifetime(lock) {} }
        let journal = Journal(root: root)
        let target = try target(id, in: journal)
        return try restore(target.actions, of: target, under: root, modules: modules, check: check)
    }

    /// `rollback --all`: every setting, file and module cttune ever changed
    /// back to what it was before cttune first changed it (the oldest old
    /// value the journal holds for it), removing every file cttune created.
    /// Idempotent: a second run finds everything at its baseline.
    public static func all(
        under root: SystemRoot, lockWaitSeconds: Double = ApplyLock.defaultWaitSeconds,
        modules: ModuleOperations? = nil, check: Bool = false
    ) throws -> RollbackOutcome {
        let lock = check ? nil : try ApplyLock(root: root, waitSeconds: lockWaitSeconds)
        defer { withExtendedLifetime(lock) {} }
        let entries = try Journal(root: root).entries()
        var actions = baseline(of: entries)
        // cttune's files that no journaled apply wrote (`cttune blacklist`, an
        // older version's file) carry its header: they go too, last in the
        // list so they are removed before any module is loaded back.
        let journaled = Set(actions.map(key(of:)))
        for path in PersistentConfig.sysctlFileNames + [KernelPaths.modprobeConf, KernelPaths.modulesLoadConf, KernelPaths.blacklistConf] {
            let action = JournalAction.file(.init(path: path, oldContent: nil, newContent: nil))
            guard !journaled.contains(key(of: action)),
                let content = try AtomicFile.contents(of: path, under: root), content.hasPrefix(PersistentConfig.headerMarker)
            else { continue }
            actions.append(.file(.init(path: path, oldContent: nil, newContent: content)))
        }
        let target = JournalEntry(
            id: allTarget, command: "apply", created: entries.first?.created ?? Journal.timestamp(), profile: nil,
            status: .applied, actions: actions)
        return try restore(target.actions, of: target, under: root, modules: modules, check: check)
    }

    /// The `rolls_back` of a `rollback --all` entry.
    public static let allTarget = "all"

    /// The first action an apply recorded for each target, oldest first: its
    /// old value is the state before cttune touched it. Rollback entries only
    /// restore what applies recorded (or remove cttune's own files), so they
    /// never hold a baseline.
    static func baseline(of entries: [JournalEntry]) -> [JournalAction] {
        var seen: Set<String> = []
        var result: [JournalAction] = []
        for entry in entries where entry.command == "apply" {
            for action in entry.actions where !seen.contains(key(of: action)) {
                seen.insert(key(of: action))
                result.append(action)
            }
        }
        return result
    }

    /// What an action touches, unique across kinds.
    static func key(of action: JournalAction) -> String {
        switch action {
        case .sysctl(let change): return "sysctl:" + change.key
        case .file(let change): return "file:" + change.path.string
        case .module(let change): return "module:" + change.name
        case .nftTable: return "nft-table:" + CureTable.qualifiedName
        }
    }

    /// Restores what `recorded` replaced, last action first, journaling the
    /// restore as a rollback of `target` (nothing is written with `check`).
    static func restore(
        _ recorded: [JournalAction], of target: JournalEntry, under root: SystemRoot, modules: ModuleOperations?, check: Bool
    ) throws -> RollbackOutcome {
        var actions: [JournalAction] = []
        var items: [RestoredItem] = []
        // The item each action restores, so a failed step names its item
        // without matching a displayed path against a system path.
        var itemOfAction: [Int] = []
        var live: LiveModules?
        for action in recorded.reversed() {
            switch action {
            case .sysctl(let change):
                let current = try root.integer(at: change.path)
                items.append(
                    RestoredItem(
                        kind: .sysctl, target: change.key, before: current.map(RestoredItem.State.value) ?? .absent,
                        after: .value(change.old), result: current == change.old ? "unchanged" : "rolled-back"))
                if current != change.old {
                    itemOfAction.append(items.count - 1)
                    actions.append(.sysctl(.init(key: change.key, path: change.path, old: current ?? change.new, new: change.old)))
                }
            case .file(let change):
                let current = try AtomicFile.contents(of: change.path, under: root)
                items.append(
                    RestoredItem(
                        kind: .file, target: try root.path(change.path).string, before: RestoredItem.State(fileContent: current),
                        after: RestoredItem.State(fileContent: change.oldContent),
                        result: current == change.oldContent ? "unchanged" : "rolled-back"))
                if current != change.oldContent {
                    itemOfAction.append(items.count - 1)
                    actions.append(.file(.init(path: change.path, oldContent: current, newContent: change.oldContent)))
                }
            case .nftTable(let change) where !root.isLive:
                // Like a module: the running kernel's ruleset is not the tree's.
                items.append(
                    RestoredItem(
                        kind: .nftTable, target: "table " + CureTable.qualifiedName, before: .notRead, after: .notRead,
                        result: "skipped",
                        error:
                            "--root: the running kernel's ruleset is not the tree's; the restored boot-time file applies at its next boot"))
            case .nftTable(let change):
                let current = try CureTableLive.read()
                items.append(
                    RestoredItem(
                        kind: .nftTable, target: "table " + CureTable.qualifiedName, before: RestoredItem.State(fileContent: current),
                        after: RestoredItem.State(fileContent: change.oldContent),
                        result: current == change.oldContent ? "unchanged" : "rolled-back"))
                if current != change.oldContent {
                    itemOfAction.append(items.count - 1)
                    actions.append(.nftTable(.init(oldContent: current, newContent: change.oldContent)))
                }
            case .module(let change) where !root.isLive && modules == nil:
                // A tree's modules are loaded by the system that boots it;
                // finit_module here would load them into the running kernel.
                items.append(
                    RestoredItem(
                        kind: .module, target: change.name, before: .notRead, after: .notRead, result: "skipped",
                        error:
                            "--root: modules are not loaded into the running kernel for a tree; the restored files apply at its next boot"))
            case .module(let change):
                live = try live ?? LiveModules.read(from: root)
                let loaded = live?.loaded[change.name] != nil
                items.append(
                    RestoredItem(
                        kind: .module, target: change.name, before: .module(loaded: loaded), after: .module(loaded: !change.loaded),
                        result: loaded == !change.loaded ? "unchanged" : "rolled-back"))
                if loaded == change.loaded {
                    itemOfAction.append(items.count - 1)
                    actions.append(JournalAction.module(change).inverse)
                }
            }
        }
        var outcome = RollbackOutcome(target: target, journalID: nil, items: items, changed: !actions.isEmpty, error: nil)
        guard !actions.isEmpty, !check else { return outcome }

        let entry = JournalEntry(
            id: Journal.newIdentifier(), command: "rollback", created: Journal.timestamp(),
            profile: target.profile, status: .inProgress, rollsBack: target.id, actions: actions)
        let run = try Transaction(root: root, modules: modules).run(entry)
        outcome.journalID = entry.id
        if let (failedIndex, error) = run.failedStep {
            let failedItem = itemOfAction[failedIndex]
            outcome.items = outcome.items.enumerated().map { index, item in
                var item = item
                guard item.result == "rolled-back" else { return item }
                let matches = index == failedItem
                item.result = matches ? "failed" : "unchanged"
                item.error = matches ? error.description : nil
                item.after = item.before
                return item
            }
            outcome.changed = false
            outcome.error = run.error
        }
        return outcome
    }

    /// Removes old journal entries, keeping the newest `keep`, every entry
    /// left in progress (a person must look at it) and every entry that holds
    /// the first record of a setting, file or module: the baseline
    /// `rollback --all` restores.
    ///
    /// - Returns: the identifiers removed, oldest first.
    @discardableResult
    public static func prune(keep: Int, under root: SystemRoot) throws -> [String] {
        let journal = Journal(root: root)
        let entries = try journal.entries()
        var baselineHolders: Set<String> = []
        var seen: Set<String> = []
        for entry in entries where entry.command == "apply" {
            for action in entry.actions where !seen.contains(key(of: action)) {
                seen.insert(key(of: action))
                baselineHolders.insert(entry.id)
            }
        }
        let newest = Set(entries.suffix(max(keep, 0)).map(\.id))
        var removed: [String] = []
        for entry in entries where !newest.contains(entry.id) && !baselineHolders.contains(entry.id) && entry.status != .inProgress {
            try AtomicFile.remove(journal.path(of: entry.id), under: root)
            removed.append(entry.id)
        }
        return removed
    }

    /// How many entries apply keeps when it prunes after a change (besides
    /// the baseline and entries in progress).
    public static let defaultKeep = 20

    /// Every journal entry, oldest first (`cttune rollback --list`).
    public static func list(under root: SystemRoot) throws -> [JournalEntry] {
        try Journal(root: root).entries()
    }

    package static func moduleState(_ loaded: Bool) -> String {
        loaded ? "loaded" : "unloaded"
    }

    package static func state(_ content: String?) -> String {
        guard let content else { return "absent" }
        return "\(content.utf8.count) bytes"
    }
}
