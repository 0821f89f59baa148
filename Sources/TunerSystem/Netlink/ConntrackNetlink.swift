import CMnl
import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore

/// What one ctnetlink conntrack message says about an entry: only the
/// attributes the census (and event-driven measurements) need.
public struct ConntrackEntry: Sendable, Equatable {
    /// Layer-3 family: `AF_INET` (2) or `AF_INET6` (10).
    public var family: UInt8
    /// IP protocol number of the original direction (6 tcp, 17 udp, 1 icmp, …).
    public var protocolNumber: UInt8
    /// The conntrack TCP state; `nil` for other protocols.
    public var tcpState: TCPConntrackState?
    /// `IPS_*` status bits (`CTA_STATUS`).
    public var status: UInt32
    /// Seconds until the entry expires (`CTA_TIMEOUT`); `nil` when absent.
    public var timeoutSeconds: Int?
    /// The kernel's id for the entry, stable while it lives (`CTA_ID`).
    public var id: UInt32?
    /// For events: what happened to the entry.
    public var event: ConntrackEvent
    /// The original direction's addresses and ports; `nil` when the message lacks them.
    public var tuple: FlowTuple? = nil

    /// `IPS_ASSURED`: seen both ways long enough that early drop spares it.
    public var isAssured: Bool { status & UInt32(IPS_ASSURED.rawValue) != 0 }
    /// `IPS_SEEN_REPLY` unset: no packet came back yet.
    public var isUnreplied: Bool { status & UInt32(IPS_SEEN_REPLY.rawValue) == 0 }

    /// The protocol's name as conntrack-tools prints it.
    public var protocolName: String { ConntrackEntry.protocolName(protocolNumber) }

    package static func protocolName(_ number: UInt8) -> String {
        switch number {
        case 1: return "icmp"
        case 6: return "tcp"
        case 17: return "udp"
        case 33: return "dccp"
        case 47: return "gre"
        case 58: return "icmpv6"
        case 132: return "sctp"
        case 136: return "udplite"
        default: return "unknown"
        }
    }
}

/// A message's meaning: an entry in a dump, or an event.
public enum ConntrackEvent: Sendable, Equatable {
    case dumped, created, updated, destroyed
}

/// Conntrack's TCP states, numbered as in `enum tcp_conntrack`
/// (include/uapi/linux/netfilter/nf_conntrack_tcp.h), named as conntrack -L prints them.
public enum TCPConntrackState: UInt8, Sendable, CaseIterable {
    case none = 0, synSent, synReceived, established, finWait, closeWait, lastAck, timeWait, close, synSent2

    public var name: String {
        ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"][
            Int(rawValue)]
    }
}

/// A netlink failure, with the errno that callers decide on (EPERM, ENOBUFS, EINTR).
public struct NetlinkError: Error, Equatable, CustomStringConvertible, TunerErrorConvertible {
    /// The call that failed, e.g. `socket(NETLINK_NETFILTER)` or `conntrack dump`.
    public var call: String
    public var errno: Errno

    public var tunerError: TunerError { .systemCallFailed(call: call, errno: errno) }
    public var description: String { tunerError.description }
}

/// How a dump ended.
public enum DumpEnd: Sendable, Equatable {
    /// Every entry was delivered.
    case complete
    /// The visitor asked to stop (a sample was enough).
    case stopped
    /// The kernel flagged the dump NLM_F_DUMP_INTR: the table changed under
    /// it, so entries may be missing or repeated.
    case interrupted
}

/// A ctnetlink socket (NETLINK_NETFILTER, libmnl). It belongs to the network
/// namespace of the thread that opened it, whatever thread uses it later:
/// open it on the thread that entered the namespace.
///
/// Not thread-safe; the one owner closes the socket in `deinit`.
public final class ConntrackNetlink {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    /// One receive buffer for the socket's life: memory stays bounded
    /// however many entries a dump carries.
    private var buffer: UnsafeMutableRawBufferPointer

    /// The kernel sizes each dump batch by the largest read so far, capped
    /// at 32 KiB (netlink_recvmsg, SKB_WITH_OVERHEAD(32768)); a larger
    /// buffer lets each recv(2) take a whole batch.
    static let receiveBufferBytes = 64 * 1024
    /// Room for one request message: libmnl's MNL_SOCKET_BUFFER_SIZE (a
    /// macro on sysconf that Swift does not import) is at least this.
    static let requestBytes = 8192
    /// The kernel answers each read of a dump at once, however large the
    /// table: a dump silent this long has stalled, and the census gives up
    /// (status then reports a partial result) rather than block its timer.
    static let receiveTimeoutSeconds = 30

