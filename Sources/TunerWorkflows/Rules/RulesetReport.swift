import TunerCore
import TunerModel
import TunerSystem

/// How a ruleset was written down.
public enum RulesetFormat: String, Sendable, Equatable {
    /// `nft -j list ruleset` output.
    case nftJSON = "nft-json"
    /// `nft list ruleset` output or an `nft -f` script.
    case nftText = "nft-text"
    /// `iptables-save` / `ip6tables-save` output (iptables-restore input).
    case iptablesSave = "iptables-save"
}

/// Why one rule (or chain, or object) depends on connection tracking, or
/// keeps traffic out of it.
public enum ConntrackUse: String, Sendable, Equatable, CaseIterable {
    case ctState = "ct_state"
    case ctStatus = "ct_status"
    case ctMark = "ct_mark"
    case ctZone = "ct_zone"
    case ctHelper = "ct_helper"
    case ctDirection = "ct_direction"
    case ctExpectation = "ct_expectation"
    /// Any other conntrack key or statement: ct count, ct timeout, addresses
    /// of the original or reply tuple, byte and packet counters, labels.
    case ctOther = "ct"
    /// A chain of type nat: its hook registers NAT, which runs on conntrack.
    case natChain = "nat_chain"
    /// masquerade, snat, dnat, redirect, NETMAP.
    case nat = "nat"
    /// Any rule in the iptables nat table: it only sees a connection's first packet.
    case natTable = "nat_table"
    case flowOffload = "flow_offload"
    case synproxy = "synproxy"
    /// iptables connmark match or CONNMARK target.
    case connmark = "connmark"
    /// iptables connlimit / connbytes and nft ct count: counts per connection.
    case connectionCount = "connection_count"
    /// iptables CT target other than --notrack (helper, zone, timeout, events).
    case ctTarget = "ct_target"
    /// An iptables-nft compat expression seen only by name in nft JSON.
    case iptablesCompat = "iptables_compat"
    /// `notrack` / `CT --notrack` / `NOTRACK`: the opposite, an exemption.
    case notrack = "notrack"
    /// A statement or expression cttune does not know, inside otherwise
    /// valid nft JSON: counted as needing conntrack, the safe side.
    case unknown = "unknown"
}

/// Where a rule is: enough for `nft delete rule ... handle N` or for
/// opening the saved file at the line.
public struct RuleLocation: Sendable, Hashable {
    /// The file name, `-` for stdin, or the command that printed the ruleset.
    public var source: String
    public var format: RulesetFormat
    /// nft family (ip, ip6, inet, arp, bridge, netdev); `ip`/`ip6` for iptables.
    public var family: String?
    public var table: String
    public var chain: String?
    /// nft rule or chain handle.
    public var handle: Int?
    /// 1-based line in the iptables-save text.
    public var line: Int?

    public init(
        source: String, format: RulesetFormat, family: String?, table: String,
        chain: String?, handle: Int? = nil, line: Int? = nil
    ) {
        self.source = source
        self.format = format
        self.family = family
        self.table = table
        self.chain = chain
        self.handle = handle
        self.line = line
    }

    /// "inet filter input handle 4" or "filter INPUT line 12", names escaped.
    public var summary: String {
        var parts = [family, table, chain].compactMap { $0?.escapingControlCharacters }
        if let handle { parts.append("handle \(handle)") }
        if let line { parts.append("line \(line)") }
        return parts.joined(separator: " ")
    }
}

/// One rule that needs conntrack, or one that exempts traffic from it.
public struct RulesetFinding: Sendable, Equatable {
    public var location: RuleLocation
    /// The rule as text (iptables-save line, or nft statements rebuilt from JSON).
    public var rule: String
    public var uses: [ConntrackUse]
    /// Why this needs conntrack, in one sentence.
    public var reason: String
    /// True when the rule only matches ct state to accept or drop by
    /// connection state: a stateless rule set could do the same job.
    public var replaceable: Bool
    /// Which packets the rule can see, by its table, chain and own matches:
    /// what the notrack judgement of a class reads (`ClassReach`).
    public var reach: RuleReach = .everything
}

/// Whether a firewall needs connection tracking: the verdict of `cttune
/// rules` (kebab-case in JSON, like every enum value of the contract). Not
/// to be confused with `Verdict`, the monitoring state of `cttune status`.
public enum RulesetVerdict: String, Sendable, Equatable, CaseIterable {
    /// A rule needs conntrack for more than accepting or dropping by state.
    case needed = "needed"
    /// Conntrack is used only to accept or drop by connection state.
    case partiallyAvoidable = "partially-avoidable"
    case notNeeded = "not-needed"

