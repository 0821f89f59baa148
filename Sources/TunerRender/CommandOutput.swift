import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// What a command prints, in the one shape every renderer has: `text()` for
/// people, `json()` for the members of the `--format json` document, and the
/// failure (a refusal, a failed step) that the output already shows.
public protocol CommandOutput {
    func text() -> String
    func json() -> [(String, JSONValue)]
    /// The error the output reports; the command exits with it after printing.
    var failure: TunerError? { get }
}

extension CommandOutput {
    public var failure: TunerError? { nil }
}

/// `cttune plan`: the plan, the files that would override it at boot, the
/// writers that undo it after boot, and the stateless review.
public struct PlanOutput: CommandOutput {
    public let preview: PlanPreview
    public let explain: Bool

    public init(_ preview: PlanPreview, explain: Bool) {
        self.preview = preview
        self.explain = explain
    }

    public var failure: TunerError? { preview.review?.refusal }

    public func json() -> [(String, JSONValue)] {
        let (plan, overrides) = (preview.plan, preview.overrides)
        return PlanReport.json(plan, explain: explain) { [ConfigOverride.json(overrides, for: $0.setting)] }
            + [("writers", .array(preview.writers.map { $0.json(plan: plan) }))]
            + (preview.review.map { [("stateless", StatelessReport.json($0, modules: preview.modules))] } ?? [])
            + [("error", .failure(failure))]
    }

    public func text() -> String {
        PlanReport.text(preview.plan, explain: explain)
            + (ConfigOverride.text(preview.overrides) + ConntrackWriter.text(preview.writers, plan: preview.plan)).joined(separator: "\n")
            + (preview.review.map { StatelessReport.text($0, modules: preview.modules) } ?? "")
    }
}

/// `cttune apply`: what was applied, and the error that stopped it or the
/// settings left unapplied without `--allow-partial`.
public struct ApplyOutput: CommandOutput {
    public let outcome: ApplyOutcome
    public let diff: Bool
    public let failure: TunerError?

    public init(_ outcome: ApplyOutcome, diff: Bool, allowPartial: Bool, check: Bool) {
        self.outcome = outcome
        self.diff = diff
        let partial =
            outcome.notAppliedHere.isEmpty || allowPartial ? nil : TunerError.partialApply(keys: outcome.notAppliedHere, check: check)
        failure = outcome.error ?? partial
    }

    public func json() -> [(String, JSONValue)] {
        ApplyReport.json(outcome, diff: diff).map { $0.0 == "error" ? ($0.0, .failure(failure)) : $0 }
    }

    public func text() -> String { ApplyReport.text(outcome, diff: diff) }
}

/// `cttune rollback` in each of its forms.
public enum RollbackOutput: CommandOutput {
    case list([JournalEntry])
    case detail(JournalEntry)
    case pruned([String])
    case rolledBack(RollbackOutcome, check: Bool)

    public var failure: TunerError? {
        if case .rolledBack(let outcome, _) = self { return outcome.error }
        return nil
    }

    public func json() -> [(String, JSONValue)] {
        switch self {
        case .list(let entries): return ApplyReport.json(entries)
        case .detail(let entry): return ApplyReport.json(detail: entry)
        case .pruned(let removed): return ApplyReport.json(pruned: removed)
        case .rolledBack(let outcome, let check): return ApplyReport.json(outcome, check: check)
        }
    }

    public func text() -> String {
        switch self {
        case .list(let entries): return ApplyReport.text(entries)
        case .detail(let entry): return ApplyReport.text(detail: entry)
        case .pruned(let removed): return ApplyReport.text(pruned: removed)
        case .rolledBack(let outcome, let check): return ApplyReport.text(outcome, check: check)
        }
    }
}

/// `cttune rules`.
public struct RulesOutput: CommandOutput {
    public let report: RulesetReport
    public init(_ report: RulesetReport) { self.report = report }
    public func json() -> [(String, JSONValue)] { [("command", .string("rules"))] + RulesReport.json(report) }
    public func text() -> String { RulesReport.text(report) }
}

/// `cttune modules`, `unload` and `blacklist`.
public enum ModulesOutput: CommandOutput {
    case inventory(ModuleInventory)
    case unload(UnloadOutcome)
    case blacklist(BlacklistResult)

    public var failure: TunerError? {
        switch self {
        case .inventory: return nil
        case .unload(let outcome): return outcome.failure
        case .blacklist(let result): return result.refusal
        }
    }

    public func json() -> [(String, JSONValue)] {
        switch self {
        case .inventory(let inventory): return ModuleReports.json(inventory)
        case .unload(let outcome): return ModuleReports.json(outcome)
        case .blacklist(let result): return ModuleReports.json(result)
        }
    }

    /// Text; an unload that did nothing prints nothing (the reason is on stderr).
    public func text() -> String {
        switch self {
        case .inventory(let inventory): return ModuleReports.text(inventory)
        case .unload(let outcome): return ModuleReports.text(outcome)
        case .blacklist(let result): return ModuleReports.text(result)
        }
    }
}

/// `cttune status` for one namespace: the report, cttune's boot-time files
/// that another file overrides, and the writers that undo cttune after boot.
public struct StatusOutput: CommandOutput {
    public let report: StatusReport
    public let overrides: [ConfigOverride]
    public let writers: [ConntrackWriter]

    public init(_ report: StatusReport, overrides: [ConfigOverride], writers: [ConntrackWriter]) {
        self.report = report
        self.overrides = overrides
        self.writers = writers
    }

    public func json() -> [(String, JSONValue)] {
        report.json() + [
            ("overridden_by", ConfigOverride.json(overrides)), ("writers", .array(writers.map { $0.json(plan: nil) })),
        ]
    }

    public func text() -> String {
        report.text() + (ConfigOverride.text(overrides) + ConntrackWriter.text(writers, plan: nil)).joined(separator: "\n")
    }
}

/// `cttune status --all-namespaces` and `--namespace`.
extension HostStatusReport: CommandOutput {}

/// `cttune learn`: the learned profile (text) or the raw measurements (json).
public struct LearnOutput: CommandOutput {
    public let report: LearnReport
    /// The file the profile was written to, if any: text then says so instead of printing the profile.
    public let profileFile: String?

    public init(_ report: LearnReport, profileFile: String?) {
        self.report = report
        self.profileFile = profileFile
    }

    public func json() -> [(String, JSONValue)] { report.json(profileFile: profileFile) }

    public func text() -> String {
        if let profileFile { return report.text(profileFile: profileFile) }
        // The profile as a file holds it, without the newline print adds.
        return String(report.profileYAML().dropLast(report.profileYAML().hasSuffix("\n") ? 1 : 0))
    }
}
