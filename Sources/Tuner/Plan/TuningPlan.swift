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
        public var flowsPerSecond: Double
        public var dwellSeconds: Double
        /// How the dwell is made up, e.g. "5 s established + 120 s time_wait + 21 s GC".
        public var dwellFormula: String
        public var meanEntries: Double { flowsPerSecond * dwellSeconds }
    }

    public struct Estimate: Sendable, Equatable {
        public var flowClasses: [FlowClass]
        /// Extra dwell before the GC worker reaps an expired entry.
        public var gcLatencySeconds: Double
        public var gcLatencySource: String
        public var meanEntries: Double
        /// Mean × burst factor, rounded up.
        public var peakEntries: Int
        /// Kernel memory with the table full at the planned max.
        public var memoryBytes: Int
        public var budgetBytes: Int
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
