import FoundationEssentials
import Glibc
import TunerCore

/// How long an expired conntrack entry stays in the table before the kernel's
/// garbage collector (`gc_worker`, net/netfilter/nf_conntrack_core.c) reaps
/// it, per generation of that code.
///
/// Entries expire at their timeout but are removed only by a GC pass (or by a
/// lookup that happens to walk past them), so the count is a sawtooth: it climbs
/// at the flow rate and falls back at each pass. The peak is therefore
/// rate x (lifetime + the gap between passes), and the gap depends on the
/// kernel:
///
/// - `autotuned` (2cfadb761d3d "netfilter: conntrack: revisit gc autotuning",
///   v5.18, backported to 5.15.34, 5.16.20 and 5.17.3; refined by 95eabdd20702
///   "fix the gc rescheduling delay" and 2aa192757005 "revisit the gc initial
///   rescheduling bias", v6.1): after each full pass the worker sleeps for the
///   running mean of the live entries' remaining lifetimes, each clamped to
///   [1 s, 300 s] (GC_SCAN_INTERVAL_CLAMP), the mean seeded with 100 pretend
///   entries at 60 s (GC_SCAN_INITIAL_COUNT, GC_SCAN_INTERVAL_INIT), minus the
///   time the pass took, clamped to [1 s, 60 s] (GC_SCAN_INTERVAL_MIN/MAX).
///   Work is cut into 10 ms slices (GC_SCAN_MAX_DURATION); after
///   GC_SCAN_EXPIRED_MAX = 64000 / HZ expired entries a slice yields for one
///   jiffy, so the worker reaps at most about 64000 entries per second.
/// - `fixedInterval` (4608fdfc07e1 "netfilter: conntrack: collect all entries
///   in one cycle", v5.14, backported to 5.4.143, 5.10.61 and 5.13.13): one
///   full pass every 120 s (GC_SCAN_INTERVAL), in 10 ms slices, no cap.
/// - `incremental` (b87a2f9199ea "add gc worker to remove timed-out entries",
///   v4.7, tuned by e0df8cae6c16): each run scans 1/128 of the buckets
///   (GC_MAX_BUCKETS_DIV) and the whole table is covered at least every 16 s
///   (GC_MAX_SCAN_JIFFIES).
/// - `perEntryTimers` (before v4.7): every entry had its own timer.
///
/// A delayed work fires late by up to the timer wheel's granularity at its
/// delay (kernel/time/timer.c: 8^level jiffies; 60 s lands in a level of
/// 2 s at HZ 250, 4.1 s at HZ 1000, 5.1 s at HZ 100): the worst gap adds the
/// coarsest of them.
///
/// Not modelled: other loads on the same host share the one worker and its
/// mean (they can only shorten the gap, the bound stays); lookups reap expired
/// entries in the chains they walk (they only lower the peak); after a drop the
/// worker also evicts closing TCP entries while the count is >= 95 % of max
/// (that is overflow already). `nf_conntrack_gc_scan_interval_max`, where a
/// kernel has it, is assumed at its default 60 s.
public struct GCModel: Sendable, Equatable {
    public enum Generation: String, Sendable, Equatable {
        case autotuned = "autotuned"
        case fixedInterval = "fixed-interval"
        case incremental = "incremental"
        case perEntryTimers = "per-entry-timers"
    }

    public var generation: Generation
    /// The kernel release the generation was chosen from, `nil` when unknown.
    public var kernelRelease: String?
    /// Which code the model was read from.
    public var source: String

    // Constants of the autotuned gc_worker (net/netfilter/nf_conntrack_core.c).
    public static let intervalMinSeconds = 1.0
    public static let intervalMaxSeconds = 60.0
    public static let remainingClampSeconds = 300.0
    public static let initialCount = 100.0
    public static let initialMeanSeconds = 60.0
    /// GC_SCAN_EXPIRED_MAX (64000 / HZ) per slice, one slice per jiffy.
    public static let reapCeilingPerSecond = 64_000.0
    /// GC_SCAN_INTERVAL of the fixed-interval generation.
    public static let fixedIntervalSeconds = 120.0
    /// GC_MAX_SCAN_JIFFIES of the incremental generation.
    public static let incrementalFullScanSeconds = 16.0

    /// The generation the kernel `release` runs; the newest when unknown.
    public static func forKernel(_ release: String?) -> GCModel {
        guard let release, let version = KernelVersion(release) else {
            return GCModel(
                generation: .autotuned, kernelRelease: release,
                source: "kernel release unknown: assumed the gc_worker of 5.18+ (2cfadb761d3d, 2aa192757005)")
        }
        let generation = generation(for: version)
        let source: String
        switch generation {
        case .autotuned:
            source =
                """
                gc_worker of \(release): autotuned interval (2cfadb761d3d, v5.18; 5.15.34, 5.16.20, 5.17.3; 95eabdd20702 and \
                2aa192757005, v6.1)
                """
        case .fixedInterval:
            source = "gc_worker of \(release): one full pass every 120 s (4608fdfc07e1, v5.14; 5.4.143, 5.10.61, 5.13.13)"
        case .incremental:
            source = "gc_worker of \(release): 1/128 of the table per run, full table every 16 s (b87a2f9199ea, e0df8cae6c16, v4.7-5.13)"
        case .perEntryTimers:
            source = "\(release) predates gc_worker (v4.7): every entry has its own timer"
        }
        return GCModel(generation: generation, kernelRelease: release, source: source)
    }

