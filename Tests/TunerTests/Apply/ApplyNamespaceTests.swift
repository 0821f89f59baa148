import Foundation
import TestSupport
import Testing

/// `cttune apply` on the real kernel inside a fresh network namespace: the
/// per-namespace timeouts change, the global max and hash size are skipped
/// with the reason, and rollback restores the exact old values. Files and
/// the journal go to private copies (`PrivateState`), never the host's.
@Suite("apply in a fresh network namespace", .enabled(if: TestHost.realKernel, "needs root, nf_conntrack, ip and nft"))
struct ApplyNamespaceTests {
    static let pinned = [
        "nf_conntrack_tcp_timeout_time_wait": 45,
        "nf_conntrack_tcp_timeout_close_wait": 30,
        "nf_conntrack_udp_timeout": 20,
    ]

    static func key(_ name: String) -> String { "net.netfilter." + name }

    /// Runs `body` with a fresh namespace, private state and a profile
    /// pinning `pinned`, all removed afterwards.
    static func withNamespace(_ label: String, _ body: (TestNamespace, PrivateState, String) throws -> Void) throws {
        let namespace = try TestNamespace(label)
        defer { namespace.delete() }
        let state = try PrivateState()
        defer { state.remove() }
        try body(namespace, state, try writeProfile(in: state.url, timeouts: pinned))
    }

