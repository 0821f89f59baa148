import Foundation

// ct-loadgen: a bounded loopback TCP load for measuring conntrack.
//
// Runs a server and a paced client in one process (run it inside a network
// namespace: `ip netns exec NS ct-loadgen ...`). The client opens
// `--rate` connections per second for `--seconds`, sends one byte and closes
// first, so every flow ends in TIME_WAIT as on a busy web server. Flows go to
// 127.0.0.1–127.0.0.254 in turn so that tuples are not reused within a
// TIME_WAIT period. Every `--sample` seconds it reads nf_conntrack_count.
// Prints one JSON object: connections, failures, samples and the peak count.
//
// Modes beyond plain connections (for flood tests):
//   --half-open-port P   also open --half-open-rate SYN-only attempts/s to
//                         port P (drop it with a firewall rule: the SYN is
//                         tracked, never answered, and the socket is closed).
//
// A known mix, for measuring what `cttune learn` learns (every share is a
// share of the TCP flows, assigned in a fixed interleaved order, so the
// generated shares are exact):
//   --hold S              keep each connection ESTABLISHED S seconds before closing
//   --rst-share F         close that share with RST (SO_LINGER 0: CLOSE, not TIME_WAIT)
//   --half-open-share F   send that share to --half-open-port as unanswered SYNs
//   --orphan-share F      send that share to --orphan-port P (a second server):
//                         drop their FIN and RST before conntrack sees them
//                         (nft, output hook, priority raw) and they are orphans
//   --udp-rate R          also R UDP flows/s to --udp-port (an echo server),
//   --udp-stream-share F  of which that share sends again after 2.5 s (a stream:
//                         ASSURED, udp_timeout_stream); the rest one exchange
//   --burst-factor F --burst-at T --burst-seconds D
//                         multiply every rate by F from T to T + D seconds
// Every loop is bounded by --seconds plus --tail seconds of sampling.
//
// `ct-loadgen mix --role server|client --peer ADDRESS …`: a three-class mix
// between two namespaces, one process in each (see Mix.swift).

struct Options {
    var rate = 100.0
    var seconds = 10.0
    var tail = 0.0
    var port: UInt16 = 18080
    var sample = 0.5
    var connectTimeoutMs: Int32 = 1000
    var halfOpenPort: UInt16? = nil
    var halfOpenRate = 0.0
    var holdSeconds = 0.0
    var rstShare = 0.0
    var halfOpenShare = 0.0
    var orphanShare = 0.0
    var orphanPort: UInt16 = 18081
    var udpRate = 0.0
    var udpPort: UInt16 = 18082
    var udpStreamShare = 0.0
    var burstFactor = 1.0
    var burstAt = 0.0
    var burstSeconds = 0.0
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let flag = arguments.next() {
        guard let value = arguments.next() else { fail("missing value after \(flag)") }
        switch flag {
        case "--rate": options.rate = number(value, flag, 0.1...100_000)
        case "--seconds": options.seconds = number(value, flag, 0.1...600)
        case "--tail": options.tail = number(value, flag, 0...600)
        case "--port": options.port = UInt16(number(value, flag, 1...65535))
        case "--sample": options.sample = number(value, flag, 0.05...60)
        case "--connect-timeout-ms": options.connectTimeoutMs = Int32(number(value, flag, 1...60_000))
        case "--half-open-port": options.halfOpenPort = UInt16(number(value, flag, 1...65535))
        case "--half-open-rate": options.halfOpenRate = number(value, flag, 0...100_000)
        case "--hold": options.holdSeconds = number(value, flag, 0...600)
        case "--rst-share": options.rstShare = number(value, flag, 0...1)
        case "--half-open-share": options.halfOpenShare = number(value, flag, 0...1)
        case "--orphan-share": options.orphanShare = number(value, flag, 0...1)
        case "--orphan-port": options.orphanPort = UInt16(number(value, flag, 1...65535))
        case "--udp-rate": options.udpRate = number(value, flag, 0...100_000)
        case "--udp-port": options.udpPort = UInt16(number(value, flag, 1...65535))
        case "--udp-stream-share": options.udpStreamShare = number(value, flag, 0...1)
        case "--burst-factor": options.burstFactor = number(value, flag, 1...100)
        case "--burst-at": options.burstAt = number(value, flag, 0...600)
        case "--burst-seconds": options.burstSeconds = number(value, flag, 0...600)
        default: fail("unknown option \(flag)")
        }
    }
    if options.rstShare + options.halfOpenShare + options.orphanShare > 1 {
        fail("--rst-share, --half-open-share and --orphan-share add up to more than 1")
    }
    if options.halfOpenShare > 0 && options.halfOpenPort == nil { fail("--half-open-share needs --half-open-port") }
    return options
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ct-loadgen: \(message)\n".utf8))
    exit(64)
}

