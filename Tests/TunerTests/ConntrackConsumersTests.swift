import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// What else uses conntrack, on `--root` trees built on the real Debian
/// module tree with a captured /proc/modules, /proc/net/ip_vs and
/// bridge-nf-call-iptables, and captured `ovs-dpctl show` and `tc -j`
/// outputs handed to the same reader the commands use.
@Suite("conntrack users beyond the firewall", .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
struct ConntrackConsumersTests {
    static let captured = TestPaths.fixtures.appendingPathComponent("conntrack-users")

    static func capturedText(_ name: String) throws -> String {
        try String(contentsOf: captured.appendingPathComponent(name), encoding: .utf8)
    }

    /// A tree with these modules loaded and these files (relative path → fixture file name).
    static func withTree<T>(loaded: [LoadedModule], files: [String: String] = [:], _ body: (URL) throws -> T) throws -> T {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try LoadedFixture(root: root, modules: loaded)
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return try body(root)
    }

    static let conntrack = LoadedModule(name: "nf_conntrack", refcount: 0)

    @Test("/proc/net/ip_vs services are reported with their addresses by unload --dry-run --root")
    func ipvsEntries() throws {
        let loaded = [
            LoadedModule(name: "ip_vs_wlc", refcount: 1), LoadedModule(name: "ip_vs_rr", refcount: 1),
            LoadedModule(name: "ip_vs", refcount: 2, holders: ["ip_vs_rr", "ip_vs_wlc"]),
            LoadedModule(name: "nf_conntrack", refcount: 1, holders: ["ip_vs"]),
        ]
        try Self.withTree(loaded: loaded, files: ["proc/net/ip_vs": try Self.capturedText("ip_vs")]) { root in
            let result = try Shell.run([TestPaths.cttune, "unload", "--dry-run", "--root", root.path, "--format", "json"])
            #expect(result.status == 1, "ip_vs holds nf_conntrack: a refusal")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let users = try #require(object["conntrack_users"] as? [String: Any])
            #expect(
                users["findings"] as? [String] == [
                    "IPVS: 2 virtual services in \(root.path)/proc/net/ip_vs (TCP 10.0.0.1:80 rr, UDP 10.0.0.1:53 wlc): ip_vs keeps their connections in nf_conntrack"
                ])
            #expect(users["bridge_note"] is NSNull)
        }
    }

    @Test("an Open vSwitch datapath from ovs-dpctl show is reported")
    func ovsDatapath() throws {
        try Self.withTree(loaded: [Self.conntrack]) { root in
            let output = try Self.capturedText("ovs-dpctl-show.txt")
            let users = ConntrackConsumers.read(under: SystemRoot(base: FilePath(root.path))) {
                $0 == ["ovs-dpctl", "show"] ? output : nil
            }
            #expect(
                users.findings == ["Open vSwitch: datapath system@ovs-system (ovs-dpctl show): its ct() actions and NAT use nf_conntrack"])
        }
    }

    @Test("a tc flower filter with ct_state matches and a ct action is reported with its device and direction")
    func tcFilter() throws {
        try Self.withTree(loaded: [Self.conntrack], files: ["sys/class/net/eth0/ifindex": "2\n", "sys/class/net/lo/ifindex": "1\n"]) {
            root in
            let filter = try Self.capturedText("tc-filter-eth0-ingress.json")
            let empty = try Self.capturedText("tc-filter-empty.json")
            var asked: [[String]] = []
            let users = ConntrackConsumers.read(under: SystemRoot(base: FilePath(root.path))) { arguments in
                asked.append(arguments)
                guard arguments.starts(with: ["tc", "-j", "filter"]) else { return nil }
                return arguments == ["tc", "-j", "filter", "show", "dev", "eth0", "ingress"] ? filter : empty
            }
            #expect(users.findings == ["tc: filter on eth0 ingress uses a ct action and a flower ct_state match (tc -j filter show)"])
            #expect(asked.contains(["tc", "-j", "filter", "show", "dev", "lo", "egress"]), "every device, both directions")
        }
    }

    @Test("ct actions in the tc action table are counted")
    func tcActions() throws {
        try Self.withTree(loaded: [Self.conntrack]) { root in
            let actions = try Self.capturedText("tc-actions-ct.json")
            let users = ConntrackConsumers.read(under: SystemRoot(base: FilePath(root.path))) {
                $0 == ["tc", "-j", "actions", "list", "action", "ct"] ? actions : nil
            }
            #expect(users.findings == ["tc: 2 ct actions in the action table (tc -j actions list action ct)"])
        }
    }

    @Test(
        "br_netfilter with bridge-nf-call-iptables = 1 adds a note to the unload report; 0 adds none",
        arguments: [1, 0])
    func bridgeNote(value: Int) throws {
        let loaded = [
            LoadedModule(name: "br_netfilter", refcount: 0), LoadedModule(name: "bridge", refcount: 1, holders: ["br_netfilter"]),
            Self.conntrack,
        ]
        try Self.withTree(loaded: loaded, files: ["proc/sys/net/bridge/bridge-nf-call-iptables": "\(value)\n"]) { root in
            let result = try Shell.run([TestPaths.cttune, "unload", "--dry-run", "--root", root.path])
            #expect(result.status == 0, "\(result.stderr)")
            let note = result.stdout.split(separator: "\n").filter { $0.hasPrefix("note: br_netfilter") }
            #expect(note.count == value, "\(result.stdout)")
            #expect(note.allSatisfy { $0.contains("bridged IPv4 frames also pass the iptables rules") })
            let users = ConntrackConsumers.read(under: SystemRoot(base: FilePath(root.path)))
            #expect(users.findings.isEmpty)
            #expect((users.bridgeNote != nil) == (value == 1))
        }
    }

    @Test(
        "on this kernel, the stateless verdict of plan carries the br_netfilter note exactly when the namespace's bridge-nf-call-iptables is 1",
        .enabled(
            if: TestHost.realKernel && FileManager.default.fileExists(atPath: "/proc/sys/net/bridge/bridge-nf-call-iptables"),
            "needs root, nft, ip and br_netfilter"),
        arguments: [1, 0])
    func bridgeNoteInVerdict(value: Int) throws {
        let namespace = try TestNamespace("bridge-note")
        defer { namespace.delete() }
        try namespace.setSysctl("net.bridge.bridge-nf-call-iptables", value)
        let result = try namespace.run([TestPaths.cttune, "plan", "--profile", "stateless", "--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let stateless = try #require(object["stateless"] as? [String: Any])
        #expect(stateless["verdict"] is String, "the live firewall was read")
        if value == 1 {
            #expect((stateless["bridge_note"] as? String)?.hasPrefix("br_netfilter: bridge-nf-call-iptables = 1") == true)
        } else {
            #expect(stateless["bridge_note"] is NSNull)
        }
    }

    @Test("a tree runs no tool: without a runner, nothing but its files is read")
    func treeRunsNoTool() throws {
        try Self.withTree(loaded: [Self.conntrack], files: ["sys/class/net/eth0/ifindex": "2\n"]) { root in
            #expect(
                ConntrackConsumers.read(under: SystemRoot(base: FilePath(root.path))) == ConntrackConsumers(findings: [], bridgeNote: nil))
        }
    }
}
