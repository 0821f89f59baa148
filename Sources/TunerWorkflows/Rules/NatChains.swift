import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// A nat-type chain (nft) or an iptables nat table, live or in a ruleset
/// file the host loads at boot.
public struct NatChain: Sendable, Equatable {
    /// Where it is: `family table chain handle N` live, `FILE line N` in a file.
    public var location: RuleLocation
    /// Its rules; `nil` when read from a file (not counted there).
    public var rules: Int?
    /// The command that deletes it from the running system, or the edit
    /// that removes it from a file and the command that checks the file.
    public var removal: String
    /// Its rules only jump or go to chains that hold no rule: the kernel
    /// tracks nothing for it, as for an empty chain.
    public var onlyJumpsToEmptyChains = false

    public init(location: RuleLocation, rules: Int?, removal: String) {
        self.location = location
        self.rules = rules
        self.removal = removal
    }

    /// The kernel tracks nothing for this chain: it holds no rule, or only jumps to chains that hold none.
    public var tracksNothing: Bool { rules == 0 || onlyJumpsToEmptyChains }

    /// "inet filter postrouting (nft -j list ruleset)" or
    /// "table ip nat chain post (/etc/nftables.conf line 12)".
    public var summary: String {
        let what: String
        switch location.format {
        case .iptablesSave: what = "\(location.family == "ip6" ? "ip6tables" : "iptables") nat table"
        case .nftJSON, .nftText:
            what = "nat chain \([location.family, location.table, location.chain].compactMap { $0 }.joined(separator: " "))"
        }
        let place = location.line.map { "\(location.source) line \($0)" } ?? location.source
        return "\(what) (\(place))".escapingControlCharacters
    }

    /// A name as nft accepts it on the command line: quoted when it is not
    /// a plain identifier.
    static func quotedIfNeeded(_ name: String) -> String {
        let plain =
            !name.isEmpty && name.unicodeScalars.allSatisfy { ScalarSet.alphanumerics.contains($0) || "_-.".unicodeScalars.contains($0) }
        return plain ? name : JSONValue.quoted(name)
    }
}

/// Every nat-type chain and iptables nat table a host has, running or
/// persisted.
///
/// `nft_chain_nat`, `iptable_nat` and `ip6table_nat` depend on nf_nat and
/// nf_conntrack. Once those are blacklisted, a boot-time ruleset holding a
/// nat chain or a `*nat` table fails to load — and `nft -f` and
/// `iptables-restore` are atomic, so the whole firewall stays unloaded. An
/// empty nat chain tracks nothing today, yet it breaks the next boot.
public enum NatChains {
    /// The boot-time nft ruleset (Debian's nftables.service loads it).
    public static let nftablesConf: FilePath = "/etc/nftables.conf"
    /// iptables-persistent's files (netfilter-persistent loads them).
    public static let iptablesRules: [(path: FilePath, family: String)] = [
        ("/etc/iptables/rules.v4", "ip"), ("/etc/iptables/rules.v6", "ip6"),
    ]
    /// nft's default include directory, for relative `include` paths.
    static let nftIncludeDirectory: FilePath = "/etc"
    /// Deeper include chains are an error in nft too (it stops at 16).
    static let maximumIncludeDepth = 16

    /// Nat chains of the running system (from `live`, the analysed live
    /// ruleset; `nil` under a `--root` tree) and of the persisted ruleset
    /// files under `root`.
    public static func list(under root: SystemRoot, live: RulesetReport?) throws -> [NatChain] {
        (live?.natChains ?? []) + (try persisted(under: root))
    }

    /// Reads the live ruleset (when `root` is the running system) and the
    /// persisted files, and refuses with every nat chain found, naming each
    /// and its removal.
    ///
    /// - Parameter purpose: what would break, for the message ("blacklist the conntrack modules").
    /// - Throws: `TunerError.natChainsPresent`; the analyser's errors when
    ///   the live ruleset cannot be read.
    public static func refuseIfAny(under root: SystemRoot, purpose: String, analyzer: RulesetAnalyzer = RulesetAnalyzer()) throws {
        var live: RulesetReport?
        if root.isLive {
            do {
                live = try analyzer.analyzeLive()
            } catch TunerError.rulesetToolMissing {
                live = nil  // neither nft nor iptables is installed: no tool made a nat chain
            }
        }
        let chains = try list(under: root, live: live)
        guard chains.isEmpty else {
            throw TunerError.natChainsPresent(
                chains: chains.map { "\($0.summary): \($0.removal.escapingControlCharacters)" }, purpose: purpose)
        }
    }