func number(_ text: String, _ flag: String, _ range: ClosedRange<Double>) -> Double {
    guard let value = Double(text), range.contains(value) else { fail("\(flag) must be a number in \(range)") }
    return value
}

func now() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

func address(_ host: UInt32, _ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = host.bigEndian
    return address
}

func withSockaddr<T>(_ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var copy = address
    return withUnsafePointer(to: &copy) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// Accepts connections on each listener and reads each until the client
/// closes (or 3 s pass without data: an orphan's FIN never arrives), then
/// closes. One poll loop, so a held connection never delays the others.
func startServer(ports: [UInt16]) -> [Int32] {
    let listeners = ports.map { port -> Int32 in
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withSockaddr(address(0, port)) { bind(listener, $0, $1) }
        guard listener >= 0, bound == 0, listen(listener, 4096) == 0 else {
            fail("cannot listen on port \(port): \(String(cString: strerror(errno)))")
        }
        return listener
    }
    Thread.detachNewThread {
        var buffer = [UInt8](repeating: 0, count: 64)
        var connections: [(fd: Int32, lastData: Double)] = []
        while true {
            var polled = listeners.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            polled += connections.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if poll(&polled, nfds_t(polled.count), 100) < 0 && errno != EINTR { return }
            let time = now()
            var kept: [(fd: Int32, lastData: Double)] = []
            for (index, listener) in listeners.enumerated() where polled[index].revents != 0 {
                while true {
                    let connection = accept(listener, nil, nil)
                    if connection < 0 { break }
                    _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
                    kept.append((connection, time))
                }
            }
            for (offset, connection) in connections.enumerated() {
                var open = true
                if polled[listeners.count + offset].revents != 0 {
                    let count = read(connection.fd, &buffer, buffer.count)
                    if count > 0 {
                        kept.append((connection.fd, time))
                        continue
                    }
                    open = count < 0 && errno == EAGAIN
                }
                if open && time - connection.lastData < 3 {
                    kept.append(connection)
                } else {
                    close(connection.fd)
                }
            }
            connections = kept
        }
    }
    return listeners
}

/// Echoes every datagram back to its sender.
func startUDPEcho(port: UInt16) -> Int32 {
    let server = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    let bound = withSockaddr(address(0, port)) { bind(server, $0, $1) }
    guard server >= 0, bound == 0 else { fail("cannot bind UDP port \(port): \(String(cString: strerror(errno)))") }
    var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
    setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    Thread.detachNewThread {
        var buffer = [UInt8](repeating: 0, count: 64)
        var peer = sockaddr_storage()
        while true {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(server, &buffer, buffer.count, 0, $0, &length) }
            }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return
            }
            _ = withUnsafePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(server, buffer, count, 0, $0, length) }
            }
        }
    }
    return server
}

/// One connection: connect within the timeout and send a byte. Returns the
/// open socket, or -1 on failure. `synOnly`: return right after the SYN.
/// `sourcePort`: leave from that port (bound with SO_REUSEADDR).
func openConnection(to host: UInt32, port: UInt16, timeoutMs: Int32, synOnly: Bool = false, sourcePort: UInt16? = nil) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { return -1 }
    if let sourcePort {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard withSockaddr(address(0, sourcePort), { bind(fd, $0, $1) }) == 0 else {
            close(fd)
            return -1
        }
    }
    let started = withSockaddr(address(host, port)) { connect(fd, $0, $1) }
    if synOnly { return fd }  // half-open: the SYN is out; closing sends nothing more
    var ok = true
    if started != 0 {
        ok = errno == EINPROGRESS
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        ok = ok && poll(&poller, 1, timeoutMs) == 1
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        ok = ok && error == 0
    }
    var byte: UInt8 = 1
    if ok && write(fd, &byte, 1) == 1 { return fd }
    close(fd)
    return -1
}

