import TunerCore
import TunerModel
import TunerSystem

/// The timeouts of the measured namespace that decide when a flow's fate is
/// known (a SYN is "never answered" only once syn_sent has run out).
public struct LearnTimeouts: Sendable, Equatable {
    /// `nf_conntrack_tcp_timeout_established`: an idle ESTABLISHED entry's
    /// idle time is this minus the seconds it has left (CTA_TIMEOUT).
    public var tcpEstablishedSeconds: Int
    /// `nf_conntrack_tcp_timeout_syn_sent`.
    public var synSentSeconds: Int
    /// `nf_conntrack_udp_timeout`: an unanswered or one-shot UDP flow's life.
    public var udpSeconds: Int

    /// Defaults: the kernel's boot values (`ConntrackSetting.kernelDefaultSeconds`).
    public init(
        tcpEstablishedSeconds: Int = ConntrackSetting.tcpTimeoutEstablished.kernelDefaultSeconds!,
        synSentSeconds: Int = ConntrackSetting.tcpTimeoutSynSent.kernelDefaultSeconds!,
        udpSeconds: Int = ConntrackSetting.udpTimeout.kernelDefaultSeconds!
    ) {
        self.tcpEstablishedSeconds = tcpEstablishedSeconds
        self.synSentSeconds = synSentSeconds
        self.udpSeconds = udpSeconds
    }
}

/// Measures a load from conntrack events and dumps: a pure value fed with
/// `ConntrackEntry` messages and the time each arrived, so it runs in tests
/// without a kernel.
///
/// Per-flow state is kept only for flows alive in the window (and at most
/// `maximumTrackedFlows`); a destroyed flow is folded into counters of the
/// second it was created in, so memory is bounded by the window's length in
/// seconds, whatever the number of flows.
///
/// Ratios are taken over a *cohort*: the flows created early enough in the
/// window that their fate is known by its end (an unanswered SYN after
/// syn_sent, a UDP stream after 2 s plus the UDP timeout, an orphan after
/// the idle threshold). Rates count every NEW event.
public struct LoadLearner: Sendable {
    /// Flows beyond this many alive at once are counted but not followed.
    public var maximumTrackedFlows = 2_000_000
    /// An ESTABLISHED entry idle this many times the mean ESTABLISHED time of
    /// the closed flows (and at least `orphanIdleFloorSeconds`) counts as an orphan.
    public var orphanIdleMultiple = 5.0
    public var orphanIdleFloorSeconds = 10.0

    /// Sorts each flow into its class (`nil`: no classes, as `learn --top 0`).
    public var classifier: FlowClassifier?
    /// Classes followed beyond this many are counted in none (`LearnCounters.unclassified`).
    public var maximumClasses = 10_000
    /// How many classes `measurements` lists, those holding the most entry-seconds (`learn --top`).
    public var topClasses = 0

    public let start: Double
    public let timeouts: LearnTimeouts
    private var flows: [UInt32: Flow] = [:]
    private var bins: [CreationBin] = []
    /// New flows (every protocol) per whole second since `start`.
    private var newPerSecond: [Int] = []
    /// The same two, and the seconds its entries spent in the table, per class.
    private var classes: [FlowClass: ClassTally] = [:]
    private var dumpGeneration: UInt32 = 0
    private var dumpStartedAt = 0.0
    private var initialDumpDone = false
    private var counters = LearnCounters()

    public init(start: Double, timeouts: LearnTimeouts) {
        self.start = start
        self.timeouts = timeouts
    }

    // MARK: - Feeding

