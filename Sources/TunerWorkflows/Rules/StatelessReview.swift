import TunerCore
import TunerModel
import TunerSystem

/// What `cttune plan --profile stateless` adds to a plan: the firewall's
/// verdict, a refusal when rules need conntrack, and — when nf_conntrack is
/// built into the kernel and cannot be unloaded — a raw-table notrack rule
/// so traffic bypasses it.
public struct StatelessReview: Sendable, Equatable {
    /// The analysed ruleset; `nil` when it was not read (a `--root` tree
    /// describes another system, whose firewall is not running here).
    public var rules: RulesetReport?
    /// Why `rules` is absent.
    public var rulesNotRead: String?
    public var conntrack: ConntrackPresence
    /// The plan, with the table kept at its current size while entries are tracked.
    public var plan: TuningPlan
    /// Raw-table rules that keep every packet out of conntrack; only when
    /// conntrack is built in (a module is unloaded instead).
    public var notrack: NotrackSuggestion?
    /// Nat chains and iptables nat tables, live and in the boot-time ruleset
    /// files: each fails to load once nf_nat and nf_conntrack are kept off.
    public var natChains: [NatChain] = []
    /// br_netfilter sends bridged frames through the iptables rules (see `ConntrackConsumers`).
    public var bridgeNote: String?

    /// Rules need conntrack (or only state matches a rewrite could replace),
    /// or a nat chain exists: going stateless now would break the firewall
    /// now or at the next boot.
    public var refused: Bool { refusal != nil }

    /// Why the stateless profile is refused, `nil` when it is not.
    public var refusal: TunerError? {
        if let rules, rules.verdict != .notNeeded { return .statelessRefused(ruleCount: rules.findings.count) }
        if !natChains.isEmpty {
            return .natChainsPresent(
                chains: natChains.map { "\($0.summary): \($0.removal.escapingControlCharacters)" }, purpose: "apply the stateless profile")
        }
        return nil
    }

    /// Reviews `plan` (made from a stateless profile) against the firewall.
    ///
    /// The planner sizes the table for no load; that is only safe once
    /// nothing is tracked, so while `facts.count` is above zero the max and
    /// hash size stay as they are.
    public init(plan: TuningPlan, rules: RulesetReport?, rulesNotRead: String? = nil) {
        self.rules = rules
        self.rulesNotRead = rulesNotRead
        self.conntrack = plan.facts.conntrack
        self.notrack = plan.facts.conntrack == .builtIn ? NotrackSuggestion() : nil
        var plan = plan
        if let count = plan.facts.count, count > 0 {
            for index in plan.settings.indices where [.max, .hashsize].contains(plan.settings[index].setting) {
                guard let current = plan.settings[index].current else { continue }
                plan.settings[index].planned = current
                plan.settings[index].reason =
                    "\(count) entries are tracked now: kept until nothing is tracked (add the notrack rules first)"
            }
        }
        self.plan = plan
    }

    /// What to do next, in order.
    public var advice: [String] {
        if let rules, rules.verdict != .notNeeded {
            return [
                """
                Refused: \(rules.findings.count) rule\(rules.findings.count == 1 ? "" : "s") depend on connection tracking \
                (listed above). Change them first: remove NAT and helper rules, replace `ct state` / `-m conntrack \
                --ctstate` matches with stateless ones (ports, TCP flags), then run this plan again.
                """
            ]
                + rules.advice
        }
        var advice: [String] = []
        if !natChains.isEmpty {
            advice.append(
                """
                Refused: \(natChains.count) nat chain\(natChains.count == 1 ? "" : "s") or \
                table\(natChains.count == 1 ? "" : "s") (listed above) cannot load without nf_nat and nf_conntrack; a \
                boot-time ruleset holding one fails as a whole. Remove each with the command shown, then run this again.
                """
            )
        }
        if let rulesNotRead {
            advice.append("The firewall was not checked (\(rulesNotRead)): run `cttune rules` on the host before going stateless.")
        }
        switch conntrack {
        case .builtIn:
            advice.append(
                """
                nf_conntrack is built into this kernel and cannot be unloaded: add the raw-table notrack rules shown so \
                traffic bypasses it; nf_conntrack_max is made small only once nothing is tracked.
                """
            )
        case .module, .notLoaded:
            advice.append("nf_conntrack is a module: unload it and keep it off with `cttune unload` and `cttune blacklist`.")
        case .absent:
            advice.append("nf_conntrack is not in this kernel: nothing is tracked.")
        }
        return advice
    }
}

/// Raw-table rules that exempt all traffic from conntrack, in nft and
/// iptables syntax. Shown, never applied: cttune does not edit the firewall.
public struct NotrackSuggestion: Sendable, Equatable {
    /// Name of the nft table the suggestion creates.
    public static let nftTable = "cttune_notrack"

    /// An `nft -f` script: prerouting and output hooks at raw priority
    /// (-300), before conntrack (-200) sees the packet.
    public var nft: String {
        """
        table inet \(Self.nftTable) {
        \tchain prerouting {
        \t\ttype filter hook prerouting priority raw; policy accept;
        \t\tnotrack
        \t}
        \tchain output {
        \t\ttype filter hook output priority raw; policy accept;
        \t\tnotrack
        \t}
        }
        """
    }

    /// The same with iptables' raw table and the CT target, both families.
    public var iptables: [String] {
        ["iptables", "ip6tables"].flatMap { tool in
            ["PREROUTING", "OUTPUT"].map { "\(tool) -t raw -A \($0) -j CT --notrack" }
        }
    }

    public init() {}
}

extension StatelessReview {
    /// Reviews a stateless plan against the live ruleset of this network
    /// namespace; a `--root` tree is another system, so its firewall is not read.
    public static func review(_ plan: TuningPlan, root: SystemRoot, analyzer: RulesetAnalyzer = RulesetAnalyzer()) throws -> StatelessReview
    {
        var review: StatelessReview
        if root.isLive {
            review = StatelessReview(plan: plan, rules: try analyzer.analyzeLive())
        } else {
            review = StatelessReview(plan: plan, rules: nil, rulesNotRead: "--root \(root) is not the running system")
        }
        review.natChains = try NatChains.list(under: root, live: review.rules)
        if root.isLive { review.bridgeNote = ConntrackConsumers.bridgeNote(under: root) }
        return review
    }
}
