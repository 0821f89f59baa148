import Foundation

// ct-loadgen mix: a known three-class mix between two network namespaces
// (joined by a veth pair), seen from the server namespace:
//   inbound udp/U       --udp-rate R new flows/s to the server's echo port U, one
//                       exchange each; --udp-stream-share F of them send again
//                       after 2.5 s (a stream); --udp-burst-factor F --burst-at T
//                       --burst-seconds D multiply this class's rate from T to T + D
//   inbound tcp/P       --tcp-rate R connections/s to the server's port P, each
//                       held --tcp-hold H s with a byte every --keepalive K s,
//                       then closed (FIN); --tcp-orphan-share F of them leave from
//                       source ports --orphan-source-ports LO-HI, whose FIN and RST
//                       the server namespace's rules hide from conntrack: orphans
//   outbound tcp/O      --out-rate R connections/s from the server to the client's
//                       port O, held --out-hold H s with keep-alive bytes
//   noise               --noise-rate R UDP datagrams/s to random server ports in
//                       --noise-ports LO-HI (nothing listens): one class per port
// Run one process per namespace with the same options and --role: the server
// listens on U and P and opens the outbound flows to --peer; the client
// listens on O and sends the rest to --peer. Flows start --lead seconds after
// launch (the peer's listeners are up by then) and are generated for
// --seconds; held flows then finish, and the listeners stay --tail seconds more.
// Prints one JSON object: per class (named as the server sees it) the flows,
// failures, rate, hold, streams, orphans and burst; the server role also
// samples nf_conntrack_count every --sample seconds (peak_count, samples).

struct MixOptions {
    enum Role: String { case server, client }
    var role = Role.server
    var peer: UInt32 = 0
    var seconds = 10.0
    var lead = 1.0
    var tail = 2.0
    var sample = 0.5
    var keepalive = 1.0
    var udpPort: UInt16 = 53
    var udpRate = 0.0
    var udpStreamShare = 0.0
    var udpSourcePorts: ClosedRange<UInt16> = 10000...29999
    var udpBurstFactor = 1.0
    var burstAt = 0.0
    var burstSeconds = 0.0
    var tcpPort: UInt16 = 8080
    var tcpRate = 0.0
    var tcpHold = 1.0
    var tcpOrphanShare = 0.0
    var orphanSourcePorts: ClosedRange<UInt16> = 21000...21999
    var outPort: UInt16 = 5432
    var outRate = 0.0
    var outHold = 10.0
    var noiseRate = 0.0
    var noisePorts: ClosedRange<UInt16> = 20000...29999
}

func parseMixOptions(_ arguments: [String]) -> MixOptions {
    var options = MixOptions()
    var iterator = arguments.makeIterator()
    func range(_ text: String, _ flag: String) -> ClosedRange<UInt16> {
        let bounds = text.split(separator: "-").compactMap { UInt16($0) }
        guard bounds.count == 2, bounds[0] >= 1, bounds[0] <= bounds[1] else { fail("\(flag) must be LO-HI ports, got \(text)") }
        return bounds[0]...bounds[1]
    }
    func port(_ text: String, _ flag: String) -> UInt16 { UInt16(number(text, flag, 1...65535)) }
    while let flag = iterator.next() {
        guard let value = iterator.next() else { fail("missing value after \(flag)") }
        switch flag {
        case "--role":
            guard let role = MixOptions.Role(rawValue: value) else { fail("--role must be server or client") }
            options.role = role
        case "--peer":
            var parsed = in_addr()
            guard inet_pton(AF_INET, value, &parsed) == 1 else { fail("--peer must be an IPv4 address, got \(value)") }
            options.peer = UInt32(bigEndian: parsed.s_addr)
        case "--seconds": options.seconds = number(value, flag, 0.1...600)
        case "--lead": options.lead = number(value, flag, 0...60)
        case "--tail": options.tail = number(value, flag, 0...600)
        case "--sample": options.sample = number(value, flag, 0.05...60)
        case "--keepalive": options.keepalive = number(value, flag, 0.1...60)
        case "--udp-port": options.udpPort = port(value, flag)
        case "--udp-rate": options.udpRate = number(value, flag, 0...100_000)
        case "--udp-stream-share": options.udpStreamShare = number(value, flag, 0...1)
        case "--udp-source-ports": options.udpSourcePorts = range(value, flag)
        case "--udp-burst-factor": options.udpBurstFactor = number(value, flag, 1...100)
        case "--burst-at": options.burstAt = number(value, flag, 0...600)
        case "--burst-seconds": options.burstSeconds = number(value, flag, 0...600)
        case "--tcp-port": options.tcpPort = port(value, flag)
        case "--tcp-rate": options.tcpRate = number(value, flag, 0...100_000)
        case "--tcp-hold": options.tcpHold = number(value, flag, 0...600)
        case "--tcp-orphan-share": options.tcpOrphanShare = number(value, flag, 0...1)
        case "--orphan-source-ports": options.orphanSourcePorts = range(value, flag)
        case "--out-port": options.outPort = port(value, flag)
        case "--out-rate": options.outRate = number(value, flag, 0...100_000)
        case "--out-hold": options.outHold = number(value, flag, 0...600)
        case "--noise-rate": options.noiseRate = number(value, flag, 0...100_000)
        case "--noise-ports": options.noisePorts = range(value, flag)
        default: fail("unknown mix option \(flag)")
        }
    }
    if options.peer == 0 { fail("mix needs --peer ADDRESS (the other namespace's address)") }
    return options
}