    /// Takes one event or dumped entry that arrived at `time` (seconds, the same clock as `start`).
    public mutating func observe(_ entry: ConntrackEntry, at time: Double) {
        guard let id = entry.id else {
            counters.withoutID += 1
            return
        }
        switch entry.event {
        case .created:
            counters.events += 1
            let flowClass = classify(entry)
            countNew(at: time, flowClass: flowClass)
            if flows.count >= maximumTrackedFlows, flows[id] == nil {
                counters.untracked += 1
                return
            }
            var flow = Flow(createdAt: time, protocolNumber: entry.protocolNumber)
            flow.flowClass = flowClass
            flow.update(with: entry, at: time, establishedTimeout: timeouts.tcpEstablishedSeconds)
            if let earlier = flows[id] {
                // Created between joining the groups and the initial dump: its NEW came after the dump listed it.
                if earlier.origin == .preexisting { counters.preexisting -= 1 }
                flow.generation = earlier.generation
            }
            flows[id] = flow
        case .updated:
            counters.events += 1
            flows[id]?.update(with: entry, at: time, establishedTimeout: timeouts.tcpEstablishedSeconds)
        case .destroyed:
            counters.events += 1
            guard var flow = flows.removeValue(forKey: id) else { return }
            flow.update(with: entry, at: time, establishedTimeout: timeouts.tcpEstablishedSeconds)
            flow.destroyed = true
            retire(flow, at: time)
        case .dumped:
            if var flow = flows[id] {
                flow.update(with: entry, at: time, establishedTimeout: timeouts.tcpEstablishedSeconds)
                flow.generation = dumpGeneration
                flows[id] = flow
            } else if flows.count < maximumTrackedFlows {
                // Alive before the listener joined (initial dump), or its NEW
                // event was lost or is still queued: followed by dumps only,
                // never part of a cohort.
                var flow = Flow(createdAt: time, protocolNumber: entry.protocolNumber)
                flow.flowClass = classify(entry)
                flow.origin = initialDumpDone ? .missedStart : .preexisting
                flow.update(with: entry, at: time, establishedTimeout: timeouts.tcpEstablishedSeconds)
                flow.generation = dumpGeneration
                flows[id] = flow
                if flow.origin == .preexisting { counters.preexisting += 1 }
            }
        }
    }

    /// A dump of the table starts at `time`.
    public mutating func beginDump(at time: Double) {
        dumpGeneration &+= 1
        dumpStartedAt = time
    }

    /// The dump that began last ended. A complete dump proves that a followed
    /// flow it did not list is gone (its DESTROY event was lost, or it was
    /// alive before the listener joined and emits no events).
    public mutating func endDump(complete: Bool) {
        defer { initialDumpDone = true }
        guard complete else {
            counters.interruptedDumps += 1
            return
        }
        let gone = flows.filter { $0.value.generation != dumpGeneration && $0.value.lastTouched < dumpStartedAt }
        for (id, var flow) in gone {
            flows[id] = nil
            flow.destroyed = true
            if flow.origin == .observed { counters.missedDestroy += 1 }
            retire(flow, at: dumpStartedAt)
        }
    }

    /// The kernel dropped events: the socket buffer overflowed (ENOBUFS).
    public mutating func recordOverflow() { counters.overflows += 1 }

    /// The socket's drop counter (the `Drops` column of /proc/net/netlink), read at the end.
    public mutating func recordSocketDrops(_ drops: Int) { counters.socketDrops = drops }

    // MARK: - Folding

    /// The entry's class, or `nil` without a classifier, without a tuple, or
    /// past `maximumClasses` distinct classes.
    private mutating func classify(_ entry: ConntrackEntry) -> FlowClass? {
        guard let classifier, let tuple = entry.tuple else { return nil }
        let flowClass = classifier.classify(tuple)
        guard classes[flowClass] != nil || classes.count < maximumClasses else {
            counters.unclassified += 1
            return nil
        }
        return flowClass
    }

    private mutating func countNew(at time: Double, flowClass: FlowClass?) {
        let second = max(0, Int(time - start))
        Self.count(second, in: &newPerSecond)
        if let flowClass { classes[flowClass, default: ClassTally()].newPerSecond[second, default: 0] += 1 }
    }

    private static func count(_ second: Int, in series: inout [Int]) {
        if second >= series.count { series += Array(repeating: 0, count: second - series.count + 1) }
        series[second] += 1
    }

