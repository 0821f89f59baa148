import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// What `cttune apply` should do besides computing the plan.
public struct ApplyRequest: Sendable {
    /// Write the kernel settings now.
    public var runtime = true
    /// Write the boot-time files.
    public var persistent = true
    /// Report what would change; write nothing (not even the lock or the journal).
    public var check = false
    /// The command line printed in each generated file's header, when no
    /// `profileReference` lets it be made from the plan's inputs.
    public var regenerateCommand = "cttune apply --persist-only"
    /// The profile as named on the command line (a path made absolute): the
    /// header's command is then made from every input of the plan.
    public var profileReference: String?
    /// `--kernel` as given, recorded in the header's command.
    public var kernel: String?
    /// `--ruleset` as a path made absolute, recorded in the header's command (not stdin).
    public var ruleset: String?
    public var lockWaitSeconds = ApplyLock.defaultWaitSeconds
    /// A stateless profile also blacklists nf_defrag_* and unloads them when
    /// nothing else uses them (`--include-defrag`).
    public var includeDefrag = false
    /// A stateless profile blacklists the family even when modules outside
    /// it that the blacklist makes unloadable are in use (`--force`).
    public var force = false
    /// Journal entries kept after a change (`nil`: no pruning).
    public var journalKeep: Int? = Rollback.defaultKeep
    /// What to do when another file decides a planned key at boot.
    public var onConflict = ConflictPolicy.warn

    public init() {}
}

/// `--on-conflict`: what apply does when another tool's file, read after
/// cttune's at boot, sets a key cttune plans. cttune never edits that file.
public enum ConflictPolicy: String, CaseIterable, Sendable {
    /// Apply, and report each such line (`overridden_by`).
    case warn
    /// Change nothing and exit 1.
    case refuse
    /// Write `99-zz-cttune.conf` instead of `90-cttune.conf`, read after them.
    case override

    /// cttune's sysctl.d file under this policy.
    public var sysctlFile: FilePath { self == .override ? KernelPaths.sysctlConfLast : KernelPaths.sysctlConf }
}

/// The result of one setting in an apply.
public enum SettingResult: Equatable, Sendable {
    case applied
    case unchanged
    /// Not applied; the reason says why and what to do.
    case skipped(String)
    case failed(String)
    /// Applied, then undone because a later step failed.
    case rolledBack
    /// `--check`: would be applied.
    case pending
}

/// What happens to one generated file.
public struct FileResult: Equatable, Sendable {
    /// The path as written (under the root).
    public var path: String
    public var action: FileAction
    /// Unified diff from the old content to the new; empty when unchanged.
    public var diff: String
}

/// The outcome of `cttune apply`: the plan plus what happened to each
/// setting and file.
public struct ApplyOutcome {
    public var plan: TuningPlan
    public var results: [ConntrackSetting: SettingResult]
    public var files: [FileResult]
    public var notes: [String]
    public var journalID: String?
    /// Something was changed (or, with `--check`, would be).
    public var changed: Bool
    /// The failed step, everything done before it undone.
    public var error: TunerError?
    public var check: Bool

    /// Whether kernel settings were to be written (not `--persist-only`).
    public var runtime: Bool
    /// A stateless profile's firewall check.
    public var stateless: StatelessReview?
    /// A stateless profile's module step (unload and blacklist).
    public var modules: StatelessModuleStep?
    /// cttune's nft table of cures in the running kernel; `nil` when not compared.
    public var cureTable: CureTableStep? = nil
    /// Lines of other files that decide planned keys at boot instead of cttune's.
    public var overrides: [ConfigOverride] = []
    /// Every write only re-asserted a value of cttune's own sysctl.d file
    /// (the boot apply): done, and not journaled.
    public var reasserted = false

    /// Settings that should change now but could not be applied from here.
    public var skippedForGood: [ConntrackSetting] {
        guard runtime else { return [] }
        return plan.settings.compactMap { setting in
            if case .skipped = results[setting.setting], setting.blocker != nil { return setting.setting }
            return nil
        }
    }

