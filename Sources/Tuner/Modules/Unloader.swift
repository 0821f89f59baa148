import SystemPackage

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
    /// - Parameter blockingRules: firewall rules that need connection
    ///   tracking; any makes the plan a refusal.
    public func unloadPlan(blockingRules: [String]) throws -> UnloadPlan {
        let targets = familyNames.filter { live.loaded[$0] != nil }
        return try UnloadPlanner.plan(
            targets: targets, live: live, index: indexEntry,
            builtIn: builtInFamily, blockingRules: blockingRules)
    }

    /// Plans and, unless `dryRun`, unloads through libkmod.
    public func unload(blockingRules: [String], dryRun: Bool) throws -> UnloadOutcome {
        let plan = try unloadPlan(blockingRules: blockingRules)
        if dryRun {
            return UnloadOutcome(plan: plan, unloaded: [], alreadyGone: [], failure: plan.refusal, dryRun: true)
        }
        let kmod = try kmodContext()
        return Unloader.execute(
            plan, remove: { try kmod.remove(moduleNamed: $0) },
            liveAfterFailure: { try? LiveModules.read(from: root) })
    }

    /// The tree's libkmod context, or one without indexes when the host has
    /// no module tree (removal needs only the name).
    func kmodContext() throws -> KmodContext {
        if let tree { return tree.kmod }
        return try KmodContext(root: root, release: release ?? "")
    }
}

/// The stateless workflow's module half, for `apply --profile stateless`.
public struct StatelessModulesResult: Equatable, Sendable {
    public var unload: UnloadOutcome
    /// The blacklist file, written only when every unload succeeded.
    public var blacklist: BlacklistResult?
    /// cttune's modules-load.d and hashsize options files, removed with the blacklist.
    public var removedFiles: [String: FileAction]
}

extension ModuleHost {
    /// Unloads the family and, only when every unload succeeded, writes the
    /// blacklist file and removes cttune's load files, so a failure leaves
    /// nothing that would keep the modules from coming back.
    public func unloadAndBlacklist(blockingRules: [String], output: FilePath? = nil) throws -> StatelessModulesResult {
        let outcome = try unload(blockingRules: blockingRules, dryRun: false)
        guard outcome.succeeded else { return StatelessModulesResult(unload: outcome, blacklist: nil, removedFiles: [:]) }
        let blacklist = try writeBlacklist(output: output, allKernels: true, dryRun: false)
        let removed = Dictionary(uniqueKeysWithValues: try removeConntrackLoadFiles().map { ($0.path, $0.action) })
        return StatelessModulesResult(unload: outcome, blacklist: blacklist, removedFiles: removed)
    }
}
