import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// A scratch directory for one bad-input case: `tree/` is what `--root`
/// points at, `outside/` stands for the rest of the system (targets of links
/// that leave the root, files given by absolute path). Both are snapshotted.
final class BadInputScene {
    let url: URL
    var tree: URL { url.appendingPathComponent("tree") }
    var outside: URL { url.appendingPathComponent("outside") }

    init() throws {
        url = try TestPaths.temporaryDirectory("cttune-bad-input")
        // setpriv'd cases run as nobody: it must reach the tree to be refused by it.
        chmod(url.path, 0o755)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    func treePath(_ relative: String) -> String { tree.appendingPathComponent(relative).path }
    func outsidePath(_ relative: String) -> String { outside.appendingPathComponent(relative).path }

    /// Copies a host fixture (Tests/TunerTests/Fixtures/hosts/NAME) as the tree.
    func copyHost(_ name: String) throws {
        try FileManager.default.copyItem(at: TestPaths.fixtures.appendingPathComponent("hosts/\(name)"), to: tree)
    }

    func write(_ relative: String, _ content: String, inTree: Bool = true) throws {
        let target = URL(fileURLWithPath: inTree ? treePath(relative) : outsidePath(relative))
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: target, atomically: false, encoding: .utf8)
    }

    /// Replaces a file of the tree by a directory: unreadable even for root
    /// (read(2) answers EISDIR), where chmod 000 would not stop root.
    func makeUnreadable(_ relative: String) throws {
        try FileManager.default.removeItem(atPath: treePath(relative))
        try FileManager.default.createDirectory(atPath: treePath(relative), withIntermediateDirectories: true)
    }

    /// Makes `relative` in the tree a link to `outside/target` (created as a directory when absent).
    func linkOutside(_ relative: String, to target: String) throws {
        let destination = outsidePath(target)
        if !FileManager.default.fileExists(atPath: destination) {
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        }
        let link = URL(fileURLWithPath: treePath(relative))
        try FileManager.default.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: destination)
    }

    /// A tree holding one kernel's module directory: `lib/modules/VER` is
    /// the depmod'ed Debian tree (hard links), so its indexes are real.
    func linkModuleTree() throws {
        guard ModuleTrees.version != nil else { throw ModuleTreeMissing() }
        try FileManager.default.createDirectory(atPath: treePath("lib"), withIntermediateDirectories: true)
        try ModuleTrees.copyModules(into: URL(fileURLWithPath: treePath("lib/modules")))
    }

    /// A module directory with modules.dep (text) and no binary indexes.
    func unindexedModuleTree() throws {
        guard let version = ModuleTrees.version else { throw ModuleTreeMissing() }
        let dependencies = try String(
            contentsOf: ModuleTrees.full.appendingPathComponent("lib/modules/\(version)/modules.dep"), encoding: .utf8)
        try write("lib/modules/\(version)/modules.dep", dependencies)
        try write("proc/sys/kernel/osrelease", "\(version)\n")
    }

    struct ModuleTreeMissing: Error, CustomStringConvertible {
        var description: String { "no Debian module tree in .cache/module-tree: run scripts/module-tree.sh (make test does)" }
    }

    /// Every path under the scene with its type, mode, and content (files),
    /// link target (links) and modification time (files): equal snapshots
    /// mean nothing was created, removed, rewritten or re-moded.
    func snapshot() -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: url.path)
        while let relative = enumerator?.nextObject() as? String {
            let path = url.appendingPathComponent(relative).path
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let mode = String(info.st_mode, radix: 8)
            switch info.st_mode & S_IFMT {
            case S_IFREG where info.st_size > 1 << 16:
                // A module index (the tree holds a hard-linked copy of the
                // Debian modules): its size and modification time tell a change.
                result[relative] = "file \(mode) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_size) bytes"
            case S_IFREG:
                let content = FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? "(unreadable)"
                result[relative] = "file \(mode) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(content)"
            case S_IFLNK:
                result[relative] = "link \(mode) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")"
            default:
                result[relative] = "other \(mode)"
            }
        }
        return result
    }

    /// `after` without an empty `run/cttune.lock` (and the `run` directory
    /// made for it): the flock file an apply or rollback that got as far as
    /// taking the lock leaves, as every flock user does (removing it would
    /// race with the next holder). An apply refused for its input takes no
    /// lock: `RobustnessCatalogueTests.refusedApplyLeavesNoLock`.
    func withoutNewLock(_ after: [String: String], before: [String: String]) -> [String: String] {
        var after = after
        for lock in ["tree/run/cttune.lock", "outside/run/cttune.lock"] {
            guard before[lock] == nil, let entry = after[lock], entry.hasPrefix("file 100644 "), entry.hasSuffix(" ") else { continue }
            after[lock] = nil
            let run = String(lock.dropLast("/cttune.lock".count))
            if before[run] == nil && !after.keys.contains(where: { $0.hasPrefix(run + "/") }) { after[run] = nil }
        }
        return after
    }
}

