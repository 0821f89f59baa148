import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// Runs a journal entry's actions all or nothing.
///
/// The entry (every old value, every replaced file) is saved before the first
/// change. When a step fails, the steps already done are undone in reverse
/// order and the entry is saved as rolled back with the failing step and the
/// kernel's error. Apply and rollback both go through here, so a later step
/// kind (a module unload) joins the same journal by adding a `JournalAction`.
public struct Transaction {
    public let root: SystemRoot
    public let modules: ModuleOperations

    /// - Parameter modules: how module actions run; by default libkmod on
    /// the running system, and under a `--root` tree a refusal (module
    /// syscalls would reach the running kernel, not the tree's).
    public init(root: SystemRoot, modules: ModuleOperations? = nil) {
        self.root = root
        self.modules = modules ?? (root.isLive ? .libkmod(root: root) : .refusing(under: root))
    }

    /// The outcome of `run`: how many actions took effect before a failure.
    public struct Outcome {
        public var entry: JournalEntry
        /// Actions done and kept; all of them on success, none after a failure.
        public var completed: Int
        /// The failing action's index and error; `nil` on success.
        public var failedStep: (index: Int, error: TunerError)?
        /// Undo steps that failed in turn (they need a person).
        public var restoreFailures: [String]

        /// The error to report: the failing step, the kernel's message and
        /// whether everything was restored.
        public var error: TunerError? {
            guard let (index, error) = failedStep else { return nil }
            return .transactionFailed(
                step: entry.actions[index].stepDescription, cause: error.description,
                restoreFailures: restoreFailures)
        }
    }

    /// Checks every path first (nothing is touched when one would leave the
    /// root), saves the entry in progress, runs the actions, and saves the
    /// final status.
    ///
    /// - Parameter journaled: `false` runs the same all-or-nothing steps
    ///   without saving the entry: a boot apply that only re-asserts the
    ///   values of cttune's own boot-time file (that file is the record).
    /// - Throws: only when nothing was changed: a path check or the first
    ///   journal write failed. Step failures are in the outcome.
    public func run(_ entry: JournalEntry, journaled: Bool = true) throws -> Outcome {
        let journal = Journal(root: root)
        if journaled { _ = try AtomicFile.checkedPath(journal.path(of: entry.id), under: root) }
        for case .file(let change) in entry.actions {
            _ = try AtomicFile.checkedPath(change.path, under: root)
        }
        var entry = entry
        entry.status = .inProgress
        if journaled { try journal.save(entry) }

        var done = 0
        var failedStep: (Int, TunerError)?
        for action in entry.actions {
            do {
                try perform(action)
                done += 1
            } catch {
                failedStep = (done, error as? TunerError ?? .writeFailed(path: action.target, reason: "\(error)"))
                break
            }
        }
        var restoreFailures: [String] = []
        if let (index, error) = failedStep {
            for action in entry.actions[..<done].reversed() {
                do { try perform(action.inverse) } catch { restoreFailures.append("\(action.inverse.stepDescription): \(error)") }
            }
            entry.status = .rolledBack
            entry.failure = "\(entry.actions[index].stepDescription): \(error)"
            done = 0
        } else {
            entry.status = .applied
        }
        // The changes are made (or undone); a journal that cannot record the
        // final status still holds every old value for `cttune rollback ID`.
        if journaled { try? journal.save(entry) }
        return Outcome(entry: entry, completed: done, failedStep: failedStep, restoreFailures: restoreFailures)
    }

    /// Does one action.
    func perform(_ action: JournalAction) throws {
        switch action {
        case .sysctl(let change):
            try SettingWriter.write(change.new, key: change.key, to: change.path, under: root)
        case .file(let change):
            if let content = change.newContent {
                try AtomicFile.write(content, to: change.path, under: root)
            } else {
                try AtomicFile.remove(change.path, under: root)
            }
        case .module(let change) where change.loaded:
            // Already loaded (EEXIST) is what a load back wants.
            if let errno = try modules.load(change.name), errno != .fileExists {
                throw TunerError.loadFailed(module: change.name, reason: errnoText(errno))
            }
        case .module(let change):
            // Whatever a journal says, nothing outside the family is unloaded.
            guard ModuleFamily.contains(change.name, includingDefrag: true) else {
                throw TunerError.unloadFailed(module: change.name, reason: "not a conntrack/NAT module, and cttune never unloads those")
            }
            // Already gone (ENOENT) is what an unload wants.
            if let errno = try modules.remove(change.name), errno != .noSuchFileOrDirectory {
                throw Unloader.error(
                    for: errno, module: change.name,
                    live: errno == .resourceBusy ? try? LiveModules.read(from: root) : nil)
            }
        case .nftTable(let change):
            // The running kernel's ruleset: a tree gets the boot-time file only.
            guard root.isLive else {
                throw TunerError.writeFailed(
                    path: "table \(CureTable.qualifiedName)", reason: "--root: the running kernel's ruleset is not the tree's")
            }
            try CureTableLive.replace(with: change.newContent)
        }
    }
}
