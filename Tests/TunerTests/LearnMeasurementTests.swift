import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// A known mix of flows as ctnetlink would report it: events in time order,
/// and the final dump of what is still alive.
struct SyntheticLoad {
    enum Kind { case fin, rst, halfOpen, orphan, udp, udpStream, icmp }

    static let seenReply: UInt32 = 1 << 1  // IPS_SEEN_REPLY
    static let assured: UInt32 = 1 << 2  // IPS_ASSURED

    var timeouts = LearnTimeouts(tcpEstablishedSeconds: 432_000, synSentSeconds: 5, udpSeconds: 5)
    var holdSeconds = 1.0
    var timeWaitSeconds = 5.0
    var closeSeconds = 3.0
    /// A DESTROY comes at the next GC pass, not when the timeout runs out.
    var gcGapSeconds = 3.0
    private(set) var events: [(time: Double, entry: ConntrackEntry)] = []
    /// Entries alive at the end, with the time their last packet passed (for CTA_TIMEOUT).
    private(set) var alive: [UInt32: (entry: ConntrackEntry, lastPacket: Double)] = [:]
    private var nextID: UInt32 = 1

    /// The host the flows arrive at, and where they come from.
    static let local = IPAddress("10.0.0.1")!, peer = IPAddress("10.0.0.2")!

    static func entry(
        _ id: UInt32, _ proto: UInt8, _ state: TCPConntrackState?, _ status: UInt32, _ event: ConntrackEvent, port: UInt16? = nil
    ) -> ConntrackEntry {
        ConntrackEntry(
            family: 2, protocolNumber: proto, tcpState: state, status: status, timeoutSeconds: nil, id: id, event: event,
            tuple: port.map {
                FlowTuple(protocolNumber: proto, source: peer, destination: local, sourcePort: 40_000, destinationPort: $0)
            })
    }

    /// - Parameter port: the destination port of an inbound flow (its tuple); `nil`: no tuple.
    mutating func add(_ kind: Kind, at t: Double, port: UInt16? = nil) {
        let id = nextID
        nextID += 1
        func emit(_ time: Double, _ proto: UInt8, _ state: TCPConntrackState?, _ status: UInt32, _ event: ConntrackEvent) {
            events.append((time, Self.entry(id, proto, state, status, event, port: proto == 1 ? nil : port)))
        }
        let reply = Self.seenReply, both = Self.seenReply | Self.assured
        switch kind {
        case .fin, .rst, .orphan:
            emit(t, 6, .synSent, 0, .created)
            emit(t + 0.001, 6, .synReceived, reply, .updated)
            emit(t + 0.002, 6, .established, both, .updated)
            let close = t + 0.002 + holdSeconds
            switch kind {
            case .fin:
                emit(close, 6, .finWait, both, .updated)
                emit(close + 0.001, 6, .timeWait, both, .updated)
                emit(close + timeWaitSeconds + gcGapSeconds, 6, .timeWait, both, .destroyed)
            case .rst:
                emit(close, 6, .close, both, .updated)
                emit(close + closeSeconds + gcGapSeconds, 6, .close, both, .destroyed)
            default:
                alive[id] = (Self.entry(id, 6, .established, both, .dumped, port: port), close)
            }
        case .halfOpen:
            emit(t, 6, .synSent, 0, .created)
            emit(t + Double(timeouts.synSentSeconds) + gcGapSeconds, 6, .synSent, 0, .destroyed)
        case .udp, .udpStream:
            emit(t, 17, nil, 0, .created)
            emit(t + 0.001, 17, nil, reply, .updated)
            if kind == .udpStream {
                emit(t + 2.5, 17, nil, both, .updated)
                emit(t + 2.5 + 10 + gcGapSeconds, 17, nil, both, .destroyed)
            } else {
                emit(t + Double(timeouts.udpSeconds) + gcGapSeconds, 17, nil, reply, .destroyed)
            }
        case .icmp:
            emit(t, 1, nil, 0, .created)
            emit(t + 30 + gcGapSeconds, 1, nil, reply, .destroyed)
        }
    }

