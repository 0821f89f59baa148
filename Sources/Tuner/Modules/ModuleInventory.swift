import Foundation
import SystemPackage

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

/// Reads live state, the module tree and the config for one root.
public final class ModuleHost {
    public let root: SystemRoot
    public let live: LiveModules
    public let release: String?
    public let tree: ModuleTree?

    /// - Parameter anyKernel: accept a root with several kernel trees and no
    ///   `requested` one (the blacklist covers them all); otherwise that is
    ///   `TunerError.ambiguousKernel`.
    public init(root: SystemRoot, release requested: String? = nil, anyKernel: Bool = false) throws {
        self.root = root
        live = try LiveModules.read(from: root)
        do {
            release = try ModuleTree.release(under: root, requested: requested)
        } catch TunerError.ambiguousKernel where anyKernel {
            release = nil
        }
        tree = try release.flatMap { try ModuleTree(root: root, release: $0) }
    }

    /// The family members this host or tree knows by any source.
    public var familyNames: [String] {
        var known = Set(live.loaded.keys).union(live.sysModuleNames)
        if let tree { known.formUnion(tree.moduleNames.union(tree.builtinNames)) }
        return ModuleFamily.members(of: known.union(["nf_conntrack", "nf_nat"]))
    }

    public func state(of name: String) -> ModuleState {
        if live.loaded[name] != nil { return .loaded }
        if let tree, tree.builtinNames.contains(name) { return .builtIn }
        if live.sysModuleNames.contains(name) { return .builtInInferred }
        if let tree { return tree.moduleNames.contains(name) ? .available : .absent }
        return .unknown
    }

    /// The index entry of a module, or `nil` when there is no tree.
    public func indexEntry(_ name: String) throws -> ModuleIndexEntry? {
        try tree?.kmod.module(named: name)
    }

    /// The family members whose state is built in (listed or inferred).
    public var builtInFamily: [String] {
        familyNames.filter { [.builtIn, .builtInInferred].contains(state(of: $0)) }
    }

    /// Everything `cttune modules` prints.
    public func inventory() throws -> ModuleInventory {
        let blacklisted = tree?.kmod.blacklistedNames() ?? []
        let statuses = try familyNames.compactMap { name -> ModuleStatus? in
            let state = state(of: name)
            // Absent names of other kernel versions are noise, except the core pair.
            if state == .absent && !["nf_conntrack", "nf_nat"].contains(name) { return nil }
            let entry = try indexEntry(name)
            return ModuleStatus(
                name: name, state: state, refcount: live.loaded[name]?.refcount,
                holders: live.loaded[name]?.holders ?? [],
                dependencies: entry?.dependenciesInLoadOrder ?? [],
                softdepsBefore: entry?.softdepsBefore ?? [], softdepsAfter: entry?.softdepsAfter ?? [],
                blacklisted: blacklisted.contains(name), installCommand: entry?.installCommand)
        }
        return ModuleInventory(
            release: release, support: live.support, treeDirectory: tree?.kmod.modulesDirectory.string, modules: statuses)
    }
}