    @Test(
        "timeouts change in the namespace, global settings are skipped with the reason, and the exit code follows the flags",
        arguments: [
            (flags: [] as [String], exit: Int32(1)),
            (flags: ["--allow-partial"], exit: Int32(0)),
            (flags: ["--allow-partial", "--detailed-exitcode"], exit: Int32(2)),
        ])
    func appliesTimeoutsSkipsGlobals(flags: [String], exit: Int32) throws {
        try ApplyNamespaceTests.withNamespace("apply") { namespace, state, profile in
            let old = try Self.pinned.keys.map { try namespace.sysctl(Self.key($0)) }

            let result = try state.cttune(["apply", "--profile", profile, "--format", "json"] + flags, in: namespace)
            #expect(result.status == exit, "\(result.stderr)")
            for (name, value) in Self.pinned {
                #expect(try namespace.sysctl(Self.key(name)) == value)
            }
            let json = try PrintedJSON(result)
            #expect(json.object["changed"] as? Bool == true)
            for key in ["net.netfilter.nf_conntrack_max", "nf_conntrack.hashsize"]
            where json.setting(key)["current"] as? Int != json.planned(key) {
                #expect(json.result(key) == "skipped")
                #expect(
                    (json.setting(key)["error_message"] as? String)?.contains("global setting, read-only in this network namespace") == true
                )
            }
            #expect(json.result(Self.key("nf_conntrack_tcp_timeout_time_wait")) == "applied")
            if exit == 1 {
                #expect(result.stderr.contains("--allow-partial"))
            }
            // The namespace's sysctl.d copy holds the timeouts, not the global settings.
            let conf = try String(contentsOf: state.sysctlD.appendingPathComponent("90-cttune.conf"), encoding: .utf8)
            #expect(conf.contains("net.netfilter.nf_conntrack_tcp_timeout_time_wait = 45\n"))
            #expect(!conf.contains("nf_conntrack_max"))

            let again = try state.cttune(["apply", "--profile", profile, "--allow-partial", "--detailed-exitcode"], in: namespace)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(state.journalIDs().count == 1)

            let rollback = try state.cttune(["rollback"], in: namespace)
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(try Self.pinned.keys.map { try namespace.sysctl(Self.key($0)) } == old)
            #expect(!FileManager.default.fileExists(atPath: state.sysctlD.appendingPathComponent("90-cttune.conf").path))
        }
    }

    @Test("--check in a namespace changes no kernel value and writes no file")
    func checkChangesNothing() throws {
        try ApplyNamespaceTests.withNamespace("check") { namespace, state, profile in
            let result = try state.cttune(
                ["apply", "--check", "--allow-partial", "--detailed-exitcode", "--profile", profile], in: namespace)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(try namespace.sysctl(Self.key("nf_conntrack_tcp_timeout_time_wait")) == 120)
            #expect(try FileManager.default.contentsOfDirectory(atPath: state.sysctlD.path).isEmpty)
            #expect(state.journalIDs().isEmpty)
        }
    }

    @Test("when the sysctl.d file cannot be written (read-only file system), the timeouts already written are restored")
    func readOnlyFileRestoresTimeouts() throws {
        try ApplyNamespaceTests.withNamespace("erofs") { namespace, state, profile in
            let result = try state.cttune(
                ["apply", "--allow-partial", "--profile", profile, "--format", "json"], in: namespace,
                readOnlySysctlD: true)
            #expect(result.status == 1)
            #expect(result.stderr.contains("writing /etc/sysctl.d/90-cttune.conf failed"))
            #expect(result.stderr.contains("read-only file system"))
            #expect(result.stderr.contains("everything already changed was restored"))
            #expect(try namespace.sysctl(Self.key("nf_conntrack_tcp_timeout_time_wait")) == 120)
            #expect(try namespace.sysctl(Self.key("nf_conntrack_tcp_timeout_close_wait")) == 60)
            #expect(try PrintedJSON(result).result(Self.key("nf_conntrack_tcp_timeout_time_wait")) == "rolled-back")
        }
    }

    @Test("a value the kernel rejects midway (EINVAL) stops the rollback and undoes its earlier steps")
    func rejectedValueUndoesEarlierSteps() throws {
        try ApplyNamespaceTests.withNamespace("einval") { namespace, state, profile in
            #expect(try state.cttune(["apply", "--allow-partial", "--profile", profile], in: namespace).status == 0)
            let id = try #require(state.journalIDs().first)
            // Record an old close_wait the kernel refuses (it overflows the
            // jiffies conversion), as a damaged journal would.
            let url = state.journal.appendingPathComponent("\(id).json")
            var journal = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            var actions = try #require(journal["actions"] as? [[String: Any]])
            let index = try #require(actions.firstIndex { $0["key"] as? String == Self.key("nf_conntrack_tcp_timeout_close_wait") })
            actions[index]["old"] = 2_000_000_000
            journal["actions"] = actions
            try JSONSerialization.data(withJSONObject: journal).write(to: url)

            let result = try state.cttune(["rollback", id, "--format", "json"], in: namespace)
            #expect(result.status == 1)
            #expect(result.stderr.contains("the kernel rejected 2000000000 for net.netfilter.nf_conntrack_tcp_timeout_close_wait"))
            #expect(result.stderr.contains("everything already changed was restored"))
            // The rollback's first step (removing the file) was undone; the timeouts stay applied.
            #expect(FileManager.default.fileExists(atPath: state.sysctlD.appendingPathComponent("90-cttune.conf").path))
            #expect(try namespace.sysctl(Self.key("nf_conntrack_tcp_timeout_close_wait")) == 30)
            #expect(try namespace.sysctl(Self.key("nf_conntrack_tcp_timeout_time_wait")) == 45)
        }
    }
}