    /// Opens and binds a socket in the calling thread's network namespace.
    /// The corresponding libmnl calls are `mnl_socket_open2` and `mnl_socket_bind`.
    public init() throws {
        guard let socket = mnl_socket_open2(NETLINK_NETFILTER, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NetlinkError(call: "socket(NETLINK_NETFILTER)", errno: Errno(rawValue: Glibc.errno))
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = Glibc.errno
            mnl_socket_close(socket)
            throw NetlinkError(call: "bind(NETLINK_NETFILTER)", errno: Errno(rawValue: code))
        }
        var timeout = timeval(tv_sec: Self.receiveTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.socket = socket
        portID = mnl_socket_get_portid(socket)
        sequence = UInt32(truncatingIfNeeded: time(nil))
        buffer = .allocate(byteCount: Self.receiveBufferBytes, alignment: 8)
    }

    /// The socket's netlink port id: its `Pid` column in /proc/net/netlink.
    public var portIdentifier: UInt32 { portID }

    deinit {
        buffer.deallocate()
        mnl_socket_close(socket)
    }

    /// Streams this namespace's conntrack table (IPv4 and IPv6), calling
    /// `visit` for each entry as its batch arrives; nothing is kept.
    ///
    /// - Parameters:
    ///   - readingTuples: `false` leaves each entry's `tuple` `nil` (addresses
    ///     and ports are not decoded): a census without flow classes.
    ///   - visit: returns `false` to stop reading (the kernel ends the dump
    ///     when the socket closes or the next dump starts).
    /// - Returns: how the dump ended.
    /// - Throws: `NetlinkError` (EPERM without CAP_NET_ADMIN; ENOBUFS…).
    /// The corresponding message is `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`.
    public func dump(readingTuples: Bool = true, _ visit: (ConntrackEntry) -> Bool) throws -> DumpEnd {
        sequence &+= 1
        let request = UnsafeMutableRawPointer.allocate(byteCount: Self.requestBytes, alignment: 8)
        defer { request.deallocate() }
        let length = cttune_ct_request(request, UInt16(IPCTNL_MSG_CT_GET.rawValue), UInt16(NLM_F_DUMP), sequence)
        guard mnl_socket_sendto(socket, request, Int(length)) >= 0 else {
            throw NetlinkError(call: "conntrack dump request", errno: Errno(rawValue: Glibc.errno))
        }
        var interrupted = false
        let tuples: Int32 = readingTuples ? 1 : 0
        while true {
            let received = mnl_socket_recvfrom(socket, buffer.baseAddress, buffer.count)
            if received < 0 {
                if Glibc.errno == EINTR { continue }
                if Glibc.errno == EAGAIN {
                    throw NetlinkError(
                        call: "conntrack dump (no answer for \(Self.receiveTimeoutSeconds) s)", errno: .resourceTemporarilyUnavailable)
                }
                throw NetlinkError(call: "conntrack dump", errno: Errno(rawValue: Glibc.errno))
            }
            if received == 0 { return interrupted ? .interrupted : .complete }
            var left = Int32(received)
            var message = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: nlmsghdr.self)
            var entry = cttune_ct_entry()
            while mnl_nlmsg_ok(message, left) {
                let header = message.pointee
                if header.nlmsg_seq != sequence || (header.nlmsg_pid != 0 && header.nlmsg_pid != portID) {
                    message = UnsafePointer(mnl_nlmsg_next(message, &left))
                    continue
                }
                if header.nlmsg_flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(header.nlmsg_type) {
                case NLMSG_DONE:
                    let code = cttune_nlmsg_errno(message)
                    if code != 0 { throw NetlinkError(call: "conntrack dump", errno: Errno(rawValue: code)) }
                    return interrupted ? .interrupted : .complete
                case NLMSG_ERROR:
                    let code = cttune_nlmsg_errno(message)
                    if code != 0 { throw NetlinkError(call: "conntrack dump", errno: Errno(rawValue: code)) }
                case NLMSG_NOOP, NLMSG_OVERRUN:
                    break
                default:
                    if cttune_ct_decode(message, &entry, tuples) == 0, !visit(Self.entry(entry, event: .dumped)) { return .stopped }
                }
                message = UnsafePointer(mnl_nlmsg_next(message, &left))
            }
        }
    }

    /// The event groups a listener can join (`NFNLGRP_CONNTRACK_*`).
    public enum EventGroup: UInt32, Sendable, CaseIterable {
        case created = 1, updated = 2, destroyed = 3
    }