/// One generated class: its pace and what came of it.
struct MixClass {
    var name: String
    var rate: Double
    var burstFactor = 1.0
    var burstAt = 0.0
    var burstSeconds = 0.0
    var holdSeconds = 0.0
    var flows = 0
    var failures = 0
    var streams = 0
    var orphans = 0

    /// Seconds after the start at which flow `index` is due (burst included).
    func due(_ index: Int) -> Double {
        let nominal = Double(index) / rate
        if nominal < burstAt || burstSeconds == 0 || burstFactor == 1 { return nominal }
        if nominal < burstAt + burstFactor * burstSeconds { return burstAt + (nominal - burstAt) / burstFactor }
        return nominal - (burstFactor - 1) * burstSeconds
    }

    func json(generatedSeconds: Double) -> String {
        """
        {"class":"\(name)","flows":\(flows),"failures":\(failures),\
        "rate":\(String(format: "%.3f", Double(flows) / max(generatedSeconds, 0.001))),\
        "base_rate":\(rate),"hold_seconds":\(holdSeconds),"streams":\(streams),"orphans":\(orphans),\
        "burst_factor":\(burstFactor),"burst_at":\(burstAt),"burst_seconds":\(burstSeconds)}
        """
    }
}

/// A socket waiting for its next step.
struct MixPending {
    enum Step { case keepAlive, closeFin, sendAgain, closeUDP }
    var fd: Int32
    var due: Double
    var step: Step
    var closeAt: Double
}

