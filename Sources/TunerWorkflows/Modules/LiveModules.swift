import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// A module the running kernel has loaded.
public struct LoadedModule: Equatable, Sendable {
    public var name: String
    /// References held on the module: one per holder module plus other users
    /// (rules, sockets). `delete_module` fails with EBUSY while it is above 0.
    public var refcount: Int
    /// Modules that use this one (their unload must come first).
    public var holders: [String]

    public init(name: String, refcount: Int, holders: [String] = []) {
        self.name = name
        self.refcount = refcount
        self.holders = holders
    }
}

/// The kernel's module state read through a `SystemRoot`: libkmod reads
/// /proc/modules and /sys/module at fixed host paths, so this reader is what
/// lets fixtures and `--root` stand in for the kernel.
public struct LiveModules: Equatable, Sendable {
    public enum Support: String, Sendable {
        /// /proc/modules exists: the kernel loads and unloads modules.
        case loadable
        /// /proc exists but /proc/modules does not: no loadable module support.
        case none
        /// No /proc under the root (an image tree): nothing is running.
        case notRunning = "not-running"
    }

    public var support: Support
    public var loaded: [String: LoadedModule]
    /// Names with a /sys/module entry: loaded modules and built-ins that have
    /// parameters or a version.
    public var sysModuleNames: Set<String>

    public init(support: Support, loaded: [String: LoadedModule] = [:], sysModuleNames: Set<String> = []) {
        self.support = support
        self.loaded = loaded
        self.sysModuleNames = sysModuleNames
    }

    /// Reads /proc/modules (name, size, refcount, used-by list, state,
    /// address), then /sys/module/NAME/holders and /sys/module/NAME/refcnt,
    /// which win where present.
    ///
    /// The corresponding files are `/proc/modules` and `/sys/module/NAME/{holders,refcnt}`.
    public static func read(from root: SystemRoot) throws -> LiveModules {
        let sysNames = Set(root.entries(of: KernelPaths.sysModule))
        guard let table = try root.contents(of: KernelPaths.procModules, limit: ReadLimit.kernelTable) else {
            return LiveModules(support: root.exists(KernelPaths.proc) ? .none : .notRunning, sysModuleNames: sysNames)
        }
        var loaded: [String: LoadedModule] = [:]
        for (index, line) in table.split(separator: "\n").enumerated() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, let proclaimed = Int(fields[2]) ?? (fields[2] == "-" ? 0 : nil) else {
                throw TunerError.malformed(
                    path: try root.path(KernelPaths.procModules).string,
                    detail: "line \(index + 1) is not \"name size refcount users state address\": \(Echo.quoted(line, limit: 60))")
            }
            let name = String(fields[0])
            let usedBy = fields[3] == "-" ? [] : fields[3].split(separator: ",").map(String.init)
            // Each name becomes a /sys/module/NAME path: `..` or a `/` would read another directory.
            if let bad = ([name] + usedBy).first(where: { !PathName.isOneComponent($0) }) {
                throw TunerError.malformed(
                    path: try root.path(KernelPaths.procModules).string,
                    detail: "line \(index + 1) names a module \(Echo.quoted(bad, limit: 60)), which is not a module name")
            }
            let sysHolders = root.entries(of: KernelPaths.sysModule(name).appending("holders"))
            let refcount = try root.integer(at: KernelPaths.sysModule(name).appending("refcnt")) ?? proclaimed
            loaded[name] = LoadedModule(name: name, refcount: refcount, holders: Array(Set(usedBy + sysHolders)).sorted())
        }
        return LiveModules(support: .loadable, loaded: loaded, sysModuleNames: sysNames)
    }
}
