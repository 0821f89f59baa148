import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The family cttune blacklists and unloads, checked against the real Debian
/// module tree (its modules.dep decides who needs nf_conntrack) and against
/// the real modprobe reading the file cttune writes.
@Suite("module family and blacklist scope", .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
struct ModuleFamilyTests {
    /// Every module of the Debian cloud kernel that needs nf_conntrack but is
    /// not the family's: features of their own (IPVS, OVS, tc, flow tables,
    /// clustering) that cttune must never take down. Hand-checked.
    static let outsideFamily: Set<String> = [
        "act_connmark", "act_ct", "act_ctinfo",
        "ip_vs", "ip_vs_dh", "ip_vs_fo", "ip_vs_ftp", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_lc", "ip_vs_mh", "ip_vs_nq",
        "ip_vs_ovf", "ip_vs_pe_sip", "ip_vs_rr", "ip_vs_sed", "ip_vs_sh", "ip_vs_wlc", "ip_vs_wrr", "xt_ipvs",
        "openvswitch", "vport_geneve", "vport_gre", "vport_vxlan",
        "nf_flow_table", "nf_flow_table_inet", "nft_flow_offload",
        "xt_cluster", "ipt_CLUSTERIP",
    ]
    /// Transparent-proxy modules: they need nf_defrag_* but not nf_conntrack.
    static let transparentProxy = ["xt_socket", "xt_TPROXY", "nft_tproxy"]

    static func tree() throws -> ModuleTree {
        try #require(
            try ModuleTree(root: SystemRoot(base: FilePath(ModuleTrees.full.path)), release: ModuleTrees.version!))
    }

    @Test("every family member of the tree needs nf_conntrack, and the tree's other conntrack users are exactly the hand-checked outsiders")
    func familyMatchesTree() throws {
        let tree = try Self.tree()
        let needConntrack = tree.dependants(of: ["nf_conntrack"]).union(["nf_conntrack"])
        let family = Set(ModuleFamily.members(of: tree.moduleNames))
        #expect(family.isSubset(of: needConntrack), "\(family.subtracting(needConntrack).sorted())")
        #expect(needConntrack.subtracting(family) == Self.outsideFamily)
        for name in [
            "xt_conntrack", "xt_state", "xt_connmark", "xt_connlimit", "xt_REDIRECT", "xt_NETMAP", "nft_ct", "nft_nat",
            "nft_redir", "nft_connlimit", "nf_conncount", "nf_synproxy_core", "nfnetlink_cthelper", "nfnetlink_cttimeout",
        ] {
            #expect(family.contains(name))
        }
        #expect(!family.contains("nf_defrag_ipv4") && !family.contains("nf_defrag_ipv6"))
        #expect(Set(ModuleFamily.members(of: tree.moduleNames, includingDefrag: true)) == family.union(ModuleFamily.defrag))
        let defragUsers = tree.dependants(of: Set(ModuleFamily.defrag)).subtracting(needConntrack)
        #expect(defragUsers == Set(Self.transparentProxy))
    }

    /// `modprobe -d ROOT -S VER -C DIR -n -v NAME`: what modprobe would run.
    static func modprobeDryRun(root: URL, _ module: String) throws -> Shell.Result {
        try Shell.run([
            "modprobe", "-d", root.path, "-S", ModuleTrees.version!, "-C", root.appendingPathComponent("etc/modprobe.d").path,
            "-n", "-v", module,
        ])
    }

    @Test(
        "the real modprobe runs install /bin/false for every family module and for none of xt_socket, xt_TPROXY, nft_tproxy — unless --include-defrag",
        .enabled(if: ModuleTrees.hasModprobe, "needs modprobe (kmod)"))
    func modprobeHonoursScope() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let written = try Shell.run([TestPaths.cttune, "blacklist", "--root", root.path, "--format", "json"])
        #expect(written.status == 0, "\(written.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(written.stdout.utf8)) as? [String: Any])
        let modules = try #require(object["modules"] as? [String])
        #expect(Set(modules) == Set(ModuleFamily.members(of: try Self.tree().moduleNames)))
        #expect(Set(try #require(object["outside_family_unloadable"] as? [String])) == Self.outsideFamily)
        for module in modules {
            let result = try Self.modprobeDryRun(root: root, module)
            #expect(result.stdout.contains("install /bin/false"), "\(module): \(result.stdout)")
        }
        for module in Self.transparentProxy {
            let result = try Self.modprobeDryRun(root: root, module)
            #expect(result.status == 0 && !result.stdout.contains("/bin/false"), "\(module): \(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("nf_defrag_ipv4"), "it still loads its defrag dependency")
        }

        let withDefrag = try Shell.run([TestPaths.cttune, "blacklist", "--root", root.path, "--include-defrag", "--format", "json"])
        #expect(withDefrag.status == 0, "\(withDefrag.stderr)")
        let defragObject = try #require(try JSONSerialization.jsonObject(with: Data(withDefrag.stdout.utf8)) as? [String: Any])
        #expect((defragObject["modules"] as? [String])?.suffix(2) == ["nf_defrag_ipv4", "nf_defrag_ipv6"])
        let unloadable = Set(try #require(defragObject["outside_family_unloadable"] as? [String]))
        #expect(unloadable == Self.outsideFamily.union(Self.transparentProxy))
        for module in Self.transparentProxy {
            #expect(try Self.modprobeDryRun(root: root, module).stdout.contains("install /bin/false"), "\(module)")
        }
    }

    @Test(
        "on this kernel, xt_socket, xt_TPROXY and nft_tproxy rules do not make it track; a ct rule in the same namespace does",
        .enabled(
            if: TestHost.realKernel && (try? Shell.run(["which", "iptables"]).status) == 0, "needs root, nf_conntrack, ip, nft and iptables"
        ))
    func transparentProxyRulesDoNotTrack() throws {
        let namespace = try TestNamespace("tproxy")
        defer { namespace.delete() }
        try namespace.exec(
            ["nft", "-f", "-"],
            input: """
                table ip tproxy4 {
                  chain pre {
                    type filter hook prerouting priority -150; policy accept;
                    meta l4proto tcp socket transparent 1 meta mark set 1 accept
                    udp dport 7 tproxy to :9
                  }
                }
                table ip6 tproxy6 {
                  chain pre {
                    type filter hook prerouting priority -150; policy accept;
                    udp dport 7 tproxy to :9
                  }
                }
                """)
        try namespace.exec(["iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-m", "socket", "-j", "MARK", "--set-mark", "1"])
        try namespace.exec([
            "iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "udp", "--dport", "8", "-j", "TPROXY", "--on-port", "9",
            "--tproxy-mark", "1",
        ])
        let traffic = """
            for i in 1 2 3; do
              timeout 1 bash -c 'echo x > /dev/tcp/127.0.0.1/80' 2>/dev/null || true
              echo x > /dev/udp/127.0.0.1/7; echo x > /dev/udp/127.0.0.1/8; echo x > /dev/udp/::1/7
            done
            """
        try namespace.exec(["bash", "-c", traffic])
        #expect(try namespace.sysctl("net.netfilter.nf_conntrack_count") == 0)
        let saved = try namespace.exec(["iptables-save"]) + (try namespace.exec(["nft", "list", "ruleset"]))
        #expect(saved.contains("-m socket") && saved.contains("-j TPROXY") && saved.contains("tproxy to :9"))

        // The same traffic with a ct rule is tracked: the count above could have moved.
        try namespace.trackLoopback()
        try namespace.exec(["bash", "-c", traffic])
        #expect(try namespace.sysctl("net.netfilter.nf_conntrack_count") > 0)
    }

    /// A host running OVS and IPVS on the Debian kernel: openvswitch holds
    /// nf_conntrack, nf_conncount and nf_nat; ip_vs holds nf_conntrack.
    static let ovsAndIpvs = [
        LoadedModule(name: "openvswitch", refcount: 0),
        LoadedModule(name: "nsh", refcount: 1, holders: ["openvswitch"]),
        LoadedModule(name: "ip_vs_rr", refcount: 1),
        LoadedModule(name: "ip_vs", refcount: 3, holders: ["ip_vs_rr"]),
        LoadedModule(name: "nf_conncount", refcount: 1, holders: ["openvswitch"]),
        LoadedModule(name: "nf_nat", refcount: 1, holders: ["openvswitch"]),
        LoadedModule(name: "nf_conntrack", refcount: 4, holders: ["ip_vs", "nf_conncount", "nf_nat", "openvswitch"]),
        LoadedModule(name: "nf_defrag_ipv4", refcount: 1, holders: ["nf_conntrack"]),
        LoadedModule(name: "nf_defrag_ipv6", refcount: 2, holders: ["ip_vs", "nf_conntrack"]),
        LoadedModule(name: "libcrc32c", refcount: 3, holders: ["nf_conntrack", "nf_nat", "openvswitch"]),
    ]

    @Test("with openvswitch and ip_vs holding nf_conntrack, unload --dry-run refuses naming them and plans only family modules")
    func unloadRefusesOutsiders() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try LoadedFixture(root: root, modules: Self.ovsAndIpvs)
        let result = try Shell.run([TestPaths.cttune, "unload", "--dry-run", "--root", root.path, "--format", "json"])
        #expect(result.status == 1)
        #expect(
            result.stderr.hasPrefix(
                "cttune: error: refusing to unload: ip_vs (holds nf_conntrack), openvswitch (holds nf_conncount, nf_conntrack, nf_nat) are outside the conntrack/NAT family"
            ), "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let order = try #require(object["order"] as? [[String: Any]]).compactMap { $0["module"] as? String }
        #expect(order == ["nf_conncount", "nf_nat", "nf_conntrack"])
        let outside = try #require(object["outside_family_holders"] as? [[String: Any]])
        #expect(outside.compactMap { $0["module"] as? String } == ["ip_vs", "openvswitch"])
    }

    @Test("blacklist refuses (exit 1, nothing written) naming the loaded outsiders, lists every module it makes unloadable; --force writes")
    func blacklistRefusesOutsiders() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try LoadedFixture(root: root, modules: Self.ovsAndIpvs)
        let file = root.appendingPathComponent("etc/modprobe.d/cttune-blacklist.conf")
        let refused = try Shell.run([TestPaths.cttune, "blacklist", "--root", root.path])
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("cttune: error: refusing to blacklist: modules outside the conntrack/NAT family need it"))
        #expect(refused.stderr.contains("ip_vs is loaded; ip_vs_rr is loaded; openvswitch is loaded"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--force"))
        #expect(refused.stdout.contains("outside the conntrack/NAT family, these 29 modules could no longer load: act_connmark, act_ct"))
        #expect(!FileManager.default.fileExists(atPath: file.path))

        let forced = try Shell.run([TestPaths.cttune, "blacklist", "--root", root.path, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(FileManager.default.fileExists(atPath: file.path))
    }

    @Test("a module the blacklist makes unloadable refuses it when modules-load.d lists it or a persisted ruleset uses it")
    func bootListsAndRulesetsRefuse() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let files = [
            "etc/modules-load.d/ipvs.conf": "# IPVS for the load balancer\nip_vs\nip_vs_wrr\n",
            "etc/iptables/rules.v4":
                "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m ipvs --vaddr 10.0.0.1 -j MARK --set-mark 1\nCOMMIT\n",
            "etc/nftables.conf":
                "table ip t {\n  chain pre {\n    type filter hook prerouting priority -150;\n    udp dport 53 tproxy to :5353\n  }\n}\n",
        ]
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        let result = try Shell.run([TestPaths.cttune, "blacklist", "--root", root.path, "--dry-run", "--format", "json"])
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["refused"] as? Bool == true)
        let modulesLoad = root.appendingPathComponent("etc/modules-load.d/ipvs.conf").path
        let rules = root.appendingPathComponent("etc/iptables/rules.v4").path
        #expect(
            object["outside_family_in_use"] as? [String] == [
                "ip_vs is listed in \(modulesLoad)", "ip_vs_wrr is listed in \(modulesLoad)",
                "xt_ipvs is used by \(rules) line 3: -A PREROUTING -m ipvs --vaddr 10.0.0.1 -j MARK --set-mark 1",
            ])
        // nft_tproxy needs only defrag: it counts once defrag is blacklisted too.
        let withDefrag = try Shell.run([TestPaths.cttune, "blacklist", "--root", root.path, "--dry-run", "--include-defrag"])
        #expect(withDefrag.status == 1)
        #expect(withDefrag.stderr.contains("nft_tproxy is used by \(root.appendingPathComponent("etc/nftables.conf").path) line 4"))
    }

    @Test(
        "the stateless apply on a tree with openvswitch and ip_vs loaded refuses (exit 1) naming them and changes nothing; --force goes ahead"
    )
    func statelessApplyRefusesOutsiders() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        try tree.write("proc/sys/net/netfilter/nf_conntrack_count", "0\n")
        _ = try LoadedFixture(root: tree.url, modules: Self.ovsAndIpvs)
        try FileManager.default.createDirectory(at: tree.url.appendingPathComponent("lib"), withIntermediateDirectories: true)
        // A copy of hard links: --root resolves links inside the tree, so a link to the cache would lead nowhere.
        try Shell.check(["cp", "-al", ModuleTrees.full.appendingPathComponent("lib/modules").path, tree.file("lib/modules")])
        // The lock file under run/ is the only trace a refused apply leaves.
        func snapshot() -> [String: String] { tree.snapshot().filter { !$0.key.hasPrefix("run") } }
        let before = snapshot()

        let refused = try tree.cttune(["apply", "--profile", "stateless"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("refusing to blacklist: modules outside the conntrack/NAT family need it and are in use"))
        #expect(refused.stderr.contains("ip_vs is loaded") && refused.stderr.contains("openvswitch is loaded"))
        #expect(snapshot() == before)
        #expect(tree.journalIDs().isEmpty)

        let forced = try tree.cttune(["apply", "--profile", "stateless", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(forced.stdout.contains("no module is unloaded; only the files are written"))
        #expect(tree.exists("etc/modprobe.d/cttune-blacklist.conf"))
    }
}