    /// Feeds every event before `end`, then a final dump at `end`.
    func learn(start: Double = 0, end: Double, preexisting: [ConntrackEntry] = [], configure: (inout LoadLearner) -> Void = { _ in })
        -> LearnedLoad
    {
        var learner = LoadLearner(start: start, timeouts: timeouts)
        configure(&learner)
        learner.beginDump(at: start)
        for entry in preexisting { learner.observe(entry, at: start) }
        learner.endDump(complete: true)
        var live: [UInt32: ConntrackEntry] = [:]
        for (time, entry) in events.sorted(by: { $0.time < $1.time }) where time < end {
            learner.observe(entry, at: time)
            live[entry.id!] = entry.event == .destroyed ? nil : entry
        }
        learner.beginDump(at: end)
        for (id, last) in live.sorted(by: { $0.key < $1.key }) {
            var entry = last
            entry.event = .dumped
            if entry.tcpState == .established {
                entry.timeoutSeconds = timeouts.tcpEstablishedSeconds - Int(end - (alive[id]?.lastPacket ?? end))
            }
            learner.observe(entry, at: end)
        }
        for entry in preexisting { learner.observe(entry, at: end) }
        learner.endDump(complete: true)
        return learner.measurements(at: end)
    }
}

@Suite("learn: measurement core on synthetic event streams")
struct LearnMeasurementTests {
    /// 40 TCP flows/s of which 5 % orphans, 10 % half-open, and 20 % of the
    /// rest closed by RST; 20 UDP flows/s, a quarter streams; 2 ICMP/s.
    static func knownMix(seconds: Double, tcpRate: Double = 40) -> SyntheticLoad {
        var load = SyntheticLoad()
        let pattern: [SyntheticLoad.Kind] = [.orphan, .halfOpen, .halfOpen] + Array(repeating: .fin, count: 14) + [.rst, .rst, .rst]
        for index in 0..<Int(seconds * tcpRate) { load.add(pattern[index % pattern.count], at: Double(index) / tcpRate) }
        for index in 0..<Int(seconds * 20) { load.add(index % 4 == 0 ? .udpStream : .udp, at: Double(index) / 20 + 0.01) }
        for index in 0..<Int(seconds * 2) { load.add(.icmp, at: Double(index) / 2 + 0.02) }
        return load
    }

    @Test("rates, shares and the ESTABLISHED time of a known mix come out as generated")
    func knownMixMeasured() throws {
        let learned = Self.knownMix(seconds: 120).learn(end: 120)
        #expect(abs(try #require(learned.tcpNewPerSecond.value) - 40) < 0.5)
        #expect(abs(try #require(learned.udpNewPerSecond.value) - 20) < 0.5)
        #expect(abs(try #require(learned.otherPerSecond.value) - 2) < 0.1)
        #expect(abs(try #require(learned.establishedSeconds.value) - 1.0) < 0.01)
        #expect(abs(try #require(learned.orphanRatio.value) - 0.05) < 0.005)
        #expect(abs(try #require(learned.halfOpenRatio.value) - 0.10) < 0.005)
        #expect(abs(try #require(learned.rstCloseRatio.value) - 3.0 / 17) < 0.005)
        #expect(abs(try #require(learned.udpStreamRatio.value) - 0.25) < 0.01)
        #expect(learned.orphanRatio.isEstimate, "orphans are always an estimate")
        #expect(learned.counters.isComplete)
        #expect(learned.orphanIdleSeconds == 10, "5 x 1 s ESTABLISHED is under the 10 s floor")
    }

    @Test("an unanswered SYN younger than syn_sent is not counted either way")
    func halfOpenCohort() throws {
        // Half-open flows only in the last 3 s: younger than syn_sent (5 s), so outside the cohort.
        var load = SyntheticLoad()
        for index in 0..<200 { load.add(.fin, at: Double(index) / 10) }
        for index in 0..<30 { load.add(.halfOpen, at: 17 + Double(index) / 10) }
        let learned = load.learn(end: 20)
        #expect(learned.halfOpenRatio.value == 0)
        #expect(learned.halfOpenRatio.sample == 150, "flows of the first 15 s")
        #expect(learned.halfOpenRatio.isEstimate == false, "a 20 s window is twice syn_sent 5 s")
    }

