import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// One change cttune makes, with what it replaces, so it can be undone.
///
/// Paths are system paths (`/proc/sys/...`, `/etc/...`), mapped through the
/// `SystemRoot` the journal belongs to when the action runs.
public enum JournalAction: Equatable, Sendable {
    /// A kernel setting written through /proc/sys or /sys/module.
    case sysctl(SysctlChange)
    /// A configuration file created (`old == nil`), replaced, or removed (`new == nil`).
    case file(FileChange)
    /// A kernel module unloaded (`loaded == false`) or loaded back.
    case module(ModuleChange)
    /// cttune's nft table (`CureTable`) created, replaced, or removed (`new == nil`)
    /// in the network namespace cttune runs in.
    case nftTable(TableChange)

    public struct SysctlChange: Equatable, Sendable {
        /// The contract's setting name (`net.netfilter.nf_conntrack_max`, `nf_conntrack.hashsize`).
        public var key: String
        /// The file written: /proc/sys/... or /sys/module/.../parameters/....
        public var path: FilePath
        public var old: Int
        public var new: Int
    }

    public struct FileChange: Equatable, Sendable {
        public var path: FilePath
        public var oldContent: String?
        public var newContent: String?
    }

    /// Both contents are nft script text: the table as `nft list table` printed it, and as planned.
    public struct TableChange: Equatable, Sendable {
        public var oldContent: String?
        public var newContent: String?
    }

    public struct ModuleChange: Equatable, Sendable {
        public var name: String
        /// The module's state after the action.
        public var loaded: Bool
    }

    /// The action that undoes this one.
    public var inverse: JournalAction {
        switch self {
        case .sysctl(let change):
            return .sysctl(.init(key: change.key, path: change.path, old: change.new, new: change.old))
        case .file(let change):
            return .file(.init(path: change.path, oldContent: change.newContent, newContent: change.oldContent))
        case .module(let change):
            return .module(.init(name: change.name, loaded: !change.loaded))
        case .nftTable(let change):
            return .nftTable(.init(oldContent: change.newContent, newContent: change.oldContent))
        }
    }

    /// What the action touches: the setting's key or the file's path.
    public var target: String {
        switch self {
        case .sysctl(let change): return change.key
        case .file(let change): return change.path.string
        case .module(let change): return change.name
        case .nftTable: return "table " + CureTable.qualifiedName
        }
    }

    /// A step name for error messages: "writing net.netfilter.nf_conntrack_max = 65536".
    public var stepDescription: String {
        switch self {
        case .sysctl(let change): return "writing \(change.key) = \(change.new)"
        case .file(let change) where change.newContent == nil: return "removing \(change.path.string)"
        case .file(let change): return "writing \(change.path.string)"
        case .module(let change): return change.loaded ? "loading module \(change.name)" : "unloading module \(change.name)"
        case .nftTable(let change) where change.newContent == nil: return "removing nft table \(CureTable.qualifiedName)"
        case .nftTable: return "loading nft table \(CureTable.qualifiedName)"
        }
    }
}

/// A record of one apply or rollback: every old value and replaced file,
/// written before anything changes (`/var/lib/cttune/journal/ID.json`).
public struct JournalEntry: Equatable, Sendable {
    public enum Status: String, Codable, Sendable {
        /// Written before the first change; left so when the process died midway.
        case inProgress = "in-progress"
        case applied
        /// A step failed and every earlier change was undone.
        case rolledBack = "rolled-back"
    }

    public var id: String
    /// `apply` or `rollback`.
    public var command: String
    /// ISO 8601, UTC.
    public var created: String
    public var profile: String?
    public var status: Status
    /// The entry a rollback undid.
    public var rollsBack: String?
    /// The failing step and the kernel's error, when `status` is rolled-back.
    public var failure: String?
    public var actions: [JournalAction]
}

/// The journal directory of a root: entries are saved atomically and listed
/// oldest first (identifiers sort by time).
public struct Journal {
    public let root: SystemRoot

    public init(root: SystemRoot) {
        self.root = root
    }

    /// The directory as a real path, for messages.
    public var directoryPath: String {
        (try? root.path(KernelPaths.journalDirectory).string) ?? KernelPaths.journalDirectory.string
    }

    /// A new identifier: UTC time to the millisecond, then the process id, so
    /// identifiers sort by time and two processes never collide.
    public static func newIdentifier(now: Date = Date()) -> String {
        let formatter = Date.ISO8601FormatStyle(dateSeparator: .omitted, timeSeparator: .omitted, includingFractionalSeconds: true)
        return "\(formatter.format(now))-\(getpid())"
    }

    static func timestamp(_ date: Date = Date()) -> String {
        Date.ISO8601FormatStyle().format(date)
    }

    func path(of id: String) -> FilePath {
        KernelPaths.journalDirectory.appending(id + ".json")
    }

    /// Writes (or rewrites) an entry atomically.
    public func save(_ entry: JournalEntry) throws {
        try AtomicFile.write(entry.encoded(), to: path(of: entry.id), under: root)
    }