/// Closes with RST instead of FIN: SO_LINGER on with a zero timeout.
func closeWithReset(_ fd: Int32) {
    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    close(fd)
}

func conntrackCount() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/netfilter/nf_conntrack_count", encoding: .utf8) else { return nil }
    return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
}

/// Seconds of the run at which flow number `index` of a class at `rate` is
/// due: the rate is multiplied by the burst factor inside the burst.
func dueTime(_ index: Int, rate: Double, _ options: Options) -> Double {
    let nominal = Double(index) / rate  // "seconds at the base rate"
    let burstStart = options.burstAt, burstLength = options.burstSeconds, factor = options.burstFactor
    if nominal < burstStart || burstLength == 0 || factor == 1 { return nominal }
    if nominal < burstStart + factor * burstLength { return burstStart + (nominal - burstStart) / factor }
    return nominal - (factor - 1) * burstLength
}

/// Picks kinds in a fixed interleaved order so that each kind's count is
/// its share of the flows so far, to within one.
struct ShareScheduler {
    var shares: [Double]
    var counts: [Int]
    var total = 0

    init(_ shares: [Double]) {
        self.shares = shares + [max(0, 1 - shares.reduce(0, +))]
        counts = Array(repeating: 0, count: self.shares.count)
    }

    mutating func next() -> Int {
        total += 1
        let deficits = shares.indices.map { shares[$0] * Double(total) - Double(counts[$0]) }
        let pick = deficits.indices.max { deficits[$0] < deficits[$1] }!
        counts[pick] += 1
        return pick
    }
}

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "mix" { runMix(Array(CommandLine.arguments.dropFirst(2))) }
let options = parseOptions()
var serverPorts = [options.port]
if options.orphanShare > 0 { serverPorts.append(options.orphanPort) }
let listeners = startServer(ports: serverPorts)
let udpServer = options.udpRate > 0 ? startUDPEcho(port: options.udpPort) : -1
let start = now()
let deadline = start + options.seconds

final class Samples: @unchecked Sendable {
    let lock = NSLock()
    var points: [(Double, Int)] = []
    func add(_ t: Double, _ count: Int) {
        lock.lock()
        points.append((t, count))
        lock.unlock()
    }
}
let samples = Samples()
let samplerDone = DispatchSemaphore(value: 0)
Thread.detachNewThread {
    while now() < deadline + options.tail {
        if let count = conntrackCount() { samples.add(now() - start, count) }
        usleep(useconds_t(options.sample * 1_000_000))
    }
    samplerDone.signal()
}

/// A socket waiting for its next step.
struct Pending {
    enum Step { case closeFin, closeReset, sendAgain, closeUDP }
    var fd: Int32
    var due: Double
    var step: Step
}

enum TCPKind: Int, CaseIterable { case orphan, halfOpen, reset, normal }
var kindCounts = [Int](repeating: 0, count: TCPKind.allCases.count)
var scheduler = ShareScheduler([options.orphanShare, options.halfOpenShare, options.rstShare])
var connections = 0, failures = 0, halfOpen = 0, udpFlows = 0, udpStreams = 0
var pending: [Pending] = []
let loopbackBase: UInt32 = 0x7F00_0000  // 127.0.0.0
var halfOpenDue = start
var udpStreamScheduler = ShareScheduler([options.udpStreamShare])
var drain = [UInt8](repeating: 0, count: 64)

func runPending(upTo time: Double) {
    var index = 0
    while index < pending.count {
        let item = pending[index]
        guard item.due <= time else {
            index += 1
            continue
        }
        switch item.step {
        case .closeFin: close(item.fd)
        case .closeReset: closeWithReset(item.fd)
        case .sendAgain:
            while recv(item.fd, &drain, drain.count, Int32(MSG_DONTWAIT)) > 0 {}
            var byte: UInt8 = 2
            _ = send(item.fd, &byte, 1, 0)
            pending.append(Pending(fd: item.fd, due: item.due + 0.2, step: .closeUDP))
        case .closeUDP:
            while recv(item.fd, &drain, drain.count, Int32(MSG_DONTWAIT)) > 0 {}
            close(item.fd)
        }
        pending.swapAt(index, pending.count - 1)
        pending.removeLast()
    }
}

