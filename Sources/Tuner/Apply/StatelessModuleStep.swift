import SystemPackage

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
    ///   - request: `runtime` unloads now, `persistent` writes the blacklist file.
    static func make(under root: SystemRoot, request: ApplyRequest, blockingRules: [String]) throws -> StatelessModuleStep {
        let host = try ModuleHost(root: root, anyKernel: true)
        let plan = try host.unloadPlan(blockingRules: blockingRules)
        var step = StatelessModuleStep(unloads: plan.steps, results: [:], blacklist: nil, skipped: nil, unloadActions: [])
        if let refusal = plan.refusal {
            step.skipped = refusal.description
            for unload in plan.steps { step.results[unload.module] = .skipped("not attempted: \(refusal)") }
            return step
        }
        for unload in plan.steps {
            if request.runtime {
                step.unloadActions.append(.module(.init(name: unload.module, loaded: false)))
                step.results[unload.module] = .pending
            } else {
                step.results[unload.module] = .skipped("--persist-only: left loaded; the blacklist keeps it off from the next boot")
            }
        }
        let modules = try host.blacklistCandidates(allKernels: true)
        guard request.persistent, !modules.isEmpty else { return step }
        let old = try AtomicFile.contents(of: KernelPaths.blacklistConf, under: root)
        let new = BlacklistFile.contents(for: modules)
        let shown = try AtomicFile.checkedPath(KernelPaths.blacklistConf, under: root).string
        let action: FileResult.Action = old == nil ? .created : old == new ? .unchanged : .updated
        if action != .unchanged {
            step.blacklistAction = .file(.init(path: KernelPaths.blacklistConf.string, oldContent: old, newContent: new))
        }
        step.blacklist = FileResult(
            path: shown, action: action,
            diff: action == .unchanged ? "" : TextDiff.unified(old: old, new: new, path: shown))
        return step
    }
}
