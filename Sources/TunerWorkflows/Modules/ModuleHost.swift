import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

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
            release = try KernelRelease.resolve(under: root, requested: requested)
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
