import TunerCore

/// The profile schema's numbers, each defined once: its path in the YAML,
/// its limits, whether it is whole, and where it goes in a resolved
/// `LoadProfile`. The reader (`ProfileDocument`), the resolver
/// (`ProfileCatalog.resolve`) and the learned-profile writer all take them
/// from here, so a key, a limit or a clamp cannot differ between them.
public enum ProfileField: String, CaseIterable, Sendable {
    case tcpNewPerSecond = "load.tcp.new_per_second"
    case tcpEstablishedSeconds = "load.tcp.established_seconds"
    case tcpRstCloseRatio = "load.tcp.rst_close_ratio"
    case tcpOrphanRatio = "load.tcp.orphan_ratio"
    case tcpHalfOpenRatio = "load.tcp.half_open_ratio"
    case udpNewPerSecond = "load.udp.new_per_second"
    case udpStreamRatio = "load.udp.stream_ratio"
    case otherPerSecond = "load.other_per_second"
    case burstFactor = "burst_factor"
    case headroom = "headroom"
    case memoryBudgetPercent = "memory_budget_percent"
    case chainLength = "chain_length"
    case gcLatencySeconds = "gc_latency_seconds"
    case namespaces = "namespaces"

    /// Limits that catch typos (a rate of 1e9, a ratio of 5) before they
    /// become a plan. Rates: a few million new flows/s is beyond any single
    /// host's conntrack. Seconds: a year. Namespaces: thousands of pods on one
    /// host is the most anyone runs.
    public var limits: ClosedRange<Double> {
        switch self {
        case .tcpNewPerSecond, .udpNewPerSecond, .otherPerSecond: return 0...5_000_000
        case .tcpRstCloseRatio, .tcpOrphanRatio, .tcpHalfOpenRatio, .udpStreamRatio: return 0...1
        case .tcpEstablishedSeconds: return 0...31_536_000
        case .burstFactor: return 1...100
        case .headroom: return 1...10
        case .memoryBudgetPercent: return 0.01...90
        case .chainLength: return 1...16
        case .gcLatencySeconds: return 0...600
        case .namespaces: return 1...100_000
        }
    }

    /// A whole number in YAML (`chain_length: 4`, never `4.5`).
    public var isWhole: Bool { self == .chainLength || self == .namespaces }

    /// The mapping it sits in: `load.tcp`, `load`, or "" for the top level.
    public var section: String {
        guard let dot = rawValue.lastIndex(of: ".") else { return "" }
        return String(rawValue[..<dot])
    }

    /// Its key in that mapping.
    public var key: String {
        guard let dot = rawValue.lastIndex(of: ".") else { return rawValue }
        return String(rawValue[rawValue.index(after: dot)...])
    }

    /// The fields of one mapping, in schema order.
    public static func fields(in section: String) -> [ProfileField] { allCases.filter { $0.section == section } }

    /// `value` brought inside the limits (and whole where the field is): what
    /// a writer of profiles stores, so the reader accepts what it wrote.
    public func clamped(_ value: Double) -> Double {
        let inside = Swift.min(Swift.max(value, limits.lowerBound), limits.upperBound)
        return isWhole ? inside.rounded() : inside
    }

    /// The field's value in a resolved profile (`nil`: gc_latency_seconds left to the GC model).
    public func value(in profile: LoadProfile) -> Double? {
        switch self {
        case .tcpNewPerSecond: return profile.tcp.newPerSecond
        case .tcpEstablishedSeconds: return profile.tcp.establishedSeconds
        case .tcpRstCloseRatio: return profile.tcp.rstCloseRatio
        case .tcpOrphanRatio: return profile.tcp.orphanRatio
        case .tcpHalfOpenRatio: return profile.tcp.halfOpenRatio
        case .udpNewPerSecond: return profile.udp.newPerSecond
        case .udpStreamRatio: return profile.udp.streamRatio
        case .otherPerSecond: return profile.otherPerSecond
        case .burstFactor: return profile.burstFactor
        case .headroom: return profile.headroom
        case .memoryBudgetPercent: return profile.memoryBudgetPercent
        case .chainLength: return Double(profile.chainLength)
        case .gcLatencySeconds: return profile.gcLatencySeconds
        case .namespaces: return Double(profile.namespaces)
        }
    }

    /// Sets the field in a profile (a value the reader checked against `limits`).
    public func set(_ value: Double, in profile: inout LoadProfile) {
        switch self {
        case .tcpNewPerSecond: profile.tcp.newPerSecond = value
        case .tcpEstablishedSeconds: profile.tcp.establishedSeconds = value
        case .tcpRstCloseRatio: profile.tcp.rstCloseRatio = value
        case .tcpOrphanRatio: profile.tcp.orphanRatio = value
        case .tcpHalfOpenRatio: profile.tcp.halfOpenRatio = value
        case .udpNewPerSecond: profile.udp.newPerSecond = value
        case .udpStreamRatio: profile.udp.streamRatio = value
        case .otherPerSecond: profile.otherPerSecond = value
        case .burstFactor: profile.burstFactor = value
        case .headroom: profile.headroom = value
        case .memoryBudgetPercent: profile.memoryBudgetPercent = value
        case .chainLength: profile.chainLength = Int(value)
        case .gcLatencySeconds: profile.gcLatencySeconds = value
        case .namespaces: profile.namespaces = Int(value)
        }
    }
}