    /// What could not be done here, for the partial-apply error: the
    /// skipped settings' keys and the module step when it was skipped.
    public var notAppliedHere: [String] {
        skippedForGood.map(\.key) + (modules?.skipped != nil ? ["the conntrack module unload and blacklist"] : [])
    }
}

/// Computes the plan's runtime writes and file changes, and applies them in
/// one journaled transaction.
public enum Applier {
    /// The plan for these facts and this profile, or `planDoesNotFit`.
    static func fittingPlan(facts: HostFacts, profile: LoadProfile, rules: ClassRuleFacts = .notJudged) throws -> TuningPlan {
        let plan = Planner.plan(for: facts, profile: profile, rules: rules)
        if let detail = plan.loadTooLarge { throw TunerError.loadTooLarge(profile: profile.name, detail: detail) }
        guard plan.fitsBudget else {
            throw TunerError.planDoesNotFit(
                neededBytes: plan.estimate.memoryBytes, budgetBytes: plan.estimate.budgetBytes,
                profile: profile.name)
        }
        return plan
    }

    /// Applies the plan for the profile and the host `inputs` name: the
    /// profile is loaded first, so a bad one is refused before the lock file
    /// exists, and the facts are read under the lock (docs/robustness.md).
    public static func apply(
        under root: SystemRoot, request: ApplyRequest, inputs: PlanInputs, modules: ModuleOperations? = nil,
        analyzer: RulesetAnalyzer = RulesetAnalyzer()
    ) throws -> ApplyOutcome {
        let profile = try inputs.loadProfile(under: root)
        return try apply(
            under: root, request: request, modules: modules, analyzer: analyzer, profile: profile, ruleset: inputs.ruleset,
            facts: { try inputs.gatherFacts(under: root) })
    }

