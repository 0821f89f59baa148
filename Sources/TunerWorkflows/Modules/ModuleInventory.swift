import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// How a module is present on a host or in a module tree.
public enum ModuleState: String, Sendable, Equatable {
    /// Listed in /proc/modules.
    case loaded
    /// Listed in modules.builtin: part of the kernel image, cannot be unloaded.
    case builtIn = "built-in"
    /// Has a /sys/module entry but is not in /proc/modules and no
    /// modules.builtin says so: built in, inferred.
    case builtInInferred = "built-in-inferred"
    /// Has a .ko in the tree and is not loaded.
    case available
    /// The tree has no such module.
    case absent
    /// Nothing tells: no module tree and no /sys/module entry (a built-in
    /// without parameters has none).
    case unknown
}

/// One family module, as `cttune modules` reports it.
public struct ModuleStatus: Equatable, Sendable {
    public var name: String
    public var state: ModuleState
    public var refcount: Int?
    public var holders: [String]
    public var dependencies: [String]
    public var softdepsBefore: [String]
    public var softdepsAfter: [String]
    public var blacklisted: Bool
    public var installCommand: String?
}

/// The conntrack/NAT family on a host or in a module tree.
public struct ModuleInventory: Equatable, Sendable {
    public var release: String?
    public var support: LiveModules.Support
    /// The module directory read, or `nil` when there is none.
    public var treeDirectory: String?
    public var modules: [ModuleStatus]

    /// The one-line explanation for a kernel without loadable modules, or
    /// `nil` when modules can be loaded.
    public var noModuleSupportNote: String? {
        guard support == .none else { return nil }
        let builtIn = modules.filter { $0.state == .builtIn || $0.state == .builtInInferred }.map(\.name)
        return TunerError.noModuleSupport(builtIn: builtIn).description
    }
}