    private mutating func retire(_ flow: Flow, at time: Double) {
        if let flowClass = flow.flowClass {
            classes[flowClass, default: ClassTally()].entrySeconds += flow.secondsInWindow(until: time, start: start)
        }
        switch flow.origin {
        case .preexisting: counters.preexistingClosed += 1
        case .missedStart: counters.missedStart += 1
        case .observed:
            fold(flow, at: time, into: &bins, orphanIdleSeconds: nil)
            if let flowClass = flow.flowClass {
                fold(flow, at: time, into: &classes[flowClass, default: ClassTally()].bins, orphanIdleSeconds: nil)
            }
        }
    }

    /// Adds a flow's outcome to the counters of the second it was created in.
    /// `orphanIdleSeconds` is given only for flows still alive at the end.
    private func fold(_ flow: Flow, at time: Double, into bins: inout [CreationBin], orphanIdleSeconds: Double?) {
        let second = max(0, Int(flow.createdAt - start))
        if second >= bins.count { bins += Array(repeating: CreationBin(), count: second - bins.count + 1) }
        fold(flow, at: time, into: &bins[second], orphanIdleSeconds: orphanIdleSeconds)
    }

    /// The same into a class's sparse bins: a class seen in a few seconds
    /// of a long window holds a few bins, not one per second.
    private func fold(_ flow: Flow, at time: Double, into bins: inout [Int: CreationBin], orphanIdleSeconds: Double?) {
        fold(flow, at: time, into: &bins[max(0, Int(flow.createdAt - start)), default: CreationBin()], orphanIdleSeconds: orphanIdleSeconds)
    }

    /// Adds a flow's outcome to the bin of the second it was created in.
    private func fold(_ flow: Flow, at time: Double, into bin: inout CreationBin, orphanIdleSeconds: Double?) {
        switch flow.protocolNumber {
        case 6:
            bin.tcp += 1
            if let kind = flow.closeKind {
                if kind == .rst { bin.rstCloses += 1 } else { bin.finCloses += 1 }
                if let established = flow.establishedAt, let closed = flow.closedAt {
                    bin.establishedCount += 1
                    bin.establishedSecondsSum += closed - established
                }
            } else if !flow.replied {
                if flow.destroyed || time - flow.createdAt >= Double(timeouts.synSentSeconds) { bin.halfOpen += 1 }
            } else if flow.state == .established {
                if flow.destroyed {
                    bin.orphans += 1  // expired ESTABLISHED: never seen closing
                } else if let limit = orphanIdleSeconds, let idle = flow.idleSeconds, idle >= limit {
                    bin.orphans += 1
                } else {
                    bin.stillOpen += 1
                    bin.stillOpenSecondsSum += flow.establishedAt.map { max(0, time - $0) } ?? 0
                }
            }
        case 17, 136:  // UDP-Lite: the kernel gives it UDP's timeouts and stream rule
            bin.udp += 1
            if flow.assured { bin.udpStreams += 1 }
        default:
            bin.other += 1
        }
    }

    // MARK: - Results