    @Test("the busiest interval gives the burst factor; short windows mark it an estimate")
    func burst() throws {
        // 10/s for 50 s with 30/s from 20 s to 30 s: mean 14/s, busiest 10 s at 30/s.
        var load = SyntheticLoad()
        var time = 0.0
        while time < 50 {
            load.add(.fin, at: time)
            time += (20..<30).contains(time) ? 1.0 / 30 : 1.0 / 10
        }
        let learned = load.learn(end: 50)
        #expect(learned.busiestIntervalSeconds == 10)
        #expect(abs(try #require(learned.burstFactor.value) - 30.0 / 14) < 0.1)
        #expect(learned.burstFactor.isEstimate)
        #expect(learned.burstFactor.minimumWindowSeconds == 300)
    }

    @Test("memory stays bounded: destroyed flows leave no per-flow state, and a cap counts the rest")
    func boundedState() throws {
        var load = SyntheticLoad()
        for index in 0..<20_000 { load.add(.rst, at: Double(index) / 1000) }
        var learner = LoadLearner(start: 0, timeouts: load.timeouts)
        learner.maximumTrackedFlows = 5000
        var peak = 0
        for (time, entry) in load.events.sorted(by: { $0.time < $1.time }) {
            learner.observe(entry, at: time)
            peak = max(peak, learner.followedFlows)
        }
        #expect(peak <= 5000)
        #expect(learner.followedFlows == 0, "every flow was destroyed")
        let learned = learner.measurements(at: 30)
        #expect(learned.counters.untracked > 0 && !learned.counters.isComplete, "flows over the cap make the measurement lossy")
        #expect(learned.tcpNewPerSecond.sample == 20_000 - learned.counters.untracked)
    }

    @Test("entries alive before the listener joined are followed by dumps, not counted as new")
    func preexisting() throws {
        let old = (1000..<1010).map { SyntheticLoad.entry($0, 6, .established, SyntheticLoad.seenReply, .dumped) }
        var load = SyntheticLoad()
        for index in 0..<100 { load.add(.fin, at: Double(index) / 10) }
        // Half of them are gone by the final dump.
        let learned = load.learn(end: 30, preexisting: Array(old.prefix(5)))
        var first = LoadLearner(start: 0, timeouts: load.timeouts)
        first.beginDump(at: 0)
        for entry in old { first.observe(entry, at: 0) }
        first.endDump(complete: true)
        first.beginDump(at: 10)
        for entry in old.prefix(5) { first.observe(entry, at: 10) }
        first.endDump(complete: true)
        let counted = first.measurements(at: 10).counters
        #expect(counted.preexisting == 10 && counted.preexistingClosed == 5 && counted.missedDestroy == 0)
        #expect(learned.tcpNewPerSecond.sample == 100, "old entries are not new flows")
        #expect(learned.counters.preexisting == 5)
    }

    @Test("idle ESTABLISHED entries older than the window give the orphan rate of the days before")
    func standingOrphans() throws {
        // 50 old entries idle 100 s to 9900 s: 50 orphans over a 9890 s span of idle times.
        let old = (0..<50).map { index -> ConntrackEntry in
            var entry = SyntheticLoad.entry(UInt32(5000 + index), 6, .established, SyntheticLoad.seenReply | SyntheticLoad.assured, .dumped)
            entry.timeoutSeconds = 432_000 - (100 + 200 * index)
            return entry
        }
        var load = SyntheticLoad()
        for index in 0..<600 { load.add(.fin, at: Double(index) / 10) }
        let learned = load.learn(end: 60, preexisting: old)
        #expect(learned.standingOrphans.entries == 50)
        #expect(learned.standingOrphans.oldestIdleSeconds == 9900)
        let expected = 50.0 / (9900 - 10) / 10
        #expect(abs(try #require(learned.orphanRatio.value) - expected) < expected * 0.05)
        #expect(learned.orphanRatio.basis.contains("older than the window"))
        // Too few old entries say nothing.
        let few = load.learn(end: 60, preexisting: Array(old.prefix(5)))
        #expect(few.standingOrphans.ratio == nil && few.orphanRatio.value == 0)
    }

