import Foundation
import TunerCore
import TunerModel
import TunerSystem

/// Takes the readings of the network namespace this process runs in.
public struct StatusProbe {
    public let root: SystemRoot
    public let census: CensusPolicy

    public init(root: SystemRoot = .live, census: CensusPolicy = CensusPolicy()) {
        self.root = root
        self.census = census
    }

    /// One cheap sample (count, max, buckets, counters).
    public func sample() throws -> ConntrackSample {
        try ConntrackSample.read(from: root)
    }

    /// The full readings for the window from `previous` to now: a fresh
    /// sample plus the slower reads (timeouts, slab, kernel log) and, when the
    /// census policy says so, the entry census.
    /// - Parameter runNumber: for `--census-every`; `nil` counts this run in /run.
    public func readings(since previous: ConntrackSample?, runNumber: Int? = nil) throws -> StatusReadings {
        let namespace = try NamespaceIdentity.probe(root)
        let current = try sample()
        let timeouts = try Self.timeouts(root)
        let run = census.everyNthRun == nil ? nil : runNumber ?? StatusRunCounter.next(under: root)
        var readings = StatusReadings(
            namespace: namespace, previous: previous ?? current, current: current, timeouts: timeouts,
            slab: try? SlabUsage.read(from: root)?.usage,
            kernelLog: KernelLogEvidence.read(from: root, for: namespace),
            secondsSinceBoot: MonotonicClock.secondsSinceBoot(), wallClock: Date())
        readings.takeCensus(census, runNumber: run) { policy in
            try EntryCensus.read(
                from: root, establishedTimeout: timeouts[.tcpTimeoutEstablished], sampleLimit: policy.sampleLimit,
                liveCount: current.count)
        }
        return readings
    }

    /// The timeouts in force in the calling thread's namespace.
    static func timeouts(_ root: SystemRoot) throws -> [ConntrackSetting: Int] {
        var timeouts: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.timeouts {
            timeouts[setting] = try root.integer(at: KernelPaths.sysctl(setting.key))
        }
        return timeouts
    }

    /// A report over a window: sample, wait `windowSeconds`, read the rest.
    /// A window of 0 takes one sample (no rates; drops are judged since boot).
    public func report(windowSeconds: Double, shouldStop: () -> Bool = { false }) throws -> StatusReport {
        let first = windowSeconds > 0 ? try sample() : nil
        if first != nil { Pause.sleep(seconds: windowSeconds, unless: shouldStop) }
        return StatusReport(try readings(since: first))
    }

    /// `--watch`: a report every `intervalSeconds`, each over the interval
    /// since the previous one, until `count` reports or `shouldStop()`.
    /// - Returns: the worst verdict seen.
    public func watch(
        intervalSeconds: Double, count: Int?, shouldStop: () -> Bool,
        emit: (StatusReport) -> Void
    ) throws -> Verdict {
        var worst = Verdict.ok
        var previous = try sample()
        var index = 0
        // Ticks are scheduled from the start, so the time spent reading (the
        // entry dump grows with the table) does not stretch the interval.
        let start = previous.takenAt
        while count.map({ index < $0 }) ?? true {
            let due = start + Double(index + 1) * intervalSeconds
            Pause.sleep(seconds: due - MonotonicClock.seconds(), unless: shouldStop)
            if shouldStop() { break }
            let report = StatusReport(try readings(since: previous, runNumber: index + 1))
            emit(report)
            worst = Swift.max(worst, report.verdict)
            previous = report.readings.current
            index += 1
        }
        return worst
    }
}

/// Sleeps in short steps so an interrupt ends a wait within a tenth of a second.
enum Pause {
    static func sleep(seconds: Double, unless shouldStop: () -> Bool) {
        let deadline = MonotonicClock.seconds() + seconds
        while !shouldStop() {
            let left = deadline - MonotonicClock.seconds()
            if left <= 0 { return }
            usleep(useconds_t(min(left, 0.1) * 1_000_000))
        }
    }
}
