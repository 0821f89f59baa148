import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// The live entries of one network namespace, counted by protocol, TCP state
/// and status bits, with the ESTABLISHED entries that have been idle for hours
/// (orphans: flows whose close was never seen, kept for the whole established timeout).
public struct EntryCensus: Sendable, Equatable {
    /// Where the entries were read: `ctnetlink` (the kernel's netlink dump)
    /// or /proc/net/nf_conntrack (a `--root` tree).
    public var source: String
    public var total = 0
    /// Layer-4 protocol name (`tcp`, `udp`, `icmp`, …) → entries.
    public var byProtocol: [String: Int] = [:]
    /// TCP state as the kernel names it (`ESTABLISHED`, `TIME_WAIT`, …) → entries.
    public var tcpStates: [String: Int] = [:]
    /// Entries with IPS_ASSURED: early drop never evicts them.
    public var assured = 0
    /// Entries that saw no reply yet (IPS_SEEN_REPLY unset).
    public var unreplied = 0
    /// ESTABLISHED entries idle at least `EntryCensus.orphanIdleSeconds`.
    public var orphans = 0
    /// The longest idle time among ESTABLISHED entries, seconds.
    public var oldestIdleSeconds: Int?
    /// Set when only the first entries of the dump were read and the counts
    /// scaled up to the table's size (`--census-sample N`).
    public var sample: Sample?
    /// The kernel flagged the dump interrupted (NLM_F_DUMP_INTR) twice in a
    /// row: entries may be missing or counted twice.
    public var inconsistent = false
    /// Entries per flow class (direction, family, protocol, service), with
    /// each class's state mix; empty where the dump carried no tuples (a
    /// `--root` tree's /proc table is not classified).
    public var byClass: [FlowClass: ClassCount] = [:]
    /// How many classes a report lists before the `other` row (`--top`).
    public var topShown = EntryCensus.defaultTopClasses

    /// One class's entries and how they split by state: TCP states by name,
    /// other protocols `unreplied` and `replied`.
    public struct ClassCount: Sendable, Equatable {
        public var entries = 0
        public var states: [String: Int] = [:]

        public init(entries: Int = 0, states: [String: Int] = [:]) {
            self.entries = entries
            self.states = states
        }
    }

    /// One row of a top-N list: a class, or `nil` for the `other` row.
    public struct ClassRow: Sendable, Equatable {
        public var flowClass: FlowClass?
        public var count: ClassCount
        /// The row's entries over the census total.
        public var share: Double
        public var label: String { flowClass?.description ?? "other" }
    }

    /// The default length of a classes list (`--top`).
    public static let defaultTopClasses = 10

    /// The `top` classes holding the most entries (ties by name), then one
    /// `other` row with the rest: the rows always add up to the classified total.
    public func topClasses(_ top: Int) -> [ClassRow] {
        let ordered = byClass.sorted { ($0.value.entries, $1.key.description) > ($1.value.entries, $0.key.description) }
        let classified = byClass.values.reduce(0) { $0 + $1.entries }
        func share(_ entries: Int) -> Double { total > 0 ? Double(entries) / Double(total) : 0 }
        var rows = ordered.prefix(Swift.max(0, top)).map { ClassRow(flowClass: $0.key, count: $0.value, share: share($0.value.entries)) }
        let rest = ordered.dropFirst(Swift.max(0, top))
        if !rest.isEmpty {
            var other = ClassCount()
            for (_, count) in rest {
                other.entries += count.entries
                other.states.merge(count.states, uniquingKeysWith: +)
            }
            rows.append(ClassRow(flowClass: nil, count: other, share: share(other.entries)))
        }
        assert(rows.reduce(0) { $0 + $1.count.entries } == classified)
        return rows
    }

    /// A census that read `entriesRead` of the `tableEntries` live entries.
    public struct Sample: Sendable, Equatable {
        public var entriesRead: Int
        public var tableEntries: Int
        public var scale: Double { entriesRead > 0 ? Double(tableEntries) / Double(entriesRead) : 0 }
    }

    public init(source: String) {
        self.source = source
    }

    /// An ESTABLISHED entry idle this long is counted as an orphan. Every
    /// packet re-arms the established timeout, so idle = timeout − remaining;
    /// an hour without a packet is far past any keep-alive that would keep a
    /// live session (Linux tcp_keepalive_time is 7200 s, but applications that
    /// care send keep-alives in minutes).
    public static let orphanIdleSeconds = 3600

