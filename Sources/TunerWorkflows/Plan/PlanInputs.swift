import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// What a plan is made from besides the host: the profile to load and the
/// values that replace the host's own (`--memory`, `--cpus`, `--kernel`,
/// `--entry-size`, `--namespaces`). `plan` and `apply` read both through
/// these two functions, so they plan from the same facts and profile.
public struct PlanInputs: Sendable, Equatable {
    /// A built-in name, a name on the profile path, or a path to a .yaml file.
    public var profile: String
    public var memoryBytes: Int?
    public var cpus: Int?
    public var kernel: String?
    public var entryBytes: Int?
    public var namespaces: Int?
    /// A saved ruleset the classes' notrack cures are judged against instead of the live one (`--ruleset`).
    public var ruleset: String?

    public init(
        profile: String = "default", memoryBytes: Int? = nil, cpus: Int? = nil, kernel: String? = nil, entryBytes: Int? = nil,
        namespaces: Int? = nil, ruleset: String? = nil
    ) {
        self.ruleset = ruleset
        self.profile = profile
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.kernel = kernel
        self.entryBytes = entryBytes
        self.namespaces = namespaces
    }

    /// The profile, with everything it extends and `namespaces` applied.
    public func loadProfile(under root: SystemRoot) throws -> LoadProfile {
        var loadProfile = try ProfileCatalog.standard(root: root).load(profile)
        if let namespaces { loadProfile.namespaces = namespaces }
        return loadProfile
    }

    /// The host's facts under `root`, with the given values in place of the host's.
    public func gatherFacts(under root: SystemRoot) throws -> HostFacts {
        try HostFacts.gather(from: root, memoryBytes: memoryBytes, cpus: cpus, kernel: kernel, entryBytes: entryBytes)
    }
}

/// Everything `cttune plan` shows, built in one place: the plan, and for a
/// stateless profile the firewall review and the module step it would take;
/// the boot-time overrides and the other writers of the settings.
public struct PlanPreview {
    public var plan: TuningPlan
    public var review: StatelessReview?
    public var modules: StatelessModulePlan?
    public var overrides: [ConfigOverride]
    public var writers: [ConntrackWriter]

    /// Loads the profile, reads the facts, plans, and reviews a stateless
    /// profile against the firewall. Writes nothing.
    public static func make(_ inputs: PlanInputs, under root: SystemRoot) throws -> PlanPreview {
        let profile = try inputs.loadProfile(under: root)
        let facts = try inputs.gatherFacts(under: root)
        var plan = Planner.plan(
            for: facts, profile: profile, rules: try ClassReach.facts(for: profile, under: root, ruleset: inputs.ruleset))
        let review = profile.stateful ? nil : try StatelessReview.review(plan, root: root)
        let modules = review.map { StatelessModulePlan.preview(root: root, blockingRules: $0.rules?.blockingRules ?? []) }
        plan = review?.plan ?? plan
        return PlanPreview(
            plan: plan, review: review, modules: modules, overrides: try PersistentConfig.overrides(for: plan, under: root),
            writers: ConntrackWriters.find(under: root, cpus: plan.facts.cpus))
    }
}
