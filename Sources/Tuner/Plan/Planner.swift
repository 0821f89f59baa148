import Foundation

/// Sizes the conntrack table, its hash and its timeouts from host facts and a
/// load profile.
///
/// A pure function: no clock, no environment, no files. The model (see
/// DESIGN.md) is Little's law per flow class — entries = new flows/s × dwell —
/// where dwell includes the closing state's timeout and the garbage
/// collector's latency, then peak = mean × burst factor and
/// max = peak × headroom. When the table does not fit the memory budget, the
/// timeouts the profile leaves free are shortened (never below their floors)
/// before the plan gives up and says what the load needs.
public enum Planner {
    /// The kernel allocates whole pages of bucket pointers: a requested hash
    /// size is rounded up to PAGE_SIZE / 8 (512 on 4 KiB pages; measured:
    /// 1000 → 1024, 513 → 1024).
    public static let hashPointerBytes = 8
    /// nf_conntrack_init_start never sizes the hash below 1024 buckets.
    public static let minimumBuckets = 1024
    /// Below this a table is too small to absorb a single burst of a busy
    /// client; it is also the size of four pages of buckets.
    public static let minimumConntrackMax = 2048
    /// How long an expired entry stays in the table before the gc_worker
    /// reaps it, at the peak of the sawtooth. Measured on kernel 6.18
    /// (loopback TCP, 300-500 new flows/s, client closes, time_wait T): on an
    /// idle host GC passes came every 25-29 s at T = 10 s, 18 s at T = 30 s
    /// and 8-30 s at T = 60 s; with the CPUs busy the worker rescans back to
    /// back and the peak is about R x T. 25 s sizes for the long gaps of an
    /// idle host (under-sizing is the outage) while staying within 25 % of a
    /// busy host's peak at the boot time_wait (120 s). The real-kernel tests
    /// re-measure it (PlanMatchesKernelTests, OutageAndCureTests); profiles
    /// override it with `gc_latency_seconds`.
    public static let measuredGCLatencySeconds = 25.0

    public static func plan(for facts: HostFacts, profile: LoadProfile) -> TuningPlan {
        let budgetBytes = Int((Double(facts.memoryBytes) * profile.memoryBudgetPercent / 100).rounded(.down))
        var timeouts = startingTimeouts(facts: facts, profile: profile)
        var sizing = size(timeouts: timeouts, facts: facts, profile: profile)
        var shortened: Set<ConntrackSetting> = []

        // Shorten the free timeouts, the one holding the most entries first,
        // each only as far as needed and never below its floor.
        while sizing.memoryBytes > budgetBytes {
            let candidates = sizing.entriesByTimeout
                .filter { setting, _ in profile.pinnedTimeouts[setting] == nil && timeouts[setting]! > floor(setting, profile) }
                .sorted { $0.value > $1.value }
            guard let (setting, _) = candidates.first else { break }
            timeouts[setting] = largestFittingTimeout(setting, timeouts: timeouts, facts: facts, profile: profile, budgetBytes: budgetBytes)
            shortened.insert(setting)
            sizing = size(timeouts: timeouts, facts: facts, profile: profile)
        }
        let fits = sizing.memoryBytes <= budgetBytes

        var settings = [
            TuningPlan.Setting(
                setting: .max, current: facts.current[.max], planned: sizing.max, blocker: facts.blockers[.max],
                reason: sizing.maxReason, arithmetic: sizing.maxArithmetic),
            TuningPlan.Setting(
                setting: .hashsize, current: facts.current[.hashsize], planned: sizing.buckets, blocker: facts.blockers[.hashsize],
                reason: "max / chain length \(profile.chainLength), multiple of \(bucketGranularity(facts))",
                arithmetic: [
                    "\(sizing.max) / \(profile.chainLength) = \(sizing.max / profile.chainLength), rounded up to a multiple of \(bucketGranularity(facts)), at least \(minimumBuckets) = \(sizing.buckets)"
                ]),
        ]
        for setting in ConntrackSetting.timeouts {
            let planned = timeouts[setting]!
            let entries = sizing.entriesByTimeout[setting]
            let reason: String
            if profile.pinnedTimeouts[setting] != nil {
                reason = "pinned by the profile"
            } else if shortened.contains(setting) {
                reason =
                    planned == floor(setting, profile)
                    ? "shortened to its floor \(planned) s to fit the memory budget"
                    : "shortened to fit the memory budget (floor \(floor(setting, profile)) s)"
            } else if facts.current[setting] == nil {
                reason = "kernel default (not readable here)"
            } else {
                reason = "unchanged"
            }
            settings.append(
                TuningPlan.Setting(
                    setting: setting, current: facts.current[setting], planned: planned, blocker: facts.blockers[setting],
                    reason: reason, arithmetic: entries.map { ["holds \(Int($0.rounded())) of the mean entries"] } ?? []))
        }

        return TuningPlan(
            profile: profile, facts: facts, settings: settings,
            estimate: TuningPlan.Estimate(
                flowClasses: sizing.flowClasses, gcLatencySeconds: sizing.gcLatencySeconds, gcLatencySource: sizing.gcLatencySource,
                meanEntries: sizing.meanEntries, peakEntries: sizing.peakEntries,
                memoryBytes: sizing.memoryBytes, budgetBytes: budgetBytes),
            fitsBudget: fits,
            advice: advice(facts: facts, profile: profile, sizing: sizing, budgetBytes: budgetBytes, fits: fits),
            anchors: [Anchors.kernelDefault(memoryBytes: facts.memoryBytes), Anchors.kubeProxy(cpus: facts.cpus)])
    }