    /// Counts one entry.
    /// - Parameters:
    ///   - remainingSeconds: the entry's remaining timeout.
    ///   - establishedTimeout: nf_conntrack_tcp_timeout_established in force.
    mutating func add(protocolName: String, tcpState: String?, remainingSeconds: Int?, establishedTimeout: Int?) {
        total += 1
        byProtocol[protocolName, default: 0] += 1
        guard protocolName == "tcp", let tcpState else { return }
        tcpStates[tcpState, default: 0] += 1
        if tcpState == "ESTABLISHED", let remainingSeconds, let establishedTimeout {
            let idle = Swift.max(0, establishedTimeout - remainingSeconds)
            oldestIdleSeconds = Swift.max(oldestIdleSeconds ?? 0, idle)
            if idle >= Self.orphanIdleSeconds { orphans += 1 }
        }
    }
}

extension EntryCensus {
    /// Counts this network namespace's entries.
    ///
    /// On the running system: the kernel's own netlink dump (ctnetlink,
    /// through libmnl), counted as it streams; no tool runs. In a `--root`
    /// tree: its /proc/net/nf_conntrack, when it has one.
    ///
    /// - Parameters:
    ///   - sampleLimit: read only this many entries and scale the counts to `liveCount`.
    ///   - liveCount: nf_conntrack_count, the size a sample is scaled to.
    ///   - classifying: `false` (`--top 0`) counts no flow classes: the dump's
    ///     addresses and ports are not even decoded.
    /// - Returns: `nil` in a tree without /proc/net/nf_conntrack.
    /// - Throws: `NetlinkError` (EPERM without CAP_NET_ADMIN, …).
    public static func read(
        from root: SystemRoot, establishedTimeout: Int?, sampleLimit: Int? = nil, liveCount: Int? = nil, classifying: Bool = true
    ) throws -> EntryCensus? {
        if root.isLive {
            return try dump(
                using: ConntrackNetlink(), establishedTimeout: establishedTimeout, sampleLimit: sampleLimit, liveCount: liveCount,
                classifier: classifying ? try classifier(under: root) : nil)
        }
        guard let table = try root.contents(of: KernelPaths.conntrackTable) else { return nil }
        return parseProcTable(table, establishedTimeout: establishedTimeout)
    }

    /// Counts the entries of a ctnetlink dump as they arrive: a fixed set of
    /// counters, whatever the table's size. A dump the kernel flags as
    /// interrupted is read once more, then reported as `inconsistent`.
    /// Without a classifier the entries' tuples are not decoded.
    public static func dump(
        using netlink: ConntrackNetlink, establishedTimeout: Int?, sampleLimit: Int? = nil, liveCount: Int? = nil,
        classifier: FlowClassifier? = nil
    ) throws -> EntryCensus {
        var tally = Tally(establishedTimeout: establishedTimeout, limit: sampleLimit, classifier: classifier)
        let tuples = classifier != nil
        var end = try netlink.dump(readingTuples: tuples) { tally.add($0) }
        if end == .interrupted {
            tally = Tally(establishedTimeout: establishedTimeout, limit: sampleLimit, classifier: classifier)
            end = try netlink.dump(readingTuples: tuples) { tally.add($0) }
        }
        var census = tally.census()
        census.inconsistent = end == .interrupted
        if end == .stopped, let liveCount, liveCount > census.total {
            census.scale(to: liveCount)
        }
        return census
    }

    /// The calling thread's namespace's classifier: its addresses from the
    /// kernel (rtnetlink) and its ephemeral port range.
    public static func classifier(under root: SystemRoot) throws -> FlowClassifier {
        var ephemeral = FlowClassifier.defaultEphemeralPorts
        if let text = try root.contents(of: KernelPaths.localPortRange) {
            let bounds = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { UInt16($0) }
            if bounds.count == 2, bounds[0] <= bounds[1] { ephemeral = bounds[0]...bounds[1] }
        }
        return FlowClassifier(localAddresses: try LocalAddresses.read(), ephemeralPorts: ephemeral)
    }