    static func generation(for version: KernelVersion) -> Generation {
        let (major, minor, patch) = (version.major, version.minor, version.patch)
        if major > 5 || (major == 5 && minor >= 18) { return .autotuned }
        if major == 5 {
            // Stable backports of 2cfadb761d3d.
            let autotunedFrom: [Int: Int] = [15: 34, 16: 20, 17: 3]
            if let first = autotunedFrom[minor] { return patch >= first ? .autotuned : .fixedInterval }
            if minor == 14 { return .fixedInterval }
            // Stable backports of 4608fdfc07e1. A distribution release that
            // hides the stable patch level (5.10.0-NN) gets the longer gap.
            let fixedFrom: [Int: Int] = [4: 143, 10: 61, 13: 13]
            if let first = fixedFrom[minor] {
                return patch >= first || (patch == 0 && version.hasSuffix) ? .fixedInterval : .incremental
            }
            return .incremental
        }
        if major == 4 && minor >= 7 { return .incremental }
        return .perEntryTimers
    }

    /// The gap between passes once the load runs: for the autotuned worker
    /// the clamped running mean of the live entries' remaining lifetimes.
    ///
    /// - Parameters:
    ///   - liveEntries: live (unexpired) entries the pass sees.
    ///   - remainingSum: the sum of their remaining lifetimes, each clamped to
    ///     [1 s, 300 s].
    public func steadyGapSeconds(liveEntries: Double, remainingSum: Double) -> Double {
        switch generation {
        case .autotuned:
            let mean = (Self.initialCount * Self.initialMeanSeconds + remainingSum) / (Self.initialCount + liveEntries)
            return Swift.min(Swift.max(mean.isFinite ? mean : Self.intervalMaxSeconds, Self.intervalMinSeconds), Self.intervalMaxSeconds)
        case .fixedInterval: return Self.fixedIntervalSeconds
        case .incremental: return Self.incrementalFullScanSeconds
        case .perEntryTimers: return 0
        }
    }

    /// The longest gap: a load that starts right after a pass on a quiet host
    /// (the mean is then the seed's 60 s) waits this long for the first reap.
    public var worstGapSeconds: Double {
        let gap: Double
        switch generation {
        case .autotuned: gap = Self.intervalMaxSeconds
        case .fixedInterval: gap = Self.fixedIntervalSeconds
        case .incremental: gap = Self.incrementalFullScanSeconds
        case .perEntryTimers: return 0
        }
        return gap + Self.timerSlackSeconds(gap)
    }

    /// Entries the worker can reap per second, `nil` when the code has no cap.
    public var reapCeilingPerSecond: Double? {
        generation == .autotuned ? Self.reapCeilingPerSecond : nil
    }

    /// How late a delayed work of `seconds` may fire: the timer wheel rounds
    /// its expiry up to the granularity of the level it lands in (8^level
    /// jiffies, 64 slots per level), the coarsest of HZ 100, 250 and 1000.
    public static func timerSlackSeconds(_ seconds: Double) -> Double {
        [100.0, 250, 1000].map { hz in
            let jiffies = seconds * hz
            var level = 0.0
            // Level n holds delays below 64 x 8^n jiffies.
            while jiffies >= 64 * pow(8, level) && level < 8 { level += 1 }
            return pow(8, level) / hz
        }.max() ?? 0
    }

    /// The mean of clamp(u, 1, 300) for u uniform on (0, timeout]: the
    /// clamped remaining lifetime of entries counting down one timeout.
    public static func meanClampedCountdown(_ timeout: Double) -> Double {
        let low = intervalMinSeconds, high = remainingClampSeconds
        guard timeout > low else { return low }
        if timeout <= high { return (low * low + (timeout * timeout - low * low) / 2) / timeout }
        return (low * low + (high * high - low * low) / 2 + high * (timeout - high)) / timeout
    }

    /// An entry whose timer every packet refreshes (an established flow)
    /// always shows about its full timeout, clamped.
    public static func clampedRefreshed(_ timeout: Double) -> Double {
        Swift.min(Swift.max(timeout, intervalMinSeconds), remainingClampSeconds)
    }
}

/// The numeric part of a kernel release (`6.1.0-28-cloud-amd64` → 6.1.0).
struct KernelVersion: Equatable {
    var major: Int
    var minor: Int
    var patch: Int
    /// Something follows the numbers (a distribution's ABI and flavour).
    var hasSuffix: Bool

    init?(_ release: String) {
        let numeric = release.prefix { $0.isNumber || $0 == "." }
        let parts = numeric.split(separator: ".").map { Int($0) }
        guard parts.count >= 2, let major = parts[0], let minor = parts[1], major < 100, minor < 1000 else { return nil }
        self.major = major
        self.minor = minor
        self.patch = parts.count > 2 ? Swift.min(parts[2] ?? 0, 100_000) : 0
        self.hasSuffix = numeric.count < release.count
    }
}
