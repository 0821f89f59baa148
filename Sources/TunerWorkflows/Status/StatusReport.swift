import FoundationEssentials
import Glibc
import TunerCore
import TunerModel
import TunerSystem

/// Everything `cttune status` read about one network namespace: two samples
/// bounding the window, plus the slower readings taken once.
public struct StatusReadings: Sendable, Equatable {
    public var namespace: NamespaceIdentity
    /// The sample at the start of the window (equal to `current` when there was no window).
    public var previous: ConntrackSample
    public var current: ConntrackSample
    /// Timeouts in force in this namespace, seconds.
    public var timeouts: [ConntrackSetting: Int]
    public var slab: SlabUsage?
    public var census: EntryCensus?
    /// Why the entries could not be listed, when the census ran and failed.
    public var censusProblem: String?
    /// Why the census ran or was skipped (the census policy's reason).
    public var censusReason: String?
    /// cttune's cures in force (its nft table), read with the census; `nil`
    /// when not read or there is no such table.
    public var cures: [CureInForce]?
    /// Why the cures could not be read, when they were to be.
    public var curesProblem: String?
    public var kernelLog: KernelLogEvidence
    /// Now, on the kernel log's clock (seconds since boot) and the wall clock.
    public var secondsSinceBoot: Double
    public var wallClock: Date

    public init(
        namespace: NamespaceIdentity, previous: ConntrackSample, current: ConntrackSample,
        timeouts: [ConntrackSetting: Int] = [:], slab: SlabUsage? = nil, census: EntryCensus? = nil,
        kernelLog: KernelLogEvidence = KernelLogEvidence(), secondsSinceBoot: Double = 0,
        wallClock: Date = Date(timeIntervalSince1970: 0)
    ) {
        self.namespace = namespace
        self.previous = previous
        self.current = current
        self.timeouts = timeouts
        self.slab = slab
        self.census = census
        self.kernelLog = kernelLog
        self.secondsSinceBoot = secondsSinceBoot
        self.wallClock = wallClock
    }

    /// Some reading that was attempted failed or may be incomplete: the
    /// verdict stands on what was read (never lowered by what was not).
    public var isPartial: Bool { censusProblem != nil || census?.inconsistent == true }

    /// Runs the census when `policy` says so, recording why, and any failure
    /// as a problem instead of an error: the counters already hold the verdict.
    mutating func takeCensus(_ policy: CensusPolicy, runNumber: Int?, count: (CensusPolicy) throws -> EntryCensus?) {
        let decision = policy.decide(previous: previous, current: current, runNumber: runNumber)
        censusReason = decision.reason
        guard decision.runs else { return }
        do {
            census = try count(policy)
            if census == nil { censusProblem = "no source of entries (no ctnetlink outside the running system, no /proc/net/nf_conntrack)" }
        } catch {
            censusProblem = "\(error)"
        }
    }

    /// Seconds between the two samples; 0 when there was one sample.
    public var windowSeconds: Double { Swift.max(0, current.takenAt - previous.takenAt) }

    /// How much a counter rose during the window.
    public func rise(_ counter: String) -> Int { Swift.max(0, current.counter(counter) - previous.counter(counter)) }

    /// Per-second change of a counter during the window; `nil` without a window.
    public func rate(_ counter: String) -> Double? {
        windowSeconds > 0 ? Double(rise(counter)) / windowSeconds : nil
    }

    /// Net entries per second (new minus expired) during the window.
    public var entriesPerSecond: Double? {
        windowSeconds > 0 ? Double(current.count - previous.count) / windowSeconds : nil
    }

    /// Wall-clock time of a kernel log timestamp.
    public func wallClock(ofSecondsSinceBoot seconds: Double) -> Date {
        wallClock.addingTimeInterval(seconds - secondsSinceBoot)
    }
}

/// The monitoring-plugin states; the raw value is the exit code.
public enum Verdict: Int32, Sendable, Comparable, CaseIterable {
    case ok = 0, warning = 1, critical = 2, unknown = 3

    public var name: String { ["ok", "warning", "critical", "unknown"][Int(rawValue)] }

    /// Severity for "the worst of": unknown ranks between warning and critical,
    /// as monitoring systems order them.
    var severity: Int { [0, 1, 3, 2][Int(rawValue)] }

    public static func < (lhs: Verdict, rhs: Verdict) -> Bool { lhs.severity < rhs.severity }
}

