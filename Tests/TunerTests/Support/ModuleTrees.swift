import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerWorkflows

/// The real Debian module trees scripts/module-tree.sh builds under .cache
/// (make test runs it first); tests skip with that hint when they are absent.
enum ModuleTrees {
    static let directory = TestPaths.package.appendingPathComponent(".cache/module-tree")
    static let version: String? = (try? String(contentsOf: directory.appendingPathComponent("VERSION"), encoding: .utf8))?
        .trimmingCharacters(in: .whitespacesAndNewlines)
    static let full = directory.appendingPathComponent("full")
    static let builtinConntrack = directory.appendingPathComponent("builtin-conntrack")
    static let available =
        version.map { FileManager.default.fileExists(atPath: full.appendingPathComponent("lib/modules/\($0)/modules.dep.bin").path) }
        ?? false
    static let hasModprobe = (try? Shell.run(["which", "modprobe"]).status) == 0
    static let missingHint: Comment = "no Debian module tree in .cache/module-tree: run scripts/module-tree.sh (make test does)"

    /// A fresh root holding the full tree's lib/modules, with an empty
    /// etc/modprobe.d: tests write config and fixtures there, never into the cache.
    static func scratchRoot() throws -> URL {
        let root = try TestPaths.temporaryDirectory("cttune-modules")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("lib"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("etc/modprobe.d"), withIntermediateDirectories: true)
        try copyModules(into: root.appendingPathComponent("lib/modules"))
        return root
    }

    /// Puts the full tree's lib/modules at `destination` as hard links (a
    /// copy of the names, not of the data): a link out of a --root tree is
    /// not followed, so a tree must hold its modules itself.
    static func copyModules(into destination: URL) throws {
        try Shell.check(["cp", "-al", full.appendingPathComponent("lib/modules").path, destination.path])
    }

    /// The insmod lines of `modprobe -d ROOT -S VER --show-depends NAME` as module names.
    static func modprobeShowDepends(root: URL, module: String) throws -> [String] {
        let output = try Shell.check([
            "modprobe", "-d", root.path, "-S", version!, "-C", root.appendingPathComponent("etc/modprobe.d").path,
            "--show-depends", module,
        ])
        return output.split(separator: "\n").filter { $0.hasPrefix("insmod ") }.map { line in
            ModuleTree.moduleName(fromPath: line.split(separator: " ")[1])
        }
    }
}

/// A fake running kernel under a scratch root: /proc/modules, /sys/module/X/holders
/// and /refcnt as the kernel shows them, and the running release.
struct LoadedFixture {
    let root: URL

    init(root: URL, modules: [LoadedModule]) throws {
        self.root = root
        var table = ""
        for module in modules {
            let usedBy = module.holders.isEmpty ? "-" : module.holders.joined(separator: ",") + ","
            table += "\(module.name) 16384 \(module.refcount) \(usedBy) Live 0x0000000000000000\n"
            let sys = root.appendingPathComponent("sys/module/\(module.name)")
            try FileManager.default.createDirectory(at: sys.appendingPathComponent("holders"), withIntermediateDirectories: true)
            for holder in module.holders {
                try FileManager.default.createDirectory(
                    at: sys.appendingPathComponent("holders/\(holder)"), withIntermediateDirectories: true)
            }
            try "\(module.refcount)\n".write(to: sys.appendingPathComponent("refcnt"), atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("proc/sys/kernel"), withIntermediateDirectories: true)
        try table.write(to: root.appendingPathComponent("proc/modules"), atomically: true, encoding: .utf8)
        try "\(ModuleTrees.version ?? "")\n".write(
            to: root.appendingPathComponent("proc/sys/kernel/osrelease"), atomically: true, encoding: .utf8)
    }

    var systemRoot: SystemRoot { SystemRoot(base: .init(root.path)) }
}
