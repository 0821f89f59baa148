import TunerCore

/// The outcome of planning: what each setting is, what it should be and why.
/// `plan`, `apply --check` and `apply` all render this one value.
public struct TuningPlan: Sendable, Equatable {
    public struct Setting: Sendable, Equatable {
        public var setting: ConntrackSetting
        public var current: Int?
        public var planned: Int
        /// Why it cannot be written from here; `nil` when it can.
        public var blocker: String?
        /// One line for the table and the JSON `reason`.
        public var reason: String
        /// The arithmetic behind `reason`, for `--explain`.
        public var arithmetic: [String] = []

        public var key: String { setting.key }
        public var applicable: Bool { blocker == nil }
        public var changes: Bool { current != planned }
    }

    /// Entries one class of flows keeps in the table (Little's law).
    public struct FlowClass: Sendable, Equatable {
        public var name: String
        /// At the mean rate (before the burst factor).
        public var flowsPerSecond: Double
        /// Lifetime of one flow's entry until it expires (GC gap excluded).
        public var dwellSeconds: Double
        /// How the lifetime is made up, e.g. "5 s established + 108 s time_wait (0.9 x 120 s)".
        public var dwellFormula: String
        /// At the burst rate, expired entries waiting for the steady GC gap.
        public var steadyPeakEntries: Double
        /// At the burst rate, at the worst GC phase.
        public var worstPeakEntries: Double
        /// The burst factor it peaks at: the profile's, or its class's.
        public var burstFactor: Double
        /// The profile's class it belongs to (`classes:`); `nil` for the profile's own load.
        public var profileClass: String? = nil
        /// Live (unexpired) entries at the mean rate.
        public var meanEntries: Double { flowsPerSecond * dwellSeconds }
    }

    /// One class a profile declares (`classes:`), or the `other` row for the
    /// profile's own load: its part of the peak the plan sizes for.
    public struct ClassEstimate: Sendable, Equatable {
        /// The row holding the load no class matches.
        public static let otherName = "other"
        public var name: String
        /// The match as `ClassMatch.description` prints it; `nil` for `other`.
        public var match: String?
        /// The cure applied to it: its peak is what remains (0 when notracked).
        public var cure: Cure
        /// New flows per second at the mean rate (tracked or not).
        public var flowsPerSecond: Double
        public var steadyPeakEntries: Int
        /// At the worst GC phase, at the class's own burst.
        public var peakEntries: Int
        /// Of the sum of every row's worst-phase peak (the GC backlog, shared, is in no row).
        public var share: Double
    }

    /// The garbage collector's part of the estimate (`GCModel`).
    public struct GCEstimate: Sendable, Equatable {
        /// The gc_worker generation (`autotuned`, …) or `override`.
        public var model: String
        public var source: String
        public var steadyGapSeconds: Double
        public var worstGapSeconds: Double
        /// The autotuned worker's running mean at the peak, seed included.
        public var meanRemainingSeconds: Double
        public var liveEntriesAtPeak: Double
        /// Entries expiring per second at the burst rate.
        public var expiriesPerSecond: Double
        public var reapCeilingPerSecond: Double?
        /// Entries added to the worst peak because expiries outrun the ceiling.
        public var reapBacklogEntries: Double
    }

    public struct Estimate: Sendable, Equatable {
        public var flowClasses: [FlowClass]
        /// By declared class, then `other`; empty when the profile declares none.
        public var classes: [ClassEstimate]
        public var gc: GCEstimate
        /// Live entries at the mean rate: sum of flows/s x lifetime.
        public var meanEntries: Double
        /// The sawtooth's peak once GC passes come at the steady gap.
        public var steadyPeakEntries: Int
        /// The peak the plan sizes for: the worst GC phase (a burst right
        /// after an idle pass). max = this x headroom.
        public var peakEntries: Int
        /// Kernel memory with every namespace's table full at the planned max.
        public var memoryBytes: Int
        /// Kernel memory with every namespace at its worst-phase peak.
        public var expectedMemoryBytes: Int
        public var namespaces: Int
        public var budgetBytes: Int

        /// The gap the plan sizes for (`gc_latency_seconds` in JSON).
        public var gcLatencySeconds: Double { gc.worstGapSeconds }
    }

    public var profile: LoadProfile
    public var facts: HostFacts
    public var settings: [Setting]
    public var estimate: Estimate
    public var fitsBudget: Bool
    /// Sentences for the operator: what does not fit, what to do, caveats.
    public var advice: [String]
    /// Load-blind sizings for comparison (`--explain`).
    public var anchors: [Anchor]
    /// The inputs behind a load larger than nf_conntrack_max can hold; the
    /// plan then does not fit and apply refuses, naming them.
    public var loadTooLarge: String? = nil
    /// The cures judged for each declared class, in the profile's order.
    public var cures: [CureDecision] = []

    public var changed: Bool { settings.contains(where: \.changes) }

    public func planned(_ setting: ConntrackSetting) -> Int? {
        settings.first(where: { $0.setting == setting })?.planned
    }
}

/// A fixed formula people use instead of a load model.
public struct Anchor: Sendable, Equatable {
    public var name: String
    public var max: Int
    public var buckets: Int
    public var establishedTimeoutSeconds: Int?
    public var source: String
}
