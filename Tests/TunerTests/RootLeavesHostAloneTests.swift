import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Under `--root DIR` no command makes a module syscall or writes outside
/// DIR. Each command runs under strace (module syscalls traced and answered
/// EPERM by error injection, so none reaches the kernel — libkmod loads with
/// syscall(2), which no symbol interposition would see) in a private mount
/// namespace where /proc/sys and /sys are read-only.
@Suite(
    "--root leaves the running system alone",
    .enabled(if: ModuleTrees.available, ModuleTrees.missingHint),
    .enabled(
        if: TestHost.isRoot && (try? Shell.run(["which", "strace"]).status) == 0 && (try? Shell.run(["which", "unshare"]).status) == 0,
        "needs root, strace and unshare"))
struct RootLeavesHostAloneTests {
    static let moduleCalls: Set<String> = ["init_module", "finit_module", "delete_module"]
    static let writeCalls = [
        "open", "openat", "openat2", "creat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
        "link", "linkat", "symlink", "symlinkat", "truncate", "chmod", "fchmodat", "chown", "fchownat",
    ]

    /// What strace saw one command do.
    struct Trace {
        var status: Int32
        var stdout: String
        var stderr: String
        var moduleCalls: [String]
        /// Paths opened for writing, created, renamed or removed.
        var writtenPaths: [String]
    }

    /// Runs `cttune ARGUMENTS` under strace in a private mount namespace
    /// with /proc/sys and /sys read-only.
    static func traced(_ arguments: [String]) throws -> Trace {
        try traced(command: [TestPaths.cttune] + arguments)
    }