    /// The measurements over the window from `start` to `end`. Flows still
    /// alive are judged as they stand (the last dump's idle times), without
    /// changing the learner.
    /// - Parameter end: the end of the window; a final complete dump just
    ///   before it makes the orphan estimate and the lost-DESTROY check exact.
    public func measurements(at end: Double) -> LearnedLoad {
        let window = max(end - start, 1e-3)
        // The orphan threshold needs the mean ESTABLISHED time first: fold
        // without orphans, then again with the threshold.
        var probe = bins
        for flow in flows.values where flow.origin == .observed { fold(flow, at: end, into: &probe, orphanIdleSeconds: nil) }
        let allClosed = probe.reduce(into: CreationBin()) { $0.add($1) }
        let meanEstablished = allClosed.establishedCount > 0 ? allClosed.establishedSecondsSum / Double(allClosed.establishedCount) : 0
        let orphanIdle = max(orphanIdleFloorSeconds, orphanIdleMultiple * meanEstablished)
        var final = bins
        var finalByClass = classes.mapValues(\.bins)  // sparse
        for flow in flows.values where flow.origin == .observed {
            fold(flow, at: end, into: &final, orphanIdleSeconds: orphanIdle)
            if let flowClass = flow.flowClass {
                fold(flow, at: end, into: &finalByClass[flowClass, default: [:]], orphanIdleSeconds: orphanIdle)
            }
        }
        var load = numbers(final, newPerSecond: newPerSecond, window: window, orphanIdle: orphanIdle, meanEstablished: meanEstablished)
        let total = final.reduce(into: CreationBin()) { $0.add($1) }
        func rate(_ count: Int) -> Double { Double(count) / window }
        load.orphanIdleSeconds = orphanIdle
        load.standingOrphans = standingOrphans(idleAtLeast: orphanIdle, tcpPerSecond: rate(total.tcp))
        // The table's older orphans count when they say more: a window sees
        // only the orphans that form in it, and not past its cohort.
        if let standing = load.standingOrphans.ratio, standing > (load.orphanRatio.value ?? 0) {
            load.orphanRatio.value = standing
            load.orphanRatio.sample = load.standingOrphans.entries
            load.orphanRatio.basis =
                "\(load.standingOrphans.entries) entries older than the window idle in ESTABLISHED "
                + "\(Int(orphanIdle.rounded()))-\(Int(load.standingOrphans.oldestIdleSeconds)) s, against \(total.tcp) new TCP flows"
        }
        var counts = counters
        counts.followed = flows.count
        counts.missedStart += flows.values.filter { $0.origin == .missedStart }.count
        counts.stillOpen = total.stillOpen
        load.counters = counts
        if topClasses > 0 {
            addClasses(to: &load, end: end, window: window, bins: (final, finalByClass), orphan: (orphanIdle, meanEstablished))
        }
        return load
    }

    /// The classes holding the most entry-seconds, each measured like the
    /// whole, and the rest: what no listed class holds.
    private func addClasses(
        to load: inout LearnedLoad, end: Double, window: Double, bins: (all: [CreationBin], byClass: [FlowClass: [Int: CreationBin]]),
        orphan: (idleSeconds: Double, meanEstablished: Double)
    ) {
        var entrySeconds = classes.mapValues(\.entrySeconds)
        for flow in flows.values {
            if let flowClass = flow.flowClass { entrySeconds[flowClass, default: 0] += flow.secondsInWindow(until: end, start: start) }
        }
        let total = entrySeconds.values.reduce(0, +)
        let ranked = entrySeconds.sorted { ($0.value, $1.key.description) > ($1.value, $0.key.description) }.prefix(topClasses)
        var restBins = bins.all, restNew = newPerSecond
        for (flowClass, seconds) in ranked {
            let classBins = ClassTally.dense(bins.byClass[flowClass] ?? [:], empty: CreationBin())
            let classNew = ClassTally.dense(classes[flowClass]?.newPerSecond ?? [:], empty: 0)
            for (index, bin) in classBins.enumerated() { restBins[index].subtract(bin) }
            for (index, count) in classNew.enumerated() { restNew[index] -= count }
            var measured = numbers(
                classBins, newPerSecond: classNew, window: window, orphanIdle: orphan.idleSeconds, meanEstablished: orphan.meanEstablished)
            measured.orphanIdleSeconds = orphan.idleSeconds
            load.classes.append(
                LearnedClass(flowClass: flowClass, entrySeconds: seconds, share: total > 0 ? seconds / total : 0, load: measured))
        }
        var rest = numbers(
            restBins, newPerSecond: restNew, window: window, orphanIdle: orphan.idleSeconds, meanEstablished: orphan.meanEstablished)
        rest.orphanIdleSeconds = orphan.idleSeconds
        load.rest = rest
    }

