import TunerCore

/// A described load: what the host must track at its busiest, and how much
/// memory it may spend doing so. Resolved (`extends:` applied, defaults
/// filled), so the planner never sees a missing value.
public struct LoadProfile: Sendable, Equatable {
    public struct TCPLoad: Sendable, Equatable {
        /// New TCP flows per second in the busiest normal minute.
        public var newPerSecond: Double = 0
        /// Mean time a flow spends ESTABLISHED.
        public var establishedSeconds: Double = 0
        /// Share of closing flows that end with RST (CLOSE, not TIME_WAIT).
        public var rstCloseRatio: Double = 0
        /// Share of flows never seen closing: they stay the established timeout.
        public var orphanRatio: Double = 0
        /// Share of SYNs never answered (scans, floods): they stay syn_sent.
        public var halfOpenRatio: Double = 0
    }

    public struct UDPLoad: Sendable, Equatable {
        public var newPerSecond: Double = 0
        /// Share of UDP flows with replies both ways (udp_timeout_stream).
        public var streamRatio: Double = 0
    }

    /// The profile's name (file name without .yaml).
    public var name: String
    public var summary: String = ""
    /// Where it came from: a file path or `built-in`, parents after it.
    public var sources: [String] = []
    public var tcp = TCPLoad()
    public var udp = UDPLoad()
    /// ICMP and other protocols, new flows per second (generic timeout).
    public var otherPerSecond: Double = 0
    /// Peak rate divided by mean rate.
    public var burstFactor: Double = 2
    /// Planned max = peak × headroom.
    public var headroom: Double = 1.25
    /// Share of RAM the full table may take.
    public var memoryBudgetPercent: Double = 5
    /// Target entries per hash bucket.
    public var chainLength: Int = 1
    /// The gap between GC passes, overriding the model of the kernel's
    /// gc_worker (`GCModel`) for both the steady state and the worst phase.
    public var gcLatencySeconds: Double? = nil
    /// Network namespaces that each carry this load with their own conntrack
    /// entries. nf_conntrack_max caps each namespace's count separately, and
    /// all of them share one slab and one hash: memory scales with this.
    /// Only namespaces whose rules make conntrack track count (plain pod
    /// namespaces usually track nothing).
    public var namespaces: Int = 1
    /// Timeouts pinned by the profile: planned as given, never shortened.
    public var pinnedTimeouts: [ConntrackSetting: Int] = [:]
    /// The lowest value the planner may shorten each timeout to.
    public var timeoutFloors: [ConntrackSetting: Int] = LoadProfile.defaultTimeoutFloors
    /// `false` declares that the firewall needs no connection state.
    public var stateful: Bool = true
    /// Traffic declared by class (`classes:`), each with its own load; the
    /// load above is what no class matches. A child's list replaces its
    /// parent's whole.
    public var classes: [ProfileClass] = []

    public init(name: String) {
        self.name = name
    }

    /// Floors used when a profile names none: below these, closing TCP states
    /// stop protecting against late duplicates and idle sessions get cut.
    /// time_wait 60 s matches the TCP stack's own TIME_WAIT (TCP_TIMEWAIT_LEN).
    public static let defaultTimeoutFloors: [ConntrackSetting: Int] = [
        .tcpTimeoutEstablished: 600,
        .tcpTimeoutTimeWait: 60,
        .tcpTimeoutClose: 10,
        .tcpTimeoutCloseWait: 60,
        .tcpTimeoutFinWait: 30,
        .tcpTimeoutLastAck: 30,
        .tcpTimeoutSynSent: 30,
        .tcpTimeoutSynRecv: 30,
        .udpTimeout: 10,
        .udpTimeoutStream: 60,
        .genericTimeout: 60,
    ]
}
