import TunerCore
import TunerModel
import TunerSystem

/// What one nft rule (or set declaration) asks of conntrack, found by
/// walking every statement and expression in it, nested ones included: a
/// set or map statement's own `stmt` list (`add @s { ip saddr ct count over
/// 5 }`), a meter's statement, verdict maps, concatenations, set elements
/// carrying statements.
///
/// The walk follows the libnftables JSON schema (doc/libnftables-json.adoc
/// and src/json.c of nftables 1.1.6): every statement and expression is an
/// object with one member naming its kind. A kind cttune does not know, or
/// a value of the wrong shape where a statement or expression belongs (nft
/// prints plain text for statements it has no JSON for, such as anonymous
/// chains in nft 1.0.6), is counted as needing conntrack — the safe side —
/// and named by its path in the rule.
struct NftConntrackScan {
    private(set) var uses: [ConntrackUse] = []
    private(set) var reasons: [String] = []
    /// The values a `ct state` match compares with.
    private(set) var states: [String] = []
    /// A `notrack` statement (or the iptables-nft NOTRACK target).
    private(set) var exempts = false
    /// An iptables-nft extension seen only by name: its options (state or
    /// status?) are unknown, so the rule is never called replaceable.
    private(set) var opaque = false

    /// Statements of nft's JSON schema that need nothing from conntrack.
    static let plainStatements: Set<String> = [
        "accept", "drop", "continue", "return", "jump", "goto", "match", "counter", "mangle", "quota", "limit", "fwd", "dup",
        "reject", "set", "map", "log", "meter", "queue", "vmap", "tproxy", "last", "reset", "secmark", "tunnel",
    ]
    /// Expressions of nft's JSON schema other than `ct`, `elem` and the
    /// conntrack statements.
    static let plainExpressions: Set<String> = [
        "concat", "set", "map", "prefix", "range", "payload", "exthdr", "tcp option", "ip option", "sctp chunk", "dccp option",
        "meta", "rt", "numgen", "jhash", "symhash", "fib", "|", "^", "&", "<<", ">>", "socket", "osf", "ipsec", "tunnel",
    ]
    /// Set element attributes that are not statements.
    static let elementAttributes: Set<String> = ["val", "timeout", "expires", "comment"]

    /// One item of a rule's `expr` array, at `path` (such as `expr[2]`).
    mutating func statement(_ statement: JSONValue, at path: String) {
        guard let (kind, body) = statement.single else {
            unknown(statement, at: path, what: "statement")
            return
        }
        self.kind(kind, body, at: path)
    }

    /// A value where a statement, an expression or a list of them belongs.
    mutating func value(_ value: JSONValue, at path: String) {
        switch value {
        case .array(let items):
            for (index, item) in items.enumerated() { self.value(item, at: "\(path)[\(index)]") }
        case .object:
            guard let (kind, body) = value.single else {
                unknown(value, at: path, what: "expression")
                return
            }
            self.kind(kind, body, at: path)
        default:
            break  // an immediate: a number, a string (names, "@set" references), a boolean
        }
    }

    private mutating func kind(_ kind: String, _ body: JSONValue, at path: String) {
        let here = "\(path).\(kind)"
        switch kind {
        case "ct":
            let key = body["key"]?.string ?? "?"
            let use = NftJSONRuleset.use(ofCtKey: key)
            note(use, use == .ctState ? "matches conntrack state" : "uses ct \(key)")
            return
        case "match":
            if body["left"]?["ct"]?["key"]?.string == "state", let right = body["right"] {
                states += NftStatementText.values(right)
            }
        case "notrack":
            exempts = true
        case "masquerade", "snat", "dnat", "redirect":
            note(.nat, "\(kind) rewrites addresses once per connection and relies on conntrack to translate the rest of it")
        case "flow":
            note(.flowOffload, "flow offload moves established connections found by conntrack to a flowtable")
        case "synproxy":
            note(.synproxy, "synproxy completes handshakes on behalf of servers using conntrack entries")
        case "ct helper":
            note(.ctHelper, "assigns a conntrack helper")
        case "ct expectation":
            note(.ctExpectation, "creates conntrack expectations")
        case "ct timeout":
            note(.ctOther, "sets a conntrack timeout policy")
        case "ct count":
            note(.connectionCount, "counts connections in conntrack")
        case "xt":
            let name = body["name"]?.string ?? "?", type = body["type"]?.string ?? "match"
            if let use = IptablesSaveRuleset.compatUse(name: name, type: type) {
                opaque = true
                note(use, "iptables-nft \(type) \(name) needs conntrack (read the rule with iptables-save for details)")
            } else if name == "CT" {
                note(
                    .iptablesCompat,
                    """
                    iptables-nft CT target: nft JSON does not say whether it is --notrack or a helper/zone assignment — \
                    read it with iptables-save
                    """
                )
            } else if name == "NOTRACK" {
                exempts = true
            }
        case "elem":
            // Statements attached to a set element are merged into its object
            // next to "val" ({"elem": {"val": …, "ct count": {…}}}).
            for (member, value) in body.members ?? [] {
                if Self.elementAttributes.contains(member) {
                    self.value(value, at: "\(here).\(member)")
                } else {
                    self.kind(member, value, at: here)
                }
            }
            return
        default:
            guard Self.plainStatements.contains(kind) || Self.plainExpressions.contains(kind) else {
                note(.unknown, "\(here) is not a statement or expression cttune knows: counted as needing conntrack, to be safe")
                return
            }
        }
        fields(body, at: here)
    }

    /// The members of a statement's or expression's body: expressions,
    /// nested statements (`stmt`), or immediates.
    private mutating func fields(_ body: JSONValue, at path: String) {
        switch body {
        case .object(let members):
            for (name, member) in members { value(member, at: "\(path).\(name)") }
        case .array:
            value(body, at: path)
        default:
            break
        }
    }

    private mutating func unknown(_ value: JSONValue, at path: String, what: String) {
        let shown: String
        switch value {
        case .string(let text): shown = "plain text \(JSONValue.quoted(Self.oneLine(text, limit: 60))) (nft printed no JSON for it)"
        case .object(let members): shown = "an object with \(members.count) members"
        case .array: shown = "an array"
        default: shown = "the value \(value.rendered())"
        }
        note(.unknown, "\(path) is \(shown) where a \(what) belongs: counted as needing conntrack, to be safe")
    }

    private mutating func note(_ use: ConntrackUse, _ reason: String) {
        uses.append(use)
        reasons.append(reason)
    }

    /// `text` with every run of whitespace or control characters as one
    /// space, cut at `limit` characters.
    static func oneLine(_ text: String, limit: Int) -> String {
        let words = text.split { $0.isWhitespace || $0.unicodeScalars.contains { $0.properties.generalCategory == .control } }
        let line = words.joined(separator: " ")
        return line.count > limit ? String(line.prefix(limit)) + "…" : line
    }
}
