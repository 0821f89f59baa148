import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// What else on the host uses connection tracking besides firewall rules:
/// IPVS services, Open vSwitch datapaths, tc filters and actions with `ct`.
/// Their modules are outside the family (cttune refuses while they are
/// loaded); this says what the host shows them doing, so the admin knows
/// which service would break.
public struct ConntrackConsumers: Equatable, Sendable {
    /// One line per consumer found, naming where it was seen.
    public var findings: [String]
    /// Set when br_netfilter passes bridged frames through the iptables
    /// rules: not a consumer itself, but bridged traffic then meets the
    /// rules (and any conntrack they use).
    public var bridgeNote: String?

    /// Everything to print, findings first.
    public var lines: [String] { findings + (bridgeNote.map { [$0] } ?? []) }

    /// Runs a tool and returns its stdout, `nil` when it is missing or fails.
    public typealias ToolRunner = ([String]) -> String?

    /// Reads /proc/net/ip_vs and bridge-nf-call-iptables under `root`, and
    /// asks `ovs-dpctl show`, `tc -j filter show` and `tc -j actions list`.
    ///
    /// - Parameter run: runs the tools; by default the installed ones on the
    ///   running system and none for a `--root` tree (its datapaths and
    ///   filters are not running).
    public static func read(under root: SystemRoot, run: ToolRunner? = nil) -> ConntrackConsumers {
        let runner: ToolRunner = run ?? (root.isLive ? ExternalTool.output : { _ in nil })
        var findings: [String] = []
        if let table = try? root.contents(of: KernelPaths.ipvsTable), let shown = try? root.path(KernelPaths.ipvsTable) {
            let services = ipvsServices(table)
            if !services.isEmpty {
                findings.append(
                    """
                    IPVS: \(services.count) virtual service\(services.count == 1 ? "" : "s") in \(shown.string) \
                    (\(services.joined(separator: ", "))): ip_vs keeps their connections in nf_conntrack
                    """
                )
            }
        }
        if let shown = runner(["ovs-dpctl", "show"]) {
            for datapath in ovsDatapaths(shown) {
                findings.append("Open vSwitch: datapath \(datapath) (ovs-dpctl show): its ct() actions and NAT use nf_conntrack")
            }
        }
        for device in root.entries(of: KernelPaths.sysClassNet).sorted() {
            for direction in ["ingress", "egress"] {
                guard let text = runner(["tc", "-j", "filter", "show", "dev", device, direction]) else { continue }
                let uses = ctUses(inTcJSON: text)
                if !uses.isEmpty {
                    findings.append("tc: filter on \(device) \(direction) uses \(uses.joined(separator: " and ")) (tc -j filter show)")
                }
            }
        }
        if let text = runner(["tc", "-j", "actions", "list", "action", "ct"]) {
            let count = countCtActions(inTcJSON: text)
            if count > 0 {
                findings.append("tc: \(count) ct action\(count == 1 ? "" : "s") in the action table (tc -j actions list action ct)")
            }
        }
        return ConntrackConsumers(findings: findings, bridgeNote: bridgeNote(under: root))
    }

    /// The note for br_netfilter with bridge-nf-call-iptables = 1, else `nil`.
    ///
    /// The corresponding file is `/proc/sys/net/bridge/bridge-nf-call-iptables`.
    public static func bridgeNote(under root: SystemRoot) -> String? {
        guard let value = try? root.integer(at: KernelPaths.bridgeNfCallIptables), value == 1 else { return nil }
        return
            """
            br_netfilter: bridge-nf-call-iptables = 1, so bridged IPv4 frames also pass the iptables rules — check them \
            (and any ct rule) for bridged traffic too
            """
    }

    /// The virtual services of /proc/net/ip_vs ("TCP 10.0.0.1:80 rr").
    static func ipvsServices(_ table: String) -> [String] {
        table.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, ["TCP", "UDP", "SCTP", "FWM"].contains(String(fields[0])) else { return nil }
            let scheduler = fields.count > 2 ? " \(fields[2])" : ""
            return "\(fields[0]) \(ipvsAddress(String(fields[1])))\(scheduler)"
        }
    }

    /// `0A000001:0050` → `10.0.0.1:80`; other forms (IPv6, fwmark) as printed.
    static func ipvsAddress(_ text: String) -> String {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[0].count == 8, let address = UInt32(parts[0], radix: 16), let port = UInt16(parts[1], radix: 16)
        else { return text }
        let octets = [24, 16, 8, 0].map { String((address >> UInt32($0)) & 0xff) }
        return octets.joined(separator: ".") + ":\(port)"
    }

    /// The datapath names `ovs-dpctl show` prints flush left ("system@ovs-system:").
    static func ovsDatapaths(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            guard let first = line.first, !first.isWhitespace, line.hasSuffix(":") else { return nil }
            return String(line.dropLast())
        }
    }

    /// What of conntrack a `tc -j` filter dump uses: a `ct` action, a flower
    /// `ct_*` match (ct_state, ct_zone, ct_mark, ct_label).
    static func ctUses(inTcJSON text: String) -> [String] {
        guard let value = try? JSONReader.parse(text) else { return [] }
        var action = false
        var matches = Set<String>()
        walk(value) { object in
            if isCtKind(object) { action = true }
            for (key, _) in object where key.hasPrefix("ct_") { matches.insert(key) }
        }
        return (action ? ["a ct action"] : []) + (matches.isEmpty ? [] : ["a flower \(matches.sorted().joined(separator: ", ")) match"])
    }

    /// The `ct` actions in a `tc -j actions list` dump.
    static func countCtActions(inTcJSON text: String) -> Int {
        guard let value = try? JSONReader.parse(text) else { return 0 }
        var count = 0
        walk(value) { if isCtKind($0) { count += 1 } }
        return count
    }

    /// Calls `visit` for every object nested anywhere in `value`.
    static func walk(_ value: JSONValue, _ visit: ([(String, JSONValue)]) -> Void) {
        if case .object(let members) = value {
            visit(members)
            for (_, member) in members { walk(member, visit) }
        } else if case .array(let elements) = value {
            for element in elements { walk(element, visit) }
        }
    }

    /// `"kind": "ct"` (the last `kind` when one is written twice, as a parser into a dictionary keeps).
    static func isCtKind(_ object: [(String, JSONValue)]) -> Bool {
        object.last { $0.0 == "kind" }?.1 == .string("ct")
    }
}
