import Foundation
import SystemPackage

/// What cttune knows about a host: the planner's only input besides the profile.
///
/// A value type with no behaviour of its own, so tests build one in a line and
/// the planner stays a pure function. `gather(from:)` reads a live host or a
/// fixture tree.
public struct HostFacts: Sendable, Equatable {
    public var memoryBytes: Int
    public var cpus: Int
    /// `uname -r`; `nil` when the tree does not say.
    public var kernelRelease: String?
    public var pageSizeBytes: Int
    public var conntrack: ConntrackPresence
    /// Kernel memory per conntrack entry (slab slot size).
    public var entryBytes: Int
    public var entryBytesSource: EntrySizeSource
    /// Live entries in this network namespace (`nf_conntrack_count`).
    public var count: Int?
    public var netns: NetworkNamespace?
    /// Current values; a key is missing when the kernel does not expose it.
    public var current: [ConntrackSetting: Int]
    /// Why a setting cannot be written from here; absent means writable.
    public var blockers: [ConntrackSetting: String]

    public init(
        memoryBytes: Int, cpus: Int, kernelRelease: String? = nil, pageSizeBytes: Int = 4096,
        conntrack: ConntrackPresence = .builtIn, entryBytes: Int = HostFacts.fallbackEntryBytes,
        entryBytesSource: EntrySizeSource = .fallback, count: Int? = nil,
        netns: NetworkNamespace? = .initial, current: [ConntrackSetting: Int] = [:],
        blockers: [ConntrackSetting: String] = [:]
    ) {
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.kernelRelease = kernelRelease
        self.pageSizeBytes = pageSizeBytes
        self.conntrack = conntrack
        self.entryBytes = entryBytes
        self.entryBytesSource = entryBytesSource
        self.count = count
        self.netns = netns
        self.current = current
        self.blockers = blockers
    }

    /// Entry size assumed when neither /proc/slabinfo nor /sys/kernel/slab
    /// says: a common figure on distribution kernels (debug options and
    /// extensions make entries larger than the 256 B measured on 6.18).
    public static let fallbackEntryBytes = 320
}

/// How nf_conntrack is present in the kernel.
public enum ConntrackPresence: String, Sendable, Equatable, Codable {
    case builtIn = "built-in"
    /// A loadable module, loaded now.
    case module = "module"
    /// A loadable module that is installed but not loaded.
    case notLoaded = "not-loaded"
    case absent = "absent"
}

public enum EntrySizeSource: String, Sendable, Equatable {
    case slabinfo = "/proc/slabinfo"
    case sysfs = "/sys/kernel/slab"
    case fallback = "fallback"
}

/// Which network namespace cttune runs in, as far as the kernel lets it tell:
/// global settings are writable only in the initial one.
public enum NetworkNamespace: String, Sendable, Equatable {
    case initial = "initial"
    case nonInitial = "non-initial"
}

extension HostFacts {
    /// Reads the facts of the host (or tree) under `root`.
    ///
    /// - Parameters:
    ///   - memoryBytes: plan for this much RAM instead of MemTotal (`--memory`).
    ///   - cpus: plan for this many CPUs instead of the online ones (`--cpus`).
    ///   - kernel: plan for this kernel release (`--kernel`). By default the
    ///     running kernel (/proc/sys/kernel/osrelease under the root), else the
    ///     only directory under /lib/modules of the tree: the rule every
    ///     command shares (`ModuleTree.release`).
    /// - Throws: `TunerError` when a fact the planner needs is missing or a
    ///   present file cannot be read (`.ambiguousKernel` for a tree with several
    ///   kernels and no `kernel`). Absent optional files are facts, not errors.
    public static func gather(from root: SystemRoot, memoryBytes: Int? = nil, cpus: Int? = nil, kernel: String? = nil) throws -> HostFacts {
        let memory = try memoryBytes ?? readMemTotal(root)
        let cpuCount = try cpus ?? readOnlineCPUs(root)
        let running = try root.contents(of: KernelPaths.osRelease)?.trimmingCharacters(in: .whitespacesAndNewlines)
        let release = try ModuleTree.release(under: root, requested: kernel)
        if let kernel, kernel != running, !root.exists(KernelPaths.libModules.appending(kernel)) {
            let installed = root.entries(of: KernelPaths.libModules)
            throw TunerError.missingFact(
                fact: "the modules of kernel \(kernel)", path: try root.path(KernelPaths.libModules.appending(kernel)).string,
                fix: installed.isEmpty
                    ? "install that kernel's modules first, or drop --kernel"
                    : "pick an installed release with --kernel (\(installed.joined(separator: ", ")))")
        }
        let (entryBytes, entrySource) = readEntrySize(root)

        var current: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.allCases where setting != .hashsize {
            current[setting] = try root.integer(at: KernelPaths.sysctl(setting.key))
        }
        current[.hashsize] =
            try root.integer(at: KernelPaths.sysctl(bucketsSysctl))
            ?? root.integer(at: KernelPaths.conntrackHashsizeParameter)

        let maxPath = try root.path(KernelPaths.sysctl(ConntrackSetting.max.key))
        let netns: NetworkNamespace? = fileMode(maxPath.string).map { $0 & S_IWUSR != 0 ? .initial : .nonInitial }

        var blockers: [ConntrackSetting: String] = [:]
        for setting in ConntrackSetting.allCases {
            if let blocker = try writeBlocker(for: setting, root: root, netns: netns) { blockers[setting] = blocker }
        }

        return HostFacts(
            memoryBytes: memory, cpus: cpuCount, kernelRelease: release,
            pageSizeBytes: root.isLive ? Int(sysconf(Int32(_SC_PAGESIZE))) : 4096,
            conntrack: try readPresence(root, release: release, running: kernel == nil || kernel == running),
            entryBytes: entryBytes, entryBytesSource: entrySource,
            count: try root.integer(at: KernelPaths.sysctl("net.netfilter.nf_conntrack_count")),
            netns: netns, current: current, blockers: blockers)
    }

