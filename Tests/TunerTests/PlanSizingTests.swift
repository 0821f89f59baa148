import Testing

@testable import Tuner

/// The sizing model with hand-checked numbers: facts in, plan out, no root.
@Suite("Plan sizing")
struct PlanSizingTests {
    static let catalog = ProfileCatalog(searchDirectories: [])

    /// A host with the kernel's boot timeouts, as read on 6.x.
    static func host(memory: Int, cpus: Int = 2, entryBytes: Int = 256, count: Int = 0) -> HostFacts {
        var current: [ConntrackSetting: Int] = [.max: 262_144, .hashsize: 262_144]
        for setting in ConntrackSetting.timeouts { current[setting] = setting.kernelDefaultSeconds }
        return HostFacts(
            memoryBytes: memory, cpus: cpus, kernelRelease: "6.18.0", entryBytes: entryBytes,
            entryBytesSource: .slabinfo, count: count, current: current)
    }

    func planned(_ plan: TuningPlan, _ setting: ConntrackSetting) -> Int { plan.planned(setting)! }

    @Test("default profile on 4 GiB: fits without touching a timeout")
    func defaultOn4GiB() throws {
        let plan = Planner.plan(for: Self.host(memory: 4 << 30), profile: try Self.catalog.load("default"))
        // tcp closed:   200 x 0.9895 = 197.9/s x (10 + 0.9 x 120 + 0.1 x 10 + 25 GC) s = 28497.6
        // tcp orphaned: 0.1/s x (10 + 432000 + 25) s = 43203.5
        // tcp half-open: 2/s x (120 + 25) s = 290
        // udp:          50/s x (0.8 x 30 + 0.2 x 120 + 25) s = 3650
        // other:        5/s x (600 + 25) s = 3125
        #expect(abs(plan.estimate.meanEntries - 78766.1) < 0.01)
        #expect(plan.estimate.peakEntries == 236_299)  // ceil(78766.1 x 3)
        #expect(planned(plan, .max) == 295_424)  // ceil(236299 x 1.25) = 295374 -> 577 x 512
        #expect(planned(plan, .hashsize) == 295_424)  // chain length 1
        #expect(plan.estimate.memoryBytes == 295_424 * (256 + 8))  // 77991936
        #expect(plan.estimate.budgetBytes == 214_748_364)  // 5 % of 4 GiB
        #expect(plan.fitsBudget)
        for setting in ConntrackSetting.timeouts {
            #expect(planned(plan, setting) == setting.kernelDefaultSeconds, "\(setting.key)")
        }
        #expect(plan.settings.first { $0.setting == .max }?.reason == "peak 236299 entries x headroom 1.25, rounded")
    }

