import Foundation
import Testing

/// Conditions for tests that need root, a network namespace or a tool.
package enum TestHost {
    package static let isRoot = getuid() == 0
    package static let hasConntrack = FileManager.default.fileExists(atPath: "/proc/sys/net/netfilter/nf_conntrack_max")
    package static let canUseNetns =
        isRoot && hasConntrack && FileManager.default.fileExists(atPath: "/proc/self/ns/net")
        && (try? Shell.run(["which", "ip"]).status) == 0
    package static let hasNft = (try? Shell.run(["which", "nft"]).status) == 0

    /// For `.enabled(if:)`: root, nf_conntrack, ip and nft.
    package static let realKernel = canUseNetns && hasNft
    /// Why a test gated on `realKernel` did not run.
    package static let realKernelReason: Comment = "needs root, nf_conntrack, network namespaces (ip) and nft"
}

/// A network namespace made for one test and deleted by `delete()` (call it
/// in a `defer`). Loopback is up; `trackLoopback()` adds an nft
/// `ct state established,related accept` rule so local flows are tracked.
package final class TestNamespace {
    package let name: String
    private static let counter = Counter()

    package init(_ label: String = "t") throws {
        name = "cttune-\(label)-\(getpid())-\(Self.counter.next())"
        try Shell.check(["ip", "netns", "add", name])
        try exec(["ip", "link", "set", "lo", "up"])
    }

    @discardableResult
    package func exec(_ arguments: [String], input: String? = nil) throws -> String {
        try Shell.check(["ip", "netns", "exec", name] + arguments, input: input)
    }

    package func run(_ arguments: [String], input: String? = nil) throws -> Shell.Result {
        try Shell.run(["ip", "netns", "exec", name] + arguments, input: input)
    }

    /// A stateful input rule: conntrack now tracks every loopback flow.
    package func trackLoopback() throws {
        try exec(
            ["nft", "-f", "-"],
            input: """
                table inet cttune_test {
                  chain input { type filter hook input priority 0; policy accept; ct state established,related accept; }
                }
                """)
    }

    package func sysctl(_ key: String) throws -> Int {
        let text = try exec(["cat", "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")])
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    package func setSysctl(_ key: String, _ value: Int) throws {
        try exec(["sysctl", "-qw", "\(key)=\(value)"])
    }

    package func delete() {
        _ = try? Shell.run(["ip", "netns", "delete", name])
    }

    package final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()
        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value
        }
    }
}

/// Two network namespaces joined by a veth pair (`/24` addresses), the
/// server's with the stateful rule of `TestNamespace.trackLoopback()`: its
/// own addresses make flows inbound and outbound, as on a real host.
package struct NamespacePair {
    private static let counter = TestNamespace.Counter()
    package let server: TestNamespace
    package let client: TestNamespace

    package init(_ label: String, serverAddress: String, clientAddress: String) throws {
        server = try TestNamespace(label + "-srv")
        client = try TestNamespace(label + "-cli")
        // Interface names are at most 15 bytes, and pairs of one process run at once.
        let link = "v\(getpid() % 100_000)p\(Self.counter.next() % 1000)"
        do {
            try Shell.check([
                "ip", "link", "add", link + "s", "netns", server.name, "type", "veth", "peer", "name", link + "c", "netns", client.name,
            ])
            try server.exec(["ip", "addr", "add", serverAddress + "/24", "dev", link + "s"])
            try client.exec(["ip", "addr", "add", clientAddress + "/24", "dev", link + "c"])
            try server.exec(["ip", "link", "set", link + "s", "up"])
            try client.exec(["ip", "link", "set", link + "c", "up"])
            try server.trackLoopback()
        } catch {
            delete()
            throw error
        }
    }

    package func delete() {
        server.delete()
        client.delete()
    }
}

/// Serializes tests that change global conntrack values (max, hash size)
/// across threads and processes, and restores them afterwards whatever happens.
///
/// The values found on entry are also written to a file beside the lock
/// while the body runs: if a test process is killed mid-test (no `defer`
/// runs then), the next holder finds the file and restores them first.
package enum GlobalConntrack {
    package static let maxPath = "/proc/sys/net/netfilter/nf_conntrack_max"
    package static let bucketsPath = "/proc/sys/net/netfilter/nf_conntrack_buckets"
    package static let lockPath = "/run/cttune-tests.lock"
    /// "MAX BUCKETS" while a holder has changed them (scripts/bench-outage.sh reads it too).
    package static let savedPath = "/run/cttune-tests.saved"
    private static let threadLock = NSLock()

    /// A test's `.timeLimit` counts the wait for this lock too, and the
    /// holders together take minutes (the oracle, the worst GC phase, learn,
    /// the outage): tests that take it allow 20 minutes, below the suite's
    /// 25-minute watchdog, and bound their own loops in count and time.
    ///
    /// Runs `body` holding the global lock, then writes back the max and the
    /// hash size found before it, even when `body` throws.
    package static func withExclusiveAccess<T>(_ body: () throws -> T) throws -> T {
        threadLock.lock()
        defer { threadLock.unlock() }
        let fd = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Shell.Failure(command: "open \(lockPath)", result: .init(status: errno, stdout: "", stderr: "")) }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        defer { flock(fd, LOCK_UN) }
        try restoreAfterKilledHolder()
        let savedMax = try read(maxPath), savedBuckets = try read(bucketsPath)
        try "\(savedMax) \(savedBuckets)\n".write(toFile: savedPath, atomically: true, encoding: .utf8)
        defer {
            try? write(bucketsPath, savedBuckets)
            try? write(maxPath, savedMax)
            unlink(savedPath)
        }
        return try body()
    }

    /// A saved-values file left behind means its holder died inside the body.
    private static func restoreAfterKilledHolder() throws {
        guard let text = try? String(contentsOfFile: savedPath, encoding: .utf8) else { return }
        let values = text.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        if values.count == 2 {
            try write(bucketsPath, values[1])
            try write(maxPath, values[0])
        }
        unlink(savedPath)
    }

    package static func read(_ path: String) throws -> Int {
        Int(try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    package static func write(_ path: String, _ value: Int) throws {
        try "\(value)\n".write(toFile: path, atomically: false, encoding: .utf8)
    }
}
