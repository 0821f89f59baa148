import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Readings for a namespace with `count` of `max` entries over a one-second
/// window in which the counters went from `before` to `after`.
private func readings(
    count: Int, max: Int = 1000, before: [String: Int] = [:], after: [String: Int] = [:],
    census: EntryCensus? = nil, log: KernelLogEvidence = KernelLogEvidence(),
    kind: NetworkNamespace = .initial, window: Double = 1
) -> StatusReadings {
    StatusReadings(
        namespace: NamespaceIdentity(kind: kind, inode: 4026532000),
        previous: ConntrackSample(takenAt: 100, count: count, max: max, buckets: 1024, counters: before),
        current: ConntrackSample(takenAt: 100 + window, count: count, max: max, buckets: 1024, counters: after),
        timeouts: [.tcpTimeoutEstablished: 432_000], census: census, kernelLog: log,
        secondsSinceBoot: 10_000, wallClock: Date(timeIntervalSince1970: 1_800_000_000))
}

@Suite("status verdict thresholds")
struct StatusVerdictTests {
    @Test(
        "fill is ok below 75 %, a warning from 75 %, critical from 90 %",
        arguments: [
            (740, Verdict.ok), (749, .ok), (750, .warning), (899, .warning), (900, .critical), (1000, .critical),
        ])
    func fillThresholds(count: Int, expected: Verdict) {
        let report = StatusReport(readings(count: count))
        #expect(report.verdict == expected)
        #expect(report.summary.hasPrefix(expected.name.uppercased() + ":"))
    }

    @Test(
        "drops or insert failures during the window are critical even when the table is nearly empty", arguments: ["drop", "insert_failed"])
    func dropsInWindowAreCritical(counter: String) {
        let report = StatusReport(readings(count: 10, before: [counter: 5], after: [counter: 9]))
        #expect(report.verdict == .critical)
        #expect(report.summary.contains("4 packets dropped in the last 1.0 s"))
        #expect(report.readings.rate(counter) == 4)
        #expect(report.summary.contains("only insert_failed rose") == (counter == "insert_failed"))
    }

    @Test("drops seen only since boot are a warning that says when the counters last moved, from the kernel log")
    func oldDropsAreAWarningWithTheirTime() {
        let line = KernelLogEvidence.Line(secondsSinceBoot: 10_000 - 7_380, message: "nf_conntrack: table full, dropping packet")
        let report = StatusReport(
            readings(
                count: 10, before: ["drop": 7], after: ["drop": 7],
                log: KernelLogEvidence(lines: [line])))
        #expect(report.verdict == .warning)
        #expect(report.summary.contains("7 packets dropped since the namespace was created"))
        #expect(report.summary.contains("none in the last 1.0 s"))
        // 1_800_000_000 − 7380 s = 2027-01-15T05:57:00Z, "2 h 3 min ago".
        #expect(report.summary.contains("2027-01-15T05:57:00Z, 2 h 3 min ago"))
    }

    @Test("without a kernel log line, the time the counters last moved is called unknown, with the reason")
    func oldDropsWithoutLogSayUnknown() {
        let unreadable = StatusReport(
            readings(
                count: 10, before: ["insert_failed": 3], after: ["insert_failed": 3],
                log: KernelLogEvidence(unreadableReason: "cannot read /dev/kmsg: permission denied")))
        #expect(unreadable.summary.contains("last moved: unknown (kernel log unreadable: cannot read /dev/kmsg: permission denied)"))
        let empty = StatusReport(readings(count: 10, before: ["insert_failed": 3], after: ["insert_failed": 3]))
        #expect(empty.summary.contains("last moved: unknown (no \"table full\" line"))
    }

    @Test("early drops during the window are a warning: the table reached its max")
    func earlyDropsWarn() {
        let report = StatusReport(readings(count: 500, before: ["early_drop": 1], after: ["early_drop": 3]))
        #expect(report.verdict == .warning)
        #expect(report.findings.map(\.message) == ["the table reached its max: 2 unassured entries evicted early in the last 1.0 s"])
    }

    @Test("orphans taking 10 % of max are a warning and point at the profile with a short established timeout")
    func orphansWarn() {
        var census = EntryCensus(source: "test")
        for _ in 0..<100 {
            census.add(protocolName: "tcp", tcpState: "ESTABLISHED", remainingSeconds: 432_000 - 7_200, establishedTimeout: 432_000)
        }
        let report = StatusReport(readings(count: 100, census: census))
        #expect(report.verdict == .warning)
        #expect(report.summary.contains("100 ESTABLISHED entries idle over 1 h"))
        #expect(report.fix?.profile == "ddos-edge")
        census.orphans = 99
        #expect(StatusReport(readings(count: 100, census: census)).verdict == .ok)
    }