    /// Applies the plan for `profile` and the facts `facts()` reads while the
    /// lock is held (so the old values recorded are the values replaced).
    ///
    /// A stateless profile (`stateful: false`) first has the live firewall
    /// checked (not for a `--root` tree) and is refused, changing nothing,
    /// when rules need connection tracking; its module step (unload, then
    /// the blacklist file) joins the same transaction after the settings.
    ///
    /// - Parameters:
    ///   - modules: how module actions run; libkmod under `root` by default.
    ///   - analyzer: reads the live ruleset for a stateless profile.
    public static func apply(
        under root: SystemRoot, request: ApplyRequest, modules: ModuleOperations? = nil,
        analyzer: RulesetAnalyzer = RulesetAnalyzer(),
        profile: LoadProfile, ruleset: String? = nil, facts gatherFacts: () throws -> HostFacts
    ) throws -> ApplyOutcome {
        // The caller loaded the profile and checked the flags before this
        // call, so bad input of theirs is refused before the lock file exists.
        // The host's facts are read once, under the lock: a concurrent apply
        // never reads a file another one is rewriting (a refusal based on the
        // facts leaves the empty lock file, as docs/robustness.md says).
        // `--on-conflict refuse` changes nothing, not even the lock file
        // (docs/apply.md): the same check on an unlocked reading refuses first,
        // and is repeated under the lock (a reading that fails here is left to it).
        if request.persistent && request.onConflict == .refuse && !request.check, let facts = try? gatherFacts(),
            let plan = try? fittingPlan(facts: facts, profile: profile)
        {
            let overrides = try PersistentConfig.overrides(of: config(plan, request: request, under: root).files, under: root)
            if !overrides.isEmpty { throw TunerError.overriddenAtBoot(overrides: overrides.map(\.sentence)) }
        }
        let lock = request.check ? nil : try ApplyLock(root: root, waitSeconds: request.lockWaitSeconds)
        defer { withExtendedLifetime(lock) {} }
        let facts = try gatherFacts()
        // The firewall is judged under the lock too, right before the cures are applied.
        var plan = try fittingPlan(
            facts: facts, profile: profile, rules: try ClassReach.facts(for: profile, under: root, ruleset: ruleset, analyzer: analyzer))
        if request.persistent && request.onConflict == .refuse {
            let overrides = try PersistentConfig.overrides(of: config(plan, request: request, under: root).files, under: root)
            if !overrides.isEmpty { throw TunerError.overriddenAtBoot(overrides: overrides.map(\.sentence)) }
        }
        let review = profile.stateful ? nil : try StatelessReview.review(plan, root: root, analyzer: analyzer)
        plan = review?.plan ?? plan
        if let review, review.refused { return refusal(plan, review: review, request: request) }

        let (results, sysctlActions) = try runtimeActions(plan, request: request, under: root)
        var (files, fileActions, notes) = try request.persistent ? fileActions(plan, request: request, under: root) : ([], [], [])
        if request.runtime, let note = liveCountNote(plan, results: results) { notes.insert(note, at: 0) }
        // Module syscalls act on the running kernel: under a --root tree only
        // a test's stand-in for the kernel may receive them.
        let moduleStep = try review.map {
            try StatelessModuleStep.make(
                under: root, request: request, blockingRules: $0.rules?.blockingRules ?? [], unloadsHere: root.isLive || modules != nil)
        }
        if let review, let step = moduleStep, let error = step.refusal {
            var outcome = refusal(plan, review: review, request: request, error: error)
            outcome.modules = step
            return outcome
        }
        if let blacklist = moduleStep?.blacklist { files.append(blacklist) }
        let cureTable = try CureTableStep.make(plan, request: request, under: root)
        // Settings first (their sysctls vanish with nf_conntrack), then the
        // unloads, then the cure table, then the files: the blacklist only
        // once every unload succeeded.
        let actions =
            sysctlActions + (moduleStep?.unloadActions ?? []) + (cureTable?.action.map { [$0] } ?? []) + fileActions
            + (moduleStep?.blacklistAction.map { [$0] } ?? [])

        var outcome = ApplyOutcome(
            plan: plan, results: results, files: files, notes: notes, journalID: nil,
            changed: !actions.isEmpty, error: nil, check: request.check,
            runtime: request.runtime, stateless: review, modules: moduleStep, cureTable: cureTable)
        if request.persistent {
            outcome.overrides = try PersistentConfig.overrides(of: config(plan, request: request, under: root).files, under: root)
        }
        guard !request.check, !actions.isEmpty else { return outcome }

        let entry = JournalEntry(
            id: Journal.newIdentifier(), command: "apply", created: Journal.timestamp(),
            profile: profile.name, status: .inProgress, actions: actions)
        let journaled = !reassertsPersistedValues(actions, request: request, under: root)
        let run = try Transaction(root: root, modules: modules).run(entry, journaled: journaled)
        outcome.journalID = journaled ? entry.id : nil
        outcome.reasserted = !journaled
        // Retention: the journal would otherwise grow by one entry per
        // change forever; the baseline of `rollback --all` is always kept.
        if let keep = request.journalKeep { _ = try? Rollback.prune(keep: keep, under: root) }
        for (index, action) in actions.enumerated() {
            let result: SettingResult
            switch run.failedStep {
            case nil: result = .applied
            case let (failedIndex, error)? where index == failedIndex: result = .failed(error.description)
            case let (failedIndex, _)? where index < failedIndex: result = .rolledBack
            default: result = .skipped("not attempted: an earlier step failed")
            }
            switch action {
            case .sysctl(let change): ConntrackSetting(rawValue: change.key).map { outcome.results[$0] = result }
            case .module(let change): outcome.modules?.results[change.name] = result
            case .nftTable: outcome.cureTable?.result = result
            case .file: break
            }
        }
        if run.failedStep != nil {
            // Every file is back as it was.
            outcome.files = outcome.files.map { FileResult(path: $0.path, action: .unchanged, diff: "") }
            if let blacklist = outcome.modules?.blacklist {
                outcome.modules?.blacklist = FileResult(path: blacklist.path, action: .unchanged, diff: "")
            }
            outcome.changed = false
            outcome.error = run.error
        }
        return outcome
    }