    @Test("a flow a complete dump no longer lists lost its DESTROY: the measurement says it is lossy")
    func lostDestroy() throws {
        var learner = LoadLearner(start: 0, timeouts: LearnTimeouts())
        learner.beginDump(at: 0)
        learner.endDump(complete: true)
        learner.observe(SyntheticLoad.entry(7, 6, .synSent, 0, .created), at: 1)
        learner.observe(SyntheticLoad.entry(8, 17, nil, 0, .created), at: 1)
        learner.beginDump(at: 5)
        learner.observe(SyntheticLoad.entry(8, 17, nil, SyntheticLoad.seenReply, .dumped), at: 5)
        learner.endDump(complete: true)
        // A flow the dump lists whose NEW never came: alive, and counted as a loss.
        learner.beginDump(at: 7)
        learner.observe(SyntheticLoad.entry(8, 17, nil, SyntheticLoad.seenReply, .dumped), at: 7)
        learner.observe(SyntheticLoad.entry(9, 17, nil, SyntheticLoad.seenReply, .dumped), at: 7)
        learner.endDump(complete: true)
        let learned = learner.measurements(at: 8)
        #expect(learned.counters.missedStart == 1)
        #expect(learned.counters.missedDestroy == 1)
        #expect(!learned.counters.isComplete)
        #expect(learner.followedFlows == 2)
    }

    @Test("with no flows every ratio is absent, and rates are zero")
    func empty() {
        let learned = SyntheticLoad().learn(end: 60)
        #expect(learned.tcpNewPerSecond.value == 0)
        #expect(learned.rstCloseRatio.value == nil && learned.orphanRatio.value == nil && learned.burstFactor.value == nil)
    }
}

@Suite("learn: the learned profile and the loss counter")
struct LearnedProfileTests {
    static func report(_ load: LearnedLoad) -> LearnReport {
        LearnReport(
            load: load, namespace: .named("web"), eventsSetting: 2, timeouts: LearnTimeouts(), requestedSeconds: 120,
            startedAt: Date(timeIntervalSince1970: 1_800_000_000))
    }

    @Test("the learned profile loads as a profile that extends default, with the measured numbers")
    func profileLoads() throws {
        let learned = LearnMeasurementTests.knownMix(seconds: 120).learn(end: 120)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cttune-learned-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("learned.yaml").path
        try Self.report(learned).profileYAML().write(toFile: file, atomically: true, encoding: .utf8)
        let profile = try ProfileCatalog(searchDirectories: []).load(file)
        #expect(abs(profile.tcp.newPerSecond - 40) < 0.5)
        #expect(abs(profile.tcp.orphanRatio - 0.05) < 0.005)
        #expect(abs(profile.tcp.halfOpenRatio - 0.1) < 0.005)
        #expect(abs(profile.udp.streamRatio - 0.25) < 0.01)
        #expect(profile.headroom == 1.25, "what was not measured comes from default")
        #expect(profile.sources.count == 2, "the file, then default: \(profile.sources)")
    }

