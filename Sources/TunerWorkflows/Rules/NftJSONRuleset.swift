import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// Reads the JSON that `nft -j list ruleset` prints (libnftables JSON schema
/// version 1) and finds what depends on conntrack.
///
/// Only a listed ruleset is accepted: command documents (`{"add": …}`) are
/// input to `nft -j -f`, not a description of what is loaded.
public struct NftJSONRuleset {
    public let source: String
    /// `.nftText` when the JSON was read back from nft text loaded into a
    /// private network namespace.
    public let format: RulesetFormat
    public private(set) var findings: [RulesetFinding] = []
    public private(set) var exemptions: [RulesetFinding] = []
    /// Every nat-type chain, with its rule count.
    public private(set) var natChains: [NatChain] = []
    /// Every rule of a nat-type chain (see `RulesetReport.natChainRules`).
    public private(set) var natChainRules: [RulesetFinding] = []
    public private(set) var ruleCount = 0
    /// Tables as "family name", in order.
    public private(set) var tables: [String] = []
    private var declaredTables: Set<String> = []

    /// Top-level elements of a listing; anything else is an error.
    static let listingKinds: Set<String> = [
        "metainfo", "table", "chain", "rule", "set", "map", "element", "flowtable", "counter", "quota",
        "ct helper", "ct timeout", "ct expectation", "limit", "secmark", "synproxy", "tunnel",
    ]
    static let commandKinds: Set<String> = ["add", "create", "insert", "replace", "delete", "destroy", "flush", "list", "reset", "rename"]
    /// Objects that only exist to be used by conntrack.
    static let conntrackObjects: [String: ConntrackUse] = [
        "ct helper": .ctHelper, "ct timeout": .ctOther, "ct expectation": .ctExpectation, "synproxy": .synproxy,
    ]

    /// Tables left to iptables-save, as "family name".
    public private(set) var tablesReadFromIptables: [String] = []