    /// The verdict as a person reads it: "partially avoidable".
    public var words: String { rawValue.replacing("-", with: " ") }
}

/// What a firewall needs from conntrack, rule by rule.
public struct RulesetReport: Sendable, Equatable {
    /// One ruleset read: a file, or the output of one command.
    public struct Source: Sendable, Equatable {
        public var name: String
        public var format: RulesetFormat
        public var rules: Int
        /// Why some of it was not analysed here (e.g. tables managed by iptables-nft).
        public var note: String?
    }

    public var sources: [Source]
    /// Rules, chains and objects that need conntrack.
    public var findings: [RulesetFinding]
    /// Rules that keep traffic out of conntrack.
    public var exemptions: [RulesetFinding]
    /// Every nat-type chain and iptables nat table, with or without rules.
    public var natChains: [NatChain] = []
    /// Every rule of an nft nat-type chain, whatever it does: such a chain
    /// sees only a flow's first packet, and an untracked packet none, so a
    /// class whose packets reach one of these rules cannot go untracked.
    /// (iptables nat rules are findings already.) Not shown by `cttune rules`.
    public var natChainRules: [RulesetFinding] = []

    /// Nat chains and tables without a rule: the kernel tracks nothing for
    /// them, so they do not decide the verdict, but they load only where
    /// nf_nat and nf_conntrack can (see `NatChains`).
    /// Nat chains the kernel tracks nothing for: empty, or only jumping to empty chains.
    public var emptyNatChains: [NatChain] { natChains.filter(\.tracksNothing) }

    public var rulesExamined: Int { sources.reduce(0) { $0 + $1.rules } }

    public var verdict: RulesetVerdict {
        if findings.isEmpty { return .notNeeded }
        return findings.allSatisfy(\.replaceable) ? .partiallyAvoidable : .needed
    }

    /// The rules that need connection tracking right now, one line each
    /// (location and rule): what refuses an unload. A replaceable rule still
    /// counts until the firewall is rewritten.
    public var blockingRules: [String] {
        findings.map { "\($0.location.summary): \($0.rule.escapingControlCharacters)" }
    }

    /// Sentences saying what the verdict means and what would change it.
    /// Advice only: cttune never rewrites the firewall.
    public var advice: [String] {
        verdictAdvice
            + (emptyNatChains.isEmpty
                ? []
                : [
                    """
                    \(emptyNatChains.count) NAT chain\(emptyNatChains.count == 1 ? "" : "s") without a NAT rule \
                    (empty, or only jumping to empty chains) track\(emptyNatChains.count == 1 ? "s" : "") nothing, but \
                    \(emptyNatChains.count == 1 ? "it loads" : "they load") only with nf_nat and nf_conntrack: `cttune \
                    blacklist` and the stateless apply refuse until \(emptyNatChains.count == 1 ? "it is" : "they are") \
                    removed.
                    """
                ])
    }

    private var verdictAdvice: [String] {
        switch verdict {
        case .notNeeded where exemptions.isEmpty:
            return ["No rule depends on connection state: stateful filtering can be turned off (`cttune plan --profile stateless`)."]
        case .notNeeded:
            return [
                """
                No rule depends on connection state, and \(exemptions.count) notrack \
                rule\(exemptions.count == 1 ? " already keeps" : "s already keep") traffic out of conntrack: stateful \
                filtering can be turned off (`cttune plan --profile stateless`).
                """
            ]
        case .partiallyAvoidable:
            return [
                """
                Conntrack is used only to accept or drop packets by connection state (\(findings.count) \
                rule\(findings.count == 1 ? "" : "s")). A stateless rule set could replace \
                \(findings.count == 1 ? "it" : "them") — accept replies by port and TCP flags (e.g. `tcp flags & (syn|ack) \
                == ack`) instead of `ct state established` — but until the firewall is rewritten, removing conntrack drops \
                return traffic.
                """
            ]
        case .needed:
            let required = findings.filter { !$0.replaceable }.count
            return [
                """
                \(required) rule\(required == 1 ? " needs" : "s need") connection tracking (NAT, helpers, marks, zones, \
                offload or connection state beyond accept/drop): keep nf_conntrack and size it (`cttune plan`). Removing it \
                would break the firewall or the NAT.
                """
            ]
        }
    }
}