    /// A stateless profile refused because live rules need connection
    /// tracking: nothing is changed, the settings that would change are skipped.
    static func refusal(_ plan: TuningPlan, review: StatelessReview, request: ApplyRequest, error: TunerError? = nil) -> ApplyOutcome {
        let reason = error == nil ? "refused: firewall rules need connection tracking" : "refused: the blacklist would break modules in use"
        let error = error ?? review.refusal ?? TunerError.statelessRefused(ruleCount: review.rules?.findings.count ?? 0)
        var results: [ConntrackSetting: SettingResult] = [:]
        for setting in plan.settings {
            results[setting.setting] = setting.changes ? .skipped(reason) : .unchanged
        }
        return ApplyOutcome(
            plan: plan, results: results, files: [], notes: [], journalID: nil, changed: false,
            error: error, check: request.check, runtime: request.runtime, stateless: review, modules: nil)
    }

    /// The kernel writes the plan needs: each setting's result so far, and
    /// the actions for the settings that change and can be written here.
    static func runtimeActions(
        _ plan: TuningPlan, request: ApplyRequest,
        under root: SystemRoot
    ) throws -> ([ConntrackSetting: SettingResult], [JournalAction]) {
        var results: [ConntrackSetting: SettingResult] = [:]
        var actions: [JournalAction] = []
        for setting in plan.settings {
            if !setting.changes {
                results[setting.setting] = .unchanged
            } else if !request.runtime {
                results[setting.setting] = .skipped("--persist-only: written to the boot-time files, not applied now")
            } else if let blocker = setting.blocker {
                results[setting.setting] = .skipped(blocker)
            } else if let current = setting.current {
                let path = try SettingWriter.path(
                    for: setting.setting, bucketsSysctlWritable: plan.facts.bucketsSysctlWritable, under: root)
                let value = runtimeValue(setting, current: current, plan: plan)
                guard value != current else {
                    results[setting.setting] = .unchanged
                    continue
                }
                actions.append(.sysctl(.init(key: setting.key, path: path, old: current, new: value)))
                results[setting.setting] = .pending
            } else {
                results[setting.setting] = .skipped("current value unreadable, so it could not be restored — check \(setting.key)")
            }
        }
        return (results, actions)
    }

    /// Whether a runtime-only apply writes nothing but values cttune's own
    /// sysctl.d file already holds: what the boot apply does after
    /// systemd-sysctl skipped keys (module not loaded yet) or another writer
    /// changed them. Such an apply is not journaled, so the journal does not
    /// grow by one entry per boot; the file is the record, and
    /// `rollback --all` still finds the baseline in the first apply.
    /// Loading the table of cures that cttune's own `/etc/cttune/cures.nft`
    /// holds counts as such a value too: after a reboot the ruleset has no
    /// table until the boot apply loads it.
    static func reassertsPersistedValues(_ actions: [JournalAction], request: ApplyRequest, under root: SystemRoot) -> Bool {
        guard !request.persistent, !actions.isEmpty else { return false }
        let persisted = PersistentConfig.persistedValues(under: root)
        guard !persisted.isEmpty else { return false }
        return actions.allSatisfy { action in
            switch action {
            case .sysctl(let change):
                let key = change.key == ConntrackSetting.hashsize.key ? HashSizeNames.sysctl : change.key
                return persisted[EffectiveSysctl.normalize(key)] == String(change.new)
            case .nftTable(let change):
                guard let table = change.newContent else { return false }
                let file = (try? AtomicFile.contents(of: KernelPaths.curesTable, under: root)) ?? nil
                return file?.hasPrefix(PersistentConfig.headerMarker) == true && file?.hasSuffix(CureTable.replacement(with: table)) == true
            case .file, .module:
                return false
            }
        }
    }