    /// The sysctl that reads and resizes the hash table (mode 0644 only in
    /// the initial network namespace).
    public static let bucketsSysctl = "net.netfilter.nf_conntrack_buckets"

    static func readMemTotal(_ root: SystemRoot) throws -> Int {
        guard let meminfo = try root.contents(of: KernelPaths.meminfo) else {
            throw TunerError.missingFact(
                fact: "the amount of RAM", path: try root.path(KernelPaths.meminfo).string,
                fix: "pass --memory SIZE (for example --memory 8G)")
        }
        for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        throw TunerError.malformed(path: try root.path(KernelPaths.meminfo).string, detail: "no \"MemTotal: N kB\" line")
    }

    static func readOnlineCPUs(_ root: SystemRoot) throws -> Int {
        guard let text = try root.contents(of: KernelPaths.onlineCPUs) else {
            throw TunerError.missingFact(
                fact: "the number of CPUs", path: try root.path(KernelPaths.onlineCPUs).string,
                fix: "pass --cpus N")
        }
        guard let count = CPUList.count(text) else {
            throw TunerError.malformed(
                path: try root.path(KernelPaths.onlineCPUs).string,
                detail: "expected a CPU list such as 0-3,8, found \"\(text.prefix(40))\"")
        }
        return count
    }

    /// The slab slot size of an nf_conntrack entry, else the fallback.
    static func readEntrySize(_ root: SystemRoot) -> (Int, EntrySizeSource) {
        guard let slab = try? SlabUsage.read(from: root) else { return (fallbackEntryBytes, .fallback) }
        return (slab.usage.objectBytes, slab.source)
    }

    /// - Parameter running: whether `release` is the running kernel, whose
    ///   /proc and /sys say more than its module index; another kernel's
    ///   presence comes from its tree's index only.
    static func readPresence(_ root: SystemRoot, release: String?, running: Bool = true) throws -> ConntrackPresence {
        if running, let modules = try root.contents(of: KernelPaths.procModules),
            modules.split(separator: "\n").contains(where: { $0.hasPrefix("nf_conntrack ") })
        {
            return .module
        }
        if running, root.exists(KernelPaths.conntrackModuleParameters) || root.exists(KernelPaths.sysctl(ConntrackSetting.max.key)) {
            return .builtIn
        }
        if let release {
            let directory = KernelPaths.libModules.appending(release)
            if let builtin = try root.contents(of: directory.appending("modules.builtin")),
                builtin.contains("/nf_conntrack.ko")
            {
                return .builtIn
            }
            if let dependencies = try root.contents(of: directory.appending("modules.dep")),
                dependencies.contains("/nf_conntrack.ko")
            {
                return .notLoaded
            }
        }
        return .absent
    }

    /// Why `setting` cannot be written from here, or `nil` when it can.
    ///
    /// Probes the file mode and access rights rather than guessing the
    /// namespace: outside the initial netns the kernel makes the global
    /// sysctls 0444, whatever the PID namespace says.
    static func writeBlocker(for setting: ConntrackSetting, root: SystemRoot, netns: NetworkNamespace?) throws -> String? {
        let sysctlKey = setting == .hashsize ? bucketsSysctl : setting.key
        var path = try root.path(KernelPaths.sysctl(sysctlKey)).string
        // Where nf_conntrack_buckets is read-only in the initial namespace
        // (older kernels), the hash size still changes through /sys/module.
        if setting == .hashsize, netns != .nonInitial, fileMode(path).map({ $0 & S_IWUSR == 0 }) ?? true,
            let parameter = try? root.path(KernelPaths.conntrackHashsizeParameter).string, fileMode(parameter) != nil
        {
            path = parameter
        }
        guard let mode = fileMode(path) else {
            return "\(sysctlKey) does not exist here — nf_conntrack is not loaded"
        }
        if mode & S_IWUSR == 0 {
            if setting.isGlobal {
                return "global setting, read-only in this network namespace — apply it on the host (initial namespace)"
            }
            return "\(path) is read-only"
        }
        if access(path, W_OK) != 0 {
            if errno == EROFS {
                return "\(path) is on a read-only file system (containers often mount /sys read-only) — apply it on the host"
            }
            return "\(path) is not writable: \(errnoText(Errno(rawValue: errno))) — run as root"
        }
        return nil
    }

    static func fileMode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode
    }
}

/// Kernel CPU lists such as `0-3,8,10-11`.
enum CPUList {
    static func count(_ text: String) -> Int? {
        var total = 0
        for part in text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0) }
            switch bounds.count {
            case 1:
                guard bounds[0] != nil else { return nil }
                total += 1
            case 2:
                guard let low = bounds[0], let high = bounds[1], high >= low else { return nil }
                total += high - low + 1
            default: return nil
            }
        }
        return total > 0 ? total : nil
    }
}
