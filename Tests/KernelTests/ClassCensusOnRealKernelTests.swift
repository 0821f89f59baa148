import Foundation
import TestSupport
import Testing

/// The census by flow class against the kernel's own listing: two namespaces
/// joined by a veth pair, a stateful ruleset on the server, a known mix of
/// classes, and `conntrack -L` filtered by the same tuples on the same table.
@Suite("flow classes in the census, on the real kernel", .serialized, .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
struct ClassCensusOnRealKernelTests {
    static let serverAddress = "10.78.0.1"
    static let clientAddress = "10.78.0.2"
    static let script = TestPaths.package.appendingPathComponent("scripts/class-traffic.py").path

    @Test(
        "each class's entries equal what conntrack -L counts for its tuples; the top-N rows with other add up to the table",
        .timeLimit(.minutes(20)))
    func censusMatchesConntrack() throws {
        // Exclusive: the table's max is global, and a test that shrinks it
        // (status on the real kernel) would drop this mix's 1 500 entries.
        try GlobalConntrack.withExclusiveAccess { try measure() }
    }

    private func measure() throws {
        let pair = try NamespacePair("cls", serverAddress: Self.serverAddress, clientAddress: Self.clientAddress)
        defer { pair.delete() }
        let (server, client) = (pair.server, pair.client)
        // Nothing expires between the census and conntrack -L.
        try server.setSysctl("net.netfilter.nf_conntrack_udp_timeout", 600)

        func background(_ namespace: TestNamespace, _ arguments: [String]) throws -> BackgroundProcess {
            let process = try BackgroundProcess(["ip", "netns", "exec", namespace.name, "python3", Self.script] + arguments)
            #expect(process.waitForOutput(containing: "ready", atMost: 30), "\(arguments) never got ready")
            return process
        }
        let listeners = [try background(client, ["listen", "5432", "90"]), try background(server, ["listen", "8080", "90"])]
        try client.exec(["python3", Self.script, "udp", Self.serverAddress, "53", "400"])
        let holders = [
            try background(client, ["connect", Self.serverAddress, "8080", "30", "90"]),
            try background(server, ["connect", Self.clientAddress, "5432", "20", "90"]),
        ]
        try client.exec(["python3", Self.script, "noise", Self.serverAddress, "1000", "50"])
        defer { (listeners + holders).forEach { $0.interrupt() } }

        let census = try Self.classes(server, top: 100)
        let listing = try server.exec(["conntrack", "-L"]).split(separator: "\n").map(String.init)
        func listed(_ predicate: (String) -> Bool) -> Int { listing.filter(predicate).count }
        func has(_ line: String, _ field: String) -> Bool { line.split(separator: " ").contains { $0 == field } }
        // conntrack -L prints the original direction first: its first src=, dst=, dport= are the class's.
        func original(_ line: String, _ key: String) -> String? {
            line.split(separator: " ").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        let expected: [String: Int] = [
            "inbound udp/53": listed { has($0, "udp") && original($0, "dst") == Self.serverAddress && original($0, "dport") == "53" },
            "inbound tcp/8080": listed { has($0, "tcp") && original($0, "dst") == Self.serverAddress && original($0, "dport") == "8080" },
            "outbound tcp/5432": listed { has($0, "tcp") && original($0, "src") == Self.serverAddress && original($0, "dport") == "5432" },
        ]
        for (name, count) in expected {
            #expect(count > 0, "the traffic made \(name)")
            #expect(census.rows[name] == count, "\(name): census \(census.rows[name] ?? -1), conntrack -L \(count)")
        }
        let noise = listed {
            has($0, "udp") && original($0, "dst") == Self.serverAddress && (1000..<1050).contains(Int(original($0, "dport") ?? "") ?? 0)
        }
        let noiseRows = census.rows.filter { $0.key.hasPrefix("inbound udp/1") && $0.key != "inbound udp/53" }
        #expect(
            noiseRows.values.reduce(0, +) == noise && noiseRows.count == noise, "one class per noise port: \(noiseRows.count), \(noise)")
        #expect(census.total == listing.count, "census total \(census.total), conntrack -L \(listing.count)")
        #expect(census.rows.values.reduce(0, +) == census.total)

        // A short list folds the rest into one other row: the rows still add up.
        let short = try Self.classes(server, top: 2)
        #expect(short.order.count == 3 && short.order.last == "other")
        #expect(Array(short.order.prefix(1)) == ["inbound udp/53"])
        #expect(short.rows.values.reduce(0, +) == short.total)
    }

    /// `cttune status --census --namespace NS --top N`: class → entries, in order, and the census total.
    static func classes(_ namespace: TestNamespace, top: Int) throws -> (rows: [String: Int], order: [String], total: Int) {
        let output = try Shell.check([
            TestPaths.cttune, "status", "--census", "--namespace", namespace.name, "--window", "0", "--top", String(top), "--format",
            "json",
        ])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let member = try #require((object["namespaces"] as? [[String: Any]])?.first, "\(output)")
        let entries = try #require(member["entries"] as? [String: Any], "\(member.keys)")
        let rows = try #require(entries["by_class"] as? [[String: Any]])
        var counts: [String: Int] = [:]
        for row in rows { counts[row["class"] as? String ?? "?"] = row["entries"] as? Int }
        return (counts, rows.compactMap { $0["class"] as? String }, entries["total"] as? Int ?? -1)
    }
}
