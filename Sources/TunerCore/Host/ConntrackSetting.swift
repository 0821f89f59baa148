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

/// The hash size's four names, defined once: the contract's setting name,
/// which is also the kernel command-line parameter (`nf_conntrack.hashsize`);
/// the sysctl (`net.netfilter.nf_conntrack_buckets`); the module parameter
/// file (`KernelPaths.conntrackHashsizeParameter`); and the modprobe.d option
/// (`options nf_conntrack hashsize=N`). All four resize or report the same table.
public enum HashSizeNames {
    /// The module that owns the parameter.
    public static let module = "nf_conntrack"
    /// The module parameter's name.
    public static let parameter = "hashsize"
    /// The contract's name of the setting: `module.parameter`, as the kernel
    /// command line spells a built-in module's parameter.
    public static var contractKey: String { ConntrackSetting.hashsize.key }
    /// The sysctl that reads and (in the initial namespace) resizes it.
    public static let sysctl = "net.netfilter.nf_conntrack_buckets"

    /// The modprobe.d line that sizes the table when the module loads.
    public static func modprobeOption(_ buckets: Int) -> String { "options \(module) \(parameter)=\(buckets)" }

    /// The kernel command-line parameter that sizes a built-in table at boot.
    public static func kernelParameter(_ buckets: Int) -> String { "\(contractKey)=\(buckets)" }
}
