import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The `cttune plan` command as scripts see it: JSON shape, exit codes, errors.
@Suite("cttune plan command")
struct PlanCommandTests {
    func plan(_ arguments: [String]) throws -> Shell.Result {
        try Shell.run([TestPaths.cttune, "plan"] + arguments, environment: ["CTTUNE_PROFILE_PATH": ""])
    }

    func json(_ result: Shell.Result) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try #require(object as? [String: Any], "stdout was: \(result.stdout)")
    }

    @Test("--format json prints one object with the contract's keys, in order, on stdout")
    func jsonShape() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        let result = try plan(["--root", fixture.url.path, "--profile", "web-frontend", "--memory", "4G", "--format", "json"])
        let object = try json(result)
        #expect(object["command"] as? String == "plan")
        #expect(object["profile"] as? String == "web-frontend")
        let facts = try #require(object["facts"] as? [String: Any])
        #expect(facts["memory_bytes"] as? Int == 4 << 30)
        #expect(facts["cpus"] as? Int == 1)
        #expect(facts["kernel"] as? String == "6.1.0-28-cloud-amd64")
        #expect(facts["conntrack"] as? String == "module")
        #expect(facts["entry_bytes"] as? Int == 320)
        #expect(facts["count"] as? Int == 37)
        #expect(facts["netns"] as? String == "initial")
        let settings = try #require(object["settings"] as? [[String: Any]])
        #expect(settings.map { $0["key"] as? String } == ConntrackSetting.allCases.map(\.key))
        for setting in settings {
            #expect(Set(setting.keys).isSuperset(of: ["key", "current", "planned", "applicable", "reason"]))
            #expect(setting["planned"] is Int)
        }
        let estimate = try #require(object["estimate"] as? [String: Any])
        #expect(estimate["peak_entries"] is Int && estimate["memory_bytes"] is Int)
        #expect(estimate["budget_bytes"] as? Int == Int(Double(4 << 30) * 0.05))
        #expect(object["fits_budget"] is Bool && object["changed"] as? Bool == true)
        // Key order is part of the contract for people reading the JSON.
        let order = ["\"command\"", "\"profile\"", "\"facts\"", "\"settings\"", "\"estimate\"", "\"fits_budget\"", "\"changed\""]
        let positions = order.map { result.stdout.range(of: $0)!.lowerBound }
        #expect(positions == positions.sorted())
    }

    @Test("absent values are null, not missing")
    func nulls() throws {
        let fixture = try FixtureCopy("bare")
        defer { fixture.remove() }
        let result = try plan(["--root", fixture.url.path, "--format", "json"])
        let object = try json(result)
        let facts = try #require(object["facts"] as? [String: Any])
        #expect(facts["count"] is NSNull && facts["netns"] is NSNull)
        let settings = try #require(object["settings"] as? [[String: Any]])
        #expect(settings.allSatisfy { $0["current"] is NSNull && $0["applicable"] as? Bool == false })
    }

    @Test("exit codes: 0 fits, 2 with --detailed-exitcode when something changes, 1 when it does not fit")
    func exitCodes() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        #expect(try plan(["--root", fixture.url.path, "--memory", "4G"]).status == 0)
        #expect(try plan(["--root", fixture.url.path, "--memory", "4G", "--detailed-exitcode"]).status == 2)
        let tooSmall = try plan(["--root", fixture.url.path, "--profile", "web-frontend", "--memory", "256M"])
        #expect(tooSmall.status == 1)
        #expect(tooSmall.stdout.contains("DOES NOT FIT"))
        #expect(tooSmall.stdout.contains("raise memory_budget_percent to at least"))
    }

    @Test("--detailed-exitcode exits 0 when the host already has the planned values")
    func nothingToChange() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        let first = try json(try plan(["--root", fixture.url.path, "--memory", "4G", "--format", "json"]))
        for setting in try #require(first["settings"] as? [[String: Any]]) {
            let key = setting["key"] as! String, planned = setting["planned"] as! Int
            let file =
                key == ConntrackSetting.hashsize.key
                ? "proc/sys/net/netfilter/nf_conntrack_buckets"
                : "proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
            try "\(planned)\n".write(toFile: fixture.path(file), atomically: true, encoding: .utf8)
        }
        let again = try plan(["--root", fixture.url.path, "--memory", "4G", "--detailed-exitcode", "--format", "json"])
        #expect(again.status == 0)
        #expect(try json(again)["changed"] as? Bool == false)
    }

    @Test(
        "bad input is a one-line error on stderr with exit 1, or 64 for usage errors",
        arguments: [
            (["--profile", "no-such-profile"], Int32(1), "no profile named \"no-such-profile\""),
            (["--root", "/nonexistent-root"], Int32(1), "--root /nonexistent-root is not a directory"),
            (["--memory", "lots"], Int32(64), "\"lots\" is not a size"),
            (["--cpus", "0"], Int32(64), "--cpus must be between 1 and 65536"),
            (["--format", "yaml"], Int32(64), "yaml"),
        ])
    func badInput(arguments: [String], status: Int32, message: String) throws {
        let result = try plan(arguments)
        #expect(result.status == status)
        #expect(result.stderr.contains(message), "stderr was: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test("text output is a table of key, current, planned and reason, then the estimate")
    func textTable() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        let result = try plan(["--root", fixture.url.path, "--explain"])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.first { $0.contains("KEY") })
        #expect(header.contains("CURRENT") && header.contains("PLANNED") && header.contains("REASON"))
        #expect(lines.contains { $0.contains("net.netfilter.nf_conntrack_max") && $0.contains("4096") })
        #expect(lines.contains { $0.hasPrefix("estimate: peak") })
        #expect(lines.contains { $0.contains("tcp, closed:") }, "--explain shows the per-class arithmetic")
        #expect(lines.contains { $0.contains("kube-proxy: max 131072") })
    }
}

