import TunerCore

/// What cttune may do for one class's traffic besides sizing the table for it.
public enum Cure: String, CaseIterable, Sendable, Comparable {
    /// Shorter timeouts for the class alone: a named nft `ct timeout` policy,
    /// assigned to its new flows. State is still tracked.
    case timeouts
    /// No tracking for the class (nft `notrack` at raw priority, both
    /// directions): only where no rule its packets reach needs state.
    case notrack
    /// The class stays in the global sizing.
    case none

    /// Cheapest safe first: the order the planner tries them in.
    public static func < (lhs: Cure, rhs: Cure) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The timeout policy a `timeouts` cure gives one class: for each timeout
/// the class's flows pass through, the shortest value that still keeps a
/// margin over how long the class's flows stay in that state, never below
/// the profile's floor and never above the host's planned value.
public struct CurePolicy: Sendable, Equatable {
    /// nft's `ct timeout` object protocol: `tcp` or `udp`.
    public var protocolName: String
    /// The shortened timeouts, by the setting whose state they replace.
    public var timeouts: [ConntrackSetting: Int]

    /// The shortened timeouts in the kernel's order of states, as nft lists them.
    public var ordered: [(setting: ConntrackSetting, seconds: Int)] {
        ConntrackSetting.timeouts.filter { timeouts[$0] != nil }.sorted { Self.stateOrder($0) < Self.stateOrder($1) }
            .map { ($0, timeouts[$0]!) }
    }

    static func stateOrder(_ setting: ConntrackSetting) -> Int {
        (settings(for: .tcp) + settings(for: .udp)).firstIndex(of: setting) ?? Int.max
    }

    /// A live flow's idle time never exceeds its lifetime: an ESTABLISHED
    /// timeout of twice the class's mean time there cuts no live flow of
    /// the mean, and the floor (600 s by default) covers short ones.
    public static let establishedMargin = 2.0

    /// nft's name for the state a setting times (`ct timeout … policy = { established: 600 }`),
    /// from the kernel's tcp_conntrack_names and UDP's two states (net/netfilter/nft_ct.c).
    public static func nftState(_ setting: ConntrackSetting) -> String? {
        switch setting {
        case .tcpTimeoutEstablished: return "established"
        case .tcpTimeoutTimeWait: return "time_wait"
        case .tcpTimeoutClose: return "close"
        case .tcpTimeoutCloseWait: return "close_wait"
        case .tcpTimeoutFinWait: return "fin_wait"
        case .tcpTimeoutLastAck: return "last_ack"
        case .tcpTimeoutSynSent: return "syn_sent"
        case .tcpTimeoutSynRecv: return "syn_recv"
        case .udpTimeout: return "unreplied"
        case .udpTimeoutStream: return "replied"
        default: return nil
        }
    }

    /// TCP and UDP: the protocols a `ct timeout` object is written for here
    /// (UDP-Lite shares UDP's timeouts but is its own protocol to the object).
    public static func hasPolicy(_ protocolNumber: UInt8) -> Bool { protocolNumber == 6 || protocolNumber == 17 }

    /// The timeouts a class of `kind` can have shortened, in the kernel's
    /// order of states (`other` has none: the
    /// generic timeout has no per-protocol policy worth the rule).
    public static func settings(for kind: ClassMatch.LoadKind) -> [ConntrackSetting] {
        switch kind {
        case .tcp:
            // enum tcp_conntrack's order, which nft lists policies in.
            return [
                .tcpTimeoutSynSent, .tcpTimeoutSynRecv, .tcpTimeoutEstablished, .tcpTimeoutFinWait, .tcpTimeoutCloseWait,
                .tcpTimeoutLastAck, .tcpTimeoutTimeWait, .tcpTimeoutClose,
            ]
        case .udp: return [.udpTimeout, .udpTimeoutStream]
        case .other: return []
        }
    }

    /// The policy for `profileClass`, or `nil` when none shortens anything.
    /// - Parameters:
    ///   - floors: the profile's lowest values (`timeout_floors`, else the defaults).
    ///   - global: the host's planned timeouts; a policy never lengthens one.
    public static func policy(
        for profileClass: ProfileClass, floors: (ConntrackSetting) -> Int, global: [ConntrackSetting: Int]
    ) -> CurePolicy? {
        guard hasPolicy(profileClass.match.protocolNumber) else { return nil }
        let kind = profileClass.match.loadKind
        var timeouts: [ConntrackSetting: Int] = [:]
        for setting in settings(for: kind) {
            guard let current = global[setting] else { continue }
            var shortest = floors(setting)
            if setting == .tcpTimeoutEstablished {
                shortest = Swift.max(shortest, Int((establishedMargin * profileClass.tcp.establishedSeconds).rounded(.up)))
            }
            if shortest < current { timeouts[setting] = shortest }
        }
        guard !timeouts.isEmpty else { return nil }
        return CurePolicy(protocolName: kind == .tcp ? "tcp" : "udp", timeouts: timeouts)
    }
}

/// The planner's judgement of the cures for one declared class.
public struct CureDecision: Sendable, Equatable {
    public struct Option: Sendable, Equatable {
        public var cure: Cure
        /// Whether it may be applied: safe, and possible on this class.
        public var safe: Bool
        /// Worst-phase entries it takes off the class's peak.
        public var savesEntries: Int
        /// Why it is safe, or what stops it.
        public var reason: String
    }

    public var className: String
    /// The cure applied: the profile's `cure:`, or the cheapest safe one of
    /// its `cures:`; `.none` when the profile allows none that is safe.
    public var applied: Cure
    /// Every cure judged, cheapest first.
    public var options: [Option]
    /// The timeouts policy, when `applied` is `.timeouts`.
    public var policy: CurePolicy?
    /// Why `applied` was chosen, or why nothing is applied.
    public var reason: String
}

/// What the host's ruleset says about each declared class: the facts a
/// notrack cure needs, judged outside the planner (the rules analysis) and
/// declared to it like the host's other facts.
public struct ClassRuleFacts: Sendable, Equatable {
    /// Class name → the first rule its packets can reach that needs state
    /// (table, chain and handle, or the saved line).
    public var needsState: [String: String]
    /// The classes judged; notrack is refused for every other (unsure: keep tracking).
    public var judged: Set<String>
    /// Where the judgement came from, for the reasons (`the live ruleset of …`).
    public var source: String

    public init(needsState: [String: String] = [:], judged: Set<String> = [], source: String = "") {
        self.needsState = needsState
        self.judged = judged
        self.source = source
    }

    /// No ruleset read: notrack is refused everywhere.
    public static let notJudged = ClassRuleFacts()
}
