import FoundationEssentials
import TunerCore

/// Sizes the conntrack table, its hash and its timeouts from host facts and a
/// load profile.
///
/// A pure function of the profile and the declared host facts (RAM, CPUs,
/// kernel release, entry size): no clock, no environment, no files, and no
/// live values (timeouts, count, slab), so the same inputs give the same plan
/// on every host and for every caller. The model (see DESIGN.md) is Little's
/// law per flow class — entries = new flows/s × burst × time in the table —
/// where the time in the table is the flow's lifetime plus the gap until the
/// kernel's GC reaps it (`GCModel`), at the steady gap and at the worst phase;
/// max = worst-phase peak × headroom. When the table does not fit the memory budget, the
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

    /// - Parameter rules: what the host's ruleset says about each class (the
    ///   facts a notrack cure needs); not judged: notrack is refused.
    public static func plan(for facts: HostFacts, profile: LoadProfile, rules: ClassRuleFacts = .notJudged) -> TuningPlan {
        let gc = GCModel.forKernel(facts.kernelRelease)
        let budgetBytes = saturatingInt(Double(Swift.max(facts.memoryBytes, 0)) * profile.memoryBudgetPercent / 100)
        var timeouts = startingTimeouts(profile: profile)
        let policies = Dictionary(
            uniqueKeysWithValues: profile.classes.compactMap { declared in
                CurePolicy.policy(for: declared, floors: { floor($0, profile) }, global: timeouts).map { (declared.name, $0) }
            })
        let decisions = profile.classes.map { decide($0, policy: policies[$0.name], rules: rules) }
        let cures = Dictionary(uniqueKeysWithValues: decisions.map { ($0.className, $0) })
        var sizing = size(timeouts: timeouts, facts: facts, profile: profile, gc: gc, cures: cures)
        var shortened: Set<ConntrackSetting> = []

        // Shorten the free timeouts, the one holding the most entries first,
        // each only as far as needed and never below its floor.
        while sizing.memoryBytes > budgetBytes {
            let candidates = sizing.entriesByTimeout
                .filter { setting, _ in profile.pinnedTimeouts[setting] == nil && timeouts[setting]! > floor(setting, profile) }
                .sorted { $0.value > $1.value }
            guard let (setting, _) = candidates.first else { break }
            timeouts[setting] = largestFittingTimeout(
                setting, timeouts: timeouts, facts: facts, profile: profile, gc: gc, cures: cures, budgetBytes: budgetBytes)
            shortened.insert(setting)
            sizing = size(timeouts: timeouts, facts: facts, profile: profile, gc: gc, cures: cures)
        }
        let fits = sizing.memoryBytes <= budgetBytes && sizing.overflow == nil
        let judged = withSavings(decisions, policies: policies, timeouts: timeouts, facts: facts, profile: profile, gc: gc)

        var settings = [
            TuningPlan.Setting(
                setting: .max, current: facts.current[.max], planned: sizing.max, blocker: facts.blockers[.max],
                reason: sizing.maxReason, arithmetic: sizing.maxArithmetic),
            TuningPlan.Setting(
                setting: .hashsize, current: facts.current[.hashsize], planned: sizing.buckets, blocker: facts.blockers[.hashsize],
                reason: "max / chain length \(profile.chainLength), multiple of \(bucketGranularity(facts))",
                arithmetic: [
                    """
                    \(sizing.max) / \(profile.chainLength) = \(sizing.max / profile.chainLength), rounded up to a multiple \
                    of \(bucketGranularity(facts)), at least \(minimumBuckets) = \(sizing.buckets)
                    """
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
            } else {
                // The live value is only the "current" column: a plan never
                // depends on what someone set before.
                reason = "kernel default"
            }
            settings.append(
                TuningPlan.Setting(
                    setting: setting, current: facts.current[setting], planned: planned, blocker: facts.blockers[setting],
                    reason: reason, arithmetic: entries.map { ["holds \(saturatingInt($0.rounded())) of the mean live entries"] } ?? []))
        }

        let estimate = TuningPlan.Estimate(
            flowClasses: sizing.flowClasses, classes: classEstimates(profile: profile, flows: sizing.flowClasses, cures: cures),
            gc: sizing.gc,
            meanEntries: sizing.meanEntries, steadyPeakEntries: sizing.steadyPeak, peakEntries: sizing.worstPeak,
            memoryBytes: sizing.memoryBytes, expectedMemoryBytes: sizing.expectedMemoryBytes, namespaces: profile.namespaces,
            budgetBytes: budgetBytes)
        return TuningPlan(
            profile: profile, facts: facts, settings: settings, estimate: estimate,
            fitsBudget: fits,
            advice: advice(facts: facts, profile: profile, sizing: sizing, budgetBytes: budgetBytes, fits: fits),
            anchors: [Anchors.kernelDefault(memoryBytes: facts.memoryBytes), Anchors.kubeProxy(cpus: facts.cpus)],
            loadTooLarge: sizing.overflow, cures: judged)
    }

    // MARK: - The model

    /// One evaluation of the model for a set of timeouts.
    struct Sizing {
        var flowClasses: [TuningPlan.FlowClass]
        var entriesByTimeout: [ConntrackSetting: Double]
        var gc: TuningPlan.GCEstimate
        var meanEntries: Double
        var steadyPeak: Int
        var worstPeak: Int
        var max: Int
        var maxReason: String
        var maxArithmetic: [String]
        var buckets: Int
        /// Every namespace's table filled to max.
        var memoryBytes: Int
        /// Every namespace at the worst-phase peak of its load.
        var expectedMemoryBytes: Int
        /// The inputs behind a load larger than the kernel can hold.
        var overflow: String?
    }

    /// The profile's pins, else the kernel's boot values: never the live
    /// values, so the same inputs plan the same on every host.
    static func startingTimeouts(profile: LoadProfile) -> [ConntrackSetting: Int] {
        var timeouts: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.timeouts {
            timeouts[setting] = profile.pinnedTimeouts[setting] ?? setting.kernelDefaultSeconds!
        }
        return timeouts
    }

    static func floor(_ setting: ConntrackSetting, _ profile: LoadProfile) -> Int {
        profile.timeoutFloors[setting] ?? LoadProfile.defaultTimeoutFloors[setting] ?? 1
    }

    package static func bucketGranularity(_ facts: HostFacts) -> Int {
        Swift.min(Swift.max(1, facts.pageSizeBytes / hashPointerBytes), 65_536)
    }

    /// One stage of a flow's life in the table.
    struct Stage {
        var seconds: Double
        var label: String
        var setting: ConntrackSetting?
        /// The mean remaining lifetime the gc_worker sees for entries in this
        /// stage, clamped as the kernel clamps it.
        var remaining: Double
        /// Its entries count for the host's `setting` (not for a class's own policy).
        var countsForHost = true
    }

    /// One kind of flow's path through the table at one rate: the unit of Little's law.
    struct Flow {
        var name: String
        /// The profile key behind the rate, for messages.
        var input: String
        var rate: Double
        var burst: Double
        var stages: [Stage]
        /// The `ProfileClass` it belongs to; `nil` for the profile's own load.
        var profileClass: String?
    }

    /// The flows of one load: the profile's own (`load:`), or a class's,
    /// whose keys sit under `inputPrefix` (`classes[0].`).
    /// - Parameter ownTimeouts: settings the flows' class has its own policy
    ///   for: their entries do not count for the host's timeouts.
    static func flows(
        of load: LoadProfile, timeouts: [ConntrackSetting: Int], inputPrefix: String = "", profileClass: String? = nil,
        ownTimeouts: Set<ConntrackSetting> = []
    ) -> [Flow] {
        func t(_ setting: ConntrackSetting) -> Double { Double(timeouts[setting]!) }
        let tcp = load.tcp, udp = load.udp
        let closingRate = tcp.newPerSecond * Swift.max(0, 1 - tcp.orphanRatio - tcp.halfOpenRatio)
        let refreshedEstablished = GCModel.clampedRefreshed(t(.tcpTimeoutEstablished))
        func countdown(_ seconds: Double) -> Double { GCModel.meanClampedCountdown(seconds) }
        let prefix = profileClass.map { $0 + ": " } ?? ""

        var flows: [Flow] = []
        func add(_ name: String, _ input: String, rate: Double, _ stages: [Stage]) {
            guard rate > 0 else { return }
            let stages = stages.map { stage in
                var stage = stage
                stage.countsForHost = stage.setting.map { !ownTimeouts.contains($0) } ?? false
                return stage
            }
            flows.append(
                Flow(
                    name: prefix + name, input: inputPrefix + input, rate: rate, burst: load.burstFactor, stages: stages,
                    profileClass: profileClass))
        }
        add(
            "tcp, closed", "load.tcp.new_per_second", rate: closingRate,
            [
                Stage(seconds: tcp.establishedSeconds, label: "established", setting: nil, remaining: refreshedEstablished),
                Stage(
                    seconds: (1 - tcp.rstCloseRatio) * t(.tcpTimeoutTimeWait),
                    label: "time_wait (\(whole(1 - tcp.rstCloseRatio)) x \(whole(t(.tcpTimeoutTimeWait))) s)",
                    setting: .tcpTimeoutTimeWait, remaining: countdown(t(.tcpTimeoutTimeWait))),
                Stage(
                    seconds: tcp.rstCloseRatio * t(.tcpTimeoutClose),
                    label: "close (\(whole(tcp.rstCloseRatio)) x \(whole(t(.tcpTimeoutClose))) s)",
                    setting: .tcpTimeoutClose, remaining: countdown(t(.tcpTimeoutClose))),
            ].filter { $0.seconds > 0 || $0.setting == nil })
        add(
            "tcp, orphaned", "load.tcp.new_per_second x orphan_ratio", rate: tcp.newPerSecond * tcp.orphanRatio,
            [
                Stage(seconds: tcp.establishedSeconds, label: "established", setting: nil, remaining: refreshedEstablished),
                Stage(
                    seconds: t(.tcpTimeoutEstablished), label: "established timeout", setting: .tcpTimeoutEstablished,
                    remaining: countdown(t(.tcpTimeoutEstablished))),
            ])
        add(
            "tcp, half-open", "load.tcp.new_per_second x half_open_ratio", rate: tcp.newPerSecond * tcp.halfOpenRatio,
            [
                Stage(
                    seconds: t(.tcpTimeoutSynSent), label: "syn_sent", setting: .tcpTimeoutSynSent,
                    remaining: countdown(t(.tcpTimeoutSynSent)))
            ]
        )
        add(
            "udp", "load.udp.new_per_second", rate: udp.newPerSecond,
            [
                Stage(
                    seconds: (1 - udp.streamRatio) * t(.udpTimeout),
                    label: "udp (\(whole(1 - udp.streamRatio)) x \(whole(t(.udpTimeout))) s)",
                    setting: .udpTimeout, remaining: countdown(t(.udpTimeout))),
                Stage(
                    seconds: udp.streamRatio * t(.udpTimeoutStream),
                    label: "udp_stream (\(whole(udp.streamRatio)) x \(whole(t(.udpTimeoutStream))) s)",
                    setting: .udpTimeoutStream, remaining: countdown(t(.udpTimeoutStream))),
            ].filter { $0.seconds > 0 })
        add(
            "other", "load.other_per_second", rate: load.otherPerSecond,
            [Stage(seconds: t(.genericTimeout), label: "generic", setting: .genericTimeout, remaining: countdown(t(.genericTimeout)))])
        return flows
    }

    /// - Parameter cures: the decision for each class by name: a notracked
    ///   class adds no entry, a class under a timeouts policy lives by it.
    static func size(
        timeouts: [ConntrackSetting: Int], facts: HostFacts, profile: LoadProfile, gc model: GCModel,
        cures: [String: CureDecision] = [:]
    ) -> Sizing {
        // The profile's own load, then each class's: every class peaks at
        // its own burst at the same moment (the safe side: their busiest
        // minutes need not coincide).
        var classes = flows(of: profile, timeouts: timeouts)
        for (index, profileClass) in profile.classes.enumerated() {
            let cure = cures[profileClass.name]
            if cure?.applied == .notrack { continue }
            // A policy never lengthens a timeout the host has shorter.
            let policy = cure?.applied == .timeouts ? cure?.policy?.timeouts ?? [:] : [:]
            classes += flows(
                of: profileClass.asLoad, timeouts: timeouts.merging(policy) { Swift.min($0, $1) },
                inputPrefix: "classes[\(index)].", profileClass: profileClass.name, ownTimeouts: Set(policy.keys))
        }
        // The arithmetic names the burst factor once when every flow shares it.
        let bursts = Set(classes.map(\.burst))
        let burst = bursts.count > 1 ? "its burst" : "burst \(whole(bursts.first ?? profile.burstFactor))"

        // The gc_worker's view at the peak rate: live entries and the sum of
        // their clamped remaining lifetimes.
        var live = 0.0, remainingSum = 0.0, byTimeout: [ConntrackSetting: Double] = [:]
        for flow in classes {
            for stage in flow.stages {
                live += flow.rate * flow.burst * stage.seconds
                remainingSum += flow.rate * flow.burst * stage.seconds * stage.remaining
                if let setting = stage.setting, stage.countsForHost { byTimeout[setting, default: 0] += flow.rate * stage.seconds }
            }
        }
        let expiriesPerSecond = classes.reduce(0) { $0 + $1.rate * $1.burst }
        let steadyGap: Double, worstGap: Double, gapSource: String
        if let override = profile.gcLatencySeconds {
            (steadyGap, worstGap, gapSource) = (override, override, "gc_latency_seconds in the profile")
        } else {
            steadyGap = model.steadyGapSeconds(liveEntries: live, remainingSum: remainingSum)
            worstGap = Swift.max(model.worstGapSeconds, steadyGap)
            gapSource = model.source
        }
        let ceiling = profile.gcLatencySeconds == nil ? model.reapCeilingPerSecond : nil
        // Above the ceiling the worker falls behind by the difference every
        // second; over the worst gap that backlog adds to the peak.
        let backlog = ceiling.map { Swift.max(0, expiriesPerSecond - $0) * worstGap } ?? 0

        var flowClasses: [TuningPlan.FlowClass] = []
        var steadyTotal = 0.0, worstTotal = backlog, meanTotal = 0.0
        var largest: (entries: Double, description: String) = (0, "")
        for flow in classes {
            let lifetime = flow.stages.reduce(0) { $0 + $1.seconds }
            let steady = flow.rate * flow.burst * (lifetime + steadyGap)
            let worst = flow.rate * flow.burst * Swift.max(lifetime + steadyGap, worstGap)
            flowClasses.append(
                .init(
                    name: flow.name, flowsPerSecond: flow.rate, dwellSeconds: lifetime,
                    dwellFormula: flow.stages.map { "\(whole($0.seconds)) s \($0.label)" }.joined(separator: " + "),
                    steadyPeakEntries: steady, worstPeakEntries: worst, burstFactor: flow.burst, profileClass: flow.profileClass))
            steadyTotal += steady
            worstTotal += worst
            meanTotal += flow.rate * lifetime
            if worst > largest.entries {
                largest = (
                    worst,
                    """
                    \(flow.input) \(whole(flow.rate)) x burst_factor \(whole(flow.burst)) x \
                    \(whole(Swift.max(lifetime + steadyGap, worstGap))) s in the table
                    """
                )
            }
        }

        let granularity = bucketGranularity(facts)
        let steadyPeak = saturatingInt(wholeEntries(steadyTotal)), worstPeak = saturatingInt(wholeEntries(worstTotal))
        let needed = wholeEntries(wholeEntries(worstTotal) * profile.headroom)
        var overflow: String? = nil
        var max: Int
        var reason = "worst-phase peak \(worstPeak) entries x headroom \(whole(profile.headroom)), rounded"
        var arithmetic = [
            "steady peak = sum of flows/s x \(burst) x (lifetime + steady GC gap \(whole(steadyGap)) s) = \(steadyPeak)",
            "worst peak = sum of flows/s x \(burst) x max(lifetime + \(whole(steadyGap)) s, worst GC gap \(whole(worstGap)) s)"
                + (backlog > 0 ? " + reap backlog \(saturatingInt(backlog))" : "") + " = \(worstPeak)",
        ]
        if !(needed <= Double(ConntrackSetting.largestTableSize)) {
            overflow = largest.description + " x headroom \(whole(profile.headroom))"
            max = ConntrackSetting.largestTableSize
            reason = "the load needs more than nf_conntrack_max can hold; capped at \(ConntrackSetting.largestTableSize)"
            arithmetic.append(
                "max = \(worstPeak) x headroom \(whole(profile.headroom)) exceeds \(ConntrackSetting.largestTableSize), the largest table")
        } else {
            let sized = roundUp(Int(needed), to: granularity)
            max = Swift.max(sized, minimumConntrackMax)
            arithmetic.append(
                """
                max = worst peak x headroom \(whole(profile.headroom)) = \(Int(needed)), rounded up to a multiple of \
                \(granularity) = \(sized)
                """
            )
            if sized < minimumConntrackMax {
                reason = "the load needs only \(sized); kept at the minimum \(minimumConntrackMax)"
                arithmetic.append("raised to the minimum table size \(minimumConntrackMax)")
            }
        }
        let buckets = Swift.max(minimumBuckets, roundUp((max + profile.chainLength - 1) / profile.chainLength, to: granularity))
        let gcEstimate = TuningPlan.GCEstimate(
            model: profile.gcLatencySeconds == nil ? model.generation.rawValue : "override",
            source: gapSource, steadyGapSeconds: steadyGap, worstGapSeconds: worstGap,
            meanRemainingSeconds: (GCModel.initialCount * GCModel.initialMeanSeconds + remainingSum) / (GCModel.initialCount + live),
            liveEntriesAtPeak: live, expiriesPerSecond: expiriesPerSecond, reapCeilingPerSecond: ceiling, reapBacklogEntries: backlog)
        return Sizing(
            flowClasses: flowClasses, entriesByTimeout: byTimeout, gc: gcEstimate, meanEntries: meanTotal,
            steadyPeak: steadyPeak, worstPeak: worstPeak, max: max, maxReason: reason, maxArithmetic: arithmetic, buckets: buckets,
            memoryBytes: memoryBytes(max: max, buckets: buckets, entryBytes: facts.entryBytes, namespaces: profile.namespaces),
            expectedMemoryBytes: memoryBytes(
                max: worstPeak, buckets: buckets, entryBytes: facts.entryBytes, namespaces: profile.namespaces),
            overflow: overflow)
    }

    /// Kernel memory for `namespaces` tables of `max` entries each: entries
    /// are slab objects allocated on demand (one slab for every namespace),
    /// buckets one pointer each in the one shared hash, allocated up front.
    /// Saturates at `Int.max` rather than trapping on absurd input.
    public static func memoryBytes(max: Int, buckets: Int, entryBytes: Int, namespaces: Int = 1) -> Int {
        let entries = Double(Swift.max(max, 0)) * Double(Swift.max(namespaces, 1)) * Double(Swift.max(entryBytes, 0))
        return saturatingInt(entries + Double(Swift.max(buckets, 0)) * Double(hashPointerBytes))
    }

    /// The largest value of `setting` (between its floor and its current
    /// value) at which the table fits the budget, or the floor when none does.
    /// Entries grow with every timeout, so a binary search finds it.
    static func largestFittingTimeout(
        _ setting: ConntrackSetting, timeouts: [ConntrackSetting: Int], facts: HostFacts,
        profile: LoadProfile, gc: GCModel, cures: [String: CureDecision], budgetBytes: Int
    ) -> Int {
        var low = floor(setting, profile), high = timeouts[setting]!
        var trial = timeouts
        while low < high {
            let middle = low + (high - low + 1) / 2
            trial[setting] = middle
            if size(timeouts: trial, facts: facts, profile: profile, gc: gc, cures: cures).memoryBytes <= budgetBytes {
                low = middle
            } else {
                high = middle - 1
            }
        }
        return low
    }

    /// `value` rounded up to a multiple of `multiple`, saturating below `Int.max`.
    package static func roundUp(_ value: Int, to multiple: Int) -> Int {
        let step = Swift.max(multiple, 1)
        let (sum, overflow) = value.addingReportingOverflow(step - 1)
        return overflow ? Int.max / step * step : sum / step * step
    }

    /// Entries rounded up to a whole one, ignoring the last bits of binary
    /// floating point (250 x 65.12 is 16280, not 16281).
    static func wholeEntries(_ value: Double) -> Double {
        guard value.isFinite, abs(value) < 1e15 else { return value }
        return ((value * 1e6).rounded() / 1e6).rounded(.up)
    }

    /// A Double as an Int, saturating at the ends and for NaN instead of trapping.
    public static func saturatingInt(_ value: Double) -> Int {
        if value.isNaN || value >= 9.223_372_036_854_775e18 { return Int.max }
        if value <= -9.223_372_036_854_775e18 { return Int.min }
        return Int(value)
    }

    /// The reasons' shorthand for `Formatting.number`.
    package static func whole(_ value: Double) -> String { Formatting.number(value) }

    static func advice(facts: HostFacts, profile: LoadProfile, sizing: Sizing, budgetBytes: Int, fits: Bool) -> [String] {
        var advice: [String] = []
        if let overflow = sizing.overflow {
            advice.append(
                """
                This load cannot be planned: it needs more entries than nf_conntrack_max can hold \
                (\(ConntrackSetting.largestTableSize)); the largest part is \(overflow) — check those values in profile \(profile.name).
                """
            )
        } else if !fits {
            let neededPercent =
                facts.memoryBytes > 0
                ? String(cFormat: "%.2f", (Double(sizing.memoryBytes) / Double(facts.memoryBytes) * 100 * 100).rounded(.up) / 100)
                : "(unknown: no RAM size)"
            let across = profile.namespaces > 1 ? " in each of \(profile.namespaces) namespaces" : ""
            advice.append(
                """
                This load does not fit: the table needs \(mebibytes(sizing.memoryBytes)) MiB at max \(sizing.max)\(across), \
                the budget is \(mebibytes(budgetBytes)) MiB (memory_budget_percent \(whole(profile.memoryBudgetPercent)) of \
                \(mebibytes(facts.memoryBytes)) MiB RAM), even with the free timeouts at their floors.
                """
            )
            advice.append(
                """
                Options: raise memory_budget_percent to at least \(neededPercent); lower a timeout_floors entry or a pinned \
                timeout (the largest share is \
                \(sizing.entriesByTimeout.max { $0.value < $1.value }.map { $0.key.shortName } ?? "none")); or, if the \
                firewall needs no connection state, go stateless (`cttune rules`, then --profile stateless).
                """
            )
        }
        if let ceiling = sizing.gc.reapCeilingPerSecond, sizing.gc.expiriesPerSecond > ceiling {
            advice.append(
                """
                At \(whole(sizing.gc.expiriesPerSecond)) expiries/s the load outruns the gc_worker, which reaps at most \
                about \(whole(ceiling)) entries/s (GC_SCAN_EXPIRED_MAX per jiffy): expired entries pile up by the difference \
                every second, and only lookups and early drop remove more. The plan adds \(whole(sizing.gc.worstGapSeconds)) \
                s of that backlog; a longer burst grows it further — spread the load over more hosts, or exempt it from \
                tracking (notrack).
                """
            )
        }
        if !profile.stateful {
            advice.append(
                """
                This profile declares that the firewall needs no connection state: check with `cttune rules`, then `cttune \
                unload` and `cttune blacklist` remove conntrack; the table is kept small meanwhile.
                """
            )
        }
        if let count = facts.count, let current = facts.current[.max], sizing.max < current {
            let floor = roundUp(saturatingInt((Double(count) * profile.headroom).rounded(.up)), to: bucketGranularity(facts))
            if floor > sizing.max {
                advice.append(
                    """
                    Warning: \(count) entries are tracked now; apply keeps nf_conntrack_max at the live count x headroom \
                    \(whole(profile.headroom)) = \(floor) instead of lowering it to \(sizing.max) until the table drains \
                    (the boot-time files get \(sizing.max)).
                    """
                )
            }
        }
        if facts.blockers[.max] != nil && facts.netns == .nonInitial {
            advice.append(
                """
                nf_conntrack_max and the hash size are global: apply them on the host. The kernel checks each network \
                namespace's own count against that one max (this namespace's entries do not add to the host's), and all \
                namespaces share one slab and one hash table: size with --namespaces for the memory.
                """
            )
        }
        if profile.namespaces > 1 {
            advice.append(
                """
                Across \(profile.namespaces) namespaces: about \(mebibytes(sizing.expectedMemoryBytes)) MiB with each at its \
                worst-phase peak, up to \(mebibytes(sizing.memoryBytes)) MiB with each filled to max (checked against the \
                budget).
                """
            )
        }
        switch facts.entryBytesSource {
        case .fallback:
            advice.append("Entry size: \(facts.entryBytesDetail).")
        case .flag, .table, .btf:
            break
        }
        if let live = facts.liveSlabEntryBytes, live != facts.entryBytes {
            advice.append(
                """
                Warning: the live slab allocates \(live) B per entry, the plan uses \(facts.entryBytes) B \
                (\(facts.entryBytesSource.rawValue)): pass --entry-size \(live) to plan with the live size.
                """
            )
        }
        return advice
    }

    static func mebibytes(_ bytes: Int) -> String { Formatting.mebibytes(bytes) }
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
            name: "kernel default", max: buckets, buckets: buckets,
            establishedTimeoutSeconds: ConntrackSetting.tcpTimeoutEstablished.kernelDefaultSeconds!,
            source: "net/netfilter/nf_conntrack_core.c nf_conntrack_init_start (v5.15+)")
    }

    /// kube-proxy with its defaults (`KubeProxyConntrack`): max = max(131072,
    /// 32768 × CPUs) up to 1048576, hashsize = max / 4, established 86400 s.
    public static func kubeProxy(cpus: Int) -> Anchor {
        let max = KubeProxyConntrack.max(cpus: cpus)!
        return Anchor(
            name: "kube-proxy", max: max, buckets: KubeProxyConntrack.hashsize(forMax: max),
            establishedTimeoutSeconds: KubeProxyConntrack.establishedTimeoutSeconds,
            source: "kubernetes pkg/proxy/conntrack (maxPerCore 32768, min 131072, maxLimit 1048576)")
    }
}