    /// Joins conntrack event groups. With nf_conntrack_events = 2 (the
    /// default) the kernel starts generating events once a listener joins;
    /// entries created before that never report UPDATE or DESTROY.
    /// - Parameter receiveBufferBytes: the socket buffer (SO_RCVBUFFORCE, then
    ///   SO_RCVBUF): a burst larger than it is lost (ENOBUFS), never queued.
    /// The corresponding socket option is `NETLINK_ADD_MEMBERSHIP`.
    public func subscribe(to groups: [EventGroup], receiveBufferBytes: Int32 = 8 << 20) throws {
        let fd = mnl_socket_get_fd(socket)
        var size = receiveBufferBytes
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        for group in groups {
            var number = Int32(group.rawValue)
            guard mnl_socket_setsockopt(socket, Int32(NETLINK_ADD_MEMBERSHIP), &number, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw NetlinkError(call: "join conntrack event group \(group)", errno: Errno(rawValue: Glibc.errno))
            }
        }
    }

    /// What one wait for events brought.
    public struct EventBatch: Sendable, Equatable {
        /// Events delivered to the visitor.
        public var events = 0
        /// The kernel dropped events because the socket buffer was full (ENOBUFS).
        public var overflowed = false
    }

    /// Waits up to `timeoutMilliseconds` for events and hands each to `visit`.
    /// Loss is reported, not thrown: a listener keeps listening after ENOBUFS.
    public func receiveEvents(timeoutMilliseconds: Int32, _ visit: (ConntrackEntry) -> Void) throws -> EventBatch {
        var batch = EventBatch()
        var ready = pollfd(fd: mnl_socket_get_fd(socket), events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, timeoutMilliseconds)
        if polled < 0 {
            if Glibc.errno == EINTR { return batch }
            throw NetlinkError(call: "poll(conntrack events)", errno: Errno(rawValue: Glibc.errno))
        }
        if polled == 0 { return batch }
        let received = recv(mnl_socket_get_fd(socket), buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
        if received < 0 {
            switch Glibc.errno {
            case ENOBUFS: batch.overflowed = true
            case EINTR, EAGAIN: break
            default: throw NetlinkError(call: "conntrack events", errno: Errno(rawValue: Glibc.errno))
            }
            return batch
        }
        var left = Int32(received)
        var message = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: nlmsghdr.self)
        var raw = cttune_ct_entry()
        while mnl_nlmsg_ok(message, left) {
            if Int32(message.pointee.nlmsg_type) >= NLMSG_MIN_TYPE, cttune_ct_decode(message, &raw, 1) == 0 {
                let event: ConntrackEvent
                if raw.message == UInt8(IPCTNL_MSG_CT_DELETE.rawValue) {
                    event = .destroyed
                } else {
                    event = raw.nl_flags & UInt16(NLM_F_CREATE) != 0 ? .created : .updated
                }
                visit(Self.entry(raw, event: event))
                batch.events += 1
            }
            message = UnsafePointer(mnl_nlmsg_next(message, &left))
        }
        return batch
    }

    static func entry(_ raw: cttune_ct_entry, event: ConntrackEvent) -> ConntrackEntry {
        var entry = ConntrackEntry(
            family: raw.family, protocolNumber: raw.l4proto,
            tcpState: raw.l4proto == UInt8(IPPROTO_TCP) ? TCPConntrackState(rawValue: raw.tcp_state) : nil,
            status: raw.status, timeoutSeconds: raw.has_timeout != 0 ? Int(raw.timeout) : nil,
            id: raw.has_id != 0 ? raw.id : nil, event: event)
        if raw.has_addresses != 0 {
            let isIPv6 = raw.family == UInt8(AF_INET6)
            // Two big-endian words straight from the 16-byte fields (zeroed past an IPv4 address).
            func address(_ bytes: UnsafeRawBufferPointer) -> IPAddress {
                IPAddress(
                    high: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                    low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)), isIPv6: isIPv6)
            }
            entry.tuple = FlowTuple(
                protocolNumber: raw.l4proto, source: withUnsafeBytes(of: raw.source, address),
                destination: withUnsafeBytes(of: raw.destination, address),
                sourcePort: raw.has_ports != 0 ? raw.source_port : nil,
                destinationPort: raw.has_ports != 0 ? raw.destination_port : nil,
                icmpType: raw.has_icmp_type != 0 ? raw.icmp_type : nil)
        }
        return entry
    }
}

/// setns(2) for network namespaces: moves the calling thread only.
enum NetworkNamespaceSwitch {
    /// Enters the namespace open at `fd`.
    /// - Returns: `nil`, or the errno.
    /// The corresponding system call is `setns(fd, CLONE_NEWNET)`.
    static func enter(_ fd: Int32) -> Errno? {
        cttune_enter_network_namespace(fd) == 0 ? nil : Errno(rawValue: Glibc.errno)
    }
}
