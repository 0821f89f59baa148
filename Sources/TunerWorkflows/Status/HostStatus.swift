import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// `status --all-namespaces` (or `--namespace ID…`): every network namespace's
/// table, judged one by one, with host-wide totals. nf_conntrack_max is one
/// global value but each namespace's count is checked against it alone, so
/// each one can fill to it; the entries of all of them share one slab.
public struct HostStatusReport: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var identifier: NamespaceIdentifier
        public var report: StatusReport
    }

    /// The namespaces read, fullest first.
    public var members: [Member]
    /// Namespaces that vanished or could not be entered during the scan.
    public var failures: [NamespaceVisitError]
    /// The host-wide conntrack slab: every namespace's entries.
    public var slab: SlabUsage?

    /// How many of the fullest namespaces the Prometheus textfile labels one
    /// by one; the rest appear only in the totals, so a host with thousands
    /// of pods keeps a bounded set of series.
    public static let labelledNamespaces = 10

    public init(members: [Member], failures: [NamespaceVisitError], slab: SlabUsage?) {
        self.members = members.sorted {
            ($0.report.readings.current.fillRatio, $1.identifier.description) > (
                $1.report.readings.current.fillRatio, $0.identifier.description
            )
        }
        self.failures = failures
        self.slab = slab
    }

    /// The worst namespace's verdict. Namespaces that could not be read make
    /// the result partial; they never lower what the others' counters show.
    public var verdict: Verdict { members.map(\.report.verdict).max() ?? .unknown }

    public var isPartial: Bool { !failures.isEmpty || members.contains { $0.report.partialReason != nil } }

    public var totalEntries: Int { members.map(\.report.readings.current.count).reduce(0, +) }

    /// The entries' kernel memory per namespace: its count × the slab object size.
    public func memoryBytes(_ member: Member) -> Int? {
        slab.map { member.report.readings.current.count * $0.objectBytes }
    }

    /// The one-line verdict: the worst namespace's own summary, named.
    public var summary: String {
        let count = "\(members.count) namespaces, \(totalEntries) entries"
        guard let worst = members.max(by: { $0.report.verdict < $1.report.verdict }), worst.report.verdict != .ok else {
            let fullest =
                members.first.map { "; fullest \($0.identifier.shown) \(StatusReport.percent($0.report.readings.current.fillRatio))" } ?? ""
            return "OK: \(count), no dropped packets\(fullest)"
        }
        let others = members.filter { $0.report.verdict == worst.report.verdict }.count - 1
        let more = others > 0 ? " (and \(others) more \(worst.report.verdict.name))" : ""
        return "\(worst.identifier.shown): \(worst.report.summary)\(more) — \(count)"
    }

    /// The reasons the result is partial, one line each.
    public var partialReasons: [String] {
        failures.map(\.description)
            + members.compactMap { member in member.report.partialReason.map { "namespace \(member.identifier.shown): \($0)" } }
    }
}

extension StatusProbe {
    /// Reads the given namespaces (every one the host can see when `nil`)
    /// over a window, on one thread that enters each in turn.
    ///
    /// - Throws: `TunerError.conntrackNotLoaded` (or another read error) only
    ///   when no namespace's counters could be read: that is UNKNOWN.
    public func hostReport(
        windowSeconds: Double, namespaces requested: [NamespaceIdentifier]? = nil, shouldStop: () -> Bool = { false }
    ) throws -> HostStatusReport {
        var failures: [NamespaceVisitError] = []
        var entries: [NamespaceDirectory.Entry] = []
        if let requested {
            for identifier in requested {
                switch NamespaceDirectory.check(identifier, under: root) {
                case .success(let inode): entries.append(NamespaceDirectory.Entry(identifier: identifier, inode: inode))
                case .failure(let failure): failures.append(failure)
                }
            }
        } else {
            entries = NamespaceDirectory.all(under: root)
        }
        let root = self.root
        var first: [UInt64: ConntrackSample] = [:]
        if windowSeconds > 0 {
            let samples = NamespaceVisitor.visit(entries, under: root) { _ in
                try ConntrackSample.read(from: root, statPath: KernelPaths.threadConntrackStat)
            }
            for (entry, result) in zip(entries, samples) { if case .success(let sample) = result { first[entry.inode] = sample } }
            Pause.sleep(seconds: windowSeconds, unless: shouldStop)
        }
        let run = census.everyNthRun == nil ? nil : StatusRunCounter.next(under: root)
        let visited = NamespaceVisitor.visit(entries, under: root) { entry -> StatusReadings in
            // /proc/net follows the process, /proc/thread-self/net this thread's namespace.
            var readings = try namespaceReadings(since: first[entry.inode], statPath: KernelPaths.threadConntrackStat, runNumber: run)
            readings.namespace.inode = entry.inode
            return readings
        }
        let log = KernelLogEvidence.records(from: root).map(KernelLogEvidence.parse)
        let slab = try? SlabUsage.read(from: root)?.usage
        let now = (MonotonicClock.secondsSinceBoot(), Date())
        var members: [HostStatusReport.Member] = []
        var firstError: Error?
        for (entry, result) in zip(entries, visited) {
            switch result {
            case .success(var readings):
                readings.slab = slab
                switch log {
                case .success(let lines): readings.kernelLog = KernelLogEvidence.evidence(from: lines, for: readings.namespace)
                case .failure(let reason): readings.kernelLog = KernelLogEvidence(unreadableReason: reason.text)
                }
                (readings.secondsSinceBoot, readings.wallClock) = now
                members.append(HostStatusReport.Member(identifier: entry.identifier, report: StatusReport(readings)))
            case .failure(let failure):
                failures.append(failure)
                if firstError == nil { firstError = failure }
            }
        }
        // Nothing read is UNKNOWN, never "OK: 0 namespaces": the exit code and the verdict line agree.
        if members.isEmpty, let firstError = firstError ?? failures.first {
            throw requested?.count == 1
                ? TunerError(firstError) : TunerError.unreadable(path: "every network namespace", reason: "\(firstError)")
        }
        return HostStatusReport(members: members, failures: failures, slab: slab)
    }
}