    /// Parses and analyses `text`.
    ///
    /// - Parameters:
    ///   - source: the file name or command, used in locations and errors.
    ///   - iptablesTables: what iptables-nft's iptables-save listed, by
    ///     "family name". A table of the listing is left out (analysed from
    ///     iptables-save instead) only when it is that same table: every
    ///     chain it has is one iptables-save declares, and it has as many
    ///     rules. A hand-written `table ip nat` that iptables-save cannot show
    ///     is analysed here.
    /// - Throws: `TunerError.invalidRuleset` naming the line and column of a
    ///   JSON syntax error, or the element index of a structural one.
    public init(
        text: String, source: String, format: RulesetFormat = .nftJSON, iptablesTables: [String: TableContents] = [:]
    ) throws {
        self.source = source
        self.format = format
        let document: JSONValue
        do {
            document = try JSONReader.parse(text)
        } catch let error as JSONReader.SyntaxError {
            throw Self.syntaxError(error, in: text, source: source)
        }
        guard let elements = document["nftables"] else {
            throw invalid("\(source)", "the top level is not an object with an \"nftables\" member")
        }
        guard let list = elements.array else {
            throw invalid("\(source): nftables", "\"nftables\" is not an array")
        }
        let skipTables = Self.sameTables(in: list, as: iptablesTables)
        tablesReadFromIptables = skipTables.sorted()
        var chainTypes: [String: String] = [:]
        var rulesPerChain: [String: Int] = [:]
        // Per chain, the targets of its rules when every rule only counts,
        // matches and jumps (nil once a rule does anything else).
        var jumpsPerChain: [String: [String]?] = [:]
        // What the hooks each chain is seen at are read from: base chains'
        // hooks, every jump, and the chains named maps jump to.
        var baseHooks: [String: Set<NetfilterHook>?] = [:]
        var anyJumps: [String: [String]] = [:]
        var mapTargets: Set<String> = []
        for (index, element) in list.enumerated() {
            let here = "\(source): nftables[\(index)]"
            guard let (kind, fields) = element.single else {
                throw invalid(here, "expected an object with exactly one member such as {\"rule\": {…}}")
            }
            if Self.commandKinds.contains(kind) {
                throw TunerError.invalidRuleset(
                    location: here, problem: "\"\(kind)\" is an nft command, not part of a listed ruleset",
                    fix: "give the output of `nft -j list ruleset`, or load the commands with `nft -j -f` first")
            }
            guard Self.listingKinds.contains(kind) else {
                // A kind a newer nft lists inside a table (it names one) is
                // counted as needing conntrack; anything else is not a listing.
                guard let family = fields["family"]?.string, let table = fields["table"]?.string,
                    declaredTables.contains("\(family) \(table)")
                else { throw invalid(here, "unknown element \"\(kind)\"") }
                if skipTables.contains("\(family) \(table)") { continue }
                findings.append(
                    RulesetFinding(
                        location: location(fields, chain: fields["chain"]?.string),
                        rule: "\(kind) \(fields["name"]?.string ?? "")",
                        uses: [.unknown],
                        reason:
                            """
                            nftables[\(index)] is a \(JSONValue.quoted(kind)) object, which cttune does not know: counted as \
                            needing conntrack, to be safe
                            """,
                        replaceable: false))
                continue
            }
            guard fields.members != nil else {
                throw invalid(here, "\"\(kind)\" is not an object")
            }
            switch kind {
            case "metainfo":
                if let version = fields["json_schema_version"]?.int, version != 1 {
                    throw TunerError.invalidRuleset(
                        location: here, problem: "JSON schema version \(version) is not supported (only version 1)",
                        fix: "list the ruleset with an nft that writes schema 1, or save it as nft text")
                }
            case "table":
                let family = try string(fields, "family", here), name = try string(fields, "name", here)
                tables.append("\(family) \(name)")
                declaredTables.insert("\(family) \(name)")
            case "chain":
                let table = try tableKey(fields, here)
                let name = try string(fields, "name", here)
                if !declaredTables.contains(table) { throw undeclared(here, table) }
                if let type = fields["type"]?.string { chainTypes[table + " " + name] = type }
                if let hook = fields["hook"]?.string {
                    baseHooks.updateValue(
                        RuleReachReading.hooks(nftFamily: fields["family"]?.string, hook: hook), forKey: table + " " + name)
                }
                if skipTables.contains(table) { continue }
                if fields["type"]?.string == "nat" {
                    let hook = fields["hook"]?.string ?? "?"
                    let location = location(fields, chain: name)
                    natChains.append(NatChain(location: location, rules: 0, removal: ""))
                    findings.append(
                        RulesetFinding(
                            location: location,
                            rule:
                                """
                                type nat hook \(hook) priority \
                                \(fields["prio"].map(NftStatementText.values)?.joined(separator: ",") ?? "?")
                                """,
                            uses: [.natChain],
                            reason: "a nat-type chain with rules hooks NAT, which is decided per connection by conntrack",
                            replaceable: false))
                }
            case "rule":
                let table = try tableKey(fields, here)
                let chain = try string(fields, "chain", here)
                if !declaredTables.contains(table) { throw undeclared(here, table) }
                guard let statements = fields["expr"]?.array else {
                    throw invalid(here, "the rule in \(table) \(chain) has no \"expr\" array")
                }
                if skipTables.contains(table) { continue }
                ruleCount += 1
                rulesPerChain[table + " " + chain, default: 0] += 1
                // updateValue: assigning nil through the subscript would remove the chain.
                let key = table + " " + chain, target = Self.onlyJump(statements)
                let jumps: [String]? = (jumpsPerChain[key] ?? []).flatMap { jumps in target.map { jumps + [table + " " + $0] } }
                jumpsPerChain.updateValue(jumps, forKey: key)
                anyJumps[key, default: []] += RuleReachReading.jumpTargets(in: fields["expr"] ?? .null).map { table + " " + $0 }
                analyse(rule: statements, fields: fields, chain: chain, chainType: chainTypes[table + " " + chain])
            case "set", "map":
                let table = try tableKey(fields, here)
                mapTargets.formUnion(RuleReachReading.jumpTargets(in: fields).map { table + " " + $0 })
                if skipTables.contains(table) { continue }
                analyse(set: kind, fields: fields)
            default:
                if let use = Self.conntrackObjects[kind] {
                    let table = try tableKey(fields, here)
                    if skipTables.contains(table) { continue }
                    findings.append(
                        RulesetFinding(
                            location: location(fields, chain: nil),
                            rule: "\(kind) \(fields["name"]?.string ?? "")",
                            uses: [use],
                            reason: "a \(kind) object is only used by conntrack",
                            replaceable: false))
                }
            }
        }
        sortNatChains(rulesPerChain, jumps: jumpsPerChain)
        let hooks = RuleReachReading.chainHooks(base: baseHooks, jumps: anyJumps, everywhere: mapTargets)
        func seenAt(_ finding: inout RulesetFinding) {
            let location = finding.location
            guard let chain = location.chain, let seen = hooks["\(location.family ?? "") \(location.table) \(chain)"] ?? nil else { return }
            finding.reach.constraints.append(.hooks(seen))
        }
        for index in findings.indices { seenAt(&findings[index]) }
        for index in natChainRules.indices { seenAt(&natChainRules[index]) }
    }

