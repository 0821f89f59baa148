import TunerCore
import TunerModel
import TunerSystem

/// The order in which modules would be unloaded, and why it may not happen.
public struct UnloadPlan: Equatable, Sendable {
    public struct Step: Equatable, Sendable {
        public var module: String
        /// Why it is in the list: "conntrack family", "holder of nf_nat", …
        public var reason: String
    }

    public var steps: [Step]
    /// Family members built into the kernel (cannot be unloaded).
    public var builtIn: [String]
    /// Modules in the order that still have users other than modules once
    /// their holders are gone (rules, sockets), with that count: the kernel
    /// would answer EBUSY.
    public var inUse: [String: Int]
    /// Loaded modules outside the family that hold a family module, with
    /// the family modules each holds: cttune never unloads them, so they
    /// refuse the unload.
    public var outsideHolders: [String: [String]]
    /// Firewall rules that need connection tracking (unloading would break them).
    public var blockingRules: [String]
    public var support: LiveModules.Support

    public var order: [String] { steps.map(\.module) }

    /// Why the unload must not start, or `nil` when it may. Checked before
    /// anything is unloaded, so a refusal leaves the host untouched.
    public var refusal: TunerError? {
        if support == .none { return .noModuleSupport(builtIn: builtIn) }
        if let core = builtIn.first(where: ModuleFamily.core.contains) { return .moduleBuiltIn(module: core) }
        if !outsideHolders.isEmpty { return .outsideFamilyHolders(outsideHolders) }
        if !blockingRules.isEmpty { return .rulesNeedConntrack(rules: blockingRules) }
        if let (module, users) = inUse.min(by: { $0.key < $1.key }) { return .moduleInUse(module: module, users: users) }
        return nil
    }
}

/// Computes the unload order the way `modprobe -r --remove-holders` does in
/// kmod 31+ (Debian 12's kmod 30 does not recurse): holders first,
/// recursively, then the module, then its dependencies and soft
/// dependencies whose refcount dropped to 0 — but only within the family
/// (`ModuleFamily`): a holder outside it (openvswitch, ip_vs, act_ct) is a
/// refusal naming it, and a dependency outside it (x_tables, libcrc32c) stays
/// loaded. nf_defrag_* go only with `includingDefrag`, and then only as
/// dependencies left unused. Pure: it reads nothing.
public enum UnloadPlanner {
    /// - Parameters:
    ///   - targets: the modules to remove (the loaded family members), in
    ///     the order to visit them.
    ///   - live: the kernel's loaded modules, refcounts and holders.
    ///   - index: dependencies and softdeps of a module, `nil` when unknown.
    public static func plan(
        targets: [String], live: LiveModules, index: (String) throws -> ModuleIndexEntry?,
        builtIn: [String], blockingRules: [String], includingDefrag: Bool = false
    ) rethrows -> UnloadPlan {
        var planner = Walk(live: live, includingDefrag: includingDefrag)
        for target in targets where ModuleFamily.contains(target) {
            try planner.visit(target, reason: "conntrack family", index: index)
        }
        return UnloadPlan(
            steps: planner.steps, builtIn: builtIn, inUse: planner.inUse, outsideHolders: planner.outsideHolders,
            blockingRules: blockingRules, support: live.support)
    }

    private struct Walk {
        let live: LiveModules
        let includingDefrag: Bool
        var outsideHolders: [String: [String]] = [:]
        var steps: [UnloadPlan.Step] = []
        var inUse: [String: Int] = [:]
        var removed: Set<String> = []
        var visiting: Set<String> = []
        /// Refcounts as they will be once the modules planned so far are gone.
        var remaining: [String: Int]

        init(live: LiveModules, includingDefrag: Bool) {
            self.live = live
            self.includingDefrag = includingDefrag
            remaining = live.loaded.mapValues(\.refcount)
        }

        /// Whether `name` is a family member (nf_defrag_* when included),
        /// loaded, not yet planned, and would have no users left: a
        /// dependency is removed only then.
        func isUnused(_ name: String) -> Bool {
            guard ModuleFamily.contains(name, includingDefrag: includingDefrag) else { return false }
            guard let module = live.loaded[name], !removed.contains(name), !visiting.contains(name) else { return false }
            return remaining[name] == 0 && module.holders.allSatisfy(removed.contains)
        }

        mutating func visit(_ name: String, reason: String, index: (String) throws -> ModuleIndexEntry?) rethrows {
            guard let module = live.loaded[name], !removed.contains(name), !visiting.contains(name) else { return }
            visiting.insert(name)
            defer { visiting.remove(name) }
            let entry = try index(name)
            // Post softdeps were loaded after the module: they go first.
            for after in entry?.softdepsAfter ?? [] where isUnused(after) {
                try visit(after, reason: "loaded after \(name) (softdep post), unused", index: index)
            }
            for holder in module.holders {
                guard ModuleFamily.contains(holder) else {
                    outsideHolders[holder, default: []].append(name)
                    continue
                }
                try visit(holder, reason: "holder of \(name)", index: index)
            }
            // Holders outside the family stay (they are the refusal); any
            // other reference is a rule, a socket or another kernel user.
            let keptHolders = module.holders.filter { !removed.contains($0) }.count
            if let users = remaining[name], users - keptHolders > 0 { inUse[name] = users - keptHolders }
            steps.append(.init(module: name, reason: reason))
            removed.insert(name)
            for (other, loaded) in live.loaded where loaded.holders.contains(name) {
                remaining[other, default: 0] -= 1
            }
            for dependency in (entry?.dependenciesInLoadOrder ?? []).reversed() where isUnused(dependency) {
                try visit(dependency, reason: "dependency of \(name), no longer used", index: index)
            }
            for before in (entry?.softdepsBefore ?? []).reversed() where isUnused(before) {
                try visit(before, reason: "loaded before \(name) (softdep pre), no longer used", index: index)
            }
        }
    }
}