    /// Every entry, oldest first.
    public func entries() throws -> [JournalEntry] {
        try root.entries(of: KernelPaths.journalDirectory)
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
            .map { try load(String($0.dropLast(".json".count))) }
    }

    /// The entry named `id`.
    public func load(_ id: String) throws -> JournalEntry {
        guard id.utf8.count <= SystemRoot.longestNameBytes - ".json".count,
            id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !id.isEmpty,
            let text = try root.contents(of: path(of: id), limit: ReadLimit.configuration)
        else {
            throw TunerError.journalEntryNotFound(id: Echo.escaped(id, limit: 80), directory: directoryPath)
        }
        return try JournalEntry.decode(text, path: try root.path(path(of: id)).string)
    }
}

// MARK: - The journal's JSON

extension JournalEntry {
    /// The on-disk shape: snake_case keys, one object per action with a `type`.
    /// A module action keeps the module's name in `key`, its /sys/module
    /// directory in `path`, and its state in `old`/`new` (1 loaded, 0 not).
    struct Document: Codable {
        var id: String
        var command: String
        var created: String
        var profile: String?
        var status: Status
        var rolls_back: String?
        var failure: String?
        var actions: [Action]
    }

    struct Action: Codable {
        var type: String
        var key: String?
        var path: String
        var old: Int?
        var new: Int?
        var old_content: String?
        var new_content: String?
    }

    func encoded() -> String {
        let document = Document(
            id: id, command: command, created: created, profile: profile, status: status,
            rolls_back: rollsBack, failure: failure,
            actions: actions.map { action in
                switch action {
                case .sysctl(let change):
                    return Action(type: "sysctl", key: change.key, path: change.path.string, old: change.old, new: change.new)
                case .file(let change):
                    return Action(type: "file", path: change.path.string, old_content: change.oldContent, new_content: change.newContent)
                case .module(let change):
                    return Action(
                        type: "module", key: change.name, path: KernelPaths.sysModule(change.name).string,
                        old: change.loaded ? 0 : 1, new: change.loaded ? 1 : 0)
                case .nftTable(let change):
                    return Action(
                        type: "nft-table", key: CureTable.qualifiedName, path: KernelPaths.curesTable.string,
                        old_content: change.oldContent, new_content: change.newContent)
                }
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding these plain strings and integers cannot fail.
        return String(decoding: try! encoder.encode(document), as: UTF8.self) + "\n"
    }

    static func decode(_ text: String, path: String) throws -> JournalEntry {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(text.utf8))
        } catch {
            let reason = (error as? DecodingError)?.summary ?? "\(error)"
            throw TunerError.malformed(path: path, detail: "not a cttune journal entry (\(reason)) — move it aside")
        }
        let actions = try document.actions.map { action -> JournalAction in
            // Rollback writes or removes what an action names: an empty, relative or `..` path
            // (or a module name that is one) names nothing cttune wrote, so the entry is refused
            // rather than "restored" while the file stays.
            let named = action.type == "module" ? action.key ?? "" : action.path
            guard action.type == "module" ? PathName.isOneComponent(named) : PathName.isPlainAbsolute(named) else {
                throw TunerError.malformed(
                    path: path,
                    detail:
                        """
                        a \(Echo.quoted(action.type, limit: 20)) action names \(Echo.quoted(named, limit: 80)), not \
                        \(action.type == "module" ? "a module name" : "an absolute path without . or .. components") — not \
                        written by cttune; move it aside
                        """
                )
            }
            switch (action.type, action.key, action.old, action.new) {
            case ("sysctl", let key?, let old?, let new?):
                // Rollback writes these back into the kernel: only values a sysctl can hold.
                guard KernelValue.sysctlRange.contains(old), KernelValue.sysctlRange.contains(new) else {
                    throw TunerError.malformed(
                        path: path,
                        detail:
                            """
                            \(Echo.quoted(key)) records \(old) -> \(new), outside \
                            \(KernelValue.sysctlRange.lowerBound)...\(KernelValue.sysctlRange.upperBound) — not written by \
                            cttune; move it aside
                            """
                    )
                }
                return .sysctl(.init(key: key, path: FilePath(action.path), old: old, new: new))
            case ("file", _, _, _):
                return .file(.init(path: FilePath(action.path), oldContent: action.old_content, newContent: action.new_content))
            case ("module", let name?, _, let new?):
                return .module(.init(name: name, loaded: new == 1))
            case ("nft-table", let table?, _, _):
                // Whatever a journal says, rollback touches no table but cttune's own.
                guard table == CureTable.qualifiedName else {
                    throw TunerError.malformed(
                        path: path,
                        detail: "an nft-table action names table \(Echo.quoted(table, limit: 80)), not cttune's own — move it aside")
                }
                return .nftTable(.init(oldContent: action.old_content, newContent: action.new_content))
            default:
                throw TunerError.malformed(path: path, detail: "action of type \"\(action.type)\" on \(action.path) lacks key, old or new")
            }
        }
        return JournalEntry(
            id: document.id, command: document.command, created: document.created, profile: document.profile,
            status: document.status, rollsBack: document.rolls_back, failure: document.failure, actions: actions)
    }
}
