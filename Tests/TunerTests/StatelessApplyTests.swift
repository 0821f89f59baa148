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

/// `cttune apply --profile stateless` against a fixture kernel: an apply
/// host tree (/proc/sys values, RAM, CPUs) that also shows the iptables NAT
/// gateway's loaded modules, the real Debian module tree, `delete_module`
/// interposed by CDeleteModuleStub, and loads recorded through the
/// `ModuleOperations` seam (libkmod's probe calls finit_module through
/// syscall(2), which no interposition catches).
///
/// Nested in the unload suite so no other test touches the stub meanwhile.
extension UnloadOrderTests {
    @Suite("apply --profile stateless on a module host")
    struct StatelessApplyTests {
        static let order = UnloadOrderTests.iptablesOrder
        static let modulesLoadConf = "etc/modules-load.d/cttune.conf"
        static let modprobeConf = "etc/modprobe.d/cttune.conf"
        static let blacklistConf = "etc/modprobe.d/cttune-blacklist.conf"

        /// Records the modules loaded through the seam, in order.
        final class LoadRecorder {
            var loads: [String] = []
        }

        /// The gateway host with cttune's load files from an earlier
        /// stateful `apply --persist-only`, and no entry tracked (so the
        /// stateless plan shrinks the table); removed by `tree.remove()`.
        struct GatewayHost {
            let tree: ApplyFixtureTree
            let recorder = LoadRecorder()
            var root: SystemRoot { SystemRoot(base: FilePath(tree.path)) }

            init() throws {
                tree = try ApplyFixtureTree(.module)
                try tree.write("proc/sys/net/netfilter/nf_conntrack_count", "0\n")
                _ = try LoadedFixture(root: tree.url, modules: UnloadOrderTests.iptablesGateway)
                try FileManager.default.createDirectory(at: tree.url.appendingPathComponent("lib"), withIntermediateDirectories: true)
                try ModuleTrees.copyModules(into: tree.url.appendingPathComponent("lib/modules"))
                var persist = ApplyRequest()
                persist.runtime = false
                _ = try apply(profile: "default", request: persist)
                cttune_stub_reset()
            }

            /// Unloads through libkmod (so the stub sees them), loads through the recorder.
            var modules: ModuleOperations {
                let recorder = recorder
                return ModuleOperations(
                    remove: ModuleOperations.libkmod(root: root).remove,
                    load: {
                        recorder.loads.append($0)
                        return nil
                    })
            }

            func apply(profile: String = "stateless", request: ApplyRequest = ApplyRequest()) throws -> ApplyOutcome {
                try Applier.apply(
                    under: root, request: request, modules: modules, profile: try ProfileCatalog.standard(root: root).load(profile)
                ) { try HostFacts.gather(from: root) }
            }

            /// Plays the kernel after the unloads: only the modules left stay in /proc/modules and /sys/module.
            func unloadInFixture(_ unloaded: [String]) throws {
                for name in unloaded {
                    try FileManager.default.removeItem(at: tree.url.appendingPathComponent("sys/module/\(name)"))
                }
                let left = UnloadOrderTests.iptablesGateway.filter { !unloaded.contains($0.name) }.map { module in
                    var module = module
                    module.holders.removeAll(where: unloaded.contains)
                    module.refcount = module.holders.count
                    return module
                }
                _ = try LoadedFixture(root: tree.url, modules: left)
            }
        }

        @Test(
            "apply unloads holders first in the hand-checked order, writes the blacklist, removes cttune's load files, and journals each step"
        )
        func appliesInOrder() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            #expect(host.tree.exists(Self.modulesLoadConf) && host.tree.exists(Self.modprobeConf))

            let outcome = try host.apply()
            #expect(outcome.error == nil)
            #expect(outcome.results[.max] == .applied && outcome.results[.hashsize] == .applied)
            #expect(host.tree.sysctl("nf_conntrack_max") == outcome.plan.planned(.max))
            #expect(UnloadOrderTests.recordedCalls() == Self.order)
            let step = try #require(outcome.modules)
            #expect(step.unloads.map(\.module) == Self.order)
            #expect(Self.order.allSatisfy { step.results[$0] == .applied })
            #expect(step.result == .applied)
            #expect(step.blacklist?.action == .created)
            #expect(host.recorder.loads.isEmpty)