@Suite("cttune plan in a network namespace")
struct PlanInNamespaceTests {
    @Test(
        "inside a fresh netns the global settings are marked not applicable, the timeouts are",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
    func globalsBlocked() throws {
        let namespace = try TestNamespace("plan-ns")
        defer { namespace.delete() }
        try namespace.setSysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", 45)
        let output = try namespace.exec([TestPaths.cttune, "plan", "--format", "json", "--memory", "4G"])
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let facts = try #require(plan["facts"] as? [String: Any])
        #expect(facts["netns"] as? String == "non-initial")
        #expect(facts["conntrack"] as? String == "built-in")
        let settings = try #require(plan["settings"] as? [[String: Any]])
        func setting(_ key: String) -> [String: Any]? { settings.first { $0["key"] as? String == key } }
        for key in ["net.netfilter.nf_conntrack_max", "nf_conntrack.hashsize"] {
            #expect(setting(key)?["applicable"] as? Bool == false)
            #expect((setting(key)?["not_applicable_reason"] as? String)?.contains("read-only in this network namespace") == true)
        }
        let timeWait = try #require(setting("net.netfilter.nf_conntrack_tcp_timeout_time_wait"))
        #expect(timeWait["applicable"] as? Bool == true)
        #expect(timeWait["current"] as? Int == 45, "the namespace's own timeout, not the host's")
    }

    @Test("--entry-size and --namespaces change the plan's memory; out-of-range values are usage errors")
    func entrySizeAndNamespaces() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        func plan(_ arguments: [String]) throws -> Shell.Result { try PlanCommandTests().plan(arguments) }
        func json(_ result: Shell.Result) throws -> [String: Any] { try PlanCommandTests().json(result) }
        let base = ["--root", fixture.url.path, "--memory", "16G", "--format", "json"]
        let one = try json(try plan(base + ["--entry-size", "256"]))
        let four = try json(try plan(base + ["--entry-size", "256", "--namespaces", "4"]))
        let facts = try #require(one["facts"] as? [String: Any])
        #expect(facts["entry_bytes"] as? Int == 256 && facts["entry_bytes_source"] as? String == "flag")
        #expect(facts["live_slab_entry_bytes"] as? Int == 320)
        let max = try #require((one["settings"] as? [[String: Any]])?.first?["planned"] as? Int)
        let buckets = try #require((one["settings"] as? [[String: Any]])?[1]["planned"] as? Int)
        let estimate = try #require(four["estimate"] as? [String: Any])
        #expect(estimate["namespaces"] as? Int == 4)
        #expect(estimate["memory_bytes"] as? Int == 4 * max * 256 + buckets * 8)
        #expect((one["advice"] as? [String])?.contains { $0.contains("live slab allocates 320 B") } == true)
        for bad in [["--entry-size", "8"], ["--namespaces", "0"]] {
            let result = try plan(["--root", fixture.url.path] + bad)
            #expect(result.status == 64, "\(bad): \(result.stderr)")
            #expect(result.stderr.contains(bad[0]))
        }
    }

    @Test("a profile at the documented limits: plan and apply exit 1 with one line naming the input, no trap")
    func limitsProfile() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("limits.yaml").path
        try "load:\n  tcp:\n    new_per_second: 1000000\n    established_seconds: 31536000\nburst_factor: 100\nheadroom: 10\n"
            .write(toFile: profile, atomically: true, encoding: .utf8)
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        let planned = try PlanCommandTests().plan(["--root", fixture.url.path, "--profile", profile])
        #expect(planned.status == 1)
        #expect(planned.stdout.contains("load.tcp.new_per_second 1000000 x burst_factor 100"))
        let applied = try Shell.run([TestPaths.cttune, "apply", "--check", "--root", fixture.url.path, "--profile", profile])
        #expect(applied.status == 1)
        #expect(applied.stderr.split(separator: "\n").count == 1 && applied.stderr.contains("load.tcp.new_per_second"), "\(applied.stderr)")
    }
}