/// Apply and rollback of the global max and hash size in the initial
/// namespace, for real: serialized and under the global test lock, which
/// also writes the old values back if an assertion fails.
@Suite("apply in the initial network namespace", .serialized, .enabled(if: TestHost.realKernel, "needs root and nf_conntrack"))
struct ApplyGlobalTests {
    @Test("max and the hash size are applied and read back through nf_conntrack_buckets, and rollback brings the boot values back")
    func appliesAndRollsBackGlobals() throws {
        let state = try PrivateState()
        defer { state.remove() }
        try GlobalConntrack.withExclusiveAccess {
            let bootMax = try GlobalConntrack.read(GlobalConntrack.maxPath)
            let bootBuckets = try GlobalConntrack.read(GlobalConntrack.bucketsPath)
            let result = try state.cttune(["apply", "--runtime-only", "--memory", "8G", "--detailed-exitcode", "--format", "json"])
            #expect(result.status == 2, "\(result.stderr)")
            let json = try PrintedJSON(result)
            let max = try #require(json.planned("net.netfilter.nf_conntrack_max"))
            let buckets = try #require(json.planned("nf_conntrack.hashsize"))
            try #require(max != bootMax && buckets != bootBuckets, "the default profile should plan other values than the boot ones")
            #expect(json.result("net.netfilter.nf_conntrack_max") == "applied")
            #expect(json.result("nf_conntrack.hashsize") == "applied")
            #expect(try GlobalConntrack.read(GlobalConntrack.maxPath) == max)
            #expect(try GlobalConntrack.read(GlobalConntrack.bucketsPath) == buckets)
            #expect(try GlobalConntrack.read("/sys/module/nf_conntrack/parameters/hashsize") == buckets)

            let rollback = try state.cttune(["rollback", "--format", "json"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(try GlobalConntrack.read(GlobalConntrack.maxPath) == bootMax)
            #expect(try GlobalConntrack.read(GlobalConntrack.bucketsPath) == bootBuckets)
        }
    }
}

/// Where a setting cannot be written from here, apply says which and why.
@Suite("apply where settings cannot be written", .enabled(if: TestHost.realKernel, "needs root, nf_conntrack, ip and nft"))
struct ApplyBlockedSettingTests {
    @Test("run as an unprivileged user, every setting that would change is skipped with 'run as root' and the exit code is 1")
    func unprivilegedUserIsTold() throws {
        try ApplyNamespaceTests.withNamespace("nobody") { namespace, state, profile in
            let result = try namespace.run([
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                TestPaths.cttune, "apply", "--check", "--profile", profile, "--format", "json",
            ])
            #expect(result.status == 1, "\(result.stderr)")
            let json = try PrintedJSON(result)
            let timeWait = json.setting(ApplyNamespaceTests.key("nf_conntrack_tcp_timeout_time_wait"))
            #expect(timeWait["result"] as? String == "skipped")
            #expect((timeWait["error_message"] as? String)?.contains("permission denied — run as root") == true)
            #expect(try namespace.sysctl(ApplyNamespaceTests.key("nf_conntrack_tcp_timeout_time_wait")) == 120)
        }
    }
}

/// Each way the kernel refuses a write becomes its own message, checked
/// against the real kernel in a fresh namespace through a journal entry
/// that rollback replays.
@Suite("kernel write errors", .enabled(if: TestHost.realKernel, "needs root, nf_conntrack, ip and nft"))
struct KernelWriteErrorTests {
    @Test(
        "the kernel's refusal is reported with the setting and what to do",
        arguments: [
            (
                key: "net.netfilter.nf_conntrack_max", path: "/proc/sys/net/netfilter/nf_conntrack_max", value: 300_000,
                message: "cannot write net.netfilter.nf_conntrack_max (/proc/sys/net/netfilter/nf_conntrack_max): permission denied"
            ),
            (
                key: "nf_conntrack.hashsize", path: "/sys/module/nf_conntrack/parameters/hashsize", value: 300_032,
                message: "the kernel allows it only in the initial network namespace"
            ),
            (
                key: "net.netfilter.nf_conntrack_tcp_timeout_close", path: "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close",
                value: 2_000_000_000, message: "the kernel rejected 2000000000 for net.netfilter.nf_conntrack_tcp_timeout_close"
            ),
        ])
    func refusalIsNamed(key: String, path: String, value: Int, message: String) throws {
        try ApplyNamespaceTests.withNamespace("errno") { namespace, state, _ in
            let current = try namespace.exec(["cat", path]).trimmingCharacters(in: .whitespacesAndNewlines)
            let entry: [String: Any] = [
                "id": "20200101T000000.000Z-1", "command": "apply", "created": "2020-01-01T00:00:00Z", "status": "applied",
                "actions": [["type": "sysctl", "key": key, "path": path, "old": value, "new": Int(current) ?? 0]],
            ]
            try FileManager.default.createDirectory(at: state.journal, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: entry).write(to: state.journal.appendingPathComponent("20200101T000000.000Z-1.json"))
            let result = try state.cttune(["rollback", "20200101T000000.000Z-1"], in: namespace)
            #expect(result.status == 1)
            #expect(result.stderr.contains("writing \(key) = \(value) failed"))
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(try namespace.exec(["cat", path]).trimmingCharacters(in: .whitespacesAndNewlines) == current)
        }
    }
}
