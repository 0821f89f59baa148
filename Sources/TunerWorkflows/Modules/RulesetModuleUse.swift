import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// Which kernel modules a ruleset's rules load: iptables `-m NAME` and
/// `-j NAME` (xt_NAME, ipt_NAME, ip6t_NAME) and the nftables statements
/// served by a module of their own (tproxy, socket, flow offload).
///
/// Used only to tell whether a module the blacklist makes unloadable is
/// needed by a firewall; the conntrack verdict itself is `RulesetAnalyzer`'s.
public enum RulesetModuleUse {
    /// One ruleset as text: where it came from and its lines.
    public struct Ruleset: Equatable, Sendable {
        public var source: String
        public var text: String

        public init(source: String, text: String) {
            self.source = source
            self.text = text
        }
    }

    /// nft keywords whose statement or expression is its own module.
    static let nftKeywords: [String: String] = [
        "tproxy": "nft_tproxy", "socket": "nft_socket", "synproxy": "nft_synproxy", "flowtable": "nf_flow_table_inet",
    ]

    /// The modules among `candidates` that a rule of `ruleset` needs, each
    /// with the first place that needs it ("SOURCE line N: RULE").
    public static func uses(in ruleset: Ruleset, among candidates: Set<String>) -> [String: String] {
        var found: [String: String] = [:]
        for (number, line) in ruleset.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimming(.whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            for module in modules(named: trimmed) where candidates.contains(module) && found[module] == nil {
                found[module] = "\(ruleset.source) line \(number + 1): \(trimmed.prefix(100))"
            }
        }
        return found
    }

    /// Every module name one rule line may load.
    static func modules(named line: String) -> [String] {
        let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var names: [String] = []
        for (index, token) in tokens.enumerated() {
            if ["-m", "--match", "-j", "--jump", "-g", "--goto"].contains(token), index + 1 < tokens.count {
                let name = tokens[index + 1]
                names += ["xt_\(name)", "ipt_\(name)", "ip6t_\(name)"]
            }
            if let module = nftKeywords[token] { names.append(module) }
            if token == "flow", index + 1 < tokens.count, ["add", "offload"].contains(tokens[index + 1]) {
                names.append("nft_flow_offload")
            }
        }
        return names
    }

    /// The persisted rulesets under `root` and, on the running system, the
    /// live ones (`nft list ruleset`, `iptables-save`, `ip6tables-save`).
    public static func rulesets(under root: SystemRoot) -> [Ruleset] {
        var found: [Ruleset] = []
        for file in KernelPaths.persistedRulesetFiles {
            guard let text = try? root.contents(of: file), let shown = try? root.path(file) else { continue }
            found.append(Ruleset(source: shown.string, text: text))
        }
        guard root.isLive else { return found }
        for command in [["nft", "list", "ruleset"], ["iptables-save"], ["ip6tables-save"]] {
            if let text = ExternalTool.output(command) { found.append(Ruleset(source: command.joined(separator: " "), text: text)) }
        }
        return found
    }
}
