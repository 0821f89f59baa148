import Foundation
import Testing

@testable import Tuner

/// The model against the running kernel: a known loopback TCP load in a fresh
/// network namespace, its measured peak entry count, and the plan's estimate
/// for a profile that describes exactly that load.
@Suite("Plan matches the kernel", .serialized)
struct PlanMatchesKernelTests {
    /// Rate and time_wait of the measured load. time_wait is the kernel's
    /// boot value, 120 s, so the GC gap (8-29 s on an idle host, about 0 s
    /// when the CPUs are busy and the gc_worker rescans back to back) is a
    /// minor part of the dwell either way; 150 s covers the first expiries
    /// and the GC pass after them, so the sawtooth's peak is seen.
    static let flowsPerSecond = 300.0
    static let timeWaitSeconds = 120
    static let loadSeconds = 150.0

    @Test(
        "the predicted entries for a measured loopback load are within 25 % of the kernel's peak count",
        .enabled(if: Host.realKernel), .timeLimit(.minutes(5)))
    func predictionWithin25Percent() throws {
        try GlobalConntrack.withExclusiveAccess {
            // The global max limits every namespace: keep it far above this load.
            if try GlobalConntrack.read(GlobalConntrack.maxPath) < 262_144 {
                try GlobalConntrack.write(GlobalConntrack.maxPath, 262_144)
            }
            let namespace = try TestNamespace("plan")
            defer { namespace.delete() }
            try namespace.trackLoopback()
            try namespace.setSysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", Self.timeWaitSeconds)

            let load = try LoadRun(
                namespace.exec([
                    TestPaths.loadgen, "--rate", "\(Self.flowsPerSecond)", "--seconds", "\(Self.loadSeconds)", "--sample", "0.5",
                ]))
            #expect(load.failures == 0)
            #expect(Double(load.peakCount) < 0.95 * 262_144, "a count near max means overflow, not a fit")

            let profile = try TestPaths.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: profile) }
            let profilePath = try writeLoopbackLoadProfile(in: profile, flowsPerSecond: load.rate, extraLines: ["headroom: 1"])
            // Plan from inside the namespace, as an admin would: its timeouts are the facts.
            let output = try namespace.exec([TestPaths.cttune, "plan", "--profile", profilePath, "--format", "json"])
            let plan = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            let estimate = try #require(plan["estimate"] as? [String: Any])
            let predicted = try #require(estimate["peak_entries"] as? Int)
            let error = Double(predicted - load.peakCount) / Double(load.peakCount)
            print(
                "plan vs kernel: \(load.rate) flows/s, time_wait \(Self.timeWaitSeconds) s: predicted \(predicted), measured peak \(load.peakCount) at \(load.peakAt) s, error \(String(format: "%+.1f", error * 100)) %"
            )
            #expect(abs(error) <= 0.25, "predicted \(predicted), measured \(load.peakCount)")
            #expect(load.peakCount > Int(load.rate) * Self.timeWaitSeconds, "entries outlive their timeout until the GC reaps them")
        }
    }
}

/// What ct-loadgen reports.
struct LoadRun {
    var connections: Int
    var failures: Int
    var rate: Double
    var peakCount: Int
    var peakAt: Double
    var samples: [(seconds: Double, count: Int)]

    init(_ json: String) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "ct-loadgen printed: \(json)")
        connections = try #require(object["connections"] as? Int)
        failures = try #require(object["failures"] as? Int)
        rate = try #require((object["rate"] as? NSNumber)?.doubleValue)
        peakCount = try #require(object["peak_count"] as? Int)
        peakAt = try #require((object["peak_at"] as? NSNumber)?.doubleValue)
        samples = try #require(object["samples"] as? [[NSNumber]]).map { ($0[0].doubleValue, $0[1].intValue) }
    }
}