    /// Every number of a measurement from one set of creation bins and its
    /// new flows per second: the whole, a class, or the rest. The orphan
    /// threshold is the whole's (one idle limit for the window).
    private func numbers(
        _ final: [CreationBin], newPerSecond: [Int], window: Double, orphanIdle: Double, meanEstablished: Double
    ) -> LearnedLoad {
        let total = final.reduce(into: CreationBin()) { $0.add($1) }

        func cohort(lagSeconds: Double) -> (bin: CreationBin, spanSeconds: Double) {
            let span = window - lagSeconds
            guard span > 0 else { return (CreationBin(), 0) }
            let last = Int(span.rounded(.down))
            return (final.prefix(last).reduce(into: CreationBin()) { $0.add($1) }, Double(last))
        }
        // A number is an estimate when its cohort spans less than its own lag.
        func number(
            _ value: Double?, sample: Int, minimumWindow: Double, isRate: Bool = false, basis: String,
            alwaysEstimate: Bool = false
        ) -> LearnedNumber {
            LearnedNumber(
                value: sample > 0 || isRate ? value : nil, sample: sample, minimumWindowSeconds: minimumWindow.rounded(.up),
                isEstimate: alwaysEstimate || window < minimumWindow, basis: basis)
        }
        func ratio(_ part: Int, _ whole: Int) -> Double? { whole > 0 ? Double(part) / Double(whole) : nil }
        func rate(_ count: Int) -> Double { Double(count) / window }
        let whole = String(cFormat: "%.0f", window)

        let closeLag = orphanIdle + 2 * meanEstablished
        let closing = cohort(lagSeconds: closeLag)
        let halfOpenLag = Double(timeouts.synSentSeconds)
        let halfOpen = cohort(lagSeconds: halfOpenLag)
        let streamLag = Double(timeouts.udpSeconds) + Self.udpStreamDelaySeconds
        let streams = cohort(lagSeconds: streamLag)
        let closedCount = closing.bin.finCloses + closing.bin.rstCloses
        let flowCount = closing.bin.tcp

        let interval = window >= Self.burstMinimumWindowSeconds ? 60 : max(1, Int(window / 5))
        let busiest = Self.busiestNewFlows(in: newPerSecond, overSeconds: interval)
        let allNew = newPerSecond.reduce(0, +)
        let burst = allNew > 0 ? max(1, (Double(busiest) / Double(interval)) / rate(allNew)) : nil

        var load = LearnedLoad(windowSeconds: window)
        load.tcpNewPerSecond = number(
            rate(total.tcp), sample: total.tcp, minimumWindow: 60, isRate: true, basis: "\(total.tcp) new TCP flows in \(whole) s")
        load.udpNewPerSecond = number(
            rate(total.udp), sample: total.udp, minimumWindow: 60, isRate: true, basis: "\(total.udp) new UDP flows in \(whole) s")
        load.otherPerSecond = number(
            rate(total.other), sample: total.other, minimumWindow: 60, isRate: true,
            basis: "\(total.other) new flows of other protocols in \(whole) s")
        if closing.bin.establishedCount == 0 && total.stillOpen > 0 {
            // Long-lived flows, none closed yet: they stay at least as long as they have so far.
            load.establishedSeconds = number(
                total.stillOpenSecondsSum / Double(total.stillOpen), sample: total.stillOpen, minimumWindow: 2 * closeLag,
                basis: "at least: \(total.stillOpen) flows still ESTABLISHED at the end, none seen closing, mean time so far",
                alwaysEstimate: true)
        } else {
            load.establishedSeconds = number(
                closing.bin.establishedCount > 0 ? closing.bin.establishedSecondsSum / Double(closing.bin.establishedCount) : nil,
                sample: closing.bin.establishedCount, minimumWindow: 2 * closeLag,
                basis: "mean ESTABLISHED time of \(closing.bin.establishedCount) flows seen closing",
                alwaysEstimate: closing.bin.stillOpen * 20 > max(flowCount, 1))
        }
        load.rstCloseRatio = number(
            ratio(closing.bin.rstCloses, closedCount), sample: closedCount, minimumWindow: 2 * closeLag,
            basis: "\(closing.bin.rstCloses) of \(closedCount) closing flows ended by RST")
        load.orphanRatio = number(
            ratio(closing.bin.orphans, flowCount), sample: flowCount, minimumWindow: 2 * closeLag,
            basis:
                "\(closing.bin.orphans) of \(flowCount) TCP flows idle in ESTABLISHED over \(Int(orphanIdle.rounded())) s or expired there",
            alwaysEstimate: true)
        load.halfOpenRatio = number(
            ratio(halfOpen.bin.halfOpen, halfOpen.bin.tcp), sample: halfOpen.bin.tcp,
            minimumWindow: 2 * halfOpenLag, basis: "\(halfOpen.bin.halfOpen) of \(halfOpen.bin.tcp) SYNs unanswered after syn_sent")
        load.udpStreamRatio = number(
            ratio(streams.bin.udpStreams, streams.bin.udp), sample: streams.bin.udp, minimumWindow: 2 * streamLag,
            basis: "\(streams.bin.udpStreams) of \(streams.bin.udp) UDP flows became streams (ASSURED)")
        load.burstFactor = number(
            burst, sample: allNew, minimumWindow: Self.burstMinimumWindowSeconds,
            basis: "busiest \(interval) s: \(busiest) new flows, \(allNew) in \(whole) s")
        load.busiestIntervalSeconds = interval
        return load
    }