    /// The target of a rule that only counts, matches on what is not
    /// connection state, and jumps or goes to a regular chain; nil for any other rule.
    static func onlyJump(_ statements: [JSONValue]) -> String? {
        var scan = NftConntrackScan()
        for (index, statement) in statements.enumerated() { scan.statement(statement, at: "expr[\(index)]") }
        guard scan.uses.isEmpty, !scan.exempts, let last = statements.last?.single else { return nil }
        guard last.0 == "jump" || last.0 == "goto", let target = last.1["target"]?.string else { return nil }
        let others = statements.dropLast().compactMap { $0.single?.0 }
        guard others.count == statements.count - 1, others.allSatisfy({ $0 == "match" || $0 == "counter" }) else { return nil }
        return target
    }

    /// Whether a chain holds no rule, or only rules that jump to such chains
    /// (a cycle counts as holding rules: nft refuses to load one anyway).
    static func holdsNothing(_ chain: String, jumps: [String: [String]?], visiting: Set<String> = []) -> Bool {
        guard let entry = jumps[chain] else { return true }
        guard let targets = entry, !visiting.contains(chain) else { return false }
        return targets.allSatisfy { holdsNothing($0, jumps: jumps, visiting: visiting.union([chain])) }
    }

    /// Counts each nat chain's rules; an empty one moves from the findings
    /// to `emptyNatChains`: the kernel tracks nothing for a nat chain with no
    /// rule (nft_chain_nat registers the NAT hook, but only NAT and ct
    /// expressions call nf_ct_netns_get to start tracking), nor for one whose
    /// rules only jump to chains that hold none (what Docker, kube-proxy and
    /// libvirt leave before they have a mapping).
    private mutating func sortNatChains(_ rulesPerChain: [String: Int], jumps: [String: [String]?]) {
        for index in natChains.indices {
            let location = natChains[index].location
            let rules = rulesPerChain["\(location.family ?? "") \(location.table) \(location.chain ?? "")"] ?? 0
            natChains[index].rules = rules
            let chain = [location.family ?? "", location.table, location.chain ?? ""].map(NatChain.quotedIfNeeded).joined(separator: " ")
            natChains[index].removal = (rules > 0 ? "nft flush chain \(chain) && " : "") + "nft delete chain \(chain)"
        }
        for index in natChains.indices where natChains[index].rules ?? 0 > 0 {
            let location = natChains[index].location
            natChains[index].onlyJumpsToEmptyChains = Self.holdsNothing(
                "\(location.family ?? "") \(location.table) \(location.chain ?? "")", jumps: jumps)
        }
        let empty = Set(natChains.filter(\.tracksNothing).map(\.location))
        findings.removeAll { $0.uses == [.natChain] && empty.contains($0.location) }
    }

    // MARK: rules

    private mutating func analyse(rule statements: [JSONValue], fields: JSONValue, chain: String, chainType: String?) {
        var scan = NftConntrackScan()
        for (index, statement) in statements.enumerated() { scan.statement(statement, at: "expr[\(index)]") }
        let location = location(fields, chain: chain)
        let text = statements.map(NftStatementText.describe).filter { !$0.isEmpty }.joined(separator: " ")
        let reach = RuleReach(
            RuleReachReading.constraints(nftFamily: location.family) + RuleReachReading.constraints(nftStatements: statements))
        if chainType == "nat" {
            natChainRules.append(
                RulesetFinding(
                    location: location, rule: text, uses: [.natChain],
                    reason: "a nat-type chain sees only the first packet of a tracked flow, and no untracked packet",
                    replaceable: false, reach: reach))
        }
        guard scan.exempts || !scan.uses.isEmpty else { return }
        if scan.uses.isEmpty {
            exemptions.append(
                RulesetFinding(
                    location: location, rule: text, uses: [.notrack],
                    reason: "keeps matching packets out of conntrack", replaceable: false))
            return
        }
        var reasons = scan.reasons
        let stateOnly =
            !scan.opaque && scan.uses.allSatisfy { $0 == .ctState } && chainType != "nat" && !scan.states.contains("untracked")
        if stateOnly {
            reasons = [
                """
                accepts or drops packets by connection state \
                (\(scan.states.isEmpty ? "ct state" : scan.states.joined(separator: ","))); a stateless rule could match the \
                same replies by port and TCP flags
                """
            ]
        }
        findings.append(
            RulesetFinding(
                location: location, rule: text, uses: Self.unique(scan.uses),
                reason: Self.unique(reasons).joined(separator: "; "), replaceable: stateOnly, reach: reach))
    }