    // MARK: persisted files

    /// Nat chains in `/etc/nftables.conf` (and every file it includes) and
    /// `*nat` tables in `/etc/iptables/rules.v4|v6`, all under `root`.
    public static func persisted(under root: SystemRoot) throws -> [NatChain] {
        var chains: [NatChain] = []
        var visited: Set<String> = []
        try scanNftFile(nftablesConf, under: root, depth: 0, visited: &visited, into: &chains)
        for (path, family) in iptablesRules {
            guard let text = try root.contents(of: path) else { continue }
            chains += iptablesNatTables(text, source: path.string, family: family)
        }
        return chains
    }

    static func scanNftFile(
        _ path: FilePath, under root: SystemRoot, depth: Int, visited: inout Set<String>, into chains: inout [NatChain],
        table: NftTextScan.Table? = nil
    ) throws {
        guard depth <= maximumIncludeDepth, visited.insert(path.string).inserted else { return }
        guard let text = try root.contents(of: path) else { return }
        let scan = NftTextScan(text: text, source: path.string, table: table)
        chains += scan.natChains
        for (include, line, table) in scan.includes {
            let files = resolveInclude(include, from: path, under: root)
            if files.isEmpty && !include.contains(where: { "*?[".contains($0) }) {
                throw TunerError.invalidRuleset(
                    location: "\(path.string):\(line)", problem: "includes \(JSONValue.quoted(include)), which does not exist",
                    fix: "fix the include (check with `nft -c -f \(nftablesConf.string)`)")
            }
            for file in files {
                try scanNftFile(file, under: root, depth: depth + 1, visited: &visited, into: &chains, table: table)
            }
        }
    }

    /// The files an `include` names: an absolute path, or one relative to
    /// the including file's directory or to /etc; a `*`, `?` or `[…]` in the
    /// last component is a pattern matched against the directory.
    static func resolveInclude(_ include: String, from file: FilePath, under root: SystemRoot) -> [FilePath] {
        let candidates: [FilePath] =
            include.hasPrefix("/")
            ? [FilePath(include).lexicallyNormalized()]
            : [file.removingLastComponent().appending(include), nftIncludeDirectory.appending(include)].map { $0.lexicallyNormalized() }
        for candidate in candidates {
            guard let name = candidate.lastComponent?.string else { continue }
            if name.contains(where: { "*?[".contains($0) }) {
                let directory = candidate.removingLastComponent()
                let matches = root.entries(of: directory).filter { fnmatch(name, $0, 0) == 0 }.map { directory.appending($0) }
                if !matches.isEmpty { return matches }
            } else if root.exists(candidate) {
                return [candidate]
            }
        }
        return []
    }

    /// `*nat` tables of an iptables-save file, each with its lines and the edit that removes it.
    static func iptablesNatTables(_ text: String, source: String, family: String) -> [NatChain] {
        var chains: [NatChain] = []
        var start: Int?
        var rules = 0
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: isLineBreak).enumerated() {
            let line = rawLine.trimming(.whitespaces.union(ScalarSet(charactersIn: "\r")))
            if line == "*nat" {
                start = index + 1
                rules = 0
            } else if let first = start, line == "COMMIT" {
                let restore = family == "ip6" ? "ip6tables-restore" : "iptables-restore"
                chains.append(
                    NatChain(
                        location: RuleLocation(
                            source: source, format: .iptablesSave, family: family, table: "nat", chain: nil, line: first),
                        rules: rules,
                        removal:
                            """
                            delete lines \(first)–\(index + 1) (*nat … COMMIT) of \(source), then check it with \
                            `\(restore) --test \(source)`
                            """
                    ))
                start = nil
            } else if start != nil, line.hasPrefix("-A ") || line.hasPrefix("-I ") {
                rules += 1
            }
        }
        return chains
    }
}

/// Finds nat-type chains and `include`s in nft text, as `nft -f` reads it:
/// `table [FAMILY] NAME { chain NAME { type nat … } }` blocks and
/// `add|create chain [FAMILY] TABLE NAME { type nat … }` commands. A token
/// scanner, not nft's grammar: it needs no root and no nft, and reads files
/// under a `--root` tree whose includes point into that tree.
struct NftTextScan {
    private(set) var natChains: [NatChain] = []
    /// Each `include "PATH"` with its line and the table block it sits in.
    private(set) var includes: [(String, Int, Table?)] = []

    /// A table block: `table FAMILY NAME { … }`.
    struct Table {
        var family: String
        var name: String
    }

    static let families: Set<String> = ["ip", "ip6", "inet", "arp", "bridge", "netdev"]