    /// A UDP flow becomes a stream (ASSURED, udp_timeout_stream) on a packet
    /// more than 2 s after it started with a reply seen
    /// (net/netfilter/nf_conntrack_proto_udp.c, `stream_ts = jiffies + 2 * HZ`, since v5.17).
    public static let udpStreamDelaySeconds = 2.0
    /// The busiest minute is only meaningful among several minutes.
    public static let burstMinimumWindowSeconds = 300.0

    /// Orphans left by the time before the window: entries older than it,
    /// still ESTABLISHED and idle at least `idleAtLeast` at the last dump.
    /// Flows orphaned at a steady rate r stay the established timeout, so
    /// their idle times spread evenly from 0 to it: r = their count ÷ the
    /// span of idle times seen (from the threshold to the oldest), and the
    /// ratio is r ÷ the window's TCP rate.
    private func standingOrphans(idleAtLeast threshold: Double, tcpPerSecond: Double) -> StandingOrphans {
        var found = StandingOrphans()
        for flow in flows.values where flow.origin == .preexisting && flow.state == .established {
            guard let idle = flow.idleSeconds, idle >= threshold else { continue }
            found.entries += 1
            found.oldestIdleSeconds = max(found.oldestIdleSeconds, idle)
        }
        let span = found.oldestIdleSeconds - threshold
        if found.entries >= StandingOrphans.minimumEntries, span > 0, tcpPerSecond > 0 {
            found.ratio = min(1, Double(found.entries) / span / tcpPerSecond)
        }
        return found
    }

    /// The most new flows in any run of `seconds` consecutive whole seconds.
    private static func busiestNewFlows(in newPerSecond: [Int], overSeconds seconds: Int) -> Int {
        guard !newPerSecond.isEmpty else { return 0 }
        var sum = newPerSecond.prefix(seconds).reduce(0, +)
        var best = sum
        if newPerSecond.count > seconds {
            for index in seconds..<newPerSecond.count {
                sum += newPerSecond[index] - newPerSecond[index - seconds]
                best = max(best, sum)
            }
        }
        return best
    }

    /// Flows followed now (bounded by `maximumTrackedFlows`).
    public var followedFlows: Int { flows.count }
}

/// One class's creation bins, new flows per second, and the seconds its
/// retired entries spent in the table inside the window.
private struct ClassTally: Sendable {
    /// By creation second, sparse: thousands of classes of one flow each stay small.
    var bins: [Int: CreationBin] = [:]
    var newPerSecond: [Int: Int] = [:]
    var entrySeconds = 0.0

    /// Sparse seconds as the dense series the measurement reads.
    static func dense<Value>(_ sparse: [Int: Value], empty: Value) -> [Value] {
        guard let last = sparse.keys.max() else { return [] }
        var series = Array(repeating: empty, count: last + 1)
        for (second, value) in sparse { series[second] = value }
        return series
    }
}

/// What is known about one flow while it lives.
private struct Flow: Sendable {
    enum Origin: Sendable { case observed, preexisting, missedStart }
    enum CloseKind: Sendable { case fin, rst }

