import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// How a transaction unloads and loads kernel modules.
///
/// The default goes through libkmod. Tests interpose `delete_module` for
/// unloads, but libkmod's probe loads with `finit_module` through
/// syscall(2), which no symbol interposition catches: tests give their own
/// `load` here instead.
public struct ModuleOperations {
    /// Unloads one module: `nil` on success, else the kernel's errno.
    public var remove: (String) throws -> Errno?
    /// Loads one module and its dependencies: `nil` on success, else the errno.
    public var load: (String) throws -> Errno?

    public init(remove: @escaping (String) throws -> Errno?, load: @escaping (String) throws -> Errno?) {
        self.remove = remove
        self.load = load
    }

    /// libkmod on the module tree under `root`. Each context is made at its
    /// first use, so loads see the modprobe.d configuration as it is then:
    /// after the blacklist file (whose `install … /bin/false` lines would
    /// stop every probe) was removed by an earlier step.
    ///
    /// The corresponding libkmod calls are `kmod_module_remove_module` and
    /// `kmod_module_probe_insert_module`.
    public static func libkmod(root: SystemRoot) -> ModuleOperations {
        let unloading = LazyKmodContext(root: root), loading = LazyKmodContext(root: root)
        return ModuleOperations(
            remove: { try unloading.context().remove(moduleNamed: $0) },
            load: { try loading.context().load(moduleNamed: $0) })
    }
}

extension ModuleOperations {
    /// For a `--root` tree: every call fails without a syscall, since
    /// delete_module and finit_module act on the running kernel whatever
    /// tree the modules came from.
    static func refusing(under root: SystemRoot) -> ModuleOperations {
        let refuse: (String) throws -> Errno? = { module in
            throw TunerError.unloadFailed(
                module: module, reason: "\(root.base) is not the running system: cttune makes no module call for a --root tree")
        }
        return ModuleOperations(remove: refuse, load: refuse)
    }
}

/// A libkmod context opened on first use and kept for the later calls.
private final class LazyKmodContext {
    let root: SystemRoot
    private var opened: KmodContext?

    init(root: SystemRoot) {
        self.root = root
    }

    func context() throws -> KmodContext {
        if let opened { return opened }
        let made = try ModuleHost(root: root, anyKernel: true).kmodContext()
        opened = made
        return made
    }
}