    /// A named set or map whose declaration carries conntrack statements
    /// (`ct count over 5` for each element): every rule that adds to it
    /// makes the kernel count connections.
    private mutating func analyse(set kind: String, fields: JSONValue) {
        var scan = NftConntrackScan()
        for member in ["stmt", "elem"] {
            if let value = fields[member] { scan.value(value, at: member) }
        }
        guard !scan.uses.isEmpty else { return }
        findings.append(
            RulesetFinding(
                location: location(fields, chain: nil), rule: "\(kind) \(fields["name"]?.string ?? "")",
                uses: Self.unique(scan.uses), reason: Self.unique(scan.reasons).joined(separator: "; "), replaceable: false))
    }

    /// The tables of `elements` that are, chain for chain and rule for rule,
    /// the ones iptables-save listed. iptables-nft-save declares every
    /// built-in chain of a table even when nft has only some of them, so
    /// nft's chains need only be among iptables-save's.
    static func sameTables(in elements: [JSONValue], as iptables: [String: TableContents]) -> Set<String> {
        guard !iptables.isEmpty else { return [] }
        var listed: [String: TableContents] = [:]
        for element in elements {
            guard let (kind, fields) = element.single, kind == "chain" || kind == "rule",
                let family = fields["family"]?.string, let table = fields["table"]?.string
            else { continue }
            let key = "\(family) \(table)"
            guard iptables[key] != nil else { continue }
            if kind == "chain" {
                listed[key, default: TableContents()].chains.insert(fields["name"]?.string ?? "")
            } else {
                listed[key, default: TableContents()].rules += 1
            }
        }
        return Set(
            listed.filter { key, contents in
                guard let saved = iptables[key] else { return false }
                return contents.chains.isSubset(of: saved.chains) && contents.rules == saved.rules
            }.keys)
    }

    static func use(ofCtKey key: String) -> ConntrackUse {
        switch key {
        case "state": return .ctState
        case "status": return .ctStatus
        case "mark": return .ctMark
        case "zone": return .ctZone
        case "helper": return .ctHelper
        case "direction": return .ctDirection
        case "expectation": return .ctExpectation
        default: return .ctOther
        }
    }