    @Test("a healthy table has no findings and no fix")
    func healthyTable() {
        let report = StatusReport(readings(count: 10, before: ["found": 1], after: ["found": 900]))
        #expect(report.verdict == .ok)
        #expect(report.findings.isEmpty)
        #expect(report.fix == nil)
        #expect(report.summary == "OK: 10 of 1000 entries (1.0 %), no dropped packets")
    }

    @Test(
        "the fix names the profile matching the live entries and the smallest max that ends the warning",
        arguments: [
            (["TIME_WAIT": 800], ["tcp": 800], "web-frontend"),
            (["SYN_SENT": 300, "TIME_WAIT": 500], ["tcp": 800], "ddos-edge"),
            ([:], ["udp": 600, "tcp": 200], "nat-gateway"),
        ])
    func fixProfile(states: [String: Int], protocols: [String: Int], profile: String) {
        var census = EntryCensus(source: "test")
        census.total = protocols.values.reduce(0, +)
        census.byProtocol = protocols
        census.tcpStates = states
        let report = StatusReport(readings(count: 800, census: census, kind: .nonInitial))
        #expect(report.fix?.profile == profile)
        #expect(report.fix?.commands == ["cttune plan --profile \(profile) --explain", "cttune apply --profile \(profile)"])
        #expect(report.fix?.minimumMax == 1067)  // 800 / 0.75, rounded up
        #expect(report.fix?.note.contains("nf_conntrack_max is global: apply it on the host") == true)
    }

    @Test("the worst verdict ranks unknown between warning and critical, as monitoring systems do")
    func verdictOrder() {
        #expect([Verdict.ok, .critical, .unknown, .warning].max() == .critical)
        #expect([Verdict.ok, .unknown, .warning].max() == .unknown)
        #expect(Verdict.allCases.map(\.rawValue) == [0, 1, 2, 3])
    }

    @Test("a single sample has no window: no rates, and drops are judged since the namespace was created")
    func noWindow() {
        let report = StatusReport(readings(count: 10, before: ["drop": 2], after: ["drop": 2], window: 0))
        #expect(report.readings.rate("drop") == nil)
        #expect(report.readings.entriesPerSecond == nil)
        #expect(report.verdict == .warning)
        #expect(!report.summary.contains("none in the last"))
    }

    @Test(
        "a failed or interrupted census makes the result partial and never lowers the counters' verdict",
        arguments: [(950, Verdict.critical), (800, .warning), (10, .ok)])
    func partialCensusKeepsVerdict(count: Int, expected: Verdict) {
        var failed = readings(count: count)
        failed.takeCensus(CensusPolicy(always: true), runNumber: nil) { _ in
            throw NetlinkError(call: "conntrack dump", errno: .notPermitted)
        }
        let report = StatusReport(failed)
        #expect(report.verdict == expected)
        #expect(report.readings.isPartial)
        #expect(report.partialReason?.contains("operation not permitted — run as root") == true)

        var interrupted = EntryCensus(source: "ctnetlink")
        interrupted.inconsistent = true
        let shaky = StatusReport(readings(count: count, census: interrupted))
        #expect(shaky.verdict == expected)
        #expect(shaky.partialReason?.contains("interrupted") == true)
    }

    @Test(
        "the census runs at the warning fill, on drops in the window, every Nth run or with --census, and says why it did not otherwise",
        arguments: [
            (CensusPolicy(), 750, 0, nil as Int?, true),
            (CensusPolicy(), 749, 0, nil, false),
            (CensusPolicy(), 10, 3, nil, true),
            (CensusPolicy(always: true), 10, 0, nil, true),
            (CensusPolicy(everyNthRun: 15), 10, 0, 1, true),
            (CensusPolicy(everyNthRun: 15), 10, 0, 2, false),
            (CensusPolicy(everyNthRun: 15), 10, 0, 16, true),
        ])
    func censusPolicy(policy: CensusPolicy, count: Int, drops: Int, run: Int?, runs: Bool) {
        let previous = ConntrackSample(takenAt: 0, count: count, max: 1000, counters: ["drop": 0])
        let current = ConntrackSample(takenAt: 1, count: count, max: 1000, counters: ["drop": drops])
        let decision = policy.decide(previous: previous, current: current, runNumber: run)
        #expect(decision.runs == runs, "\(decision.reason)")
        #expect(!decision.reason.isEmpty)
    }
}