    // MARK: - The model

    /// One evaluation of the model for a set of timeouts.
    struct Sizing {
        var flowClasses: [TuningPlan.FlowClass]
        var entriesByTimeout: [ConntrackSetting: Double]
        var gcLatencySeconds: Double
        var gcLatencySource: String
        var meanEntries: Double
        var peakEntries: Int
        var max: Int
        var maxReason: String
        var maxArithmetic: [String]
        var buckets: Int
        var memoryBytes: Int
    }

    static func startingTimeouts(facts: HostFacts, profile: LoadProfile) -> [ConntrackSetting: Int] {
        var timeouts: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.timeouts {
            timeouts[setting] = profile.pinnedTimeouts[setting] ?? facts.current[setting] ?? setting.kernelDefaultSeconds!
        }
        return timeouts
    }

    static func floor(_ setting: ConntrackSetting, _ profile: LoadProfile) -> Int {
        profile.timeoutFloors[setting] ?? LoadProfile.defaultTimeoutFloors[setting] ?? 1
    }

    static func bucketGranularity(_ facts: HostFacts) -> Int {
        Swift.max(1, facts.pageSizeBytes / hashPointerBytes)
    }

    static func size(timeouts: [ConntrackSetting: Int], facts: HostFacts, profile: LoadProfile) -> Sizing {
        func t(_ setting: ConntrackSetting) -> Double { Double(timeouts[setting]!) }
        let tcp = profile.tcp, udp = profile.udp
        let closingRate = tcp.newPerSecond * (1 - tcp.orphanRatio - tcp.halfOpenRatio)

        let gcLatency = profile.gcLatencySeconds ?? measuredGCLatencySeconds
        let gcSource =
            profile.gcLatencySeconds != nil
            ? "gc_latency_seconds in the profile"
            : "measured on 6.x: GC passes every 8-30 s on an idle host; the kernel bounds the gap at 60 s"

        func whole(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value) }
        let g = whole(gcLatency)
        var classes: [TuningPlan.FlowClass] = []
        var byTimeout: [ConntrackSetting: Double] = [:]
        func add(_ name: String, rate: Double, _ parts: [(seconds: Double, label: String, setting: ConntrackSetting?)]) {
            guard rate > 0 else { return }
            let dwell = parts.reduce(gcLatency) { $0 + $1.seconds }
            classes.append(
                .init(
                    name: name, flowsPerSecond: rate, dwellSeconds: dwell,
                    dwellFormula: (parts.map { "\(whole($0.seconds)) s \($0.label)" } + ["\(g) s GC"]).joined(separator: " + ")))
            for part in parts { if let setting = part.setting { byTimeout[setting, default: 0] += rate * part.seconds } }
        }
        add(
            "tcp, closed", rate: closingRate,
            [
                (tcp.establishedSeconds, "established", nil),
                (
                    (1 - tcp.rstCloseRatio) * t(.tcpTimeoutTimeWait),
                    "time_wait (\(whole(1 - tcp.rstCloseRatio)) x \(whole(t(.tcpTimeoutTimeWait))) s)", .tcpTimeoutTimeWait
                ),
                (
                    tcp.rstCloseRatio * t(.tcpTimeoutClose), "close (\(whole(tcp.rstCloseRatio)) x \(whole(t(.tcpTimeoutClose))) s)",
                    .tcpTimeoutClose
                ),
            ].filter { $0.seconds > 0 || $0.setting == nil })
        add(
            "tcp, orphaned", rate: tcp.newPerSecond * tcp.orphanRatio,
            [
                (tcp.establishedSeconds, "established", nil),
                (t(.tcpTimeoutEstablished), "established timeout", .tcpTimeoutEstablished),
            ])
        add("tcp, half-open", rate: tcp.newPerSecond * tcp.halfOpenRatio, [(t(.tcpTimeoutSynSent), "syn_sent", .tcpTimeoutSynSent)])
        add(
            "udp", rate: udp.newPerSecond,
            [
                ((1 - udp.streamRatio) * t(.udpTimeout), "udp (\(whole(1 - udp.streamRatio)) x \(whole(t(.udpTimeout))) s)", .udpTimeout),
                (
                    udp.streamRatio * t(.udpTimeoutStream), "udp_stream (\(whole(udp.streamRatio)) x \(whole(t(.udpTimeoutStream))) s)",
                    .udpTimeoutStream
                ),
            ].filter { $0.seconds > 0 })
        add("other", rate: profile.otherPerSecond, [(t(.genericTimeout), "generic", .genericTimeout)])