    static func unique<T: Equatable>(_ items: [T]) -> [T] {
        items.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    // MARK: fields and errors

    private func location(_ fields: JSONValue, chain: String?) -> RuleLocation {
        RuleLocation(
            source: source, format: format, family: fields["family"]?.string,
            table: fields["table"]?.string ?? "", chain: chain, handle: fields["handle"]?.int)
    }

    private func string(_ fields: JSONValue, _ key: String, _ here: String) throws -> String {
        guard let value = fields[key]?.string, !value.isEmpty else {
            throw invalid(here, "missing \"\(key)\" (a non-empty string)")
        }
        return value
    }

    private func tableKey(_ fields: JSONValue, _ here: String) throws -> String {
        "\(try string(fields, "family", here)) \(try string(fields, "table", here))"
    }

    private func undeclared(_ here: String, _ table: String) -> TunerError {
        TunerError.invalidRuleset(
            location: here, problem: "refers to table \(table), which is not listed before it",
            fix: "the listing is incomplete or reordered — save it again with `nft -j list ruleset`")
    }

    /// A syntax error at a byte offset, as `FILE:LINE:COLUMN`; input that
    /// stops in the middle is called truncated.
    static func syntaxError(_ error: JSONReader.SyntaxError, in text: String, source: String) -> TunerError {
        if text.allSatisfy(\.isWhitespace) {
            return TunerError.invalidRuleset(
                location: source, problem: "empty input", fix: "give a ruleset file, or omit --ruleset to read the live one")
        }
        let (line, column) = lineAndColumn(ofUTF8Offset: error.offset, in: text)
        let truncated = error.offset >= text.utf8.count
        return TunerError.invalidRuleset(
            location: "\(source):\(line):\(column)",
            problem: truncated ? "the JSON ends early (\(error.message)): the input is truncated" : "invalid JSON: \(error.message)",
            fix: "the file is not valid JSON (truncated or edited?) — save it again with `nft -j list ruleset > FILE`")
    }

    static func lineAndColumn(ofUTF8Offset offset: Int, in text: String) -> (Int, Int) {
        var line = 1, column = 1
        for (index, byte) in text.utf8.enumerated() {
            if index >= offset { break }
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }
}

private func invalid(_ location: String, _ problem: String) -> TunerError {
    TunerError.invalidRuleset(
        location: location, problem: problem,
        fix: "give the unedited output of `nft -j list ruleset`")
}

/// Rebuilds nft syntax from JSON statements, close enough for a person to
/// find the rule: `ct state established,related accept`.
enum NftStatementText {
    static func describe(_ statement: JSONValue) -> String {
        guard let (kind, body) = statement.single else {
            return statement.string.map { NftConntrackScan.oneLine($0, limit: 80) } ?? "?"
        }
        switch kind {
        case "counter": return ""
        case "match":
            let op = body["op"]?.string ?? "=="
            let left = expression(body["left"] ?? .null), right = values(body["right"] ?? .null).joined(separator: ",")
            return op == "==" || op == "in" ? "\(left) \(right)" : "\(left) \(op) \(right)"
        case "accept", "drop", "return", "continue", "notrack", "masquerade", "synproxy":
            return kind
        case "jump", "goto":
            return "\(kind) \(body["target"]?.string ?? "")"
        case "snat", "dnat", "redirect":
            var text = kind
            if let addr = body["addr"] { text += " to \(expression(addr))" }
            if let port = body["port"] { text += (body["addr"] == nil ? " to " : "") + ":\(expression(port))" }
            return text
        case "mangle":
            return "\(expression(body["key"] ?? .null)) set \(expression(body["value"] ?? .null))"
        case "flow":
            return "flow add \(body["flowtable"]?.string ?? "")"
        case "ct helper", "ct timeout", "ct expectation":
            return "\(kind) set \(expression(body))"
        case "ct count":
            return "ct count \(body["inv"]?.bool == true ? "over " : "")\(body["val"]?.int ?? 0)"
        case "xt":
            return "xt \(body["type"]?.string ?? "") \(body["name"]?.string ?? "")"
        case "set", "map":
            let nested = (body["stmt"]?.array ?? []).map(describe).filter { !$0.isEmpty }
            let data = body["data"].map { " : " + expression($0) } ?? ""
            let inner = ([expression(body["elem"] ?? .null)] + nested).joined(separator: " ")
            return "\(body["op"]?.string ?? kind) \(body[kind]?.string ?? "") { \(inner)\(data) }"
        case "meter":
            let inner = [expression(body["key"] ?? .null), describe(body["stmt"] ?? .null)].filter { !$0.isEmpty }.joined(separator: " ")
            return "meter \(body["name"]?.string ?? "") { \(inner) }"
        case "vmap":
            return "\(expression(body["key"] ?? .null)) vmap { … }"
        default:
            return body.isNull ? kind : "\(kind) \(expression(body))"
        }
    }

    static func expression(_ value: JSONValue) -> String {
        guard let (kind, body) = value.single else {
            return value.members == nil ? values(value).joined(separator: ",") : "{…}"
        }
        switch kind {
        case "ct":
            return ["ct", body["dir"]?.string, body["family"]?.string, body["key"]?.string].compactMap { $0 }.joined(separator: " ")
        case "payload":
            return [body["protocol"]?.string, body["field"]?.string].compactMap { $0 }.joined(separator: " ")
        case "meta":
            return "meta \(body["key"]?.string ?? "")"
        case "prefix":
            return "\(expression(body["addr"] ?? .null))/\(body["len"]?.int ?? 0)"
        case "range":
            return (body.array ?? []).map(expression).joined(separator: "-")
        case "set":
            return "{ " + values(body).joined(separator: ", ") + " }"
        default:
            return kind
        }
    }

    /// The literal values of a match's right side.
    static func values(_ value: JSONValue) -> [String] {
        switch value {
        case .string(let text): return [text]
        case .int(let number): return [String(number)]
        case .array(let items): return items.flatMap(values)
        case .object:
            if let set = value["set"] { return values(set) }
            if let element = value["elem"]?["val"] { return values(element) }
            return [expression(value)]
        default: return []
        }
    }
}
