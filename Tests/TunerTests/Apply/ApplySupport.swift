import Foundation
import TestSupport
import Testing

/// A host tree for `cttune apply --root`: /proc/sys/net/netfilter with the
/// boot values, the hashsize parameter, RAM and CPUs, and nf_conntrack built
/// in or loaded as a module. Removed by `remove()` (call it in a `defer`).
final class ApplyFixtureTree {
    enum Conntrack { case builtIn, module }

    let url: URL
    var path: String { url.path }

    static let bootValues: [String: Int] = [
        "nf_conntrack_max": 262_144, "nf_conntrack_buckets": 262_144, "nf_conntrack_count": 1000,
        "nf_conntrack_tcp_timeout_established": 432_000, "nf_conntrack_tcp_timeout_time_wait": 120,
        "nf_conntrack_tcp_timeout_close": 10, "nf_conntrack_tcp_timeout_close_wait": 60,
        "nf_conntrack_tcp_timeout_fin_wait": 120, "nf_conntrack_tcp_timeout_last_ack": 30,
        "nf_conntrack_tcp_timeout_syn_sent": 120, "nf_conntrack_tcp_timeout_syn_recv": 60,
        "nf_conntrack_udp_timeout": 30, "nf_conntrack_udp_timeout_stream": 120, "nf_conntrack_generic_timeout": 600,
    ]

    init(_ conntrack: Conntrack = .builtIn) throws {
        url = try TestPaths.temporaryDirectory("cttune-apply-tree")
        try write("proc/meminfo", "MemTotal:        8388608 kB\nMemFree:         4000000 kB\n")
        try write("sys/devices/system/cpu/online", "0-3\n")
        try write("proc/sys/kernel/osrelease", "6.1.0-test\n")
        try write("sys/module/nf_conntrack/parameters/hashsize", "262144\n")
        for (name, value) in Self.bootValues { try write("proc/sys/net/netfilter/\(name)", "\(value)\n") }
        if conntrack == .module {
            try write("proc/modules", "nf_conntrack 188416 0 - Live 0x0000000000000000\n")
        }
    }

    /// An empty tree: an image under construction, or a host tree built by the test.
    static func empty() throws -> ApplyFixtureTree { try ApplyFixtureTree(emptyTree: ()) }

    private init(emptyTree: Void) throws {
        url = try TestPaths.temporaryDirectory("cttune-image-tree")
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    func file(_ relative: String) -> String { url.appendingPathComponent(relative).path }

    func write(_ relative: String, _ content: String) throws {
        let target = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.write(to: target, atomically: false, encoding: .utf8)
    }

    func read(_ relative: String) -> String? { try? String(contentsOfFile: file(relative), encoding: .utf8) }

    func sysctl(_ name: String) -> Int? {
        read("proc/sys/net/netfilter/\(name)").flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func exists(_ relative: String) -> Bool {
        var info = stat()
        return lstat(file(relative), &info) == 0
    }

    /// Every path under the tree with its content and modification time: two
    /// equal snapshots mean nothing was written.
    func snapshot() -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            var info = stat()
            lstat(file(relative), &info)
            let content = info.st_mode & S_IFMT == S_IFREG ? (read(relative) ?? "") : "(not a file)"
            result[relative] = "\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(content)"
        }
        return result
    }

    /// Journal entry identifiers, oldest first.
    func journalIDs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: file("var/lib/cttune/journal"))) ?? [])
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Runs the built cttune with `--root` this tree.
    func cttune(_ arguments: [String]) throws -> Shell.Result {
        try Shell.run([TestPaths.cttune] + arguments + ["--root", path])
    }
}

/// A profile file written into a directory: `extends: default` plus pinned timeouts.
func writeProfile(in directory: URL, name: String = "pinned", timeouts: [String: Int]) throws -> String {
    let url = directory.appendingPathComponent("\(name).yaml")
    let lines = ["extends: default", "timeouts:"] + timeouts.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }
    try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    return url.path
}
