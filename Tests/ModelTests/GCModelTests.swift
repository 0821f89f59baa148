import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// The GC model per kernel generation, the entry-size sources and the
/// planner's arithmetic at the edges of the documented limits.
@Suite("GC model, entry size and plan arithmetic")
struct GCModelTests {
    @Test(
        "each kernel release runs the gc_worker generation its source had",
        arguments: [
            ("6.18.44-fc-v669", GCModel.Generation.autotuned),
            ("6.1.0-28-cloud-amd64", .autotuned),
            ("5.18.0", .autotuned),
            ("5.15.34", .autotuned),
            ("5.15.33", .fixedInterval),
            ("5.16.20", .autotuned),
            ("5.17.2", .fixedInterval),
            ("5.14.21", .fixedInterval),
            ("5.10.0-30-amd64", .fixedInterval),
            ("5.10.60", .incremental),
            ("5.10.61", .fixedInterval),
            ("5.4.142", .incremental),
            ("4.19.0-27-amd64", .incremental),
            ("4.4.0", .perEntryTimers),
        ])
    func generations(release: String, generation: GCModel.Generation) {
        #expect(GCModel.forKernel(release).generation == generation)
    }

    @Test("the autotuned worker's gap: the seeded running mean, clamped to 1-60 s")
    func autotunedGap() {
        let model = GCModel.forKernel("6.18.0")
        // A quiet host: only the seed, 100 pretend entries at 60 s.
        #expect(model.steadyGapSeconds(liveEntries: 0, remainingSum: 0) == 60)
        // 2500 time_wait entries of 10 s: clamped remaining averages (1 + 99 / 2) / 10 = 5.05 s each.
        let mean = GCModel.meanClampedCountdown(10)
        #expect(abs(mean - 5.05) < 1e-9)
        #expect(abs(model.steadyGapSeconds(liveEntries: 2500, remainingSum: 2500 * mean) - (6000 + 12_625) / 2600) < 1e-9)
        // Long-lived entries count at most 300 s: the gap stays at 60 s.
        #expect(model.steadyGapSeconds(liveEntries: 1e6, remainingSum: 3e8) == 60)
        // Millions of sub-second entries: never below 1 s.
        #expect(model.steadyGapSeconds(liveEntries: 1e7, remainingSum: 1e7) < 1.001)
        #expect(GCModel.reapCeilingPerSecond == 64_000)
    }

    @Test("the worst gap adds the timer wheel's rounding: 60 s lands in a 5.12 s level at HZ 100")
    func worstGap() {
        #expect(abs(GCModel.forKernel("6.18.0").worstGapSeconds - 65.12) < 1e-9)
        #expect(GCModel.forKernel("5.14.0").worstGapSeconds > 120)
        #expect(GCModel.forKernel("4.19.0").worstGapSeconds < 20)
    }

    @Test("the worst phase: a short-timeout load waits the whole idle gap, so worst > steady")
    func worstPhasePlan() {
        var profile = LoadProfile(name: "short")
        profile.tcp.newPerSecond = 250
        profile.burstFactor = 1
        profile.headroom = 1
        profile.pinnedTimeouts[.tcpTimeoutTimeWait] = 10
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: profile)
        // Steady: (6000 + 2500 x 5.05) / 2600 = 7.163 s gap -> 250 x 17.163 = 4290.9; worst: 250 x 65.12 = 16280.
        #expect(plan.estimate.steadyPeakEntries == 4291)
        #expect(plan.estimate.peakEntries == 16_280)
        #expect(plan.planned(.max) == 16_384)
    }

    @Test("a profile at every documented limit does not trap: the plan says it cannot be planned and names the input")
    func limitsDoNotTrap() {
        var profile = LoadProfile(name: "limits")
        profile.tcp.newPerSecond = 1_000_000
        profile.tcp.establishedSeconds = 31_536_000
        profile.udp.newPerSecond = 5_000_000
        profile.otherPerSecond = 5_000_000
        profile.burstFactor = 100
        profile.headroom = 10
        profile.namespaces = 100_000
        profile.memoryBudgetPercent = 90
        for facts in [
            FixtureFacts.host(memory: Int.max, cpus: Int.max, entryBytes: Int.max), FixtureFacts.host(memory: 0, cpus: 1, entryBytes: 1),
        ] {
            let plan = Planner.plan(for: facts, profile: profile)
            #expect(!plan.fitsBudget)
            #expect(plan.planned(.max) == ConntrackSetting.largestTableSize)
            #expect(plan.advice.first?.contains("load.tcp.new_per_second") == true || plan.advice.first?.contains("load.") == true)
            #expect(plan.estimate.memoryBytes == Int.max || plan.estimate.memoryBytes > 0)
        }
        #expect(Planner.memoryBytes(max: Int.max, buckets: Int.max, entryBytes: Int.max, namespaces: Int.max) == Int.max)
        #expect(Planner.roundUp(Int.max, to: 512) % 512 == 0)
        #expect(Anchors.kubeProxy(cpus: Int.max).max == KubeProxyConntrack.maxLimit)
    }

    @Test("namespaces multiply the entries, not the hash: each can fill to max")
    func namespacesMemory() {
        var profile = LoadProfile(name: "pods")
        profile.tcp.newPerSecond = 100
        let one = Planner.plan(for: FixtureFacts.host(memory: 64 << 30), profile: profile)
        profile.namespaces = 10
        let ten = Planner.plan(for: FixtureFacts.host(memory: 64 << 30), profile: profile)
        let max = ten.planned(.max)!, buckets = ten.planned(.hashsize)!
        #expect(max == one.planned(.max))
        #expect(ten.estimate.memoryBytes == 10 * max * 256 + buckets * 8)
        #expect(ten.estimate.expectedMemoryBytes == 10 * ten.estimate.peakEntries * 256 + buckets * 8)
        #expect(ten.advice.contains { $0.contains("Across 10 namespaces") })
    }

    @Test("entry size: the flag wins, then the table, then BTF rounded to the slab alignment, then the fallback")
    func entrySizeOrder() {
        #expect(EntrySize.resolve(flag: 384, release: "6.18.44-fc-v669", architecture: "x86_64", btf: { 248 }).source == .flag)
        let row = EntrySize.resolve(flag: nil, release: "6.18.44-fc-v669", architecture: "x86_64", btf: { nil })
        #expect(row.bytes == 256 && row.source == .table)
        let btf = EntrySize.resolve(flag: nil, release: "7.0.0", architecture: "x86_64", btf: { 265 })
        #expect(btf.bytes == 320 && btf.source == .btf)
        let none = EntrySize.resolve(flag: nil, release: "7.0.0", architecture: "x86_64", btf: { nil })
        #expect(none.bytes == EntrySize.fallbackBytes && none.source == .fallback && none.detail.contains("--entry-size"))
    }

    @Test(
        "BTF of the running kernel: sizeof(struct nf_conn), rounded, is the slab's object size",
        .enabled(if: FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") && TestHost.hasConntrack))
    func btfOfRunningKernel() throws {
        let size = try #require(BTFReader.conntrackEntrySize(.live))
        #expect(EntrySize.validBytes.contains(size))
        if let slab = try SlabUsage.read(from: .live) {
            #expect((size + 63) / 64 * 64 == slab.usage.objectBytes, "BTF \(size) B, slab \(slab.usage.objectBytes) B")
        }
        #expect(BTFReader.structSize(named: "nf_conn", in: [0x9F, 0xEB, 1, 0]) == nil, "truncated data is not BTF")
    }
}
