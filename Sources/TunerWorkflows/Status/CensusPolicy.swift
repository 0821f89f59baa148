import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// When `status` lists the entries. Counting the table is the one reading
/// whose cost grows with its size (about a second per million entries), and
/// the timer runs every minute on exactly the hosts with big tables, so by
/// default it runs only when the counters say the table matters.
public struct CensusPolicy: Sendable, Equatable {
    /// `--census`: on every run.
    public var always: Bool
    /// `--census-sample N`: read only the first N entries of the dump (hash
    /// order, so no protocol or state is favoured) and scale to the count.
    public var sampleLimit: Int?
    /// `--census-every N`: also on every Nth run, counted in `KernelPaths.statusRunCounter`.
    public var everyNthRun: Int?
    /// `--top N`: how many flow classes the census lists before its `other` row;
    /// 0 classifies nothing (the census's cheapest form).
    public var topClasses: Int

    public init(always: Bool = false, sampleLimit: Int? = nil, everyNthRun: Int? = nil, topClasses: Int = EntryCensus.defaultTopClasses) {
        self.always = always
        self.sampleLimit = sampleLimit
        self.everyNthRun = everyNthRun
        self.topClasses = topClasses
    }

    /// Whether the census runs, and the reason shown with its result.
    public struct Decision: Sendable, Equatable {
        public var runs: Bool
        public var reason: String
    }

    /// Decides from the cheap readings: the table at or over the warning
    /// fill, or packets dropped during the window (the fix then needs to know
    /// what fills the table).
    /// - Parameter runNumber: this run's number when `everyNthRun` is set (1 for the first).
    public func decide(previous: ConntrackSample, current: ConntrackSample, runNumber: Int?) -> Decision {
        if always { return Decision(runs: true, reason: "--census") }
        if current.fillRatio >= StatusReport.warningFill {
            return Decision(
                runs: true,
                reason:
                    "table \(StatusReport.percent(current.fillRatio)) full, at or over \(StatusReport.percent(StatusReport.warningFill))")
        }
        let lost = ConntrackSample.packetLossCounters.map { Swift.max(0, current.counter($0) - previous.counter($0)) }.reduce(0, +)
        if lost > 0 { return Decision(runs: true, reason: "packets dropped during the window") }
        if let everyNthRun, let runNumber, (runNumber - 1) % everyNthRun == 0 {
            return Decision(runs: true, reason: "run \(runNumber), every \(everyNthRun)th run")
        }
        let periodic = everyNthRun.map { ", next on run \(((runNumber ?? 1) - 1) / $0 * $0 + $0 + 1)" } ?? ""
        return Decision(
            runs: false,
            reason:
                "table under \(StatusReport.percent(StatusReport.warningFill)) and no drops in the window\(periodic); --census lists them")
    }
}

/// Counts `status` runs for `--census-every`, in a file under /run (gone at
/// reboot, so the first run after boot takes a census).
public enum StatusRunCounter {
    /// Adds one to the counter and returns the new value (1 when the file is
    /// absent or unreadable: a census too many is better than none).
    public static func next(under root: SystemRoot) -> Int {
        let previous = (try? root.integer(at: KernelPaths.statusRunCounter)).flatMap { $0 } ?? 0
        let next = previous >= 1 && previous < Int.max ? previous + 1 : 1
        _ = try? AtomicFile.write("\(next)\n", to: KernelPaths.statusRunCounter, under: root, mode: 0o644, createDirectories: true)
        return next
    }
}