    /// Scales a sample's counts to the table's live count.
    mutating func scale(to tableEntries: Int) {
        let read = total
        guard read > 0 else { return }
        let factor = Double(tableEntries) / Double(read)
        func scaled(_ value: Int) -> Int { Int((Double(value) * factor).rounded()) }
        byProtocol = byProtocol.mapValues(scaled)
        tcpStates = tcpStates.mapValues(scaled)
        assured = scaled(assured)
        unreplied = scaled(unreplied)
        orphans = scaled(orphans)
        byClass = byClass.mapValues { ClassCount(entries: scaled($0.entries), states: $0.states.mapValues(scaled)) }
        total = tableEntries
        sample = Sample(entriesRead: read, tableEntries: tableEntries)
    }

    /// Parses /proc/net/nf_conntrack lines: `ipv4 2 tcp 6 117 TIME_WAIT src=…`
    /// (layer-3 name and number, layer-4 name and number, remaining timeout,
    /// then the state for TCP only).
    static func parseProcTable(_ text: String, establishedTimeout: Int?) -> EntryCensus {
        var census = EntryCensus(source: KernelPaths.conntrackTable.string)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: true)
            guard fields.count >= 5 else { continue }
            let protocolName = String(fields[2])
            let state = protocolName == "tcp" && fields.count > 5 ? String(fields[5]) : nil
            census.add(
                protocolName: protocolName, tcpState: state, remainingSeconds: Int(fields[4]),
                establishedTimeout: establishedTimeout)
            if line.contains("[ASSURED]") { census.assured += 1 }
            if line.contains("[UNREPLIED]") { census.unreplied += 1 }
        }
        return census
    }
}

/// Fixed-size counters filled per dumped entry: no dictionary or string work
/// until the dump ends, so a million entries cost a million array increments.
struct Tally {
    let establishedTimeout: Int?
    let limit: Int?
    var total = 0
    var protocols = [Int](repeating: 0, count: 256)
    var states = [Int](repeating: 0, count: 256)
    var assured = 0
    var unreplied = 0
    var orphans = 0
    var oldestIdle: Int?
    let classifier: FlowClassifier?
    /// Per class: entries, then per TCP state (0-9), then unreplied (10).
    var classes: [FlowClass: [Int]] = [:]
    static let unrepliedSlot = 10

    init(establishedTimeout: Int?, limit: Int?, classifier: FlowClassifier? = nil) {
        self.establishedTimeout = establishedTimeout
        self.limit = limit
        self.classifier = classifier
    }

    /// Counts one entry; `false` once the sample limit is reached.
    mutating func add(_ entry: ConntrackEntry) -> Bool {
        total += 1
        protocols[Int(entry.protocolNumber)] += 1
        if entry.isAssured { assured += 1 }
        if entry.isUnreplied { unreplied += 1 }
        if let classifier, let tuple = entry.tuple {
            let slot = entry.tcpState.map { Int($0.rawValue) } ?? (entry.isUnreplied ? Self.unrepliedSlot : Self.unrepliedSlot + 1)
            classes[classifier.classify(tuple), default: [Int](repeating: 0, count: Self.unrepliedSlot + 2)][slot] += 1
        }
        if let state = entry.tcpState {
            states[Int(state.rawValue)] += 1
            if state == .established, let remaining = entry.timeoutSeconds, let establishedTimeout {
                let idle = Swift.max(0, establishedTimeout - remaining)
                oldestIdle = Swift.max(oldestIdle ?? 0, idle)
                if idle >= EntryCensus.orphanIdleSeconds { orphans += 1 }
            }
        }
        return limit.map { total < $0 } ?? true
    }

    func census() -> EntryCensus {
        var census = EntryCensus(source: "ctnetlink")
        census.total = total
        for (number, count) in protocols.enumerated() where count > 0 {
            census.byProtocol[ConntrackEntry.protocolName(UInt8(number)), default: 0] += count
        }
        for (number, count) in states.enumerated() where count > 0 {
            census.tcpStates[TCPConntrackState(rawValue: UInt8(number))?.name ?? "STATE_\(number)", default: 0] += count
        }
        census.assured = assured
        census.unreplied = unreplied
        census.orphans = orphans
        census.oldestIdleSeconds = oldestIdle
        for (flowClass, counts) in classes {
            var count = EntryCensus.ClassCount(entries: counts.reduce(0, +))
            for (slot, value) in counts.enumerated() where value > 0 {
                let name =
                    slot == Self.unrepliedSlot
                    ? "unreplied"
                    : slot == Self.unrepliedSlot + 1 ? "replied" : TCPConntrackState(rawValue: UInt8(slot))?.name ?? "STATE_\(slot)"
                count.states[name] = value
            }
            census.byClass[flowClass] = count
        }
        return census
    }
}
