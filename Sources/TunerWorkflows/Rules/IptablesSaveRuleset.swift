import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// Reads `iptables-save` / `ip6tables-save` output (the iptables-restore
/// format) and finds what depends on conntrack, by line.
///
/// Checked as strictly as iptables-restore checks it: rules belong to a
/// declared table and chain, every table ends with COMMIT, quotes close.
public struct IptablesSaveRuleset {
    public let source: String
    public private(set) var findings: [RulesetFinding] = []
    public private(set) var exemptions: [RulesetFinding] = []
    public private(set) var ruleCount = 0
    /// Tables in the order they appear.
    public private(set) var tables: [String] = []
    /// What each table holds, by name: enough to recognise the same table
    /// in `nft list ruleset` (iptables-nft writes both).
    public private(set) var contents: [String: TableContents] = [:]
    /// The nat table, when there is one, with its rule count.
    public private(set) var natChains: [NatChain] = []
    /// True when the header says iptables-nft wrote it (`(nf_tables)`): those
    /// tables also appear in `nft list ruleset`.
    public private(set) var writtenByIptablesNft = false
    /// True when the header says iptables-legacy wrote it (`(legacy)`).
    public private(set) var writtenByLegacy = false

    static let knownTables: Set<String> = ["filter", "nat", "mangle", "raw", "security"]
    static let builtinChains: [String: Set<String>] = [
        "filter": ["INPUT", "FORWARD", "OUTPUT"],
        "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw": ["PREROUTING", "OUTPUT"],
        "security": ["INPUT", "FORWARD", "OUTPUT"],
    ]
    static let natTargets: Set<String> = ["MASQUERADE", "SNAT", "DNAT", "REDIRECT", "NETMAP"]
    /// The commands iptables-save writes for a rule.
    static let ruleCommands: Set<String> = ["-A", "--append", "-I", "--insert"]

