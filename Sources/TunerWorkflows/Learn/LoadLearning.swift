import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

extension KernelPaths {
    /// The calling thread's network namespace's netlink sockets (`Drops` per socket).
    public static let threadNetlinkSockets: FilePath = "/proc/thread-self/net/netlink"
    /// 0 off, 1 on, 2 on while a listener is subscribed (the default since v6.0).
    public static let conntrackEvents: FilePath = "/proc/sys/net/netfilter/nf_conntrack_events"
}

/// What `cttune learn` is asked to do.
public struct LearnRequest: Sendable {
    /// The window's length.
    public var seconds: Double
    /// The namespace to measure; `nil`: the caller's.
    public var namespace: NamespaceIdentifier?
    public var root: SystemRoot
    /// Seconds between dumps that follow entries without events; default a
    /// quarter of the window, between 1 and 30 s (a dump of 200k entries takes about 1 s).
    public var dumpIntervalSeconds: Double?
    /// The event socket's buffer: a burst larger than it is lost (ENOBUFS).
    public var receiveBufferBytes: Int32 = 32 << 20
    /// How many flow classes to measure one by one (`--top`); 0: none.
    public var topClasses = LearnRequest.defaultTopClasses
    public static let defaultTopClasses = 8

    public init(seconds: Double, namespace: NamespaceIdentifier? = nil, root: SystemRoot = .live) {
        self.seconds = seconds
        self.namespace = namespace
        self.root = root
    }
}

/// A finished measurement and where it was taken.
public struct LearnReport: Sendable {
    public var load: LearnedLoad
    /// The namespace as given, or `nil` for the caller's own.
    public var namespace: NamespaceIdentifier?
    /// The namespace's nf_conntrack_events at the start.
    public var eventsSetting: Int
    public var timeouts: LearnTimeouts
    /// Seconds the window was asked to last (shorter when interrupted).
    public var requestedSeconds: Double
    public var startedAt: Date
    /// The namespace's ephemeral ports, which an `ephemeral` class stands for; `nil` without classes.
    public var ephemeralPorts: ClosedRange<UInt16>? = nil
}

/// Runs a measurement window: an initial dump, then conntrack events with
/// periodic dumps, then a final dump.
///
/// Never asks for reliable delivery (NETLINK_BROADCAST_ERROR): with it the
/// kernel keeps each entry until its DESTROY event is delivered, growing the
/// very table being measured (net/netfilter/nf_conntrack_ecache.c,
/// `nf_ct_delete` → `nf_ct_ecache_dying` keeps undelivered entries).
/// Events lost to a full socket buffer are counted instead.
public enum LoadLearning {
    /// Measures for `request.seconds` (or until `shouldStop`).
    /// - Parameter progress: called about once a second with the seconds left and the flows followed.
    /// - Throws: `TunerError` (events off, conntrack absent, namespace unknown), `NetlinkError`.
    public static func learn(
        _ request: LearnRequest, progress: (@Sendable (Double, Int) -> Void)? = nil,
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) throws -> LearnReport {
        guard let namespace = request.namespace else {
            return try measure(request, label: "this network namespace", progress: progress, shouldStop: shouldStop)
        }
        let inode: UInt64
        switch NamespaceDirectory.check(namespace, under: request.root) {
        case .success(let found): inode = found
        case .failure(let failure): throw failure.tunerError
        }
        let entry = NamespaceDirectory.Entry(identifier: namespace, inode: inode)
        let results = NamespaceVisitor.visit([entry], under: request.root) { _ in
            Result { try measure(request, label: "namespace \(namespace)", progress: progress, shouldStop: shouldStop) }
        }
        switch results.first {
        case .success(let outcome)?:
            return try outcome.get()
        case .failure(let failure)?:
            throw TunerError.toolFailed(command: "learn in namespace \(namespace.shown)", reason: failure.reason)
        case nil:
            throw TunerError.toolFailed(command: "learn in namespace \(namespace.shown)", reason: "not visited")
        }
    }