            let blacklist = try #require(host.tree.read(Self.blacklistConf))
            for module in Self.order where ModuleFamily.contains(module) {
                #expect(blacklist.contains("blacklist \(module)\ninstall \(module) /bin/false\n"))
            }
            #expect(!host.tree.exists(Self.modulesLoadConf) && !host.tree.exists(Self.modprobeConf))
            #expect(outcome.files.first { $0.path.hasSuffix(Self.modulesLoadConf) }?.action == .removed)

            let entry = try Journal(root: host.root).load(try #require(outcome.journalID))
            #expect(entry.status == .applied)
            // Settings, then unloads, then files: a sysctl vanishes with its module.
            let kinds = entry.actions.map { action -> String in
                switch action {
                case .sysctl: return "sysctl"
                case .module: return "module"
                case .file: return "file"
                case .nftTable: return "nft-table"
                }
            }
            #expect(
                kinds
                    == kinds.sorted {
                        ["sysctl", "module", "file"].firstIndex(of: $0)! < ["sysctl", "module", "file"].firstIndex(of: $1)!
                    })
            #expect(kinds.first == "sysctl")
            let unloads = entry.actions.compactMap { action -> String? in
                if case .module(let change) = action, !change.loaded { return change.name } else { return nil }
            }
            #expect(unloads == Self.order)
            guard case .file(let last)? = entry.actions.last else {
                Issue.record("the blacklist is not the last step")
                return
            }
            #expect(last.path.string == "/" + Self.blacklistConf && last.oldContent == nil)
            let saved = try #require(host.tree.read("var/lib/cttune/journal/\(entry.id).json"))
            #expect(saved.contains("\"type\" : \"module\""))
        }