/// How a case runs the built cttune.
enum BadInputRunner: Sendable {
    /// As root, as the test runs.
    case root
    /// As nobody:nogroup with no supplementary groups.
    case nobody
    /// As root in a private mount namespace where the tree's /sys is mounted read-only.
    case readOnlySys
    /// In a private mount namespace where `outside/replacement` is mounted
    /// over the kernel file `path`, as nobody when `asNobody`.
    case kernelFileReplaced(path: String, asNobody: Bool)
    /// As root with private, empty /run, /var/lib and /etc/sysctl.d (from
    /// `outside/`; `SpoiledTree.privateState` makes them), so a live apply
    /// cannot touch the host's files.
    case privateState

    static let asNobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    static let privateMounts = ["unshare", "-m", "--propagation", "private", "sh", "-c"]

    func command(_ arguments: [String], scene: BadInputScene) -> [String] {
        let cttune = [TestPaths.cttune] + arguments
        switch self {
        case .root:
            return cttune
        case .nobody:
            return Self.asNobody + cttune
        case .readOnlySys:
            let script = #"mount --bind "$0/sys" "$0/sys" && mount -o remount,ro,bind "$0/sys" && exec "$@""#
            return Self.privateMounts + [script, scene.tree.path] + cttune
        case let .kernelFileReplaced(path, asNobody):
            let script = #"mount --bind "$0" "$1" && shift && exec "$@""#
            return Self.privateMounts + [script, scene.outsidePath("replacement"), path] + (asNobody ? Self.asNobody : []) + cttune
        case .privateState:
            let script =
                #"mount -n --bind "$0/var-lib" /var/lib && mount -n --bind "$0/sysctl.d" /etc/sysctl.d && mount -n --bind "$0/run" /run && exec "$@""#
            return Self.privateMounts + [script, scene.outside.path] + cttune
        }
    }
}

/// What a refused command may print on stdout.
enum RefusalOutput: Sendable {
    /// Nothing: the input was refused before any result existed.
    case nothing
    /// One complete JSON object (`--format json` reports printed before the refusal).
    case jsonObject
    /// The monitoring-plugin line `UNKNOWN: …` and nothing else (status).
    case unknownLine
}

/// The promises every refusal keeps, checked on one run's result.
enum RefusalChecks {
    /// The exit code, one `cttune: error:` or parser `Error:` line holding
    /// `words`, no crash text, and stdout as `output` allows.
    static func check(
        _ result: Shell.Result, exitCode: Int32, words: [String], output: RefusalOutput, reportWords: [String] = [],
        label: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(result.status == exitCode, "\(label): exit \(result.status), stderr: \(result.stderr)", sourceLocation: sourceLocation)
        for crash in ["Fatal error", "Stack dump", "Segmentation fault", "Illegal instruction", "Trace/breakpoint", "Current stack trace"] {
            #expect(!result.stderr.contains(crash), "\(label): crashed: \(result.stderr)", sourceLocation: sourceLocation)
        }
        let errorLines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("cttune: error: ") || $0.hasPrefix("Error: ") }
        #expect(errorLines.count == 1, "\(label): expected one error line on stderr, got: \(result.stderr)", sourceLocation: sourceLocation)
        let line = errorLines.first.map(String.init) ?? ""
        for word in words {
            #expect(line.contains(word), "\(label): \"\(word)\" missing from: \(line)", sourceLocation: sourceLocation)
        }
        for word in reportWords {
            #expect(
                result.stdout.contains(word), "\(label): \"\(word)\" missing from stdout: \(result.stdout)", sourceLocation: sourceLocation)
        }
        switch output {
        case .nothing:
            #expect(result.stdout.isEmpty, "\(label): stdout: \(result.stdout)", sourceLocation: sourceLocation)
        case .jsonObject:
            let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
            #expect(object is [String: Any], "\(label): stdout is not one JSON object: \(result.stdout)", sourceLocation: sourceLocation)
        case .unknownLine:
            let lines = result.stdout.split(separator: "\n")
            #expect(
                lines.count == 1 && lines[0].hasPrefix("UNKNOWN: "), "\(label): stdout: \(result.stdout)", sourceLocation: sourceLocation)
        }
    }
}

/// The conntrack values a command could change: the global max and hash
/// size, and every timeout, as one network namespace sees them.
enum ConntrackValues {
    static let keys = ConntrackSetting.allCases.map { $0 == .hashsize ? HashSizeNames.sysctl : $0.key }

    /// Reads them in `namespace`, or in the test's own (initial) namespace when nil.
    static func read(in namespace: TestNamespace? = nil) throws -> [String: Int] {
        let paths = keys.map { "/proc/sys/" + $0.replacingOccurrences(of: ".", with: "/") }
        let text = try namespace.map { try $0.exec(["cat"] + paths) } ?? Shell.check(["cat"] + paths)
        let values = text.split(separator: "\n").map { Int($0.trimmingCharacters(in: .whitespaces)) ?? -1 }
        return Dictionary(uniqueKeysWithValues: zip(keys, values))
    }
}
