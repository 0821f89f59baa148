import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// The short version of `scripts/bench-cure.sh` (the README's table): a
/// DNS-like load — UDP queries to one port, one exchange each — beside a TCP
/// service whose replies are accepted only as `ct state established`, in one
/// namespace: a small default table overflows; cttune's plan without classes
/// holds it; with the DNS class under its timeouts cure the load runs past
/// the default UDP timeout within a quarter of that plan's max; notracked, the
/// class adds no entry and TCP keeps working; rollback gives the ruleset back.
@Suite("the cures proven on the kernel, short", .serialized)
struct CureProofTests {
    static let queriesPerSecond = 5000
    static let tcpPerSecond = 50
    static let port = 18082
    /// The firewall: only TCP needs state (its replies come back to the client's ephemeral port).
    static let firewall = """
        table inet fw {
        	chain input {
        		type filter hook input priority filter; policy drop;
        		iif "lo" udp dport 18082 accept
        		iif "lo" udp sport 18082 accept
        		iif "lo" tcp dport 18080 accept
        		meta l4proto tcp ct state established,related accept
        	}
        }
        """

    static func profile(cure: String?) -> String {
        let tcp = "tcp: {new_per_second: \(tcpPerSecond), established_seconds: 0.1}"
        let udp = "udp: {new_per_second: \(queriesPerSecond), stream_ratio: 0}"
        guard let cure else { return "load:\n  \(tcp)\n  \(udp)\n  other_per_second: 0\nburst_factor: 1\n" }
        return """
            load:
              \(tcp)
              udp: {new_per_second: 0}
              other_per_second: 0
            burst_factor: 1
            classes:
              - name: dns
                match: {protocol: udp, ports: \(port)}
                load: {\(udp)}
                cure: \(cure)

            """
    }

    struct Run {
        var load: LoadRun
        var drops: Int
        var evicted: Int
        var classEntries: Int
    }

    @Test(
        "a small default table overflows; the plan holds the load; the timeouts cure runs it within a quarter; notrack adds no entry",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason), .timeLimit(.minutes(20)))
    func cures() throws {
        let state = try PrivateState()
        defer { state.remove() }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var files: [String: String] = [:]
        for cure in ["none", "timeouts", "notrack"] {
            let file = directory.appendingPathComponent("\(cure).yaml")
            try Self.profile(cure: cure == "none" ? nil : cure).write(to: file, atomically: true, encoding: .utf8)
            files[cure] = file.path
        }
        func plan(_ cure: String, memory: String, in namespace: TestNamespace? = nil) throws -> PrintedJSON {
            try PrintedJSON(
                try Tool.run(
                    [TestPaths.cttune, "plan", "--profile", files[cure]!, "--memory", memory, "--explain", "--format", "json"],
                    in: namespace))
        }
        func planned(_ plan: PrintedJSON, _ key: String) throws -> Int {
            let settings = try #require(plan.object["settings"] as? [[String: Any]])
            return try #require(settings.first { $0["key"] as? String == key }?["planned"] as? Int)
        }
        // The kernel's default for a 1 GiB host, as the planner states it; cttune's plan for 16 GiB.
        let small = try plan("none", memory: "1G")
        let anchors = try #require((small.object["estimate"] as? [String: Any])?["anchors"] as? [[String: Any]])
        let defaultMax = try #require(anchors.first?["max"] as? Int), defaultBuckets = try #require(anchors.first?["buckets"] as? Int)
        let none = try plan("none", memory: "16G")
        let (maxM, bucketsM) = (try planned(none, "net.netfilter.nf_conntrack_max"), try planned(none, "nf_conntrack.hashsize"))

        try GlobalConntrack.withExclusiveAccess {
            let namespace = try TestNamespace("proof")
            defer { namespace.delete() }
            try namespace.exec(["nft", "-f", "-"], input: Self.firewall)
            let before = try namespace.exec(["nft", "list", "ruleset"])
            func apply(_ cure: String) throws {
                let result = try state.cttune(
                    ["apply", "--profile", files[cure]!, "--memory", "16G", "--runtime-only", "--allow-partial", "--format", "json"],
                    in: namespace)
                #expect(result.status == 0, "apply \(cure): \(result.stderr)")
            }
            func run(max: Int, buckets: Int, seconds: Int) throws -> Run {
                try GlobalConntrack.write(GlobalConntrack.bucketsPath, buckets)
                try GlobalConntrack.write(GlobalConntrack.maxPath, max)
                _ = try? namespace.run(["conntrack", "-F"])
                let (drops, evicted) = (try conntrackDrops(in: namespace), try conntrackStatistic("early_drop", in: namespace))
                let output = try namespace.exec([
                    TestPaths.loadgen, "--rate", "\(Self.tcpPerSecond)", "--udp-rate", "\(Self.queriesPerSecond)", "--udp-port",
                    "\(Self.port)",
                    "--seconds", "\(seconds)", "--sample", "0.5",
                ])
                let entries = try namespace.run(["conntrack", "-L", "-p", "udp", "--dport", "\(Self.port)"]).stdout
                return Run(
                    load: try LoadRun(output), drops: try conntrackDrops(in: namespace) - drops,
                    evicted: try conntrackStatistic("early_drop", in: namespace) - evicted,
                    classEntries: entries.split(separator: "\n").count)
            }

            // 1. The default table of a 1 GiB host overflows: packets dropped or live entries evicted.
            let overflow = try run(max: defaultMax, buckets: defaultBuckets, seconds: 8)
            #expect(overflow.load.peakCount >= defaultMax * 95 / 100, "peak \(overflow.load.peakCount) of \(defaultMax)")
            #expect(overflow.drops + overflow.evicted > 0, "\(overflow)")

            // 2. cttune's plan without classes holds it.
            try apply("none")
            let held = try run(max: maxM, buckets: bucketsM, seconds: 8)
            #expect(held.drops == 0 && held.evicted == 0 && held.load.failures == 0, "\(held)")

            // 3. Under the timeouts cure the load runs past the default UDP timeout (30 s) within M/4.
            try apply("timeouts")
            #expect(try namespace.exec(["nft", "list", "table", "inet", "cttune"]).contains("ct timeout set"))
            let quarter = maxM / 4
            let cured = try run(max: quarter, buckets: (quarter + 511) / 512 * 512, seconds: 40)
            #expect(cured.drops == 0 && cured.evicted == 0 && cured.load.failures == 0, "\(cured)")
            #expect(cured.load.peakCount < quarter, "peak \(cured.load.peakCount), M/4 \(quarter)")
            #expect(Self.queriesPerSecond * 40 > quarter, "uncured, the run's queries alone would exceed M/4")

            // 4. Notracked: the class adds no entry; TCP behind ct state keeps working.
            try apply("notrack")
            let notrackPlan = try plan("notrack", memory: "16G", in: namespace)
            let exempt = try run(
                max: try planned(notrackPlan, "net.netfilter.nf_conntrack_max"), buckets: try planned(notrackPlan, "nf_conntrack.hashsize"),
                seconds: 8)
            #expect(exempt.classEntries == 0 && exempt.load.failures == 0 && exempt.drops == 0, "\(exempt)")
            #expect(exempt.load.peakCount < Self.tcpPerSecond * 130, "only TCP is tracked: peak \(exempt.load.peakCount)")

            // 5. Rollback: the namespace's ruleset as it was.
            let rollback = try state.cttune(["rollback", "--all", "--format", "json"], in: namespace)
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(try namespace.exec(["nft", "list", "ruleset"]) == before)
        }
    }
}