    /// Parses and analyses `text`.
    ///
    /// - Parameters:
    ///   - source: the file name or command, used in locations and errors.
    ///   - family: `ip` for iptables-save, `ip6` for ip6tables-save, `nil` when unknown.
    /// - Throws: `TunerError.invalidRuleset` naming the line.
    public init(text: String, source: String, family: String? = nil) throws {
        self.source = source
        var table: String?
        var tableLine = 0
        var chains: Set<String> = []
        var lineNumber = 0
        var natLine: Int?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: isLineBreak) {
            lineNumber += 1
            let line = rawLine.trimming(.whitespaces)
            let here = "\(source):\(lineNumber)"
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                if line.contains("(nf_tables)") { writtenByIptablesNft = true }
                if line.contains("(legacy)") { writtenByLegacy = true }
                continue
            }
            if line.hasPrefix("*") {
                if let open = table {
                    throw invalid(here, "table \(line.dropFirst()) starts before table \(open) (line \(tableLine)) ends with COMMIT")
                }
                let name = String(line.dropFirst())
                guard Self.knownTables.contains(name) else {
                    throw invalid(here, "unknown table \"\(name)\" (iptables has filter, nat, mangle, raw and security)")
                }
                table = name
                tableLine = lineNumber
                if name == "nat" { natLine = lineNumber }
                chains = Self.builtinChains[name] ?? []
                tables.append(name)
                contents[name] = TableContents()
                continue
            }
            guard let current = table else {
                throw invalid(here, "\"\(line.prefix(40))\" is outside any table — each table starts with a line such as *filter")
            }
            if line == "COMMIT" {
                table = nil
                continue
            }
            if line.hasPrefix(":") {
                let chain = try Self.chainDeclaration(line, at: here)
                chains.insert(chain)
                contents[current, default: TableContents()].chains.insert(chain)
                continue
            }
            let words = try Self.tokens(line, at: here)
            guard let command = words.first, Self.ruleCommands.contains(command) else {
                throw invalid(
                    here, "\"\(line.prefix(40))\" is not a rule (-A CHAIN …), a chain (:CHAIN POLICY [0:0]), a table (*name) or COMMIT")
            }
            guard words.count >= 2, !words[1].hasPrefix("-") else {
                throw invalid(here, "\(command) needs a chain name")
            }
            let chain = words[1]
            guard chains.contains(chain) else {
                throw invalid(here, "chain \(chain) is not declared in table \(current) (add a line \":\(chain) - [0:0]\" before it)")
            }
            ruleCount += 1
            contents[current, default: TableContents()].rules += 1
            try analyse(
                Array(words.dropFirst(2)), line: line, table: current, chain: chain,
                location: RuleLocation(
                    source: source, format: .iptablesSave, family: family,
                    table: current, chain: chain, line: lineNumber))
        }
        if let natLine {
            natChains.append(natTable(family: family, line: natLine))
        }
        if let open = table {
            throw TunerError.invalidRuleset(
                location: "\(source):\(lineNumber)",
                problem: "table \(open) (opened on line \(tableLine)) has no COMMIT: the input is truncated",
                fix: "save the ruleset again with iptables-save")
        }
    }

    /// The nat table as a `NatChain`, with the command that removes it from
    /// the running system: iptables-nft keeps it as nft table `ip nat`;
    /// iptables-legacy's stays registered until iptable_nat is unloaded.
    private func natTable(family: String?, line: Int) -> NatChain {
        let family = family ?? "ip"
        let tool = family == "ip6" ? "ip6tables" : "iptables"
        let removal: String
        if writtenByIptablesNft {
            removal = "nft delete table \(family) nat"
        } else if writtenByLegacy {
            removal =
                "\(tool)-legacy -t nat -F && \(tool)-legacy -t nat -X && modprobe -r \(family == "ip6" ? "ip6table_nat" : "iptable_nat")"
        } else {
            removal = "\(tool) -t nat -F && \(tool) -t nat -X"
        }
        return NatChain(
            location: RuleLocation(source: source, format: .iptablesSave, family: family, table: "nat", chain: nil, line: line),
            rules: contents["nat"]?.rules ?? 0, removal: removal)
    }

    // MARK: rules

    private mutating func analyse(_ words: [String], line: String, table: String, chain: String, location: RuleLocation) throws {
        var uses: [ConntrackUse] = []
        var reasons: [String] = []
        var matches: [String] = []
        var target: String?
        var index = 0
        while index < words.count {
            let word = words[index]
            if ["-m", "--match", "-j", "--jump", "-g", "--goto"].contains(word) {
                guard index + 1 < words.count, !words[index + 1].hasPrefix("-") else {
                    throw invalid("\(location.source):\(location.line!)", "\(word) needs a name after it")
                }
                if word == "-m" || word == "--match" { matches.append(words[index + 1]) } else { target = words[index + 1] }
                index += 2
                continue
            }
            index += 1
        }
        let options = Set(words.filter { $0.hasPrefix("--") })
        for match in matches {
            switch match {
            case "state":
                uses.append(.ctState)
                reasons.append("matches conntrack state")
            case "conntrack":
                let stateOnly = options.subtracting(["--ctstate"]).allSatisfy { !$0.hasPrefix("--ct") }
                uses.append(stateOnly ? .ctState : Self.conntrackOptionUse(options))
                reasons.append(
                    stateOnly
                        ? "matches conntrack state"
                        : "matches conntrack \(options.filter { $0.hasPrefix("--ct") }.sorted().joined(separator: " "))")
            case let name:
                if let use = Self.compatUse(name: name, type: "match") {
                    uses.append(use)
                    reasons.append("-m \(name) reads the connection's conntrack entry")
                }
            }
        }
        var exempts = false
        if let target {
            switch target {
            case "NOTRACK":
                exempts = true
            case "CT" where options.contains("--notrack"):
                exempts = true
            case "CT":
                uses.append(.ctTarget)
                reasons.append(
                    "-j CT \(options.sorted().joined(separator: " ")) configures the connection's conntrack entry (helper, zone or timeout)"
                )
            case let name:
                if let use = Self.compatUse(name: name, type: "target") {
                    uses.append(use)
                    reasons.append(
                        use == .nat
                            ? "\(name) rewrites addresses once per connection and relies on conntrack to translate the rest of it"
                            : "-j \(name) writes the connection's conntrack entry")
                }
            }
        }
        if table == "nat" && !uses.contains(.nat) {
            uses.append(.natTable)
            reasons.append("the nat table only sees the first packet of each connection, so it works only with conntrack")
        }
        if exempts && uses.isEmpty {
            exemptions.append(
                RulesetFinding(
                    location: location, rule: line, uses: [.notrack],
                    reason: "keeps matching packets out of conntrack", replaceable: false))
            return
        }
        guard !uses.isEmpty else { return }
        let stateValues = ["--state", "--ctstate"].compactMap { flag in
            words.firstIndex(of: flag).map { words[$0 + 1 < words.count ? $0 + 1 : $0] }
        }
        // UNTRACKED is about the notrack exemption; SNAT and DNAT are NAT status.
        let stateOnly =
            uses.allSatisfy { $0 == .ctState }
            && !stateValues.contains { value in ["UNTRACKED", "SNAT", "DNAT"].contains { value.contains($0) } }
        if stateOnly {
            reasons = [
                """
                accepts or drops packets by connection state (\(stateValues.joined(separator: ","))); a stateless rule could \
                match the same replies by port and TCP flags
                """
            ]
        }
        // Built-in chains hang on their hook; a user chain is taken to be seen at every one.
        var reach = RuleReach(
            RuleReachReading.constraints(nftFamily: location.family) + RuleReachReading.constraints(iptablesWords: words))
        if let hooks = RuleReachReading.hooks(iptablesChain: chain) { reach.constraints.append(.hooks(hooks)) }
        findings.append(
            RulesetFinding(
                location: location, rule: line, uses: NftJSONRuleset.unique(uses),
                reason: NftJSONRuleset.unique(reasons).joined(separator: "; "), replaceable: stateOnly, reach: reach))
    }

    /// What an xtables match or target needs from conntrack, by its name;
    /// `nil` when it needs nothing (CT and NOTRACK are decided by options).
    static func compatUse(name: String, type: String) -> ConntrackUse? {
        switch (type, name) {
        case ("match", "state"), ("match", "conntrack"): return .ctState
        case ("match", "helper"): return .ctHelper
        case ("match", "connmark"), ("target", "CONNMARK"): return .connmark
        case ("match", "connlimit"), ("match", "connbytes"): return .connectionCount
        case ("match", "connlabel"), ("target", "CONNSECMARK"): return .ctOther
        // xt_cluster hashes the conntrack entry and the CLUSTERIP target
        // (kernels before 6.3) marks it: both call nf_ct_netns_get.
        case ("match", "cluster"), ("target", "CLUSTERIP"): return .ctOther
        case ("target", "SYNPROXY"): return .synproxy
        case ("target", let target) where natTargets.contains(target): return .nat
        default: return nil
        }
    }

    static func conntrackOptionUse(_ options: Set<String>) -> ConntrackUse {
        if options.contains("--ctstatus") { return .ctStatus }
        if options.contains("--ctdir") { return .ctDirection }
        return .ctOther
    }

    // MARK: syntax

    /// `:NAME POLICY [packets:bytes]`; returns the chain name.
    static func chainDeclaration(_ line: String, at here: String) throws -> String {
        let fields = line.dropFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, let name = fields.first, !name.isEmpty else {
            throw invalid(here, "a chain line needs a name and a policy, as in \":INPUT ACCEPT [0:0]\"")
        }
        guard ["ACCEPT", "DROP", "-", "RETURN", "QUEUE"].contains(fields[1]) else {
            throw invalid(here, "chain \(name) has policy \"\(fields[1])\"; expected ACCEPT, DROP or - (user chains)")
        }
        if fields.count > 2 {
            let counters = fields[2]
            let inner = counters.dropFirst().dropLast().split(separator: ":")
            guard counters.hasPrefix("["), counters.hasSuffix("]"), inner.count == 2, inner.allSatisfy({ Int($0) != nil }) else {
                throw invalid(here, "chain \(name) has counters \"\(counters)\"; expected [packets:bytes]")
            }
        }
        return String(name)
    }

    /// Splits a rule into words as iptables-restore does: double quotes group
    /// (comments), a backslash escapes a quote.
    static func tokens(_ line: String, at here: String) throws -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false, quoted = false, escaped = false
        for character in line {
            if escaped {
                word.append(character)
                escaped = false
                continue
            }
            switch character {
            case "\\" where quoted: escaped = true
            case "\"":
                quoted.toggle()
                inWord = true
            case " " where !quoted, "\t" where !quoted:
                if inWord {
                    words.append(word)
                    word = ""
                    inWord = false
                }
            default:
                word.append(character)
                inWord = true
            }
        }
        if quoted { throw invalid(here, "a double quote is not closed") }
        if inWord { words.append(word) }
        return words
    }
}

/// A line break as iptables-restore and nft read one: `\n`, or `\r\n` from
/// a file saved on Windows (Swift reads `\r\n` as one character, so
/// splitting on `\n` alone left such a file one long line).
func isLineBreak(_ character: Character) -> Bool {
    character == "\n" || character == "\r\n"
}

/// The chains an iptables-save table declares and how many rules it has.
public struct TableContents: Sendable, Equatable {
    public var chains: Set<String> = []
    public var rules = 0
}

private func invalid(_ location: String, _ problem: String) -> TunerError {
    TunerError.invalidRuleset(
        location: location, problem: problem,
        fix: "give the unedited output of iptables-save (check it with `iptables-restore --test FILE`)")
}