    @Test("web-frontend on 4 GiB: orphans force the established timeout to its floor, then time_wait is shortened just enough")
    func webFrontendOn4GiB() throws {
        let plan = Planner.plan(for: Self.host(memory: 4 << 30), profile: try Self.catalog.load("web-frontend"))
        // With the 5-day established timeout 2 orphans/s alone hold 864000 entries: it goes to its floor, 600 s.
        #expect(planned(plan, .tcpTimeoutEstablished) == 600)
        // Then time_wait x: mean = 1996 x (31 + 0.9x) + 2 x 630 + 2 x 145 + 200 x 73 + 5 x 625 = 81151 + 1796.4x;
        // the budget allows max <= 214748364 / 264 = 813440, so x = 75 (x = 76 needs 816640 entries).
        #expect(planned(plan, .tcpTimeoutTimeWait) == 75)
        #expect(abs(plan.estimate.meanEntries - 215_881) < 0.01)
        #expect(plan.estimate.peakEntries == 647_643)
        #expect(planned(plan, .max) == 809_984)  // ceil(647643 x 1.25) = 809554 -> 1582 x 512
        #expect(plan.estimate.memoryBytes == 809_984 * 264)
        #expect(plan.fitsBudget)
        #expect(planned(plan, .udpTimeout) == 30, "shortening stops as soon as the table fits")
        #expect(plan.settings.first { $0.setting == .tcpTimeoutTimeWait }?.reason == "shortened to fit the memory budget (floor 60 s)")
        #expect(
            plan.settings.first { $0.setting == .tcpTimeoutEstablished }?.reason == "shortened to its floor 600 s to fit the memory budget")
    }

    @Test("database on 512 MiB with 320-byte entries: does not fit even at the floors, and says what it needs")
    func databaseOn512MiB() throws {
        let plan = Planner.plan(for: Self.host(memory: 512 << 20, cpus: 1, entryBytes: 320), profile: try Self.catalog.load("database"))
        // Unshortened: tcp closed 19.978/s x (3600 + 114 + 0.5 + 25) s = 74707.7 ... max 192512, 60 MiB > 25.6 MiB.
        // 20 flows/s x 3600 s established alone need more than the budget, so every free timeout goes to its floor.
        #expect(!plan.fitsBudget)
        #expect(planned(plan, .tcpTimeoutEstablished) == 7200, "the database profile's floor")
        #expect(planned(plan, .tcpTimeoutTimeWait) == 60)
        #expect(planned(plan, .tcpTimeoutSynSent) == 30)
        #expect(planned(plan, .udpTimeout) == 10)
        #expect(planned(plan, .udpTimeoutStream) == 60)
        #expect(planned(plan, .genericTimeout) == 60)
        // At the floors: tcp closed 19.978 x (3600 + 57 + 0.5 + 25) = 73568.985, orphans 0.002 x 10825 = 21.65,
        // half-open 0.02 x 55 = 1.1, udp 10 x (9 + 6 + 25) = 400, other 1 x 85 = 85 -> mean 74076.735
        #expect(abs(plan.estimate.meanEntries - 74_076.735) < 0.001)
        #expect(plan.estimate.peakEntries == 148_154)
        #expect(planned(plan, .max) == 185_344)  // 148154 x 1.25 = 185192.5 -> 362 x 512
        #expect(plan.estimate.memoryBytes == 185_344 * 328)  // 60792832 B = 11.32 % of 512 MiB
        #expect(plan.advice.first?.contains("does not fit") == true)
        #expect(plan.advice.contains { $0.contains("raise memory_budget_percent to at least 11.33;") })
    }

    @Test("kubernetes-node: pinned timeouts as kube-proxy sets them, hash at max / 4")
    func kubernetesNode() throws {
        let plan = Planner.plan(for: Self.host(memory: 64 << 30, cpus: 16), profile: try Self.catalog.load("kubernetes-node"))
        #expect(planned(plan, .tcpTimeoutEstablished) == 86_400)
        #expect(planned(plan, .tcpTimeoutCloseWait) == 3_600)
        #expect(plan.settings.first { $0.setting == .tcpTimeoutEstablished }?.reason == "pinned by the profile")
        let max = planned(plan, .max)
        #expect(planned(plan, .hashsize) == Planner.roundUp(max / 4, to: 512))
        #expect(plan.fitsBudget)
    }

    @Test("pinned timeouts are never shortened, even when the plan does not fit")
    func pinsHold() throws {
        let plan = Planner.plan(for: Self.host(memory: 256 << 20), profile: try Self.catalog.load("ddos-edge"))
        #expect(!plan.fitsBudget)
        let profile = try Self.catalog.load("ddos-edge")
        for (setting, seconds) in profile.pinnedTimeouts {
            #expect(planned(plan, setting) == seconds, "\(setting.key)")
        }
    }

    @Test("max never goes below the live entry count")
    func neverBelowLiveCount() throws {
        let plan = Planner.plan(for: Self.host(memory: 4 << 30, count: 500_000), profile: try Self.catalog.load("default"))
        #expect(planned(plan, .max) == 625_152)  // 500000 x 1.25 -> 1221 x 512
        #expect(plan.settings.first { $0.setting == .max }?.reason.contains("live count 500000") == true)
    }

    @Test("gc_latency_seconds in a profile replaces the measured default")
    func gcLatencyOverride() throws {
        var profile = LoadProfile(name: "test")
        profile.tcp.newPerSecond = 100
        profile.burstFactor = 1
        profile.gcLatencySeconds = 0
        let plan = Planner.plan(for: Self.host(memory: 4 << 30), profile: profile)
        #expect(plan.estimate.meanEntries == 100 * 120)  // time_wait only, no GC dwell
        profile.gcLatencySeconds = nil
        #expect(
            Planner.plan(for: Self.host(memory: 4 << 30), profile: profile).estimate.meanEntries == 100
                * (120 + Planner.measuredGCLatencySeconds))
    }

    @Test("the stateless profile keeps the minimum table and says how to remove conntrack")
    func stateless() throws {
        let plan = Planner.plan(for: Self.host(memory: 4 << 30), profile: try Self.catalog.load("stateless"))
        #expect(planned(plan, .max) == Planner.minimumConntrackMax)
        #expect(planned(plan, .hashsize) == 2048)
        #expect(plan.advice.contains { $0.contains("cttune rules") })
    }

    @Test(
        "hash sizes are multiples of 512 and at least 1024; max covers the peak x headroom when it fits",
        arguments: [256 << 20, 512 << 20, 1 << 30, 4 << 30, 16 << 30, 64 << 30])
    func invariants(memory: Int) throws {
        for name in ProfileCatalog.builtinNames {
            let profile = try Self.catalog.load(name)
            let plan = Planner.plan(for: Self.host(memory: memory), profile: profile)
            let buckets = planned(plan, .hashsize), max = planned(plan, .max)
            #expect(buckets % 512 == 0 && buckets >= 1024, "\(name) at \(memory)")
            #expect(max >= Planner.minimumConntrackMax)
            if plan.fitsBudget {
                #expect(Double(max) >= Double(plan.estimate.peakEntries) * profile.headroom, "\(name) at \(memory)")
                #expect(plan.estimate.memoryBytes <= plan.estimate.budgetBytes)
            } else {
                #expect(!plan.advice.isEmpty)
            }
        }
    }

    @Test(
        "load-blind anchors: the kernel default for this RAM and kube-proxy's formula",
        arguments: [
            (512 << 20, 2, 4096, 131_072), (2 << 30, 2, 65_536, 131_072), (24 << 30, 2, 262_144, 131_072), (64 << 30, 16, 262_144, 524_288),
        ])
    func anchors(memory: Int, cpus: Int, kernelMax: Int, kubeMax: Int) {
        #expect(Anchors.kernelDefault(memoryBytes: memory).max == kernelMax)
        #expect(Anchors.kubeProxy(cpus: cpus).max == kubeMax)
        #expect(Anchors.kubeProxy(cpus: cpus).buckets == kubeMax / 4)
    }

    @Test(
        "sizes on the command line",
        arguments: [("4G", 4 << 30), ("512M", 512 << 20), ("512MiB", 512 << 20), ("1T", 1 << 40), ("1048576", 1 << 20), ("2GB", 2 << 30)])
    func sizes(text: String, bytes: Int) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test("sizes that are not sizes", arguments: ["", "G", "4X", "-1G", "0", "1..5G", "99999999T"])
    func badSizes(text: String) {
        #expect(throws: TunerError.invalidSize(text: text)) { try ByteSize.parse(text) }
    }
}