/// The diagnosis: a verdict, the findings behind it and, when it is bad, the fix.
/// A pure function of `StatusReadings`, so thresholds are tested without a kernel.
public struct StatusReport: Sendable, Equatable {
    public struct Finding: Sendable, Equatable {
        public var level: Verdict
        public var message: String
    }

    /// What to run when the verdict is not ok.
    public struct Fix: Sendable, Equatable {
        public var profile: String
        public var commands: [String]
        /// The smallest max that keeps the current count under the warning threshold.
        public var minimumMax: Int
        public var note: String
    }

    public var readings: StatusReadings
    public var findings: [Finding]
    public var fix: Fix?

    public var verdict: Verdict { findings.map(\.level).max() ?? .ok }

    /// Fill share at which the table is a warning: the node_exporter mixin's alert.
    public static let warningFill = 0.75
    /// Fill share at which it is critical (Netdata warns at 90 %): the GC evicts
    /// closing entries from 95 % on, so the count of an overflowing table sits here.
    public static let criticalFill = 0.90
    /// Orphans taking this share of max are a warning: they stay for the whole
    /// established timeout (5 days by default), so they only accumulate.
    public static let orphanWarningShare = 0.10

    public init(_ readings: StatusReadings) {
        self.readings = readings
        findings = Self.findings(readings)
        fix = findings.isEmpty ? nil : Self.fix(readings, findings: findings)
    }

    static func findings(_ readings: StatusReadings) -> [Finding] {
        var findings: [Finding] = []
        let sample = readings.current
        let fill = sample.fillRatio
        let fillText = "table \(percent(fill)) full (\(sample.count) of \(sample.max) entries)"
        if fill >= criticalFill {
            findings.append(Finding(level: .critical, message: "\(fillText), critical from \(percent(criticalFill))"))
        } else if fill >= warningFill {
            findings.append(Finding(level: .warning, message: "\(fillText), warning from \(percent(warningFill))"))
        }

        let lossNow = ConntrackSample.packetLossCounters.map(readings.rise).reduce(0, +)
        let lossEver = ConntrackSample.packetLossCounters.map(sample.counter).reduce(0, +)
        let breakdown = ConntrackSample.packetLossCounters.map { "\($0) \(sample.counter($0))" }.joined(separator: ", ")
        if lossNow > 0 {
            let window = seconds(readings.windowSeconds)
            // insert_failed alone is a clash between simultaneous first packets
            // of one tuple (parallel DNS A/AAAA queries), not a full table.
            let clashOnly =
                readings.rise("drop") == 0
                ? "; only insert_failed rose: clashing inserts (parallel UDP queries such as DNS A/AAAA), which a bigger table does not fix"
                : ""
            findings.append(
                Finding(
                    level: .critical,
                    message:
                        """
                        \(lossNow) packets dropped in the last \(window) (\(breakdown) in total): new connections are \
                        failing now\(clashOnly)
                        """
                ))
        } else if lossEver > 0 {
            let quiet = readings.windowSeconds > 0 ? ", none in the last \(seconds(readings.windowSeconds))" : ""
            findings.append(
                Finding(
                    level: .warning,
                    message:
                        """
                        \(lossEver) packets dropped since the namespace was created (\(breakdown))\(quiet); counters last \
                        moved: \(lastMoved(readings))
                        """
                ))
        }

        let earlyDrops = readings.rise("early_drop")
        if earlyDrops > 0 {
            findings.append(
                Finding(
                    level: .warning,
                    message:
                        """
                        the table reached its max: \(earlyDrops) unassured entries evicted early in the last \
                        \(seconds(readings.windowSeconds))
                        """
                ))
        }

        if let census = readings.census, census.orphans > 0,
            Double(census.orphans) >= orphanWarningShare * Double(sample.max)
        {
            let timeout = readings.timeouts[.tcpTimeoutEstablished].map { " of \($0) s" } ?? ""
            findings.append(
                Finding(
                    level: .warning,
                    message:
                        """
                        \(census.orphans) ESTABLISHED entries idle over \(EntryCensus.orphanIdleSeconds / 3600) h \
                        (\(percent(Double(census.orphans) / Double(sample.max))) of max): flows never seen closing, kept for \
                        the whole established timeout\(timeout)
                        """
                ))
        }
        for cure in readings.cures ?? [] where !cure.conflicts.isEmpty {
            findings.append(
                Finding(
                    level: .critical,
                    message:
                        """
                        class \(cure.className) is exempt from conntrack (notrack), but \(cure.conflicts.count) \
                        rule\(cure.conflicts.count == 1 ? " needs" : "s need") its state (the firewall changed after the plan; \
                        its packets are no longer tracked for \(cure.conflicts.count == 1 ? "it" : "them")): \
                        \(cure.conflicts.joined(separator: "; ")) — run `cttune apply` again (it refuses the cure now) \
                        or `cttune rollback`
                        """
                ))
        }
        return findings
    }