        @Test(
            "the real modprobe reads the written blacklist: loading nf_nat, even as a dependency, runs /bin/false",
            .enabled(if: ModuleTrees.hasModprobe, "needs modprobe (kmod)"))
        func modprobeHonoursBlacklist() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            _ = try host.apply()
            let output = try Shell.check([
                "modprobe", "-d", host.tree.path, "-S", ModuleTrees.version!,
                "-C", host.tree.file("etc/modprobe.d"), "-n", "-v", "nft_chain_nat",
            ])
            #expect(output.contains("install /bin/false"), "\(output)")
        }

        @Test(
            "rollback loads the modules back last unloaded first (through the seam), removes the blacklist and restores cttune's load files"
        )
        func rollbackReloadsInReverse() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            let loadFiles = [Self.modulesLoadConf, Self.modprobeConf].map { ($0, host.tree.read($0)) }
            let outcome = try host.apply()
            #expect(outcome.error == nil)
            try host.unloadInFixture(Self.order)

            let rollback = try TunerWorkflows.Rollback.run(nil, under: host.root, modules: host.modules)
            #expect(rollback.error == nil)
            #expect(rollback.target.id == outcome.journalID)
            #expect(host.tree.sysctl("nf_conntrack_max") == ApplyFixtureTree.bootValues["nf_conntrack_max"])
            #expect(host.recorder.loads == Self.order.reversed())
            #expect(!host.tree.exists(Self.blacklistConf))
            for (file, content) in loadFiles {
                #expect(content != nil && host.tree.read(file) == content)
            }
            let moduleItems = rollback.items.filter { Self.order.contains($0.target) }
            #expect(moduleItems.map(\.target) == Self.order.reversed())
            #expect(
                moduleItems.allSatisfy {
                    $0.before == .module(loaded: false) && $0.after == .module(loaded: true) && $0.result == "rolled-back"
                })
        }

        @Test("cttune rollback --root loads no module into the running kernel: the module items are skipped, the files restored, exit 0")
        func rollbackUnderRootLoadsNothing() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            let outcome = try host.apply()
            #expect(outcome.error == nil)
            try host.unloadInFixture(Self.order)

            let result = try host.tree.cttune(["rollback", "--format", "json"])
            #expect(result.status == 0, "\(result.stderr)")
            let json = try PrintedJSON(result)
            let items = try #require(json.object["restored"] as? [[String: Any]])
            let moduleItems = items.filter { Self.order.contains($0["target"] as? String ?? "") }
            #expect(moduleItems.count == Self.order.count)
            #expect(moduleItems.allSatisfy { $0["result"] as? String == "skipped" })
            #expect(!host.tree.exists(Self.blacklistConf))
            #expect(host.tree.exists(Self.modulesLoadConf))
            #expect(host.tree.sysctl("nf_conntrack_max") == ApplyFixtureTree.bootValues["nf_conntrack_max"])
        }

        @Test("a rollback finds modules already loaded again and leaves them alone")
        func rollbackSkipsLoadedModules() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            _ = try host.apply()
            // The fixture still lists every module: as if something loaded them back.
            let rollback = try TunerWorkflows.Rollback.run(nil, under: host.root, modules: host.modules)
            #expect(rollback.error == nil)
            #expect(host.recorder.loads.isEmpty)
            #expect(rollback.items.filter { Self.order.contains($0.target) }.allSatisfy { $0.result == "unchanged" })
            #expect(!host.tree.exists(Self.blacklistConf))
        }

        @Test("EBUSY in the middle reloads the modules already unloaded, writes no blacklist and keeps the load files")
        func busyUndoesEarlierUnloads() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            // Contents only: the undo rewrites the settings, so their times change.
            func contents() -> [String: String] {
                host.tree.snapshot().filter { !$0.key.hasPrefix("var/lib/cttune/journal") && !$0.key.hasPrefix("run") }
                    .mapValues { String($0.drop { $0 != " " }) }
            }
            let before = contents()
            cttune_stub_fail("nf_nat", EBUSY)

            let outcome = try host.apply()
            #expect(outcome.results[.max] == .rolledBack)
            let unloadedFirst = Array(Self.order.prefix(3))
            #expect(UnloadOrderTests.recordedCalls() == unloadedFirst + ["nf_nat"])
            #expect(host.recorder.loads == unloadedFirst.reversed())
            let error = try #require(outcome.error)
            #expect(error.description.hasPrefix("unloading module nf_nat failed: cannot unload nf_nat: the kernel says it is busy"))
            #expect(error.description.contains("everything already changed was restored"))
            let step = try #require(outcome.modules)
            #expect(unloadedFirst.allSatisfy { step.results[$0] == .rolledBack })
            if case .failed = step.results["nf_nat"] {} else { Issue.record("nf_nat is \(String(describing: step.results["nf_nat"]))") }
            #expect(Self.order.dropFirst(4).allSatisfy { step.results[$0] == .skipped("not attempted: an earlier step failed") })
            #expect(step.blacklist?.action == .unchanged)
            #expect(!host.tree.exists(Self.blacklistConf))
            #expect(contents() == before, "every file and setting is as before")
            #expect(try Journal(root: host.root).load(outcome.journalID!).status == .rolledBack)
        }

        @Test(
            "a module with users besides modules skips the module step before any unload: no delete_module call, no blacklist, the settings applied"
        )
        func inUseSkipsModuleStep() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            var modules = UnloadOrderTests.iptablesGateway
            modules[modules.firstIndex { $0.name == "nf_conntrack" }!].refcount = 4
            _ = try LoadedFixture(root: host.tree.url, modules: modules)

            let outcome = try host.apply()
            #expect(outcome.error == nil)
            #expect(cttune_stub_call_count() == 0)
            let step = try #require(outcome.modules)
            #expect(step.skipped == TunerError.moduleInUse(module: "nf_conntrack", users: 1).description)
            #expect(step.result == .skipped(step.skipped!))
            #expect(outcome.notAppliedHere == ["the conntrack module unload and blacklist"])
            #expect(!host.tree.exists(Self.blacklistConf))
            #expect(outcome.results[.max] == .applied)
        }

        @Test(
            "with --force past the blacklist refusal, openvswitch and ip_vs holding nf_conntrack still stop every unload: the module step is skipped naming them, no delete_module, no blacklist"
        )
        func forcedApplyUnloadsNoOutsider() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            _ = try LoadedFixture(root: host.tree.url, modules: ModuleFamilyTests.ovsAndIpvs)
            var request = ApplyRequest()
            let refused = try host.apply(request: request)
            #expect(refused.error == refused.modules?.refusal && refused.error != nil)
            #expect(refused.journalID == nil)

            request.force = true
            let outcome = try host.apply(request: request)
            #expect(outcome.error == nil)
            #expect(cttune_stub_call_count() == 0)
            let step = try #require(outcome.modules)
            #expect(
                step.skipped
                    == TunerError.outsideFamilyHolders([
                        "ip_vs": ["nf_conntrack"], "openvswitch": ["nf_conncount", "nf_conntrack", "nf_nat"],
                    ])
                    .description)
            // A skipped step does none of its parts: no blacklist either, and the apply is partial.
            #expect(step.blacklist == nil && !host.tree.exists(Self.blacklistConf))
            #expect(outcome.notAppliedHere == ["the conntrack module unload and blacklist"])
        }

        @Test("--check shows the unload order and the blacklist diff, writes nothing and calls delete_module zero times")
        func checkWritesNothing() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            let before = host.tree.snapshot()
            var request = ApplyRequest()
            request.check = true
            let outcome = try host.apply(request: request)
            #expect(cttune_stub_call_count() == 0)
            #expect(host.recorder.loads.isEmpty)
            #expect(host.tree.snapshot() == before)
            let step = try #require(outcome.modules)
            #expect(step.unloads.map(\.module) == Self.order)
            #expect(step.result == .pending)
            #expect(step.blacklist?.diff.contains("+install nf_conntrack /bin/false\n") == true)

            let json = JSONValue.object(ApplyReport.json(outcome, diff: true)).rendered()
            #expect(json.contains("\"unload_order\":[\"iptable_nat\",\"xt_MASQUERADE\""))
            #expect(
                json.contains("\"blacklist_file\":{\"path\":\"\(host.tree.file(Self.blacklistConf))\",\"action\":\"created\",\"diff\":"))
        }

        @Test(
            "cttune apply --root --check --diff unloads nothing and says so, shows the load files' removal and the blacklist diff, exit 2 with --detailed-exitcode"
        )
        func checkCommandText() throws {
            let host = try GatewayHost()
            defer { host.tree.remove() }
            let before = host.tree.snapshot()
            let result = try host.tree.cttune(["apply", "--profile", "stateless", "--check", "--diff", "--detailed-exitcode"])
            #expect(result.status == 2, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let start = try #require(lines.firstIndex(of: "modules: unload in this order"))
            #expect(
                lines[start + 1]
                    == "modules: --root: \(host.tree.path) is not the running system, so no module is unloaded; only the files are written")
            let rows = lines[(start + 3)...].prefix(Self.order.count)
            #expect(rows.map { $0.split(separator: " ").first.map(String.init) } == Self.order)
            #expect(rows.allSatisfy { $0.hasSuffix("skipped: --root: left to the system that boots this tree") })
            #expect(lines.contains("blacklist: created \(host.tree.file(Self.blacklistConf))"))
            #expect(lines.contains("  removed  \(host.tree.file(Self.modulesLoadConf))"))
            #expect(lines.contains("+++ \(host.tree.file(Self.blacklistConf))"))
            #expect(lines.contains("+install xt_MASQUERADE /bin/false"))
            #expect(host.tree.snapshot() == before)
            #expect(cttune_stub_call_count() == 0)
        }
    }
}