    /// Runs `command` the same way.
    static func traced(command: [String]) throws -> Trace {
        let log = try TestPaths.temporaryDirectory("cttune-strace").appendingPathComponent("trace")
        defer { try? FileManager.default.removeItem(at: log.deletingLastPathComponent()) }
        let traced = Self.moduleCalls.sorted().joined(separator: ",")
        let strace = [
            "strace", "-f", "-qq", "-y", "-o", log.path,
            "-e", "trace=\(traced),\(writeCalls.joined(separator: ","))",
            "-e", "inject=\(traced):error=EPERM",
        ]
        let script = """
            set -e
            mount --bind /proc/sys /proc/sys && mount -o remount,ro,bind /proc/sys
            mount --bind /sys /sys && mount -o remount,ro,bind /sys
            exec "$@"
            """
        let result = try Shell.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + strace + command)
        let lines = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        var trace = Trace(status: result.status, stdout: result.stdout, stderr: result.stderr, moduleCalls: [], writtenPaths: [])
        for line in lines.split(separator: "\n") {
            guard let call = Self.syscallName(line) else { continue }
            if moduleCalls.contains(call) {
                trace.moduleCalls.append(String(line))
            } else if call.hasPrefix("open") || call == "creat" {
                let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"].contains { line.contains($0) } || call == "creat"
                if writes { trace.writtenPaths += Self.paths(in: line).prefix(1) }
            } else {
                trace.writtenPaths += Self.paths(in: line)
            }
        }
        return trace
    }

    /// `1234 openat(…` → `openat`.
    static func syscallName(_ line: Substring) -> String? {
        let body = line.drop { $0.isNumber || $0 == " " }
        guard let paren = body.firstIndex(of: "(") else { return nil }
        let name = body[..<paren]
        return name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } ? String(name) : nil
    }

    /// The path arguments of one strace line, each resolved against the
    /// directory descriptor before it (`3</tree/etc>, "x"` → `/tree/etc/x`).
    /// openat2 with RESOLVE_IN_ROOT reads even an absolute path inside its
    /// directory (`3</tree>, "/proc/x"` → `/tree/proc/x`).
    static func paths(in line: Substring) -> [String] {
        let pattern = #/(?:(?:AT_FDCWD|\d+)<([^>]*)>, )?"([^"]*)"/#
        let inRoot = line.contains("RESOLVE_IN_ROOT")
        return line.matches(of: pattern).map { match in
            let path = String(match.output.2)
            guard let directory = match.output.1 else { return path }
            if path.hasPrefix("/") { return inRoot ? String(directory) + path : path }
            return String(directory) + "/" + path
        }
    }

    /// Writes outside `directory` (and outside the character devices a program may open).
    static func outside(_ paths: [String], _ directory: String) -> [String] {
        let base = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        return paths.filter { path in
            let resolved = URL(fileURLWithPath: path).standardizedFileURL.path
            return
                !(resolved == base || resolved.hasPrefix(base + "/") || path == directory || path.hasPrefix(directory + "/")
                || ["/dev/null", "/dev/tty"].contains(path))
        }
    }

    @Test(
        "apply, rollback, unload and blacklist under --root make zero module syscalls and write only inside the tree; the apply says it unloads nothing"
    )
    func noModuleCallsNoHostWrites() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        try tree.write("proc/sys/net/netfilter/nf_conntrack_count", "0\n")
        _ = try LoadedFixture(root: tree.url, modules: UnloadOrderTests.iptablesGateway)
        try FileManager.default.createDirectory(at: tree.url.appendingPathComponent("lib"), withIntermediateDirectories: true)
        // A copy of hard links: --root resolves links inside the tree, so a link to the cache would lead nowhere.
        try Shell.check(["cp", "-al", ModuleTrees.full.appendingPathComponent("lib/modules").path, tree.file("lib/modules")])

        let apply = try Self.traced(["apply", "--profile", "stateless", "--root", tree.path, "--format", "json"])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(tree.exists("etc/modprobe.d/cttune-blacklist.conf"))
        let modules = try #require(
            try PrintedJSON(Shell.Result(status: apply.status, stdout: apply.stdout, stderr: apply.stderr)).object["modules"]
                as? [String: Any])
        #expect(
            (modules["note"] as? String)?.hasSuffix("is not the running system, so no module is unloaded; only the files are written")
                == true)

        // A journal entry holding unloads (as an apply on the running system
        // would write), so the rollback has module loads to refuse.
        var request = ApplyRequest()
        request.persistent = false
        let root = SystemRoot(base: FilePath(tree.path))
        let recorded = try Applier.apply(
            under: root, request: request, modules: ModuleOperations(remove: { _ in nil }, load: { _ in nil }),
            profile: try ProfileCatalog.standard(root: root).load("stateless")
        ) { try HostFacts.gather(from: root) }
        #expect(recorded.modules?.unloadActions.isEmpty == false)

        let rollback = try Self.traced(["rollback", "--root", tree.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("skipped: --root: modules are not loaded into the running kernel"), "\(rollback.stdout)")
        let dryRun = try Self.traced(["unload", "--dry-run", "--root", tree.path])
        #expect(dryRun.status == 0, "\(dryRun.stderr)")
        let unload = try Self.traced(["unload", "--root", tree.path])
        #expect(unload.status == 64, "refused at validation: \(unload.stderr)")
        let blacklist = try Self.traced(["blacklist", "--root", tree.path, "--include-defrag"])
        #expect(blacklist.status == 0, "\(blacklist.stderr)")

        for (name, trace) in [
            ("apply", apply), ("rollback", rollback), ("unload --dry-run", dryRun), ("unload", unload), ("blacklist", blacklist),
        ] {
            #expect(trace.moduleCalls.isEmpty, "\(name): \(trace.moduleCalls)")
            #expect(Self.outside(trace.writtenPaths, tree.path).isEmpty, "\(name): \(Self.outside(trace.writtenPaths, tree.path))")
        }
        #expect(!apply.writtenPaths.isEmpty && !blacklist.writtenPaths.isEmpty, "the trace sees the writes inside the tree")
    }

    @Test("a write through a directory descriptor outside the tree is caught, one inside is not")
    func pathParsing() {
        let outsideLine: Substring = #"812 openat(5</etc/modprobe.d>, "cttune.conf.tmp", O_WRONLY|O_CREAT|O_EXCL, 0644) = 6"#
        let insideLine: Substring = #"812 renameat2(AT_FDCWD</>, "/tree/etc/a.tmp", AT_FDCWD</>, "/tree/etc/a", 0) = 0"#
        #expect(Self.paths(in: outsideLine) == ["/etc/modprobe.d/cttune.conf.tmp"])
        #expect(Self.outside(Self.paths(in: outsideLine), "/tree") == ["/etc/modprobe.d/cttune.conf.tmp"])
        #expect(Self.outside(Self.paths(in: insideLine), "/tree").isEmpty)
        #expect(Self.syscallName(insideLine) == "renameat2")
    }

    @Test(
        "the trace sees a module call: libkmod's own load (modprobe) is recorded and answered EPERM, never reaching the kernel",
        .enabled(if: ModuleTrees.hasModprobe, "needs modprobe (kmod)"))
    func traceSeesModuleCalls() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let trace = try Self.traced(
            command: [
                "modprobe", "-d", root.path, "-S", ModuleTrees.version!, "-C", root.appendingPathComponent("etc/modprobe.d").path,
                "nf_defrag_ipv4",
            ])
        #expect(trace.moduleCalls.contains { $0.contains("finit_module(") && $0.contains("EPERM") }, "\(trace.moduleCalls)")
        #expect(trace.status != 0)
    }
}
