import FoundationEssentials
import Glibc
import SystemPackage
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
        let run = census.everyNthRun == nil ? nil : runNumber ?? StatusRunCounter.next(under: root)
        var readings = try namespaceReadings(since: previous, statPath: KernelPaths.conntrackStat, runNumber: run)
        readings.slab = try? SlabUsage.read(from: root)?.usage
        readings.kernelLog = KernelLogEvidence.read(from: root, for: readings.namespace)
        (readings.secondsSinceBoot, readings.wallClock) = (MonotonicClock.secondsSinceBoot(), Date())
        return readings
    }

    /// What one namespace's own files say, read in the calling thread's
    /// network namespace: the counters from `statPath`, the timeouts, the
    /// namespace's identity and the census its policy asks for. Both the
    /// single-namespace and the host-wide pipeline take their readings here;
    /// what the namespaces share (slab, kernel log, clocks) is added by each.
    func namespaceReadings(since previous: ConntrackSample?, statPath: FilePath, runNumber: Int?) throws -> StatusReadings {
        let current = try ConntrackSample.read(from: root, statPath: statPath)
        let timeouts = try Self.timeouts(root)
        var readings = StatusReadings(
            namespace: try NamespaceIdentity.probe(root), previous: previous ?? current, current: current, timeouts: timeouts)
        readings.takeCensus(census, runNumber: runNumber) { policy in
            var census = try EntryCensus.read(
                from: root, establishedTimeout: timeouts[.tcpTimeoutEstablished], sampleLimit: policy.sampleLimit,
                liveCount: current.count, classifying: policy.topClasses > 0)
            census?.topShown = policy.topClasses
            return census
        }
        // Beside the census, which says what each class holds: which classes
        // live by a policy of cttune's table (never for a --root tree).
        if readings.census != nil && root.isLive {
            do {
                readings.cures = try CureInForce.read()
            } catch {
                readings.curesProblem = "\(error)"
            }
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