        let mean = classes.reduce(0) { $0 + $1.meanEntries }
        let peak = Int((mean * profile.burstFactor).rounded(.up))
        let granularity = bucketGranularity(facts)
        let sized = roundUp(Int((Double(peak) * profile.headroom).rounded(.up)), to: granularity)
        var max = Swift.max(sized, minimumConntrackMax)
        var reason = "peak \(peak) entries x headroom \(whole(profile.headroom)), rounded"
        var arithmetic = [
            "mean entries = sum of flows/s x dwell = \(Int(mean.rounded()))",
            "peak = mean x burst factor \(whole(profile.burstFactor)) = \(peak)",
            "max = peak x headroom \(whole(profile.headroom)) = \(Int((Double(peak) * profile.headroom).rounded(.up))), rounded up to a multiple of \(granularity) = \(sized)",
        ]
        if sized < minimumConntrackMax {
            reason = "the load needs only \(sized); kept at the minimum \(minimumConntrackMax)"
            arithmetic.append("raised to the minimum table size \(minimumConntrackMax)")
        }
        // Never plan a table smaller than what is tracked right now: lowering
        // max below the live count drops every new flow until entries expire.
        if let count = facts.count {
            let live = roundUp(Int((Double(count) * profile.headroom).rounded(.up)), to: granularity)
            if live > max {
                max = live
                reason = "live count \(count) x headroom \(whole(profile.headroom)) exceeds the modelled peak"
                arithmetic.append("raised to the live count \(count) x headroom = \(live)")
            }
        }
        let buckets = Swift.max(minimumBuckets, roundUp((max + profile.chainLength - 1) / profile.chainLength, to: granularity))
        return Sizing(
            flowClasses: classes, entriesByTimeout: byTimeout, gcLatencySeconds: gcLatency, gcLatencySource: gcSource,
            meanEntries: mean, peakEntries: peak, max: max, maxReason: reason, maxArithmetic: arithmetic, buckets: buckets,
            memoryBytes: memoryBytes(max: max, buckets: buckets, entryBytes: facts.entryBytes))
    }

    /// Kernel memory for a full table: entries are slab objects allocated on
    /// demand, buckets one pointer each, allocated up front.
    public static func memoryBytes(max: Int, buckets: Int, entryBytes: Int) -> Int {
        max * entryBytes + buckets * hashPointerBytes
    }

    /// The largest value of `setting` (between its floor and its current
    /// value) at which the table fits the budget, or the floor when none does.
    /// Entries grow with every timeout, so a binary search finds it.
    static func largestFittingTimeout(
        _ setting: ConntrackSetting, timeouts: [ConntrackSetting: Int], facts: HostFacts,
        profile: LoadProfile, budgetBytes: Int
    ) -> Int {
        var low = floor(setting, profile), high = timeouts[setting]!
        var trial = timeouts
        while low < high {
            let middle = (low + high + 1) / 2
            trial[setting] = middle
            if size(timeouts: trial, facts: facts, profile: profile).memoryBytes <= budgetBytes { low = middle } else { high = middle - 1 }
        }
        return low
    }

    static func roundUp(_ value: Int, to multiple: Int) -> Int {
        (value + multiple - 1) / multiple * multiple
    }

    static func advice(facts: HostFacts, profile: LoadProfile, sizing: Sizing, budgetBytes: Int, fits: Bool) -> [String] {
        var advice: [String] = []
        if !fits {
            let neededPercent = (Double(sizing.memoryBytes) / Double(facts.memoryBytes) * 100 * 100).rounded(.up) / 100
            advice.append(
                "This load does not fit: the table needs \(mebibytes(sizing.memoryBytes)) MiB at max \(sizing.max), the budget is \(mebibytes(budgetBytes)) MiB (memory_budget_percent \(PlanReport.format(profile.memoryBudgetPercent)) of \(mebibytes(facts.memoryBytes)) MiB RAM), even with the free timeouts at their floors."
            )
            advice.append(
                "Options: raise memory_budget_percent to at least \(neededPercent); lower a timeout_floors entry or a pinned timeout (the largest share is \(sizing.entriesByTimeout.max { $0.value < $1.value }.map { $0.key.shortName } ?? "none")); or, if the firewall needs no connection state, go stateless (`cttune rules`, then --profile stateless)."
            )
        }
        if !profile.stateful {
            advice.append(
                "This profile declares that the firewall needs no connection state: check with `cttune rules`, then `cttune unload` and `cttune blacklist` remove conntrack; the table is kept small meanwhile."
            )
        }
        if facts.blockers[.max] != nil && facts.netns == .nonInitial {
            advice.append(
                "nf_conntrack_max and the hash size are global: apply them on the host; every network namespace's entries count against that one max."
            )
        }
        if facts.entryBytesSource == .fallback {
            advice.append(
                "Entry size unknown (no /proc/slabinfo or /sys/kernel/slab/nf_conntrack): assumed \(HostFacts.fallbackEntryBytes) B per entry."
            )
        }
        return advice
    }

    static func mebibytes(_ bytes: Int) -> String {
        String(format: "%.1f", Double(bytes) / 1_048_576)
    }
}