    var createdAt: Double
    var protocolNumber: UInt8
    var flowClass: FlowClass?
    var origin = Origin.observed
    var replied = false
    var assured = false
    var destroyed = false
    var state: TCPConntrackState?
    var establishedAt: Double?
    var closeKind: CloseKind?
    var closedAt: Double?
    /// Seconds since the last packet, from the last dump (ESTABLISHED only).
    var idleSeconds: Double?
    var lastTouched: Double
    var generation: UInt32 = 0

    init(createdAt: Double, protocolNumber: UInt8) {
        self.createdAt = createdAt
        self.protocolNumber = protocolNumber
        lastTouched = createdAt
    }

    /// Seconds its entry spent in the table between `start` and `time`
    /// (Little's law: a class's entries are the sum of these over the window).
    func secondsInWindow(until time: Double, start: Double) -> Double { max(0, time - max(createdAt, start)) }

    mutating func update(with entry: ConntrackEntry, at time: Double, establishedTimeout: Int) {
        lastTouched = time
        if entry.isAssured { assured = true }
        // A message without CTA_STATUS says nothing about replies.
        if entry.status != 0 && !entry.isUnreplied { replied = true }
        guard let new = entry.tcpState else { return }
        state = new
        switch new {
        case .synReceived: replied = true
        case .established:
            replied = true
            if establishedAt == nil { establishedAt = time }
            if entry.event == .dumped, let left = entry.timeoutSeconds {
                idleSeconds = Double(max(0, establishedTimeout - left))
            }
        case .finWait, .closeWait, .lastAck, .timeWait:
            if closeKind == nil {
                closeKind = .fin
                closedAt = time
            }
        case .close:
            if closeKind == nil {
                closeKind = .rst
                closedAt = time
            }
        case .none, .synSent, .synSent2:
            break
        }
        if new != .established { idleSeconds = nil }
    }
}

/// Outcomes of the flows created in one second of the window.
private struct CreationBin: Sendable {
    var tcp = 0, udp = 0, other = 0
    var halfOpen = 0, orphans = 0, finCloses = 0, rstCloses = 0, stillOpen = 0
    var establishedCount = 0
    var establishedSecondsSum = 0.0
    /// ESTABLISHED time so far of the flows still open at the end.
    var stillOpenSecondsSum = 0.0
    var udpStreams = 0

    /// Takes away a part that `add` put in.
    mutating func subtract(_ other: CreationBin) {
        tcp -= other.tcp
        udp -= other.udp
        self.other -= other.other
        halfOpen -= other.halfOpen
        orphans -= other.orphans
        finCloses -= other.finCloses
        rstCloses -= other.rstCloses
        stillOpen -= other.stillOpen
        establishedCount -= other.establishedCount
        establishedSecondsSum -= other.establishedSecondsSum
        stillOpenSecondsSum -= other.stillOpenSecondsSum
        udpStreams -= other.udpStreams
    }

    mutating func add(_ other: CreationBin) {
        tcp += other.tcp
        udp += other.udp
        self.other += other.other
        halfOpen += other.halfOpen
        orphans += other.orphans
        finCloses += other.finCloses
        rstCloses += other.rstCloses
        stillOpen += other.stillOpen
        establishedCount += other.establishedCount
        establishedSecondsSum += other.establishedSecondsSum
        stillOpenSecondsSum += other.stillOpenSecondsSum
        udpStreams += other.udpStreams
    }
}

/// Idle ESTABLISHED entries already in the table when the window began:
/// the orphans of the days before, which a short window cannot see form.
public struct StandingOrphans: Sendable, Equatable {
    /// Fewer entries than this give no ratio: too few to spread over the idle span.
    public static let minimumEntries = 10
    public var entries = 0
    public var oldestIdleSeconds = 0.0
    /// Orphaned flows per second ÷ new TCP flows per second; `nil` with too few entries.
    public var ratio: Double?

    public init() {}
}

