/// The conntrack settings cttune plans and applies, named by sysctl key (the
/// hash size by its module parameter name), as the interface contract says.
public enum ConntrackSetting: String, CaseIterable, Sendable, Codable {
    case max = "net.netfilter.nf_conntrack_max"
    case hashsize = "nf_conntrack.hashsize"
    case tcpTimeoutEstablished = "net.netfilter.nf_conntrack_tcp_timeout_established"
    case tcpTimeoutTimeWait = "net.netfilter.nf_conntrack_tcp_timeout_time_wait"
    case tcpTimeoutClose = "net.netfilter.nf_conntrack_tcp_timeout_close"
    case tcpTimeoutCloseWait = "net.netfilter.nf_conntrack_tcp_timeout_close_wait"
    case tcpTimeoutFinWait = "net.netfilter.nf_conntrack_tcp_timeout_fin_wait"
    case tcpTimeoutLastAck = "net.netfilter.nf_conntrack_tcp_timeout_last_ack"
    case tcpTimeoutSynSent = "net.netfilter.nf_conntrack_tcp_timeout_syn_sent"
    case tcpTimeoutSynRecv = "net.netfilter.nf_conntrack_tcp_timeout_syn_recv"
    case udpTimeout = "net.netfilter.nf_conntrack_udp_timeout"
    case udpTimeoutStream = "net.netfilter.nf_conntrack_udp_timeout_stream"
    case genericTimeout = "net.netfilter.nf_conntrack_generic_timeout"

    /// nf_conntrack_max and the hash size are C ints (proc_dointvec), so no
    /// plan goes above this; a load that needs more is reported, not planned.
    public static let largestTableSize = Int(Int32.max) / 65_536 * 65_536

    /// The key as printed and as written to sysctl.d.
    public var key: String { rawValue }

    /// The last component, as profiles name timeouts (`nf_conntrack_tcp_timeout_time_wait`).
    public var shortName: String { String(rawValue.split(separator: ".").last!) }

    public static let timeouts: [ConntrackSetting] = allCases.filter(\.isTimeout)

    public var isTimeout: Bool { self != .max && self != .hashsize }

    /// Global settings are writable only from the initial network namespace
    /// today; timeouts are per network namespace.
    public var isGlobal: Bool { !isTimeout }

    /// The setting whose profile name is `shortName`, if any.
    public init?(shortName: String) {
        guard let match = Self.allCases.first(where: { $0.isTimeout && $0.shortName == shortName }) else { return nil }
        self = match
    }

    /// Boot values of the timeouts (seconds) on 5.x/6.x kernels, used when a
    /// plan is made for a tree that does not expose them (an image, `--root`).
    /// Source: net/netfilter/nf_conntrack_proto_{tcp,udp,generic}.c; the same
    /// values were read from /proc/sys on kernel 6.18.
    public var kernelDefaultSeconds: Int? {
        switch self {
        case .max, .hashsize: return nil
        case .tcpTimeoutEstablished: return 432_000
        case .tcpTimeoutTimeWait: return 120
        case .tcpTimeoutClose: return 10
        case .tcpTimeoutCloseWait: return 60
        case .tcpTimeoutFinWait: return 120
        case .tcpTimeoutLastAck: return 30
        case .tcpTimeoutSynSent: return 120
        case .tcpTimeoutSynRecv: return 60
        case .udpTimeout: return 30
        case .udpTimeoutStream: return 120
        case .genericTimeout: return 600
        }
    }
}
