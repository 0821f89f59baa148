import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// The module half of `cttune apply` with a stateless profile: unload the
/// conntrack family (holders first) and write the blacklist file, as
/// actions of the apply's own transaction, so a failure reloads what was
/// unloaded and `cttune rollback` reloads it all and removes the file.
///
/// cttune's modules-load.d and hashsize options files are removed by the
/// persistent part (`PersistentConfig` wants neither for a stateless
/// profile): their boot-time load would fail against `install … /bin/false`.
public struct StatelessModuleStep {
    /// The unload order, with why each module is in it.
    public var unloads: [UnloadPlan.Step]
    /// What happened to each module of `unloads`, by name.
    public var results: [String: SettingResult]
    /// /etc/modprobe.d/cttune-blacklist.conf; `nil` when no module tree
    /// under the root has a loadable family module (nothing could load at boot).
    public var blacklist: FileResult?
    /// Why the step does not run here (no module support, nf_conntrack built
    /// in, a module in use): nothing of it is done, and the apply is partial.
    public var skipped: String?
    /// Why the apply is refused before anything changes: a module outside
    /// the family that the blacklist makes unloadable is in use (`--force`
    /// overrides it).
    public var refusal: TunerError?
    /// The modules outside the family the blacklist makes unloadable; `nil`
    /// when no blacklist is planned (`--runtime-only`).
    public var impact: BlacklistImpact?
    /// What else on the host uses conntrack (IPVS, OVS, tc) and the
    /// br_netfilter note, for the report.
    public var consumers = ConntrackConsumers(findings: [], bridgeNote: nil)
    /// Why nothing is unloaded although the step runs: under `--root DIR`
    /// the tree's modules are not the running kernel's, so only files are written.
    public var note: String?
    /// One unload per module, in order.
    var unloadActions: [JournalAction]
    /// Writing the blacklist file, when it changes.
    var blacklistAction: JournalAction?

    /// The step's overall result: `skipped` with the reason, `failed` or
    /// `rolled-back` when any module was, `applied` when anything changed;
    /// `pending` under `--check` when something would.
    public var result: SettingResult {
        if let skipped { return .skipped(skipped) }
        let all = Array(results.values) + (blacklist.map { [$0.action == .unchanged ? .unchanged : .applied] } ?? [])
        if let failed = all.first(where: { if case .failed = $0 { return true } else { return false } }) { return failed }
        if all.contains(.rolledBack) { return .rolledBack }
        if all.contains(.pending) { return .pending }
        return all.contains(.applied) ? .applied : .unchanged
    }

    /// Plans the step for the host under `root`.
    ///
    /// - Parameters:
    ///   - blockingRules: live firewall rules that need connection tracking
    ///     (refused before this is reached; passed so the unload plan agrees).
    ///   - request: `runtime` unloads now, `persistent` writes the blacklist
    ///     file; `includeDefrag` and `force` as on the command line.
    ///   - unloadsHere: whether module syscalls reach the kernel whose state
    ///     the root shows: only the running system (or a test's stand-in).
    static func make(
        under root: SystemRoot, request: ApplyRequest, blockingRules: [String], unloadsHere: Bool
    ) throws -> StatelessModuleStep {
        let host = try ModuleHost(root: root, anyKernel: true)
        let plan = try host.unloadPlan(blockingRules: blockingRules, includingDefrag: request.includeDefrag)
        var step = StatelessModuleStep(
            unloads: plan.steps, results: [:], blacklist: nil, skipped: nil, refusal: nil, impact: nil, note: nil, unloadActions: [])
        step.consumers = ConntrackConsumers.read(under: root)
        if request.persistent {
            let impact = try host.blacklistImpact(allKernels: true, includingDefrag: request.includeDefrag)
            step.impact = impact
            step.refusal = request.force ? nil : impact.refusal
        }
        // A kernel without module support or with nf_conntrack built in is a
        // fact of the tree too: no module step can help it, here or at boot.
        let kernelRefusal: TunerError? = plan.refusal.flatMap {
            switch $0 {
            case .noModuleSupport, .moduleBuiltIn: return $0
            default: return nil
            }
        }
        if !unloadsHere, kernelRefusal == nil {
            step.note = "--root: \(root.base) is not the running system, so no module is unloaded; only the files are written"
            for unload in plan.steps { step.results[unload.module] = .skipped("--root: left to the system that boots this tree") }
        } else if let refusal = kernelRefusal ?? plan.refusal {
            step.skipped = refusal.description
            for unload in plan.steps { step.results[unload.module] = .skipped("not attempted: \(refusal)") }
            return step
        } else {
            for unload in plan.steps {
                if request.runtime {
                    step.unloadActions.append(.module(.init(name: unload.module, loaded: false)))
                    step.results[unload.module] = .pending
                } else {
                    step.results[unload.module] = .skipped("--persist-only: left loaded; the blacklist keeps it off from the next boot")
                }
            }
        }
        let modules = step.impact?.modules ?? []
        guard request.persistent, !modules.isEmpty else { return step }
        let old = try AtomicFile.contents(of: KernelPaths.blacklistConf, under: root)
        let new = BlacklistFile.contents(for: modules)
        let shown = try AtomicFile.checkedPath(KernelPaths.blacklistConf, under: root).string
        let action: FileAction = old == nil ? .created : old == new ? .unchanged : .updated
        if action != .unchanged {
            step.blacklistAction = .file(.init(path: KernelPaths.blacklistConf, oldContent: old, newContent: new))
        }
        step.blacklist = FileResult(
            path: shown, action: action,
            diff: action == .unchanged ? "" : TextDiff.unified(old: old, new: new, path: shown))
        return step
    }
}
