import CMnl
import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore

/// The addresses of the calling thread's network namespace, from the kernel
/// (`RTM_GETADDR` over rtnetlink): what makes a flow inbound, outbound,
/// forwarded or local.
public enum LocalAddresses {
    /// Every address of every interface, IPv4 and IPv6.
    /// - Throws: `NetlinkError` when the socket cannot be opened or the dump fails.
    /// The corresponding message is `RTM_GETADDR` with `NLM_F_DUMP`.
    public static func read() throws -> Set<IPAddress> {
        guard let socket = mnl_socket_open2(NETLINK_ROUTE, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NetlinkError(call: "socket(NETLINK_ROUTE)", errno: Errno(rawValue: Glibc.errno))
        }
        defer { mnl_socket_close(socket) }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            throw NetlinkError(call: "bind(NETLINK_ROUTE)", errno: Errno(rawValue: Glibc.errno))
        }
        var timeout = timeval(tv_sec: ConntrackNetlink.receiveTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let portID = mnl_socket_get_portid(socket)
        let sequence = UInt32(truncatingIfNeeded: time(nil))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ConntrackNetlink.receiveBufferBytes, alignment: 8)
        defer { buffer.deallocate() }
        let length = cttune_addr_request(buffer.baseAddress, sequence)
        guard mnl_socket_sendto(socket, buffer.baseAddress, Int(length)) >= 0 else {
            throw NetlinkError(call: "address dump request", errno: Errno(rawValue: Glibc.errno))
        }
        var addresses: Set<IPAddress> = []
        var bytes = [UInt8](repeating: 0, count: 16)
        while true {
            let received = mnl_socket_recvfrom(socket, buffer.baseAddress, buffer.count)
            if received < 0 {
                if Glibc.errno == EINTR { continue }
                throw NetlinkError(call: "address dump", errno: Errno(rawValue: Glibc.errno))
            }
            if received == 0 { return addresses }
            var left = Int32(received)
            var message = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: nlmsghdr.self)
            while mnl_nlmsg_ok(message, left) {
                let header = message.pointee
                if header.nlmsg_seq == sequence && (header.nlmsg_pid == 0 || header.nlmsg_pid == portID) {
                    switch Int32(header.nlmsg_type) {
                    case NLMSG_DONE: return addresses
                    case NLMSG_ERROR:
                        let code = cttune_nlmsg_errno(message)
                        if code != 0 { throw NetlinkError(call: "address dump", errno: Errno(rawValue: code)) }
                    default:
                        let count = Int(bytes.withUnsafeMutableBufferPointer { cttune_addr_decode(message, $0.baseAddress) })
                        if count > 0, let address = IPAddress(bytes: bytes.prefix(count)) { addresses.insert(address) }
                    }
                }
                message = UnsafePointer(mnl_nlmsg_next(message, &left))
            }
        }
    }
}