while now() < deadline {
    let time = now()
    runPending(upTo: time)
    if let port = options.halfOpenPort, options.halfOpenRate > 0 {
        while halfOpenDue <= time && halfOpenDue < deadline {
            close(openConnection(to: loopbackBase + 1 + UInt32(halfOpen % 254), port: port, timeoutMs: 0, synOnly: true))
            halfOpen += 1
            halfOpenDue = start + Double(halfOpen) / options.halfOpenRate
        }
    }
    if options.udpRate > 0 {
        while start + dueTime(udpFlows, rate: options.udpRate, options) <= time {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            // To 127.0.0.1 only: the echo server's replies leave from
            // 127.0.0.1 whatever address was asked, and a reply from another
            // address would be a new flow, not this one's reply. From
            // 127.0.0.1-127.0.0.254 in turn, source ports going round
            // 10000-59999: every flow is a new tuple for 12.7 million flows
            // (a random ephemeral port would often hit a tuple whose entry is
            // still alive, udp_timeout_stream is 120 s, and be no new flow).
            let source = address(loopbackBase + 1 + UInt32(udpFlows % 254), UInt16(10_000 + (udpFlows / 254) % 50_000))
            _ = withSockaddr(source) { bind(fd, $0, $1) }
            _ = withSockaddr(address(loopbackBase + 1, options.udpPort)) { connect(fd, $0, $1) }
            var byte: UInt8 = 1
            _ = send(fd, &byte, 1, 0)
            let stream = udpStreamScheduler.next() == 0
            if stream { udpStreams += 1 }
            pending.append(Pending(fd: fd, due: time + (stream ? 2.5 : 0.2), step: stream ? .sendAgain : .closeUDP))
            udpFlows += 1
        }
    }
    let due = start + dueTime(connections, rate: options.rate, options)
    let nextPending = pending.map(\.due).min() ?? .infinity
    let wait = min(due, nextPending) - now()
    if wait > 0 {
        usleep(useconds_t(min(wait, 0.05) * 1_000_000))
        continue
    }
    guard due <= now() else { continue }
    let host = loopbackBase + 1 + UInt32(connections % 254)
    let kind = TCPKind(rawValue: scheduler.next())!
    kindCounts[kind.rawValue] += 1
    connections += 1
    if kind == .halfOpen, let port = options.halfOpenPort {
        close(openConnection(to: host, port: port, timeoutMs: 0, synOnly: true))
        halfOpen += 1
        continue
    }
    let fd = openConnection(
        to: host, port: kind == .orphan ? options.orphanPort : options.port, timeoutMs: options.connectTimeoutMs)
    if fd < 0 {
        failures += 1
        continue
    }
    let step: Pending.Step = kind == .reset ? .closeReset : .closeFin
    if options.holdSeconds > 0 {
        pending.append(Pending(fd: fd, due: now() + options.holdSeconds, step: step))
    } else if step == .closeReset {
        closeWithReset(fd)
    } else {
        close(fd)
    }
}
let elapsed = now() - start
runPending(upTo: .infinity)
samplerDone.wait()
for listener in listeners { close(listener) }
if udpServer >= 0 { close(udpServer) }

let points = samples.points
let peak = points.map(\.1).max() ?? 0
let peakTime = points.first(where: { $0.1 == peak })?.0 ?? 0
let sampleText = points.map { String(format: "[%.2f,%d]", $0.0, $0.1) }.joined(separator: ",")
print(
    """
    {"connections":\(connections),"failures":\(failures),"half_open":\(halfOpen),\
    "seconds":\(String(format: "%.3f", elapsed)),"rate":\(String(format: "%.1f", Double(connections) / elapsed)),\
    "peak_count":\(peak),"peak_at":\(String(format: "%.2f", peakTime)),\
    "orphans":\(kindCounts[TCPKind.orphan.rawValue]),"resets":\(kindCounts[TCPKind.reset.rawValue]),\
    "udp_flows":\(udpFlows),"udp_streams":\(udpStreams),"samples":[\(sampleText)]}
    """)
