import Foundation

/// Writes a profile that describes ct-loadgen's load exactly: `flowsPerSecond`
/// TCP connections, one byte each, the client closing first (FIN, so every
/// flow ends in TIME_WAIT), nothing else; the peak is the mean.
///
/// - Parameters:
///   - extraLines: more top-level YAML (headroom, pinned timeouts).
/// - Returns: the file's path.
package func writeLoopbackLoadProfile(in directory: URL, flowsPerSecond: Double, extraLines: [String] = []) throws -> String {
    let path = directory.appendingPathComponent("loopback-load.yaml").path
    try
        ([
            "description: ct-loadgen's loopback load",
            "load:",
            "  tcp:",
            "    new_per_second: \(flowsPerSecond)",
            "    established_seconds: 0",
            "    rst_close_ratio: 0",
            "    orphan_ratio: 0",
            "    half_open_ratio: 0",
            "  udp:",
            "    new_per_second: 0",
            "  other_per_second: 0",
            "burst_factor: 1",
        ] + extraLines).joined(separator: "\n").appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