    @Test("every measured number is written inside the schema's limits, so plan takes the profile whatever was measured")
    func writerClampsToSchema() throws {
        var load = LearnedLoad(windowSeconds: 600)
        // Past every limit: a flood of 9 million flows/s, a burst of 500, a year-long flow.
        for (field, _, _, _) in load.profileNumbers {
            let raw = field.limits.upperBound * 1.5 + 1
            let number = LearnedNumber(value: raw, sample: 1000, minimumWindowSeconds: 60, isEstimate: false, basis: "test")
            switch field {
            case .tcpNewPerSecond: load.tcpNewPerSecond = number
            case .tcpEstablishedSeconds: load.establishedSeconds = number
            case .tcpRstCloseRatio: load.rstCloseRatio = number
            case .tcpOrphanRatio: load.orphanRatio = LearnedNumber(value: 0.4, sample: 1000, isEstimate: false, basis: "test")
            case .tcpHalfOpenRatio: load.halfOpenRatio = LearnedNumber(value: 0.4, sample: 1000, isEstimate: false, basis: "test")
            case .udpNewPerSecond: load.udpNewPerSecond = number
            case .udpStreamRatio: load.udpStreamRatio = number
            case .otherPerSecond: load.otherPerSecond = number
            case .burstFactor: load.burstFactor = number
            default: Issue.record("learn writes \(field.rawValue), which this test does not set")
            }
        }
        let directory = try TestPaths.temporaryDirectory("cttune-learned-limits")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("learned.yaml").path
        try Self.report(load).profileYAML().write(toFile: file, atomically: true, encoding: .utf8)
        let profile = try ProfileCatalog(searchDirectories: []).load(file)
        for (field, _, _, _) in load.profileNumbers where field != .tcpOrphanRatio && field != .tcpHalfOpenRatio {
            #expect(field.value(in: profile) == field.limits.upperBound, "\(field.rawValue)")
        }
    }

    @Test("a number with nothing behind it is left out, so the parent's value applies")
    func unmeasuredLeftOut() throws {
        let learned = SyntheticLoad().learn(end: 60)
        let yaml = Self.report(learned).profileYAML()
        #expect(yaml.contains("# rst_close_ratio: not measured"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cttune-unmeasured-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("learned.yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        let profile = try ProfileCatalog(searchDirectories: []).load(file)
        #expect(profile.tcp.rstCloseRatio == 0.1, "default's rst_close_ratio")
        #expect(profile.tcp.newPerSecond == 0, "a measured zero rate stays zero")
    }

    @Test("lost events and short windows are said on stderr; the summary lists every number")
    func warningsAndSummary() throws {
        var learned = LearnMeasurementTests.knownMix(seconds: 30).learn(end: 30)
        learned.counters.overflows = 2
        let report = Self.report(learned)
        #expect(report.confidence == "lossy")
        #expect(report.warnings.contains { $0.hasPrefix("events were lost (2 socket overflows (ENOBUFS))") })
        #expect(report.warnings.contains { $0.contains("burst_factor") && $0.contains("--seconds 300") })
        #expect(report.warnings.contains { $0 == "stopped after 30 of 120 s" })
        let summary = report.text(profileFile: "web.yaml").split(separator: "\n")
        #expect(summary.count == 1 + learned.profileNumbers.count)
        #expect(summary[0].contains("events lossy") && summary[0].contains("web.yaml"))
        #expect(report.profileYAML().contains("# Events: lossy"))
    }

    @Test("the drops of our socket are read from its row of /proc/net/netlink")
    func socketDrops() {
        let table = """
            sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
            ffff8a0c41a4f000 0   1          00000550 0        0        0     2        0        12
            ffff8a0c4233c800 12  3391451233 0000000e 212992   0        0     2        417      301929
            ffff8a0c4233d000 12  77         00000000 0        0        0     2        9        301930
            """
        #expect(LoadLearning.socketDrops(portID: 3_391_451_233, table: table) == 417)
        #expect(LoadLearning.socketDrops(portID: 1, table: table) == 0, "port 1 is not a netfilter socket")
    }
}

@Suite("learn by flow class: synthetic event streams")
struct LearnByClassTests {
    static let classifier = FlowClassifier(localAddresses: [SyntheticLoad.local], ephemeralPorts: 32768...60999)

    /// Three services and noise: web (inbound tcp/80, 30 flows/s, 1 s held, FIN), a database's orphans
    /// (inbound tcp/5432, 1 flow/s, never closed), DNS (inbound udp/53, 50 flows/s), and one UDP flow
    /// a second to a different port each time.
    static func services(seconds: Double) -> SyntheticLoad {
        var load = SyntheticLoad()
        for index in 0..<Int(seconds * 30) { load.add(.fin, at: Double(index) / 30, port: 80) }
        for index in 0..<Int(seconds) { load.add(.orphan, at: Double(index) + 0.5, port: 5432) }
        for index in 0..<Int(seconds * 50) { load.add(.udp, at: Double(index) / 50 + 0.01, port: 53) }
        for index in 0..<Int(seconds) { load.add(.udp, at: Double(index) + 0.3, port: UInt16(2000 + index)) }
        return load
    }

