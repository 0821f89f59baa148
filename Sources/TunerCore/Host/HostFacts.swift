import FoundationEssentials
import Glibc
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
    /// `uname -m` of the running kernel; `nil` for a tree.
    public var architecture: String?
    /// Kernel memory per conntrack entry (slab slot size), from a declared
    /// source (`EntrySize.resolve`), never from the live slab.
    public var entryBytes: Int
    public var entryBytesSource: EntrySizeSource
    /// Where `entryBytes` came from, for the plan and the file header.
    public var entryBytesDetail: String
    /// The live slab's object size, shown beside the declared size.
    public var liveSlabEntryBytes: Int?
    /// Live entries in this network namespace (`nf_conntrack_count`).
    public var count: Int?
    public var netns: NetworkNamespace?
    /// Whether `net.netfilter.nf_conntrack_buckets` resizes the hash here
    /// (`HashSizeNames.sysctl`); otherwise the module parameter or nothing does.
    public var bucketsSysctlWritable: Bool
    /// Current values; a key is missing when the kernel does not expose it.
    public var current: [ConntrackSetting: Int]
    /// Why a setting cannot be written from here; absent means writable.
    public var blockers: [ConntrackSetting: String]

    public init(
        memoryBytes: Int, cpus: Int, kernelRelease: String? = nil, pageSizeBytes: Int = 4096,
        conntrack: ConntrackPresence = .builtIn, architecture: String? = nil, entryBytes: Int = HostFacts.fallbackEntryBytes,
        entryBytesSource: EntrySizeSource = .fallback, entryBytesDetail: String = "", liveSlabEntryBytes: Int? = nil,
        count: Int? = nil,
        netns: NetworkNamespace? = .initial, bucketsSysctlWritable: Bool = true, current: [ConntrackSetting: Int] = [:],
        blockers: [ConntrackSetting: String] = [:]
    ) {
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.kernelRelease = kernelRelease
        self.pageSizeBytes = pageSizeBytes
        self.conntrack = conntrack
        self.architecture = architecture
        self.entryBytes = entryBytes
        self.entryBytesSource = entryBytesSource
        self.entryBytesDetail = entryBytesDetail
        self.liveSlabEntryBytes = liveSlabEntryBytes
        self.count = count
        self.netns = netns
        self.bucketsSysctlWritable = bucketsSysctlWritable
        self.current = current
        self.blockers = blockers
    }

    /// Entry size assumed when no declared source says (`EntrySize`).
    public static let fallbackEntryBytes = EntrySize.fallbackBytes
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
    ///     command shares (`KernelRelease.resolve`).
    ///   - entryBytes: bytes per entry instead of the table or BTF (`--entry-size`).
    /// - Throws: `TunerError` when a fact the planner needs is missing or a
    ///   present file cannot be read (`.ambiguousKernel` for a tree with several
    ///   kernels and no `kernel`). Absent optional files are facts, not errors.
    public static func gather(
        from root: SystemRoot, memoryBytes: Int? = nil, cpus: Int? = nil, kernel: String? = nil, entryBytes: Int? = nil
    ) throws -> HostFacts {
        let memory = try memoryBytes ?? readMemTotal(root)
        let cpuCount = try cpus ?? readOnlineCPUs(root)
        let running = try readRelease(root)
        let release = try KernelRelease.resolve(under: root, requested: kernel)
        if let kernel, kernel != running, !root.exists(KernelPaths.libModules.appending(kernel)) {
            let installed = root.entries(of: KernelPaths.libModules)
            throw TunerError.missingFact(
                fact: "the modules of kernel \(kernel)", path: try root.path(KernelPaths.libModules.appending(kernel)).string,
                fix: installed.isEmpty
                    ? "install that kernel's modules first, or drop --kernel"
                    : "pick an installed release with --kernel (\(installed.joined(separator: ", ")))")
        }
        let architecture = root.isLive ? machine() : nil
        let entry = EntrySize.resolve(
            flag: entryBytes, release: release, architecture: architecture, btf: { BTFReader.conntrackEntrySize(root) })

        var current: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.allCases where setting != .hashsize {
            current[setting] = try root.integer(at: KernelPaths.sysctl(setting.key))
        }
        current[.hashsize] =
            try root.integer(at: KernelPaths.sysctl(HashSizeNames.sysctl))
            ?? root.integer(at: KernelPaths.conntrackHashsizeParameter)

        let netns = networkNamespace(root)
        let bucketsWritable = ownerWritable(KernelPaths.sysctl(HashSizeNames.sysctl), root) ?? false

        var blockers: [ConntrackSetting: String] = [:]
        for setting in ConntrackSetting.allCases {
            if let blocker = try writeBlocker(for: setting, root: root, netns: netns, bucketsSysctlWritable: bucketsWritable) {
                blockers[setting] = blocker
            }
        }

        return HostFacts(
            memoryBytes: memory, cpus: cpuCount, kernelRelease: release,
            pageSizeBytes: root.isLive ? Int(sysconf(Int32(_SC_PAGESIZE))) : 4096,
            conntrack: try readPresence(root, release: release, running: kernel == nil || kernel == running),
            architecture: architecture, entryBytes: entry.bytes, entryBytesSource: entry.source,
            entryBytesDetail: entry.detail, liveSlabEntryBytes: (try? SlabUsage.read(from: root))??.usage.objectBytes,
            count: try root.integer(at: KernelPaths.sysctl("net.netfilter.nf_conntrack_count")),
            netns: netns, bucketsSysctlWritable: bucketsWritable, current: current, blockers: blockers)
    }

    /// Whether the kernel lets the owner write `file` here, `nil` when it
    /// does not exist: the one probe of writability. The kernel sets the
    /// mode per namespace (global sysctls are 0444 outside the initial one,
    /// nf_conntrack_buckets was 0444 everywhere before it became writable).
    public static func ownerWritable(_ file: FilePath, _ root: SystemRoot) -> Bool? {
        root.fileMode(file).map { $0 & S_IWUSR != 0 }
    }

    /// Which network namespace this process is in: the one decision, by
    /// probing nf_conntrack_max (a global setting, writable only in the
    /// initial namespace), never by a PID 1 comparison, which is wrong in
    /// containers with their own PID namespace.
    public static func networkNamespace(_ root: SystemRoot) -> NetworkNamespace? {
        ownerWritable(KernelPaths.sysctl(ConntrackSetting.max.key), root).map { $0 ? .initial : .nonInitial }
    }

    static func readMemTotal(_ root: SystemRoot) throws -> Int {
        guard let meminfo = try root.contents(of: KernelPaths.meminfo, limit: ReadLimit.kernelTable) else {
            throw TunerError.missingFact(
                fact: "the amount of RAM", path: try root.path(KernelPaths.meminfo).string,
                fix: "pass --memory SIZE (for example --memory 8G)")
        }
        for line in meminfo.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kib = Int(fields[1]) {
                guard KernelValue.memTotalKiB.contains(kib) else {
                    throw TunerError.malformed(
                        path: try root.path(KernelPaths.meminfo).string,
                        detail:
                            """
                            MemTotal is \(kib) kB, which no machine reports (expected \(KernelValue.memTotalKiB.lowerBound) \
                            to \(KernelValue.memTotalKiB.upperBound) kB) — copy it again from a running system, or pass \
                            --memory SIZE
                            """
                    )
                }
                return kib * 1024
            }
        }
        throw TunerError.malformed(path: try root.path(KernelPaths.meminfo).string, detail: "no \"MemTotal: N kB\" line")
    }

    static func readOnlineCPUs(_ root: SystemRoot) throws -> Int {
        guard let text = try root.contents(of: KernelPaths.onlineCPUs, limit: ReadLimit.kernelValue) else {
            throw TunerError.missingFact(
                fact: "the number of CPUs", path: try root.path(KernelPaths.onlineCPUs).string,
                fix: "pass --cpus N")
        }
        guard let count = CPUList.count(text) else {
            throw TunerError.malformed(
                path: try root.path(KernelPaths.onlineCPUs).string,
                detail:
                    """
                    expected a CPU list such as 0-3,8 (CPU numbers \(KernelValue.cpuNumber.lowerBound) to \
                    \(KernelValue.cpuNumber.upperBound)), found \
                    \(Echo.quoted(text.trimming(.whitespacesAndNewlines), limit: 40)) — copy it again from a \
                    running system, or pass --cpus N
                    """
            )
        }
        return count
    }

    /// `uname -m`: the table of entry sizes is keyed by it.
    static func machine() -> String? {
        var name = utsname()
        guard uname(&name) == 0 else { return nil }
        return withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// `uname -r` as the tree records it: one line of printable text.
    static func readRelease(_ root: SystemRoot) throws -> String? {
        guard let text = try root.contents(of: KernelPaths.osRelease, limit: ReadLimit.kernelValue) else { return nil }
        let release = text.trimming(.whitespacesAndNewlines)
        guard PathName.isOneComponent(release),
            release.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7f })
        else {
            throw TunerError.malformed(
                path: try root.path(KernelPaths.osRelease).string,
                detail: "expected a kernel release such as 6.1.0-28-cloud-amd64, found \(Echo.quoted(release, limit: 40))")
        }
        return release
    }

    /// - Parameter running: whether `release` is the running kernel, whose
    ///   /proc and /sys say more than its module index; another kernel's
    ///   presence comes from its tree's index only.
    static func readPresence(_ root: SystemRoot, release: String?, running: Bool = true) throws -> ConntrackPresence {
        if running, let modules = try root.contents(of: KernelPaths.procModules, limit: ReadLimit.kernelTable),
            modules.split(separator: "\n").contains(where: { $0.hasPrefix("nf_conntrack ") })
        {
            return .module
        }
        if running, root.exists(KernelPaths.conntrackModuleParameters) || root.exists(KernelPaths.sysctl(ConntrackSetting.max.key)) {
            return .builtIn
        }
        if let release {
            let directory = KernelPaths.libModules.appending(release)
            if let builtin = try root.contents(of: directory.appending("modules.builtin"), limit: ReadLimit.moduleIndex),
                builtin.contains("/nf_conntrack.ko")
            {
                return .builtIn
            }
            if let dependencies = try root.contents(of: directory.appending("modules.dep"), limit: ReadLimit.moduleIndex),
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
    static func writeBlocker(
        for setting: ConntrackSetting, root: SystemRoot, netns: NetworkNamespace?, bucketsSysctlWritable: Bool
    ) throws -> String? {
        let sysctlKey = setting == .hashsize ? HashSizeNames.sysctl : setting.key
        var file = KernelPaths.sysctl(sysctlKey)
        // Where nf_conntrack_buckets is read-only in the initial namespace
        // (older kernels), the hash size still changes through /sys/module.
        if setting == .hashsize, netns != .nonInitial, !bucketsSysctlWritable,
            root.fileMode(KernelPaths.conntrackHashsizeParameter) != nil
        {
            file = KernelPaths.conntrackHashsizeParameter
        }
        let path = try root.path(file).string
        guard let writable = ownerWritable(file, root) else {
            return "\(sysctlKey) does not exist here — nf_conntrack is not loaded"
        }
        if !writable {
            if setting.isGlobal {
                return "global setting, read-only in this network namespace — apply it on the host (initial namespace)"
            }
            return "\(path) is read-only"
        }
        if let denied = root.writeDenied(file) {
            if denied == .readOnlyFileSystem {
                return "\(path) is on a read-only file system (containers often mount /sys read-only) — apply it on the host"
            }
            return "\(path) is not writable: \(errnoText(denied)) — run as root"
        }
        return nil
    }
}

/// Kernel CPU lists such as `0-3,8,10-11`.
enum CPUList {
    /// The number of CPUs listed, or `nil` when the text is not a CPU list
    /// the kernel could write (a negative number, an open range, a number
    /// beyond `KernelValue.cpuNumber`).
    static func count(_ text: String) -> Int? {
        var total = 0
        for part in text.trimming(.whitespacesAndNewlines).split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map(number)
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
        return total > 0 && total <= KernelValue.cpuNumber.count ? total : nil
    }

    /// One CPU number: digits only, within the range.
    static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
            KernelValue.cpuNumber.contains(value)
        else { return nil }
        return value
    }
}