/// The stateless apply where the module part cannot run, and its refusal
/// under a stateful firewall, through the built cttune.
@Suite("apply --profile stateless without loadable modules, and under a stateful firewall")
struct StatelessApplyLimitsTests {
    @Test(
        "a tree without /proc/modules: the module step is skipped in one line, the rest applied, exit 1 unless --allow-partial",
        arguments: [(flags: [] as [String], exit: Int32(1)), (flags: ["--allow-partial"], exit: Int32(0))])
    func noModuleSupportIsPartial(flags: [String], exit: Int32) throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let result = try tree.cttune(["apply", "--profile", "stateless"] + flags)
        #expect(result.status == exit, "\(result.stderr)")
        let moduleLines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("modules:") }
        #expect(moduleLines == ["modules: skipped: \(TunerError.noModuleSupport(builtIn: ["nf_conntrack"]))"])
        #expect(moduleLines.first?.contains("notrack") == true)
        #expect(tree.exists("etc/sysctl.d/90-cttune.conf"), "the sysctl part is applied")
        #expect(tree.journalIDs().count == 1)
        if exit == 1 {
            #expect(
                result.stderr
                    == "cttune: error: \(TunerError.partialApply(keys: ["the conntrack module unload and blacklist"], check: false))\n")
        }
    }

    @Test(
        "on this kernel (nf_conntrack built in, no loadable modules) apply in a namespace explains in one line and marks the module step skipped",
        .enabled(
            if: TestHost.realKernel && !FileManager.default.fileExists(atPath: "/proc/modules"),
            "needs root, nft, ip, and a kernel without loadable modules"),
        arguments: [(flags: [] as [String], exit: Int32(1)), (flags: ["--allow-partial"], exit: Int32(0))])
    func thisHostSkipsModules(flags: [String], exit: Int32) throws {
        let namespace = try TestNamespace("stateless")
        defer { namespace.delete() }
        let state = try PrivateState()
        defer { state.remove() }
        let result = try state.cttune(["apply", "--profile", "stateless", "--format", "json"] + flags, in: namespace)
        #expect(result.status == exit, "\(result.stderr)")
        let json = try PrintedJSON(result)
        let modules = try #require(json.object["modules"] as? [String: Any])
        #expect(modules["result"] as? String == "skipped")
        let reason = try #require(modules["error_message"] as? String)
        #expect(reason.hasPrefix("this kernel has no loadable module support (no /proc/modules): nf_conntrack"))
        #expect(reason.contains("notrack") && !reason.contains("\n"))
        #expect(modules["unload_order"] as? [String] == [])
        #expect(modules["blacklist_file"] is NSNull)
        #expect((json.object["stateless"] as? [String: Any])?["verdict"] as? String == "not-needed")
        if exit == 1 {
            #expect(result.stderr.contains("the conntrack module unload and blacklist"))
        }
    }

    @Test(
        "a namespace whose firewall has a ct state rule refuses the stateless apply with the rule, exit 1, changing nothing",
        .enabled(if: TestHost.realKernel, "needs root, nf_conntrack, ip and nft"))
    func statefulFirewallRefuses() throws {
        let namespace = try TestNamespace("stateless-refused")
        defer { namespace.delete() }
        let state = try PrivateState()
        defer { state.remove() }
        try namespace.trackLoopback()
        let timeWait = try namespace.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait")
        let established = try namespace.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established")

        let result = try state.cttune(["apply", "--profile", "stateless", "--allow-partial", "--format", "json"], in: namespace)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("cttune: error: refusing the stateless profile: 1 rule of this firewall need connection tracking"))
        let json = try PrintedJSON(result)
        #expect(json.object["changed"] as? Bool == false)
        #expect(json.object["journal_id"] is NSNull)
        let rules = try #require(
            ((json.object["stateless"] as? [String: Any])?["rules"] as? [String: Any])?["findings"] as? [[String: Any]])
        #expect(rules.count == 1)
        #expect((rules.first?["rule"] as? String)?.contains("ct state established,related accept") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state.sysctlD.path).isEmpty)
        #expect(state.journalIDs().isEmpty)
        #expect(try namespace.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait") == timeWait)
        #expect(try namespace.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established") == established)

        let text = try state.cttune(["apply", "--profile", "stateless"], in: namespace)
        #expect(text.status == 1)
        #expect(text.stdout.contains("rules that need connection tracking:"))
        #expect(text.stdout.contains("ct state established,related accept"))
    }
}