    static func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    private static func measure(
        _ request: LearnRequest, label: String, progress: (@Sendable (Double, Int) -> Void)?,
        shouldStop: () -> Bool
    ) throws -> LearnReport {
        let root = request.root
        let eventsPath = try root.path(KernelPaths.conntrackEvents)
        guard let eventsSetting = try root.integer(at: KernelPaths.conntrackEvents, in: 0...2) else {
            throw TunerError.missingFact(
                fact: "nf_conntrack_events", path: eventsPath.string,
                fix: "nf_conntrack is not loaded in \(label): nothing is tracked there, so there is nothing to learn")
        }
        if eventsSetting == 0 { throw TunerError.conntrackEventsDisabled(path: eventsPath.string, namespace: label) }
        func timeout(_ setting: ConntrackSetting) -> Int {
            ((try? root.integer(at: KernelPaths.netfilterSysctls.appending(setting.shortName))) ?? nil)
                ?? setting.kernelDefaultSeconds ?? 0
        }
        let timeouts = LearnTimeouts(
            tcpEstablishedSeconds: timeout(.tcpTimeoutEstablished), synSentSeconds: timeout(.tcpTimeoutSynSent),
            udpSeconds: timeout(.udpTimeout))

        // Join the groups before the first dump: an entry created in between
        // is then in the dump and also sends its events.
        let listener = try ConntrackNetlink()
        try listener.subscribe(to: ConntrackNetlink.EventGroup.allCases, receiveBufferBytes: request.receiveBufferBytes)
        let dumper = try ConntrackNetlink()
        let startedAt = Date()
        let start = monotonicSeconds()
        let end = start + request.seconds
        var learner = LoadLearner(start: start, timeouts: timeouts)
        // The namespace's own addresses and ephemeral ports: read here, in it.
        if request.topClasses > 0 {
            learner.classifier = try EntryCensus.classifier(under: root)
            learner.topClasses = request.topClasses
        }

        func receive(timeoutMilliseconds: Int32) throws -> Int {
            let batch = try listener.receiveEvents(timeoutMilliseconds: timeoutMilliseconds) { learner.observe($0, at: monotonicSeconds()) }
            if batch.overflowed { learner.recordOverflow() }
            return batch.events + (batch.overflowed ? 1 : 0)
        }
        // Bounded: under a storm events can arrive as fast as they are read.
        func drain() throws {
            for _ in 0..<10_000 {
                if try receive(timeoutMilliseconds: 0) == 0 { break }
            }
        }
        func dump() throws {
            learner.beginDump(at: monotonicSeconds())
            let outcome = try dumper.dump {
                learner.observe($0, at: monotonicSeconds())
                return true
            }
            // Events queued during the dump first: a flow that died while the
            // dump ran is then not mistaken for a lost DESTROY.
            try drain()
            learner.endDump(complete: outcome == .complete)
        }

        try dump()
        let interval = request.dumpIntervalSeconds ?? min(30, max(1, request.seconds / 4))
        var nextDump = start + interval
        var nextProgress = start
        while true {
            let now = monotonicSeconds()
            if now >= end || shouldStop() { break }
            if let progress, now >= nextProgress {
                progress(end - now, learner.followedFlows)
                nextProgress = now + 1
            }
            let wait = min(end, nextDump, nextProgress) - now
            _ = try receive(timeoutMilliseconds: Int32(max(1, min(200, wait * 1000))))
            if monotonicSeconds() >= nextDump {
                try dump()
                nextDump = monotonicSeconds() + interval
            }
        }
        try drain()
        let finalDumpAt = monotonicSeconds()
        try dump()
        learner.recordSocketDrops(socketDrops(portID: listener.portIdentifier, under: root))
        return LearnReport(
            load: learner.measurements(at: finalDumpAt), namespace: request.namespace, eventsSetting: eventsSetting,
            timeouts: timeouts, requestedSeconds: request.seconds, startedAt: startedAt,
            ephemeralPorts: learner.classifier?.ephemeralPorts)
    }

    /// The `Drops` column of our socket's row in /proc/thread-self/net/netlink
    /// (net/netlink/af_netlink.c, `netlink_seq_show`): messages the kernel
    /// could not queue for it. 0 when the row or the file is missing.
    static func socketDrops(portID: UInt32, under root: SystemRoot) -> Int {
        guard let text = (try? root.contents(of: KernelPaths.threadNetlinkSockets)) ?? nil else { return 0 }
        return socketDrops(portID: portID, table: text)
    }

    /// Parses /proc/net/netlink: `sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode`; Eth 12 is NETLINK_NETFILTER.
    static func socketDrops(portID: UInt32, table: String) -> Int {
        let lines = table.split(separator: "\n")
        guard let header = lines.first?.split(separator: " "), let dropsColumn = header.firstIndex(of: "Drops"),
            let pidColumn = header.firstIndex(of: "Pid"), let ethColumn = header.firstIndex(of: "Eth")
        else { return 0 }
        for line in lines.dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > dropsColumn else { continue }
            if fields[ethColumn] == "12", fields[pidColumn] == "\(portID)" { return Int(fields[dropsColumn]) ?? 0 }
        }
        return 0
    }
}
