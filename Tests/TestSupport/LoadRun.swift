import Foundation
import Testing

/// What ct-loadgen reports.
package struct LoadRun {
    package var connections: Int
    package var failures: Int
    package var rate: Double
    package var peakCount: Int
    package var peakAt: Double
    package var samples: [(seconds: Double, count: Int)]

    package init(_ json: String) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "ct-loadgen printed: \(json)")
        connections = try #require(object["connections"] as? Int)
        failures = try #require(object["failures"] as? Int)
        rate = try #require((object["rate"] as? NSNumber)?.doubleValue)
        peakCount = try #require(object["peak_count"] as? Int)
        peakAt = try #require((object["peak_at"] as? NSNumber)?.doubleValue)
        samples = try #require(object["samples"] as? [[NSNumber]]).map { ($0[0].doubleValue, $0[1].intValue) }
    }

    /// When the count first fell by more than a tenth between two samples: a GC pass.
    package var firstReapAt: Double? {
        zip(samples, samples.dropFirst()).first { $1.count < $0.count * 9 / 10 }?.1.seconds
    }
}

/// The namespace's `drop` counter, summed over CPUs.
package func conntrackDrops(in namespace: TestNamespace) throws -> Int {
    try conntrackStatistic("drop", in: namespace)
}

/// One column of the namespace's /proc/net/stat/nf_conntrack (`drop`, `early_drop`, …), summed over CPUs.
package func conntrackStatistic(_ name: String, in namespace: TestNamespace) throws -> Int {
    let table = try namespace.exec(["cat", "/proc/net/stat/nf_conntrack"])
    let rows = table.split(separator: "\n").map { $0.split(separator: " ") }
    let column = try #require(rows.first?.firstIndex(of: Substring(name)))
    return rows.dropFirst().reduce(0) { $0 + (Int($1[column], radix: 16) ?? 0) }
}

/// Active nf_conntrack slab objects, host-wide (every namespace), and the object size.
package func conntrackSlab() throws -> (objects: Int, objectBytes: Int) {
    let text = try String(contentsOfFile: "/proc/slabinfo", encoding: .utf8)
    let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("nf_conntrack ") })
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    return (try #require(Int(fields[1])), try #require(Int(fields[3])))
}

/// Waits for a garbage-collection pass and returns right after it: a sentinel
/// namespace holds a few hundred UDP entries with a 1 s timeout, and only a
/// pass of the gc_worker removes them (nothing else looks them up), so the
/// moment its count drops is a pass.
package func waitForGCPass(timeoutSeconds: Double = 75) throws -> Double {
    let sentinel = try TestNamespace("gcsync")
    defer { sentinel.delete() }
    try sentinel.trackLoopback()
    try sentinel.setSysctl("net.netfilter.nf_conntrack_udp_timeout", 1)
    try sentinel.exec(["bash", "-c", "for port in $(seq 20001 20300); do echo x > /dev/udp/127.0.0.1/$port; done 2>/dev/null; true"])
    let held = try sentinel.sysctl("net.netfilter.nf_conntrack_count")
    try #require(held >= 200, "the sentinel namespace tracks its UDP entries (count \(held))")
    let start = Date()
    while Date().timeIntervalSince(start) < timeoutSeconds {
        if try sentinel.sysctl("net.netfilter.nf_conntrack_count") < held / 2 { return Date().timeIntervalSince(start) }
        Thread.sleep(forTimeInterval: 0.05)
    }
    Issue.record("no GC pass within \(timeoutSeconds) s")
    return timeoutSeconds
}