    /// When the drop counters last moved, as far as the kernel log tells.
    static func lastMoved(_ readings: StatusReadings) -> String {
        guard readings.kernelLog.readable else {
            return "unknown (kernel log unreadable: \(readings.kernelLog.unreadableReason ?? ""))"
        }
        guard let last = readings.kernelLog.lines.last else {
            return "unknown (no \"table full\" line left in the kernel log; insert_failed never logs one)"
        }
        let ago = Swift.max(0, readings.secondsSinceBoot - last.secondsSinceBoot)
        return
            """
            \(isoTime(readings.wallClock(ofSecondsSinceBoot: last.secondsSinceBoot))), \(duration(ago)) ago (last \"table \
            full\" kernel log line)
            """
    }

    /// Picks the built-in profile whose shape matches the live entries.
    static func fix(_ readings: StatusReadings, findings: [Finding]) -> Fix {
        let census = readings.census
        let total = Double(Swift.max(census?.total ?? 0, 1))
        let halfOpen = Double((census?.tcpStates["SYN_SENT"] ?? 0) + (census?.tcpStates["SYN_RECV"] ?? 0))
        let udp = Double(census?.byProtocol["udp"] ?? 0)
        let orphanHeavy = (census?.orphans ?? 0) > 0 && Double(census!.orphans) >= orphanWarningShare * Double(readings.current.max)
        let profile: String
        let why: String
        if orphanHeavy || halfOpen / total >= 0.3 {
            profile = "ddos-edge"
            why =
                orphanHeavy
                ? "orphaned ESTABLISHED entries need a short established timeout"
                : "half-open (SYN_SENT/SYN_RECV) entries need short handshake timeouts"
        } else if udp / total >= 0.5 {
            profile = "nat-gateway"
            why = "UDP dominates the table"
        } else {
            profile = "web-frontend"
            why = "short TCP flows (TIME_WAIT) dominate the table"
        }
        let minimumMax = Int((Double(readings.current.count) / warningFill).rounded(.up))
        var note =
            minimumMax > readings.current.max
            ? """
            \(why); the table needs a max above \(minimumMax) to stay under \(percent(warningFill)) at today's count (more \
            while packets are dropped: the count is capped)
            """
            : "\(why); the max (\(readings.current.max)) holds today's count, so size it for the peak that overflowed it"
        if readings.namespace.kind == .nonInitial {
            note += "; nf_conntrack_max is global: apply it on the host"
        }
        return Fix(
            profile: profile, commands: ["cttune plan --profile \(profile) --explain", "cttune apply --profile \(profile)"],
            minimumMax: minimumMax, note: note)
    }

    /// The one-line verdict: `CRITICAL: finding; finding`, or the table's state when ok.
    public var summary: String {
        let sample = readings.current
        guard !findings.isEmpty else {
            return "OK: \(sample.count) of \(sample.max) entries (\(Self.percent(sample.fillRatio))), no dropped packets"
        }
        let worst = verdict
        return "\(worst.name.uppercased()): " + findings.filter { $0.level == worst }.map(\.message).joined(separator: "; ")
    }

    package static func percent(_ ratio: Double) -> String { Formatting.percent(ratio) }

    static func seconds(_ value: Double) -> String { String(cFormat: "%.1f s", value) }

    package static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds)
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min" }
        if whole < 86400 { return "\(whole / 3600) h \(whole % 3600 / 60) min" }
        return "\(whole / 86400) d \(whole % 86400 / 3600) h"
    }

    /// UTC time as RFC 3339 (`2026-11-26T16:07:31Z`), formatted with gmtime_r:
    /// ISO8601DateFormatter loads ICU's calendar data, about 100 ms of CPU,
    /// which every namespace with old drops would pay on each timer run.
    package static func isoTime(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            """
            \(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\
            \(two(parts.tm_min)):\(two(parts.tm_sec))Z
            """
    }
}

extension StatusReport {
    /// What makes the result partial, in one line; `nil` when it is whole.
    public var partialReason: String? {
        if let problem = readings.censusProblem { return "the census failed: \(problem)" }
        if readings.census?.inconsistent == true {
            return "the census dump was interrupted twice by table changes: counts may miss or repeat entries"
        }
        return nil
    }
}