    static func learn(_ load: SyntheticLoad, seconds: Double, top: Int, maximumClasses: Int = 10_000) -> LearnedLoad {
        load.learn(end: seconds) { learner in
            learner.classifier = top > 0 ? Self.classifier : nil
            learner.topClasses = top
            learner.maximumClasses = maximumClasses
        }
    }

    @Test("each class is measured like the whole; ranked by entry-seconds; classes and the rest add up to the whole")
    func perClass() throws {
        let learned = Self.learn(Self.services(seconds: 120), seconds: 120, top: 3)
        // Entry-seconds: DNS 50/s x (5 s udp + 3 s GC) = 400 entries all window; web 30/s x (1 + 5 + 3 s) = 270;
        // the database's orphans pile up to 120, 60 on average.
        #expect(learned.classes.map(\.flowClass.description) == ["inbound udp/53", "inbound tcp/80", "inbound tcp/5432"])
        let (dns, web, database) = (learned.classes[0].load, learned.classes[1].load, learned.classes[2].load)
        #expect(abs(try #require(web.tcpNewPerSecond.value) - 30) < 0.5)
        #expect(abs(try #require(web.establishedSeconds.value) - 1) < 0.01)
        #expect(try #require(web.rstCloseRatio.value) == 0)
        #expect(abs(try #require(dns.udpNewPerSecond.value) - 50) < 0.5)
        #expect(dns.tcpNewPerSecond.value == 0)
        #expect(abs(try #require(database.tcpNewPerSecond.value) - 1) < 0.05)
        #expect(try #require(database.orphanRatio.value) > 0.9, "every database flow is an orphan")
        // The rest is the noise: one UDP flow a second.
        let rest = try #require(learned.rest)
        #expect(abs(try #require(rest.udpNewPerSecond.value) - 1) < 0.05)
        #expect(rest.tcpNewPerSecond.value == 0)
        for (whole, parts) in [
            (learned.tcpNewPerSecond, learned.classes.map(\.load.tcpNewPerSecond) + [rest.tcpNewPerSecond]),
            (learned.udpNewPerSecond, learned.classes.map(\.load.udpNewPerSecond) + [rest.udpNewPerSecond]),
        ] {
            #expect(abs(try #require(whole.value) - parts.compactMap(\.value).reduce(0, +)) < 1e-9)
        }
        #expect(abs(learned.classes.map(\.share).reduce(0, +) - 1) > 0.001, "the noise holds a share too")
        #expect(learned.classes.map(\.share) == learned.classes.map(\.share).sorted(by: >))
    }

    @Test("--top 0 measures the traffic as one, exactly as without classes")
    func noClasses() {
        let load = Self.services(seconds: 60)
        let plain = load.learn(end: 60)
        let none = Self.learn(load, seconds: 60, top: 0)
        #expect(none == plain)
        #expect(none.classes.isEmpty && none.rest == nil)
    }

    @Test("past the class cap, new flows are counted in no class and the rest holds them")
    func classCap() throws {
        let learned = Self.learn(Self.services(seconds: 60), seconds: 60, top: 8, maximumClasses: 5)
        #expect(learned.counters.unclassified > 0)
        #expect(learned.classes.count <= 5)
        #expect(abs(try #require(learned.udpNewPerSecond.value) - 51) < 0.5, "the whole still counts every flow")
    }