func runMix(_ arguments: [String]) -> Never {
    let options = parseMixOptions(arguments)
    let server = options.role == .server
    // Listeners first: the peer starts sending after --lead.
    var listeners: [Int32] = []
    var udpServer: Int32 = -1
    if server {
        if options.tcpRate > 0 { listeners = startServer(ports: [options.tcpPort]) }
        if options.udpRate > 0 { udpServer = startUDPEcho(port: options.udpPort) }
    } else if options.outRate > 0 {
        listeners = startServer(ports: [options.outPort])
    }
    let launched = now()
    let start = launched + options.lead
    let generationEnd = start + options.seconds
    let longestHold = max(options.tcpHold, options.outHold, 3)
    let end = generationEnd + longestHold + options.tail

    let samples = Samples()
    let samplerDone = DispatchSemaphore(value: 0)
    if server {
        Thread.detachNewThread {
            while now() < end {
                if let count = conntrackCount() { samples.add(now() - start, count) }
                usleep(useconds_t(options.sample * 1_000_000))
            }
            samplerDone.signal()
        }
    } else {
        samplerDone.signal()
    }

    enum Kind: Int { case udp, tcp, outbound, noise }
    var classes: [Kind: MixClass] = [:]
    if server {
        if options.outRate > 0 {
            classes[.outbound] = MixClass(name: "outbound tcp/\(options.outPort)", rate: options.outRate, holdSeconds: options.outHold)
        }
    } else {
        if options.udpRate > 0 {
            classes[.udp] = MixClass(
                name: "inbound udp/\(options.udpPort)", rate: options.udpRate, burstFactor: options.udpBurstFactor,
                burstAt: options.burstAt, burstSeconds: options.burstSeconds)
        }
        if options.tcpRate > 0 {
            classes[.tcp] = MixClass(name: "inbound tcp/\(options.tcpPort)", rate: options.tcpRate, holdSeconds: options.tcpHold)
        }
        if options.noiseRate > 0 {
            classes[.noise] = MixClass(
                name: "inbound udp/\(options.noisePorts.lowerBound)-\(options.noisePorts.upperBound)", rate: options.noiseRate)
        }
    }

    var pending: [MixPending] = []
    var drain = [UInt8](repeating: 0, count: 64)
    var udpStreams = ShareScheduler([options.udpStreamShare])
    var orphans = ShareScheduler([options.tcpOrphanShare])
    var random = SystemRandomNumberGenerator()
    var byte: UInt8 = 1

    func runPending(upTo time: Double) {
        var index = 0
        while index < pending.count {
            var item = pending[index]
            guard item.due <= time else {
                index += 1
                continue
            }
            pending.swapAt(index, pending.count - 1)
            pending.removeLast()
            switch item.step {
            case .keepAlive:
                _ = send(item.fd, &byte, 1, Int32(MSG_NOSIGNAL))
                item.due += options.keepalive
                if item.due >= item.closeAt { (item.due, item.step) = (item.closeAt, .closeFin) }
                pending.append(item)
            case .closeFin: close(item.fd)
            case .sendAgain:
                while recv(item.fd, &drain, drain.count, Int32(MSG_DONTWAIT)) > 0 {}
                _ = send(item.fd, &byte, 1, 0)
                pending.append(MixPending(fd: item.fd, due: item.due + 0.2, step: .closeUDP, closeAt: item.due + 0.2))
            case .closeUDP:
                while recv(item.fd, &drain, drain.count, Int32(MSG_DONTWAIT)) > 0 {}
                close(item.fd)
            }
        }
    }

    /// A connection held `hold` seconds with keep-alive bytes, then closed.
    func hold(_ fd: Int32, _ hold: Double, from time: Double) {
        let closeAt = time + hold
        let first = time + options.keepalive
        pending.append(MixPending(fd: fd, due: min(first, closeAt), step: first < closeAt ? .keepAlive : .closeFin, closeAt: closeAt))
    }

    func startFlow(_ kind: Kind, _ index: Int, at time: Double) {
        switch kind {
        case .udp:
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            // Source ports in turn: a tuple is never reused while its entry lives.
            let span = Int(options.udpSourcePorts.upperBound - options.udpSourcePorts.lowerBound) + 1
            let source = options.udpSourcePorts.lowerBound + UInt16(index % span)
            _ = withSockaddr(address(0, source)) { bind(fd, $0, $1) }
            _ = withSockaddr(address(options.peer, options.udpPort)) { connect(fd, $0, $1) }
            _ = send(fd, &byte, 1, 0)
            let stream = udpStreams.next() == 0
            if stream { classes[.udp]!.streams += 1 }
            pending.append(
                MixPending(fd: fd, due: time + (stream ? 2.5 : 0.2), step: stream ? .sendAgain : .closeUDP, closeAt: time + 2.7))
        case .noise:
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            let port = UInt16.random(in: options.noisePorts, using: &random)
            _ = withSockaddr(address(options.peer, port)) { sendto(fd, &byte, 1, 0, $0, $1) }
            close(fd)
        case .tcp:
            let orphan = orphans.next() == 0
            var source: UInt16? = nil
            if orphan {
                let span = Int(options.orphanSourcePorts.upperBound - options.orphanSourcePorts.lowerBound) + 1
                source = options.orphanSourcePorts.lowerBound + UInt16(classes[.tcp]!.orphans % span)
            }
            let fd = openConnection(to: options.peer, port: options.tcpPort, timeoutMs: 1000, sourcePort: source)
            if fd < 0 {
                classes[.tcp]!.failures += 1
                return
            }
            if orphan { classes[.tcp]!.orphans += 1 }
            hold(fd, options.tcpHold, from: time)
        case .outbound:
            let fd = openConnection(to: options.peer, port: options.outPort, timeoutMs: 1000)
            if fd < 0 {
                classes[.outbound]!.failures += 1
                return
            }
            hold(fd, options.outHold, from: time)
        }
    }

    while now() < start { usleep(10_000) }
    var generated = 0.0
    while true {
        let time = now()
        runPending(upTo: time)
        if time < generationEnd {
            for kind in classes.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
                while let flowClass = classes[kind], start + flowClass.due(flowClass.flows) <= min(time, generationEnd) {
                    classes[kind]!.flows += 1
                    startFlow(kind, flowClass.flows, at: time)
                }
            }
            generated = min(time, generationEnd) - start
        } else if pending.isEmpty {
            break
        }
        if time > end { break }
        let nextFlow = classes.values.map { start + $0.due($0.flows) }.min() ?? .infinity
        let nextPending = pending.map(\.due).min() ?? .infinity
        let wait = min(nextFlow, nextPending, end) - now()
        if wait > 0 { usleep(useconds_t(min(wait, 0.05) * 1_000_000)) }
    }
    runPending(upTo: .infinity)
    while now() < end { usleep(50_000) }
    samplerDone.wait()
    for listener in listeners { close(listener) }
    if udpServer >= 0 { close(udpServer) }

    let points = samples.points
    let peak = points.map(\.1).max() ?? 0
    let sampleText = points.map { String(format: "[%.2f,%d]", $0.0, $0.1) }.joined(separator: ",")
    let classText = classes.keys.sorted { $0.rawValue < $1.rawValue }.map { classes[$0]!.json(generatedSeconds: generated) }
    print(
        """
        {"role":"\(options.role.rawValue)","seconds":\(String(format: "%.3f", generated)),\
        "classes":[\(classText.joined(separator: ","))],"peak_count":\(peak),"samples":[\(sampleText)]}
        """)
    exit(0)
}