    /// The boot-time files for this plan and request.
    static func config(_ plan: TuningPlan, request: ApplyRequest, under root: SystemRoot) -> PersistentConfig {
        PersistentConfig.make(
            for: plan, regenerateCommand: regenerateCommand(plan, request: request),
            bucketsSysctlWritable: plan.facts.bucketsSysctlWritable, sysctlFile: request.onConflict.sysctlFile,
            conntrackBlacklisted: PersistentConfig.conntrackBlacklisted(under: root))
    }

    /// The command in the files' header: made from every input of the plan
    /// when the profile reference is known, with a non-default conflict policy.
    static func regenerateCommand(_ plan: TuningPlan, request: ApplyRequest) -> String {
        guard let reference = request.profileReference else { return request.regenerateCommand }
        let command = PersistentConfig.regenerateCommand(
            for: plan, profileReference: reference, kernel: request.kernel, ruleset: request.ruleset)
        return request.onConflict == .warn ? command : command + " --on-conflict \(request.onConflict.rawValue)"
    }

    /// Never lower nf_conntrack_max below what is tracked now (times the
    /// headroom): new flows would be dropped until entries expire. The
    /// running value is clamped, the boot-time files keep the plan.
    static func runtimeValue(_ setting: TuningPlan.Setting, current: Int, plan: TuningPlan) -> Int {
        guard setting.setting == .max, setting.planned < current, let floor = liveCountFloor(plan), floor > setting.planned else {
            return setting.planned
        }
        return Swift.min(floor, current)
    }

    /// The live count x headroom, rounded like a planned max; `nil` when the count is unknown.
    public static func liveCountFloor(_ plan: TuningPlan) -> Int? {
        guard let count = plan.facts.count else { return nil }
        return Planner.roundUp(
            Planner.saturatingInt((Double(count) * plan.profile.headroom).rounded(.up)), to: Planner.bucketGranularity(plan.facts))
    }

    /// The note for a max kept above the plan by the live count.
    static func liveCountNote(_ plan: TuningPlan, results: [ConntrackSetting: SettingResult]) -> String? {
        guard let setting = plan.settings.first(where: { $0.setting == .max }), let current = setting.current,
            results[.max] == .pending || results[.max] == .unchanged,
            runtimeValue(setting, current: current, plan: plan) != setting.planned
        else { return nil }
        let value = runtimeValue(setting, current: current, plan: plan)
        return
            """
            nf_conntrack_max kept at \(value) instead of the planned \(setting.planned): \(plan.facts.count ?? 0) entries \
            are tracked now (x headroom \(Planner.whole(plan.profile.headroom))); rerun apply once the table has drained. \
            The boot-time files have \(setting.planned).
            """
    }

    /// The boot-time files compared with what is on disk: what happens to
    /// each, the actions for those that change, and the notes to print.
    static func fileActions(
        _ plan: TuningPlan, request: ApplyRequest,
        under root: SystemRoot
    ) throws -> ([FileResult], [JournalAction], [String]) {
        let config = config(plan, request: request, under: root)
        var files: [FileResult] = []
        var actions: [JournalAction] = []
        for file in config.files {
            let old = try AtomicFile.contents(of: file.path, under: root)
            let shown = try root.path(file.path).string
            let action: FileAction
            switch (old, file.content) {
            case (nil, nil): continue
            case let (old?, nil):
                guard old.hasPrefix(PersistentConfig.headerMarker) else { continue }  // not ours: leave it
                action = .removed
            case (nil, _): action = .created
            case let (old?, new?): action = old == new ? .unchanged : .updated
            }
            if action != .unchanged {
                actions.append(.file(.init(path: file.path, oldContent: old, newContent: file.content)))
            }
            files.append(
                FileResult(
                    path: shown, action: action,
                    diff: action == .unchanged ? "" : TextDiff.unified(old: old, new: file.content, path: shown)))
        }
        return (files, actions, config.notes)
    }
}