/// Counts that say how complete a measurement is.
public struct LearnCounters: Sendable, Equatable {
    /// Events taken (NEW, UPDATE, DESTROY).
    public var events = 0
    /// Times the socket buffer overflowed (ENOBUFS): events were lost, how many is unknown.
    public var overflows = 0
    /// Messages the kernel dropped for the socket (/proc/net/netlink `Drops`).
    public var socketDrops = 0
    /// Entries alive before the listener joined (initial dump): followed by dumps only.
    public var preexisting = 0
    /// Of those, gone by the end.
    public var preexistingClosed = 0
    /// Flows whose NEW event never came (found by a later dump).
    public var missedStart = 0
    /// Flows whose DESTROY event never came (a complete dump no longer listed them).
    public var missedDestroy = 0
    /// New flows not followed because `maximumTrackedFlows` were alive.
    public var untracked = 0
    /// Messages without CTA_ID (ignored).
    public var withoutID = 0
    /// Dumps the kernel flagged interrupted.
    public var interruptedDumps = 0
    /// Flows followed at the end.
    public var followed = 0
    /// TCP flows still ESTABLISHED and active at the end (their time there is not counted).
    public var stillOpen = 0
    /// New flows in no class: `maximumClasses` distinct classes were followed already.
    public var unclassified = 0

    /// No event is known to be lost.
    public var isComplete: Bool { overflows == 0 && socketDrops == 0 && missedStart == 0 && missedDestroy == 0 && untracked == 0 }
}

/// One learned number: its value, how many flows it rests on, and the window it needs.
public struct LearnedNumber: Sendable, Equatable {
    /// `nil` when nothing was observed to measure it (the profile keeps its parent's value).
    public var value: Double?
    /// Flows behind the value.
    public var sample: Int
    /// The shortest window that measures it rather than estimates it.
    public var minimumWindowSeconds: Double
    /// Measured in a shorter window than that, or inferred (orphans): not a measurement.
    public var isEstimate: Bool
    /// What was counted, for the profile's comment.
    public var basis: String

    public init(value: Double? = nil, sample: Int = 0, minimumWindowSeconds: Double = 0, isEstimate: Bool = true, basis: String = "") {
        self.value = value
        self.sample = sample
        self.minimumWindowSeconds = minimumWindowSeconds
        self.isEstimate = isEstimate
        self.basis = basis
    }
}

/// Everything `cttune learn` measured in one window.
public struct LearnedLoad: Sendable, Equatable {
    public var windowSeconds: Double
    public var tcpNewPerSecond = LearnedNumber()
    public var establishedSeconds = LearnedNumber()
    public var rstCloseRatio = LearnedNumber()
    public var orphanRatio = LearnedNumber()
    public var halfOpenRatio = LearnedNumber()
    public var udpNewPerSecond = LearnedNumber()
    public var udpStreamRatio = LearnedNumber()
    public var otherPerSecond = LearnedNumber()
    public var burstFactor = LearnedNumber()
    /// The length of the busiest interval behind `burstFactor` (60 s in a window of 5 minutes or more).
    public var busiestIntervalSeconds = 60
    /// ESTABLISHED entries idle this long counted as orphans.
    public var orphanIdleSeconds = 0.0
    /// Orphans older than the window, from the table's idle ESTABLISHED entries.
    public var standingOrphans = StandingOrphans()
    public var counters = LearnCounters()
    /// The classes holding the most entry-seconds (`learn --top`), each measured like the whole.
    public var classes: [LearnedClass] = []
    /// What no listed class holds, measured like the whole; `nil` without classes.
    public var rest: LearnedLoad? {
        get { restStorage.first }
        set { restStorage = newValue.map { [$0] } ?? [] }
    }
    /// An array, because a value cannot hold its own type directly.
    private var restStorage: [LearnedLoad] = []

    public init(windowSeconds: Double) {
        self.windowSeconds = windowSeconds
    }
}

/// One class of `learn --top`: its share of the table's entry-seconds and its own numbers.
public struct LearnedClass: Sendable, Equatable {
    public var flowClass: FlowClass
    /// Seconds its entries spent in the table during the window (entries × time, Little's law).
    public var entrySeconds: Double
    /// Of every classified entry-second.
    public var share: Double
    public var load: LearnedLoad
}