    private enum Block {
        case table(family: String, name: String)
        case chain(family: String, table: String, name: String, line: Int)
        case other
    }

    /// - Parameter table: the table block an `include` of this text sits in,
    ///   so `chain` blocks of an included file belong to it.
    init(text: String, source: String, table: Table? = nil) {
        let tokens = Self.tokens(text)
        var stack: [Block] = table.map { [.table(family: $0.family, name: $0.name)] } ?? []
        var index = 0
        var reported: Set<String> = []
        func word(_ offset: Int) -> String? { index + offset < tokens.count ? tokens[index + offset].text : nil }
        /// `[FAMILY] NAME` at `offset`: the family, the name and the tokens used.
        func familyAndName(_ offset: Int) -> (String, String, Int)? {
            guard let first = word(offset) else { return nil }
            if Self.families.contains(first), let name = word(offset + 1), name != "{" { return (first, name, 2) }
            return first == "{" ? nil : ("ip", first, 1)
        }
        while index < tokens.count {
            let token = tokens[index]
            switch token.text {
            case "include":
                if let path = word(1), tokens[index + 1].quoted {
                    let enclosing = stack.reversed().lazy.compactMap { block -> Table? in
                        if case .table(let family, let name) = block { return Table(family: family, name: name) }
                        return nil
                    }.first
                    includes.append((path, token.line, enclosing))
                    index += 2
                    continue
                }
            case "table" where stack.isEmpty || isCommand(tokens, before: index):
                if let (family, name, used) = familyAndName(1), word(1 + used) == "{" {
                    stack.append(.table(family: family, name: name))
                    index += used + 2
                    continue
                }
            case "chain":
                if case .table(let family, let table)? = stack.last, let name = word(1), word(2) == "{" {
                    stack.append(.chain(family: family, table: table, name: name, line: token.line))
                    index += 3
                    continue
                }
                if stack.isEmpty, let (family, table, used) = familyAndName(1), let name = word(1 + used), word(2 + used) == "{" {
                    stack.append(.chain(family: family, table: table, name: name, line: token.line))
                    index += used + 3
                    continue
                }
            case "type":
                if case .chain(let family, let table, let name, let line)? = stack.last, word(1) == "nat",
                    reported.insert("\(family) \(table) \(name)").inserted
                {
                    let chain = [family, table, name].map(NatChain.quotedIfNeeded).joined(separator: " ")
                    natChains.append(
                        NatChain(
                            location: RuleLocation(source: source, format: .nftText, family: family, table: table, chain: name, line: line),
                            rules: nil,
                            removal: "remove chain \(NatChain.quotedIfNeeded(name)) (line \(line)) from \(source), then check it with "
                                + "`nft -c -f \(NatChains.nftablesConf.string)`; on the running system: nft delete chain \(chain)"))
                }
            case "{":
                stack.append(.other)
            case "}":
                _ = stack.popLast()
            default:
                break
            }
            index += 1
        }
    }

    /// Whether `tokens[index]` follows `add`/`create` at the start of a command.
    private func isCommand(_ tokens: [Token], before index: Int) -> Bool {
        index > 0 && ["add", "create"].contains(tokens[index - 1].text)
    }

    struct Token {
        var text: String
        var line: Int
        var quoted: Bool
    }

    /// Words, quoted strings, `{`, `}` and `;` with their lines; comments
    /// (`#` to the end of the line) dropped.
    static func tokens(_ text: String) -> [Token] {
        var tokens: [Token] = []
        var line = 1
        var word = ""
        var wordLine = 1
        var iterator = text.unicodeScalars.makeIterator()
        func flush() {
            if !word.isEmpty { tokens.append(Token(text: word, line: wordLine, quoted: false)) }
            word = ""
        }
        while let scalar = iterator.next() {
            switch scalar {
            case "\n":
                flush()
                line += 1
            case "#":
                flush()
                while let next = iterator.next(), next != "\n" {}
                line += 1
            case "\"":
                flush()
                var quoted = ""
                let start = line
                while let next = iterator.next(), next != "\"" {
                    if next == "\n" { line += 1 }
                    quoted.unicodeScalars.append(next)
                }
                tokens.append(Token(text: quoted, line: start, quoted: true))
            case "{", "}", ";":
                flush()
                tokens.append(Token(text: String(scalar), line: line, quoted: false))
            case _ where scalar.properties.isWhitespace:
                flush()
            default:
                if word.isEmpty { wordLine = line }
                word.unicodeScalars.append(scalar)
            }
        }
        flush()
        return tokens
    }
}