/// The load-blind formulas cttune is measured against.
public enum Anchors {
    /// nf_conntrack_init_start since v5.15: RAM / 16384 / 8 buckets, 65536
    /// above 1 GiB and 262144 above 4 GiB (64-bit), never below 1024; max =
    /// buckets.
    public static func kernelDefault(memoryBytes: Int) -> Anchor {
        var buckets = memoryBytes / 16384 / 8
        if memoryBytes > 4 << 30 { buckets = 262_144 } else if memoryBytes > 1 << 30 { buckets = 65_536 }
        buckets = Swift.max(buckets, 1024)
        return Anchor(
            name: "kernel default", max: buckets, buckets: buckets, establishedTimeoutSeconds: 432_000,
            source: "net/netfilter/nf_conntrack_core.c nf_conntrack_init_start (v5.15+)")
    }

    /// kube-proxy: max = max(131072, 32768 × CPUs), hashsize = max / 4,
    /// established 86400 s.
    public static func kubeProxy(cpus: Int) -> Anchor {
        let max = Swift.max(131_072, 32_768 * cpus)
        return Anchor(
            name: "kube-proxy", max: max, buckets: max / 4, establishedTimeoutSeconds: 86_400,
            source: "kubernetes pkg/proxy/conntrack (maxPerCore 32768, min 131072)")
    }
}
