import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// What an unload did: the modules gone, and the failure that stopped it.
public struct UnloadOutcome: Equatable, Sendable {
    public var plan: UnloadPlan
    /// Unloaded by this run, in order.
    public var unloaded: [String]
    /// Already gone when their turn came (ENOENT): unloaded by someone else.
    public var alreadyGone: [String]
    /// The refusal or the first failure; later steps were not attempted.
    public var failure: TunerError?
    public var dryRun: Bool
    /// What else on the host uses conntrack (IPVS, OVS, tc), for the report.
    public var consumers = ConntrackConsumers(findings: [], bridgeNote: nil)

    public var succeeded: Bool { failure == nil }
}

/// Runs an `UnloadPlan` step by step, stopping at the first failure so what
/// was done is known exactly.
public enum Unloader {
    /// - Parameters:
    ///   - remove: unloads one module; returns the kernel's errno or `nil`.
    ///   - liveAfterFailure: re-reads the kernel's state to name holders on EBUSY.
    public static func execute(
        _ plan: UnloadPlan, remove: (String) throws -> Errno?,
        liveAfterFailure: () -> LiveModules?
    ) -> UnloadOutcome {
        var outcome = UnloadOutcome(plan: plan, unloaded: [], alreadyGone: [], failure: plan.refusal, dryRun: false)
        guard outcome.failure == nil else { return outcome }
        for step in plan.steps {
            let code: Errno?
            do { code = try remove(step.module) } catch let error as TunerError {
                outcome.failure = error
                return outcome
            } catch {
                outcome.failure = .unloadFailed(module: step.module, reason: "\(error)")
                return outcome
            }
            switch code {
            case nil: outcome.unloaded.append(step.module)
            case .noSuchFileOrDirectory?: outcome.alreadyGone.append(step.module)
            case let errno?:
                outcome.failure = error(for: errno, module: step.module, live: errno == .resourceBusy ? liveAfterFailure() : nil)
                return outcome
            }
        }
        return outcome
    }

    /// The action-naming error for a `delete_module` errno.
    static func error(for errno: Errno, module: String, live: LiveModules?) -> TunerError {
        switch errno {
        case .resourceBusy:
            let loaded = live?.loaded[module]
            let holders = loaded?.holders ?? []
            return .moduleBusy(module: module, holders: holders, users: loaded.map { max(0, $0.refcount - holders.count) })
        case .noFunction: return .unloadUnsupported(module: module)
        case .notPermitted: return .unloadNotPermitted(module: module)
        default: return .unloadFailed(module: module, reason: errnoText(errno))
        }
    }
}

extension ModuleHost {
    /// The unload order for every loaded family member (core first, holders
    /// before what they hold), with what would stop it.
    ///
    /// - Parameters:
    ///   - blockingRules: firewall rules that need connection tracking; any
    ///     makes the plan a refusal.
    ///   - includingDefrag: also unload nf_defrag_* once nothing uses them
    ///     (the stateless apply's `--include-defrag`; `unload` never does).
    public func unloadPlan(blockingRules: [String], includingDefrag: Bool = false) throws -> UnloadPlan {
        let targets = familyNames.filter { live.loaded[$0] != nil }
        return try UnloadPlanner.plan(
            targets: targets, live: live, index: indexEntry,
            builtIn: builtInFamily, blockingRules: blockingRules, includingDefrag: includingDefrag)
    }

    /// Plans and, unless `dryRun`, unloads through libkmod.
    public func unload(blockingRules: [String], dryRun: Bool) throws -> UnloadOutcome {
        let plan = try unloadPlan(blockingRules: blockingRules)
        var outcome: UnloadOutcome
        if dryRun {
            outcome = UnloadOutcome(plan: plan, unloaded: [], alreadyGone: [], failure: plan.refusal, dryRun: true)
        } else {
            let kmod = try kmodContext()
            outcome = Unloader.execute(
                plan, remove: { try kmod.remove(moduleNamed: $0) },
                liveAfterFailure: { try? LiveModules.read(from: root) })
        }
        outcome.consumers = ConntrackConsumers.read(under: root)
        return outcome
    }

    /// The tree's libkmod context, or one without indexes when the host has
    /// no module tree (removal needs only the name).
    func kmodContext() throws -> KmodContext {
        if let tree { return tree.kmod }
        return try KmodContext(root: root, release: release ?? "")
    }
}
