import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// The sizing model with hand-checked numbers: facts in, plan out, no root.
@Suite("Plan sizing")
struct PlanSizingTests {
    static let catalog = ProfileCatalog(searchDirectories: [])

    /// A host with the kernel's boot timeouts, as read on 6.x.
    func planned(_ plan: TuningPlan, _ setting: ConntrackSetting) -> Int { plan.planned(setting)! }

    @Test("default profile on 4 GiB: fits without touching a timeout")
    func defaultOn4GiB() throws {
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: try Self.catalog.load("default"))
        // Lifetimes (flows/s): tcp closed 197.9/s x (10 + 0.9 x 120 + 0.1 x 10 = 119 s), orphans 0.1/s x 432010 s,
        // half-open 2/s x 120 s, udp 50/s x (0.8 x 30 + 0.2 x 120 = 48 s), other 5/s x 600 s: live 72391.1.
        #expect(abs(plan.estimate.meanEntries - 72_391.1) < 0.01)
        // Most live entries are established (remaining clamped to 300 s): the gc_worker's mean is above 60 s, so
        // the steady gap is the 60 s ceiling, and every lifetime + 60 s is longer than the worst gap (65.1 s).
        #expect(plan.estimate.gc.steadyGapSeconds == 60)
        #expect(plan.estimate.gc.model == "autotuned")
        // Peak = burst 3 x (72391.1 + 60 s x 255 flows/s) = 263073.3.
        #expect(plan.estimate.steadyPeakEntries == 263_074)
        #expect(plan.estimate.peakEntries == 263_074)
        #expect(planned(plan, .max) == 329_216)  // ceil(263074 x 1.25) = 328843 -> 643 x 512
        #expect(planned(plan, .hashsize) == 329_216)  // chain length 1
        #expect(plan.estimate.memoryBytes == 329_216 * (256 + 8))  // 86913024
        #expect(plan.estimate.budgetBytes == 214_748_364)  // 5 % of 4 GiB
        #expect(plan.fitsBudget)
        for setting in ConntrackSetting.timeouts {
            #expect(planned(plan, setting) == setting.kernelDefaultSeconds, "\(setting.key)")
            #expect(plan.settings.first { $0.setting == setting }?.reason == "kernel default")
        }
        #expect(plan.settings.first { $0.setting == .max }?.reason == "worst-phase peak 263074 entries x headroom 1.25, rounded")
    }

    @Test("web-frontend on 8 GiB: orphans make the established timeout shorten just enough")
    func webFrontendOn8GiB() throws {
        let plan = Planner.plan(for: FixtureFacts.host(memory: 8 << 30), profile: try Self.catalog.load("web-frontend"))
        // With the 5-day established timeout 2 orphans/s alone hold 864000 entries: the largest share is shortened first.
        // Per class at burst 3 with the 60 s gap: closed 5988 x (114 + 60) = 1041912, half-open 6 x 180 = 1080,
        // udp 600 x 108 = 64800, other 15 x 660 = 9900, orphans 6 x (5 + x + 60). The budget (429496729 B at 264 B
        // per entry) allows x = 30536: 1301298 entries x 1.25 -> 1626624 (3177 x 512); x = 30537 needs 3178 x 512.
        #expect(planned(plan, .tcpTimeoutEstablished) == 30_536)
        #expect(planned(plan, .tcpTimeoutTimeWait) == 120, "shortening stops as soon as the table fits")
        #expect(plan.estimate.peakEntries == 1_301_298)
        #expect(planned(plan, .max) == 1_626_624)
        #expect(plan.estimate.memoryBytes == 1_626_624 * 264)
        #expect(plan.fitsBudget)
        #expect(
            plan.settings.first { $0.setting == .tcpTimeoutEstablished }?.reason == "shortened to fit the memory budget (floor 600 s)")
    }

    @Test("web-frontend on 4 GiB: does not fit even with every free timeout at its floor")
    func webFrontendOn4GiB() throws {
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: try Self.catalog.load("web-frontend"))
        #expect(!plan.fitsBudget)
        for setting: ConntrackSetting in [.tcpTimeoutEstablished, .tcpTimeoutTimeWait, .udpTimeout, .udpTimeoutStream, .genericTimeout] {
            #expect(planned(plan, setting) == Planner.floor(setting, try Self.catalog.load("web-frontend")), "\(setting.key)")
        }
        #expect(plan.advice.first?.contains("does not fit") == true)
    }

    @Test("database on 512 MiB with 320-byte entries: does not fit even at the floors, and says what it needs")
    func databaseOn512MiB() throws {
        let plan = Planner.plan(
            for: FixtureFacts.host(memory: 512 << 20, cpus: 1, entryBytes: 320), profile: try Self.catalog.load("database"))
        // 20 flows/s x 3600 s established alone need more than the budget, so every free timeout goes to its floor.
        #expect(!plan.fitsBudget)
        #expect(planned(plan, .tcpTimeoutEstablished) == 7200, "the database profile's floor")
        #expect(planned(plan, .tcpTimeoutTimeWait) == 60)
        #expect(planned(plan, .tcpTimeoutSynSent) == 30)
        #expect(planned(plan, .udpTimeout) == 10)
        #expect(planned(plan, .udpTimeoutStream) == 60)
        #expect(planned(plan, .genericTimeout) == 60)
        // At the floors: tcp closed 19.978 x (3600 + 57 + 0.5) = 73069.535, orphans 0.002 x 10800 = 21.6,
        // half-open 0.02 x 30 = 0.6, udp 10 x (9 + 6) = 150, other 1 x 60 = 60 -> live 73301.735;
        // peak = burst 2 x (73301.735 + 60 s x 31 flows/s) = 150323.47.
        #expect(abs(plan.estimate.meanEntries - 73_301.735) < 0.001)
        #expect(plan.estimate.peakEntries == 150_324)
        #expect(planned(plan, .max) == 188_416)  // 150324 x 1.25 = 187905 -> 368 x 512
        #expect(plan.estimate.memoryBytes == 188_416 * 328)  // 61800448 B = 11.511 % of 512 MiB
        #expect(plan.advice.first?.contains("does not fit") == true)
        #expect(plan.advice.contains { $0.contains("raise memory_budget_percent to at least 11.52;") })
    }

    @Test("kubernetes-node: pinned timeouts as kube-proxy sets them, hash at max / 4")
    func kubernetesNode() throws {
        let plan = Planner.plan(for: FixtureFacts.host(memory: 64 << 30, cpus: 16), profile: try Self.catalog.load("kubernetes-node"))
        #expect(planned(plan, .tcpTimeoutEstablished) == 86_400)
        #expect(planned(plan, .tcpTimeoutCloseWait) == 3_600)
        #expect(plan.settings.first { $0.setting == .tcpTimeoutEstablished }?.reason == "pinned by the profile")
        let max = planned(plan, .max)
        #expect(planned(plan, .hashsize) == Planner.roundUp(max / 4, to: 512))
        #expect(plan.fitsBudget)
    }

    @Test("pinned timeouts are never shortened, even when the plan does not fit")
    func pinsHold() throws {
        let plan = Planner.plan(for: FixtureFacts.host(memory: 256 << 20), profile: try Self.catalog.load("ddos-edge"))
        #expect(!plan.fitsBudget)
        let profile = try Self.catalog.load("ddos-edge")
        for (setting, seconds) in profile.pinnedTimeouts {
            #expect(planned(plan, setting) == seconds, "\(setting.key)")
        }
    }

    @Test("the live count only warns: the plan is the same with 0 or 500000 entries tracked")
    func liveCountOnlyWarns() throws {
        let quiet = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: try Self.catalog.load("default"))
        var facts = FixtureFacts.host(memory: 4 << 30, count: 500_000)
        let busy = Planner.plan(for: facts, profile: try Self.catalog.load("default"))
        #expect(busy.settings == quiet.settings)
        #expect(!busy.advice.contains { $0.contains("tracked now") }, "the plan raises max: nothing to warn about")
        // Lowering a max of 1000000 with 500000 entries tracked: apply keeps 500000 x 1.25 -> 1221 x 512.
        facts.current[.max] = 1_000_000
        let lowering = Planner.plan(for: facts, profile: try Self.catalog.load("default"))
        #expect(lowering.planned(.max) == quiet.planned(.max))
        #expect(lowering.advice.contains { $0.contains("500000 entries are tracked now") && $0.contains("625152") })
        #expect(!quiet.advice.contains { $0.contains("tracked now") })
    }

    @Test("gc_latency_seconds in a profile replaces both modelled GC gaps")
    func gcLatencyOverride() throws {
        var profile = LoadProfile(name: "test")
        profile.tcp.newPerSecond = 100
        profile.burstFactor = 1
        profile.gcLatencySeconds = 0
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: profile)
        #expect(plan.estimate.peakEntries == 100 * 120)  // time_wait only, no GC wait
        #expect(plan.estimate.gc.model == "override")
        profile.gcLatencySeconds = 30
        let slower = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: profile)
        #expect(slower.estimate.peakEntries == 100 * 150 && slower.estimate.steadyPeakEntries == 100 * 150)
    }

    @Test("the stateless profile keeps the minimum table and says how to remove conntrack")
    func stateless() throws {
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: try Self.catalog.load("stateless"))
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
            let plan = Planner.plan(for: FixtureFacts.host(memory: memory), profile: profile)
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
            // kube-proxy at 1, 8 and 64 CPUs: the floor, the per-core product, and maxLimit (64 × 32768 = 2097152).
            (1 << 30, 1, 8192, 131_072), (8 << 30, 8, 262_144, 262_144), (256 << 30, 64, 262_144, 1_048_576),
        ] as [(Int, Int, Int, Int)])
    func anchors(memory: Int, cpus: Int, kernelMax: Int, kubeMax: Int) {
        #expect(Anchors.kernelDefault(memoryBytes: memory).max == kernelMax)
        #expect(Anchors.kubeProxy(cpus: cpus).max == kubeMax)
        #expect(Anchors.kubeProxy(cpus: cpus).buckets == kubeMax / 4)
        // The writer cttune reports on a kube-proxy node computes the same value.
        let writer = ConntrackWriters.kubeProxy(fields: [:], source: "test", cpus: cpus)
        #expect(writer.writes.first { $0.key == ConntrackSetting.max.key }?.value == kubeMax)
        #expect(writer.writes.first { $0.key == ConntrackSetting.hashsize.key }?.value == kubeMax / 4)
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
