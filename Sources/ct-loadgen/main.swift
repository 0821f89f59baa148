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
// Every loop is bounded by --seconds plus --tail seconds of sampling.

struct Options {
    var rate = 100.0
    var seconds = 10.0
    var tail = 0.0
    var port: UInt16 = 18080
    var sample = 0.5
    var connectTimeoutMs: Int32 = 1000
    var halfOpenPort: UInt16? = nil
    var halfOpenRate = 0.0
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
        default: fail("unknown option \(flag)")
        }
    }
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

/// Accepts connections and reads each until the client closes, then closes.
func startServer(port: UInt16) -> Int32 {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let bound = withSockaddr(address(0, port)) { bind(listener, $0, $1) }
    guard listener >= 0, bound == 0, listen(listener, 4096) == 0 else {
        fail("cannot listen on port \(port): \(String(cString: strerror(errno)))")
    }
    Thread.detachNewThread {
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            while read(connection, &buffer, buffer.count) > 0 {}
            close(connection)
        }
    }
    return listener
}

/// One connection: connect within the timeout, send a byte, close first.
func connectOnce(to host: UInt32, port: UInt16, timeoutMs: Int32, sendAndClose: Bool) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let started = withSockaddr(address(host, port)) { connect(fd, $0, $1) }
    if !sendAndClose { return true }  // half-open: the SYN is out; closing sends nothing more
    if started != 0 {
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, timeoutMs) == 1 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else { return false }
    }
    var byte: UInt8 = 1
    return write(fd, &byte, 1) == 1
}

func conntrackCount() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/netfilter/nf_conntrack_count", encoding: .utf8) else { return nil }
    return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
}

let options = parseOptions()
let listener = startServer(port: options.port)
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

var connections = 0, failures = 0, halfOpen = 0
let loopbackBase: UInt32 = 0x7F00_0000  // 127.0.0.0
var halfOpenDue = start
while now() < deadline {
    let due = start + Double(connections) / options.rate
    if let port = options.halfOpenPort, options.halfOpenRate > 0 {
        while halfOpenDue <= now() && halfOpenDue < deadline {
            _ = connectOnce(to: loopbackBase + 1 + UInt32(halfOpen % 254), port: port, timeoutMs: 0, sendAndClose: false)
            halfOpen += 1
            halfOpenDue = start + Double(halfOpen) / options.halfOpenRate
        }
    }
    let wait = due - now()
    if wait > 0 {
        usleep(useconds_t(min(wait, 0.05) * 1_000_000))
        continue
    }
    if !connectOnce(
        to: loopbackBase + 1 + UInt32(connections % 254), port: options.port,
        timeoutMs: options.connectTimeoutMs, sendAndClose: true)
    {
        failures += 1
    }
    connections += 1
}
let elapsed = now() - start
samplerDone.wait()
close(listener)

let points = samples.points
let peak = points.map(\.1).max() ?? 0
let peakTime = points.first(where: { $0.1 == peak })?.0 ?? 0
let sampleText = points.map { String(format: "[%.2f,%d]", $0.0, $0.1) }.joined(separator: ",")
print(
    """
    {"connections":\(connections),"failures":\(failures),"half_open":\(halfOpen),\
    "seconds":\(String(format: "%.3f", elapsed)),"rate":\(String(format: "%.1f", Double(connections) / elapsed)),\
    "peak_count":\(peak),"peak_at":\(String(format: "%.2f", peakTime)),"samples":[\(sampleText)]}
    """)