    @Test("every kind of class a census can name is written as a match the profile reader takes back, disjoint from the others")
    func everyKindOfClassRoundTrips() throws {
        let kinds = [
            FlowClass(direction: .inbound, protocolNumber: 17, service: .port(53)),
            FlowClass(direction: .inbound, isIPv6: true, protocolNumber: 6, service: .port(443)),
            FlowClass(direction: .local, protocolNumber: 6, service: .ephemeral),
            FlowClass(direction: .inbound, protocolNumber: 1, service: .icmpType(8)),
            FlowClass(direction: .outbound, isIPv6: true, protocolNumber: 58, service: .icmpType(128)),
            FlowClass(direction: .forwarded, protocolNumber: 47, service: .any),
            FlowClass(direction: .outbound, protocolNumber: 132, service: .port(2905)),
        ]
        var load = LearnedLoad(windowSeconds: 60)
        load.rest = LearnedLoad(windowSeconds: 60)
        for (index, flowClass) in kinds.enumerated() {
            var measured = LearnedLoad(windowSeconds: 60)
            measured.tcpNewPerSecond = LearnedNumber(value: 3, sample: 180, basis: "180 new TCP flows in 60 s")
            measured.udpNewPerSecond = LearnedNumber(value: 4, sample: 240, basis: "240 new UDP flows in 60 s")
            measured.otherPerSecond = LearnedNumber(value: 5, sample: 300, basis: "300 new flows of other protocols in 60 s")
            measured.burstFactor = LearnedNumber(value: 250, sample: 300, basis: "busiest 12 s")  // clamped to the schema's 100
            load.classes.append(LearnedClass(flowClass: flowClass, entrySeconds: Double(100 - index), share: 0.1, load: measured))
        }
        let report = LearnReport(
            load: load, namespace: nil, eventsSetting: 2, timeouts: LearnTimeouts(), requestedSeconds: 60,
            startedAt: Date(timeIntervalSince1970: 0), ephemeralPorts: 30000...40000)
        let profile = try ProfileCatalog(
            searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["learned": report.profileYAML()]) { $1 }
        ).load("learned")
        #expect(profile.classes.map(\.name) == kinds.map(\.description))
        let ephemeral = FlowClassifier(localAddresses: [], ephemeralPorts: 30000...40000).ephemeralPorts
        for (declared, flowClass) in zip(profile.classes, kinds) {
            #expect(declared.match.matches(flowClass, ephemeralPorts: ephemeral), "\(declared.name): \(declared.match)")
            for other in kinds where other != flowClass {
                #expect(!declared.match.matches(other, ephemeralPorts: ephemeral), "\(declared.name) also matches \(other)")
            }
            #expect(declared.burstFactor == 100)
        }
        #expect(profile.classes[0].udp.newPerSecond == 4 && profile.classes[1].tcp.newPerSecond == 3)
        #expect(profile.classes[3].otherPerSecond == 5 && profile.classes[5].otherPerSecond == 5)
        #expect(profile.classes[2].match.ports == [30000...40000])
        #expect(profile.classes[4].match.icmpTypes == [128] && profile.classes[4].match.isIPv6 == true)
    }

    @Test("the learned profile's classes are read back by the profile reader and planned")
    func profileRoundTrip() throws {
        let learned = Self.learn(Self.services(seconds: 120), seconds: 120, top: 3)
        let report = LearnReport(
            load: learned, namespace: nil, eventsSetting: 2, timeouts: SyntheticLoad().timeouts, requestedSeconds: 120,
            startedAt: Date(timeIntervalSince1970: 0), ephemeralPorts: Self.classifier.ephemeralPorts)
        let yaml = report.profileYAML()
        let profile = try ProfileCatalog(searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["learned": yaml]) { $1 })
            .load("learned")
        #expect(profile.classes.map(\.name) == ["inbound udp/53", "inbound tcp/80", "inbound tcp/5432"])
        #expect(profile.classes[0].match == ClassMatch(direction: .inbound, isIPv6: false, protocolNumber: 17, ports: [53...53]))
        #expect(abs(profile.classes[0].udp.newPerSecond - 50) < 0.5)
        #expect(abs(profile.classes[1].tcp.establishedSeconds - 1) < 0.01)
        #expect(abs(profile.udp.newPerSecond - 1) < 0.05, "load: holds the rest")
        let plan = Planner.plan(for: FixtureFacts.host(memory: 8 << 30), profile: profile)
        #expect(plan.estimate.classes.map(\.name) == ["inbound udp/53", "inbound tcp/80", "inbound tcp/5432", "other"])
    }
}
