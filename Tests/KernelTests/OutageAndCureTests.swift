import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The seed's outage on the running kernel: a busy loopback web load behind a
/// `ct state` rule overflows a small table and drops connections; a profile
/// that describes the load, planned and applied by cttune, cures it.
@Suite("The seed outage, reproduced and cured", .serialized)
struct OutageAndCureTests {
    static let flowsPerSecond = 300
    /// Too small for 300 flows/s that stay 120 s in TIME_WAIT (36000 entries).
    static let outageMax = 3000
    static let outageSeconds = 20.0
    /// The cure's load runs past the pinned time_wait and the GC pass after it.
    static let cureTimeWaitSeconds = 60
    static let cureSeconds = 95.0

    @Test(
        "a table that is too small drops connections; the planned one carries the same load with none dropped",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason), .timeLimit(.minutes(20)))
    func outageThenCure() throws {
        let state = try PrivateState()
        defer { state.remove() }
        let profileDirectory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: profileDirectory) }
        let profile = try writeLoopbackLoadProfile(
            in: profileDirectory, flowsPerSecond: Double(Self.flowsPerSecond),
            extraLines: ["timeouts:", "  nf_conntrack_tcp_timeout_time_wait: \(Self.cureTimeWaitSeconds)"])
        let bootTimeWait = try GlobalConntrack.read("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait")
        // Read under the lock: another holder may have the global values changed right now.
        let (bootMax, bootBuckets) = try GlobalConntrack.withExclusiveAccess {
            (try GlobalConntrack.read(GlobalConntrack.maxPath), try GlobalConntrack.read(GlobalConntrack.bucketsPath))
        }

        try GlobalConntrack.withExclusiveAccess {
            let namespace = try TestNamespace("seed")
            defer { namespace.delete() }
            try namespace.trackLoopback()

            // 1. The outage: the global max below what the load needs.
            try GlobalConntrack.write(GlobalConntrack.maxPath, Self.outageMax)
            let dropsBefore = try drops(in: namespace)
            let outage = try BackgroundLoad(in: namespace, rate: Self.flowsPerSecond, seconds: Self.outageSeconds)
            Thread.sleep(forTimeInterval: 14)  // 3000 entries fill in 10 s at 300/s
            let status = try namespace.run([TestPaths.cttune, "status", "--format", "json", "--window", "2"])
            let outageRun = try outage.wait()
            #expect(status.status == 2, "status: \(status.stdout) \(status.stderr)")
            let statusJSON = try PrintedJSON(status)
            #expect(statusJSON.object["verdict"] as? String == "critical")
            #expect((statusJSON.object["summary"] as? String)?.contains("dropped") == true)
            #expect(outageRun.failures > 0, "clients saw failed connections")
            #expect(try drops(in: namespace) > dropsBefore, "the kernel's drop counter rose")

            // 2. The cure: plan and apply for exactly this load. The global
            // max and hash size go in the initial namespace, the timeouts in
            // the load's namespace.
            let host = try PrintedJSON(try state.cttune(["apply", "--profile", profile, "--runtime-only", "--format", "json"]))
            let plannedMax = try #require(host.planned(ConntrackSetting.max.key))
            #expect(host.result(ConntrackSetting.max.key) == "applied")
            #expect(try GlobalConntrack.read(GlobalConntrack.maxPath) == plannedMax)
            let hostJournal = try #require(host.object["journal_id"] as? String)
            defer {
                _ = try? state.cttune(["rollback", hostJournal])
                #expect((try? GlobalConntrack.read("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait")) == bootTimeWait)
            }
            let inside = try PrintedJSON(
                try state.cttune(["apply", "--profile", profile, "--runtime-only", "--allow-partial", "--format", "json"], in: namespace))
            #expect(inside.result("net.netfilter.nf_conntrack_tcp_timeout_time_wait") == "applied")
            #expect(try namespace.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait") == Self.cureTimeWaitSeconds)

            let dropsBeforeCure = try drops(in: namespace)
            let cured = try BackgroundLoad(in: namespace, rate: Self.flowsPerSecond, seconds: Self.cureSeconds).wait()
            print(
                "seed outage: max \(Self.outageMax): \(outageRun.failures) of \(outageRun.connections) connections failed; cured: max \(plannedMax), peak \(cured.peakCount), \(cured.failures) failures"
            )
            #expect(cured.failures == 0)
            #expect(try drops(in: namespace) == dropsBeforeCure, "no packet dropped")
            #expect(
                Double(cured.peakCount) < 0.9 * Double(plannedMax), "the measured peak stays below 90 % of the planned max (not capped)")
            #expect(plannedMax <= 2 * cured.peakCount, "the plan is not oversized: max \(plannedMax), peak \(cured.peakCount)")
        }
        // 4. Everything global is back as it was (checked under the lock, between other holders).
        let (endMax, endBuckets) = try GlobalConntrack.withExclusiveAccess {
            (try GlobalConntrack.read(GlobalConntrack.maxPath), try GlobalConntrack.read(GlobalConntrack.bucketsPath))
        }
        #expect(endMax == bootMax)
        #expect(endBuckets == bootBuckets)
    }

    func drops(in namespace: TestNamespace) throws -> Int { try conntrackDrops(in: namespace) }
}

/// ct-loadgen running inside a namespace while the test does other things.
final class BackgroundLoad {
    private let process: BackgroundProcess

    init(in namespace: TestNamespace, rate: Int, seconds: Double, sample: Double = 0.5) throws {
        process = try BackgroundProcess([
            "ip", "netns", "exec", namespace.name, TestPaths.loadgen,
            "--rate", "\(rate)", "--seconds", "\(seconds)", "--sample", "\(sample)",
        ])
    }

    func wait() throws -> LoadRun {
        try LoadRun(process.wait())
    }
}
