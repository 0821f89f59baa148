import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// The cheap, fast-moving numbers of one network namespace's table at one
/// instant: taken twice (or every `--watch` interval) to compute rates.
public struct ConntrackSample: Sendable, Equatable {
    /// CLOCK_MONOTONIC seconds when it was taken; only differences matter.
    public var takenAt: Double
    /// Live entries in this network namespace (`nf_conntrack_count`).
    public var count: Int
    /// The global table limit every namespace's count is checked against.
    public var max: Int
    /// Hash buckets (global); `nil` when the kernel does not expose them.
    public var buckets: Int?
    /// Per-CPU statistics summed, named by the kernel's column header
    /// (`drop`, `insert_failed`, …); counted since the namespace was created.
    public var counters: [String: Int]

    public init(takenAt: Double, count: Int, max: Int, buckets: Int? = nil, counters: [String: Int] = [:]) {
        self.takenAt = takenAt
        self.count = count
        self.max = max
        self.buckets = buckets
        self.counters = counters
    }

    /// The counters `status` reports, in the order it prints them.
    public static let reportedCounters = ["found", "invalid", "insert", "insert_failed", "drop", "early_drop", "search_restart"]

    /// Counters whose rise means a packet was dropped for lack of a table slot
    /// or a failed insert: the seed's connection failures.
    public static let packetLossCounters = ["drop", "insert_failed"]

    public func counter(_ name: String) -> Int { counters[name] ?? 0 }

    public var fillRatio: Double { max > 0 ? Double(count) / Double(max) : 0 }

    /// Reads the sample of the network namespace this process runs in.
    ///
    /// - Throws: `TunerError.conntrackNotLoaded` when there is no
    ///   nf_conntrack_count (nothing is tracked here); `unreadable`/`malformed`
    ///   for files that exist but cannot be used.
    /// The corresponding files are `/proc/sys/net/netfilter/nf_conntrack_{count,max,buckets}`
    /// and `/proc/net/stat/nf_conntrack`.
    /// - Parameter statPath: `KernelPaths.threadConntrackStat` on a thread that entered another namespace.
    public static func read(from root: SystemRoot, statPath: FilePath = KernelPaths.conntrackStat) throws -> ConntrackSample {
        guard let count = try root.integer(at: KernelPaths.conntrackCount),
            let max = try root.integer(at: KernelPaths.sysctl(ConntrackSetting.max.key))
        else { throw TunerError.conntrackNotLoaded(path: try root.path(KernelPaths.conntrackCount).string) }
        let buckets = try root.integer(at: KernelPaths.sysctl(HashSizeNames.sysctl))
        var counters: [String: Int] = [:]
        if let table = try root.contents(of: statPath) {
            counters = try ConntrackStatTable.sum(table, path: try root.path(statPath).string)
        }
        return ConntrackSample(takenAt: MonotonicClock.seconds(), count: count, max: max, buckets: buckets, counters: counters)
    }
}

/// /proc/net/stat/nf_conntrack: a header row of column names, then one row
/// of hexadecimal counters per possible CPU.
enum ConntrackStatTable {
    /// Sums each column over the CPU rows, keyed by the header's names (the
    /// column set changes between kernels, so positions are never assumed).
    /// The `entries` column repeats the namespace's count on every row and is
    /// taken once, not summed.
    static func sum(_ text: String, path: String) throws -> [String: Int] {
        var lines = text.split(separator: "\n").makeIterator()
        guard let header = lines.next()?.split(separator: " ").map(String.init), !header.isEmpty else {
            throw TunerError.malformed(path: path, detail: "no header row of counter names")
        }
        var totals: [String: Int] = [:]
        for line in IteratorSequence(lines) {
            let fields = line.split(separator: " ")
            guard fields.count == header.count else {
                throw TunerError.malformed(path: path, detail: "a row has \(fields.count) fields, the header names \(header.count)")
            }
            for (name, field) in zip(header, fields) {
                guard let value = Int(field, radix: 16) else {
                    throw TunerError.malformed(path: path, detail: "\(name) is not hexadecimal: \"\(field.prefix(20))\"")
                }
                totals[name] = name == "entries" ? value : (totals[name] ?? 0) + value
            }
        }
        return totals
    }
}

/// Which network namespace this process is in: the kind the kernel lets us
/// tell by probing (global sysctls are writable only in the initial one) and
/// the inode that names it in `ip netns identify`, kernel log lines and labels.
public struct NamespaceIdentity: Sendable, Equatable {
    public var kind: NetworkNamespace?
    /// From the link `/proc/self/ns/net` → `net:[INODE]`.
    public var inode: UInt64?

    public init(kind: NetworkNamespace?, inode: UInt64?) {
        self.kind = kind
        self.inode = inode
    }

    /// The kind as `HostFacts.networkNamespace` decides it.
    public static func probe(_ root: SystemRoot) throws -> NamespaceIdentity {
        NamespaceIdentity(
            kind: HostFacts.networkNamespace(root), inode: inode(of: try root.path(KernelPaths.ownNetworkNamespace).string))
    }

    static func inode(of link: String) -> UInt64? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link),
            target.hasPrefix("net:["), target.hasSuffix("]")
        else { return nil }
        return UInt64(target.dropFirst(5).dropLast())
    }

    /// `initial` or `non-initial`, with the inode when known.
    public var label: String {
        let kindText = kind?.rawValue ?? "unknown"
        return inode.map { "\(kindText), net:[\($0)]" } ?? kindText
    }
}

enum MonotonicClock {
    /// CLOCK_MONOTONIC in seconds: immune to wall-clock steps between samples.
    static func seconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// CLOCK_BOOTTIME in seconds: the clock kernel log timestamps are closest
    /// to, as `dmesg -T` assumes.
    static func secondsSinceBoot() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
