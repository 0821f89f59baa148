import CDeleteModuleStub
import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Unloads against a fixture kernel (/proc/modules, /sys/module holders and
/// refcounts) with the real Debian tree's dependencies, through libkmod, with
/// `delete_module` interposed by CDeleteModuleStub. The expected orders are
/// worked out by hand from the fixture: Debian's kmod 30 does not recurse
/// through holders, so its `modprobe -r --remove-holders` is no reference.
@Suite("unload order and errors", .serialized, .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
struct UnloadOrderTests {
    /// An iptables NAT gateway; btrfs also holds libcrc32c, so it stays.
    static let iptablesGateway = [
        LoadedModule(name: "iptable_nat", refcount: 0),
        LoadedModule(name: "xt_MASQUERADE", refcount: 0),
        LoadedModule(name: "xt_nat", refcount: 0),
        LoadedModule(name: "xt_conntrack", refcount: 0),
        LoadedModule(name: "ip_tables", refcount: 1, holders: ["iptable_nat"]),
        LoadedModule(name: "x_tables", refcount: 4, holders: ["ip_tables", "xt_MASQUERADE", "xt_conntrack", "xt_nat"]),
        LoadedModule(name: "nf_nat", refcount: 3, holders: ["iptable_nat", "xt_MASQUERADE", "xt_nat"]),
        LoadedModule(name: "nf_conntrack", refcount: 3, holders: ["nf_nat", "xt_MASQUERADE", "xt_conntrack"]),
        LoadedModule(name: "nf_defrag_ipv4", refcount: 1, holders: ["nf_conntrack"]),
        LoadedModule(name: "nf_defrag_ipv6", refcount: 1, holders: ["nf_conntrack"]),
        LoadedModule(name: "libcrc32c", refcount: 3, holders: ["btrfs", "nf_conntrack", "nf_nat"]),
        LoadedModule(name: "btrfs", refcount: 0),
    ]
    /// Only the family goes: ip_tables, x_tables and nf_defrag_* stay loaded.
    static let iptablesOrder = ["iptable_nat", "xt_MASQUERADE", "xt_nat", "nf_nat", "xt_conntrack", "nf_conntrack"]

    /// An nftables NAT host; nf_tables keeps one user (a table), so it and
    /// nfnetlink stay; libcrc32c is left unused but is not in the family.
    static let nftablesNat = [
        LoadedModule(name: "nft_chain_nat", refcount: 0),
        LoadedModule(name: "nft_ct", refcount: 0),
        LoadedModule(name: "nf_conntrack_netlink", refcount: 0),
        LoadedModule(name: "nf_tables", refcount: 3, holders: ["nft_chain_nat", "nft_ct"]),
        LoadedModule(name: "nfnetlink", refcount: 2, holders: ["nf_conntrack_netlink", "nf_tables"]),
        LoadedModule(name: "nf_nat", refcount: 1, holders: ["nft_chain_nat"]),
        LoadedModule(name: "nf_conntrack", refcount: 3, holders: ["nf_conntrack_netlink", "nf_nat", "nft_ct"]),
        LoadedModule(name: "nf_defrag_ipv4", refcount: 1, holders: ["nf_conntrack"]),
        LoadedModule(name: "nf_defrag_ipv6", refcount: 1, holders: ["nf_conntrack"]),
        LoadedModule(name: "libcrc32c", refcount: 2, holders: ["nf_conntrack", "nf_nat"]),
    ]
    static let nftablesOrder = ["nf_conntrack_netlink", "nft_chain_nat", "nf_nat", "nft_ct", "nf_conntrack"]

    /// Builds the fixture kernel, runs `body` with a host on it, cleans up.
    func withHost<T>(_ modules: [LoadedModule], _ body: (ModuleHost, URL) throws -> T) throws -> T {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let fixture = try LoadedFixture(root: root, modules: modules)
        cttune_stub_reset()
        return try body(try ModuleHost(root: fixture.systemRoot), root)
    }

    static func recordedCalls() -> [String] {
        (0..<Int(cttune_stub_call_count())).compactMap { cttune_stub_call_name(Int32($0)).map { String(cString: $0) } }
    }

    @Test(
        "holders go first, recursively, then the module, then dependencies left unused",
        arguments: [(iptablesGateway, iptablesOrder), (nftablesNat, nftablesOrder)])
    func orderIsHoldersFirst(modules: [LoadedModule], expected: [String]) throws {
        try withHost(modules) { host, _ in
            let outcome = try host.unload(blockingRules: [], dryRun: false)
            #expect(outcome.failure == nil)
            #expect(outcome.plan.order == expected)
            #expect(outcome.unloaded == expected)
            #expect(Self.recordedCalls() == expected)
            // libkmod always asks the kernel not to wait for users to leave.
            #expect((0..<Int(cttune_stub_call_count())).allSatisfy { cttune_stub_call_flags(Int32($0)) == O_NONBLOCK })
        }
    }

    @Test("--include-defrag (the stateless apply's) also unloads nf_defrag_* once nothing uses them; x_tables and libcrc32c stay")
    func defragOnlyWhenIncluded() throws {
        try withHost(Self.iptablesGateway) { host, _ in
            let plan = try host.unloadPlan(blockingRules: [], includingDefrag: true)
            #expect(plan.order == Self.iptablesOrder + ["nf_defrag_ipv6", "nf_defrag_ipv4"])
            #expect(plan.steps.last?.reason == "dependency of nf_conntrack, no longer used")
            #expect(plan.refusal == nil)
        }
    }

    @Test("a transaction never unloads a module outside the family, whatever its journal entry says")
    func transactionRefusesOutsider() throws {
        try withHost(Self.iptablesGateway) { host, _ in
            var removed: [String] = []
            let operations = ModuleOperations(
                remove: {
                    removed.append($0)
                    return nil
                }, load: { _ in nil })
            let entry = JournalEntry(
                id: Journal.newIdentifier(), command: "rollback", created: Journal.timestamp(), profile: nil, status: .inProgress,
                actions: [.module(.init(name: "nf_conntrack_ftp", loaded: false)), .module(.init(name: "openvswitch", loaded: false))])
            let run = try Transaction(root: host.root, modules: operations).run(entry)
            #expect(removed == ["nf_conntrack_ftp"])
            #expect(run.failedStep?.index == 1)
            #expect(run.error?.description.contains("openvswitch") == true)
        }
    }

    @Test("a dry run gives the same order and calls delete_module not once")
    func dryRunUnloadsNothing() throws {
        try withHost(Self.iptablesGateway) { host, _ in
            let outcome = try host.unload(blockingRules: [], dryRun: true)
            #expect(outcome.plan.order == Self.iptablesOrder)
            #expect(outcome.unloaded.isEmpty)
            #expect(cttune_stub_call_count() == 0)
        }
    }

    @Test("cttune unload --dry-run --root prints the numbered order with a reason per module and exits 0")
    func dryRunCommandText() throws {
        try withHost(Self.iptablesGateway) { _, root in
            let result = try Shell.run([TestPaths.cttune, "unload", "--dry-run", "--root", root.path])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "would unload, in this order:")
            #expect(lines.dropFirst().map { $0.split(separator: " ")[1] } == Self.iptablesOrder.map { Substring($0) })
            #expect(lines[1] == "  1. iptable_nat  (holder of nf_nat)")
            #expect(lines.last == "  6. nf_conntrack  (conntrack family)")
        }
    }

    @Test("plan --profile stateless shows the unload order and the blacklist file the module commands would use")
    func statelessPlanShowsModulePlan() throws {
        try withHost(Self.iptablesGateway) { _, root in
            let result = try Shell.run([
                TestPaths.cttune, "plan", "--profile", "stateless", "--root", root.path,
                "--memory", "4G", "--cpus", "2", "--format", "json",
            ])
            let plan = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
            let modules = try #require((plan["stateless"] as? [String: Any])?["modules"] as? [String: Any])
            #expect(modules["unload_order"] as? [String] == Self.iptablesOrder)
            #expect(modules["refused"] is NSNull, "no rules are read from an image tree, nothing is in use")
            let contents = try #require(modules["blacklist_contents"] as? String)
            for module in ["nf_conntrack", "nf_nat", "xt_MASQUERADE"] {
                #expect(contents.contains("blacklist \(module)\n") && contents.contains("install \(module) /bin/false"))
            }
            #expect((modules["blacklist_file"] as? String)?.hasSuffix("/etc/modprobe.d/cttune-blacklist.conf") == true)
            #expect(Set(modules["outside_family_unloadable"] as? [String] ?? []) == ModuleFamilyTests.outsideFamily)
            #expect(modules["outside_family_in_use"] as? [String] == [])
            #expect(cttune_stub_call_count() == 0, "a plan unloads nothing")
        }
    }

    @Test("cttune modules reports loaded modules with the refcount and holders the fixture kernel shows")
    func modulesShowsLiveState() throws {
        try withHost(Self.iptablesGateway) { _, root in
            let result = try Shell.run([TestPaths.cttune, "modules", "--root", root.path, "--format", "json"])
            #expect(result.status == 0, "\(result.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(object["module_support"] as? String == "loadable")
            let modules = try #require(object["modules"] as? [[String: Any]])
            let conntrack = try #require(modules.first { $0["name"] as? String == "nf_conntrack" })
            #expect(conntrack["state"] as? String == "loaded")
            #expect(conntrack["refcount"] as? Int == 3)
            #expect(conntrack["holders"] as? [String] == ["nf_nat", "xt_MASQUERADE", "xt_conntrack"])
            #expect(modules.first { $0["name"] as? String == "nft_ct" }?["state"] as? String == "available")
        }
    }

    struct FailureCase: Sendable, CustomTestStringConvertible {
        var module: String
        var errno: Int32
        var expected: TunerError
        var unloadedBefore: [String]
        var testDescription: String { "\(module) fails with errno \(errno)" }
    }

    static let failures = [
        FailureCase(
            module: "nf_nat", errno: EBUSY,
            expected: .moduleBusy(module: "nf_nat", holders: ["iptable_nat", "xt_MASQUERADE", "xt_nat"], users: 0),
            unloadedBefore: ["iptable_nat", "xt_MASQUERADE", "xt_nat"]),
        FailureCase(module: "iptable_nat", errno: ENOSYS, expected: .unloadUnsupported(module: "iptable_nat"), unloadedBefore: []),
        FailureCase(
            module: "nf_conntrack", errno: EPERM, expected: .unloadNotPermitted(module: "nf_conntrack"),
            unloadedBefore: Array(iptablesOrder.prefix(5))),
    ]

    @Test("a failing delete_module stops the unload, names the cause and lists what was unloaded before", arguments: failures)
    func failureStopsAndReports(failure: FailureCase) throws {
        try withHost(Self.iptablesGateway) { host, _ in
            cttune_stub_fail(failure.module, failure.errno)
            let outcome = try host.unload(blockingRules: [], dryRun: false)
            #expect(outcome.failure == failure.expected)
            #expect(outcome.unloaded == failure.unloadedBefore)
            #expect(Self.recordedCalls() == failure.unloadedBefore + [failure.module])
            let json = JSONValue.object(ModuleReports.json(outcome)).rendered()
            #expect(json.contains("{\"module\":\"\(failure.module)\",\"reason\":"))
            #expect(json.contains("\"result\":\"failed\""))
        }
    }

    @Test("a module already gone (ENOENT) is noted and the unload goes on")
    func alreadyGoneContinues() throws {
        try withHost(Self.iptablesGateway) { host, _ in
            cttune_stub_fail("xt_nat", ENOENT)
            let outcome = try host.unload(blockingRules: [], dryRun: false)
            #expect(outcome.succeeded)
            #expect(outcome.alreadyGone == ["xt_nat"])
            #expect(outcome.unloaded == Self.iptablesOrder.filter { $0 != "xt_nat" })
        }
    }

    @Test("EBUSY names the holders the kernel still lists, or the count of other users")
    func busyMessageNamesHolders() {
        let busy = Unloader.error(
            for: .resourceBusy, module: "nf_conntrack",
            live: LiveModules(
                support: .loadable, loaded: ["nf_conntrack": LoadedModule(name: "nf_conntrack", refcount: 3, holders: ["nft_ct"])]))
        #expect(busy.description.contains("held by nft_ct"))
        #expect(busy.description.contains("in use 2 times besides its holders"))
    }

    @Test("a module still used by something other than a module refuses the whole unload before anything is removed")
    func inUseRefusesUpFront() throws {
        var modules = Self.nftablesNat
        modules[modules.firstIndex { $0.name == "nf_conntrack" }!].refcount = 4
        try withHost(modules) { host, _ in
            let outcome = try host.unload(blockingRules: [], dryRun: false)
            #expect(outcome.failure == .moduleInUse(module: "nf_conntrack", users: 1))
            #expect(cttune_stub_call_count() == 0)
        }
    }

    @Test("a refused dry run names the cause first (on stderr), then still shows the order, and exits 1")
    func refusedDryRunText() throws {
        var modules = Self.nftablesNat
        modules[modules.firstIndex { $0.name == "nf_conntrack" }!].refcount = 4
        try withHost(modules) { _, root in
            let result = try Shell.run([TestPaths.cttune, "unload", "--dry-run", "--root", root.path])
            #expect(result.status == 1)
            #expect(
                result.stderr.hasPrefix("cttune: error: refusing to unload: nf_conntrack is in use (1 reference besides its holder modules")
            )
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "once that is resolved, the unload order would be:")
            #expect(lines.count == 1 + Self.nftablesOrder.count)
        }
    }

    @Test("live rules that need conntrack refuse the unload before anything is removed")
    func blockingRulesRefuse() throws {
        try withHost(Self.iptablesGateway) { host, _ in
            let rule = "iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            let outcome = try host.unload(blockingRules: [rule], dryRun: false)
            #expect(outcome.failure == .rulesNeedConntrack(rules: [rule]))
            #expect(outcome.failure?.description.contains("--ctstate RELATED,ESTABLISHED") == true)
            #expect(cttune_stub_call_count() == 0)
        }
    }

    @Test("soft dependencies: post softdeps go before the module, unused pre softdeps after it")
    func softdepsHonoured() {
        let live = LiveModules(
            support: .loadable,
            loaded: [
                "nf_conntrack": LoadedModule(name: "nf_conntrack", refcount: 0),
                "nf_nat_ftp": LoadedModule(name: "nf_nat_ftp", refcount: 0),
                "nf_conntrack_ftp": LoadedModule(name: "nf_conntrack_ftp", refcount: 0),
                "nf_conntrack_sip": LoadedModule(name: "nf_conntrack_sip", refcount: 1),
                "crc_helper": LoadedModule(name: "crc_helper", refcount: 0),
            ])
        let index = [
            "nf_conntrack": ModuleIndexEntry(
                name: "nf_conntrack", path: "/x.ko", softdepsBefore: ["nf_conntrack_ftp", "nf_conntrack_sip", "crc_helper"],
                softdepsAfter: ["nf_nat_ftp"])
        ]
        let plan = UnloadPlanner.plan(targets: ["nf_conntrack"], live: live, index: { index[$0] }, builtIn: [], blockingRules: [])
        // crc_helper is unused but outside the family: it stays.
        #expect(plan.order == ["nf_nat_ftp", "nf_conntrack", "nf_conntrack_ftp"])
        #expect(plan.refusal == nil)
    }
}
