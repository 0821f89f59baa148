import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// Decides whether a firewall needs connection tracking, from the live
/// ruleset of the current network namespace or from a saved one.
///
/// Other commands (`unload`, `plan --profile stateless`) call
/// `analyzeLive()` to refuse removing conntrack under a stateful firewall.
public struct RulesetAnalyzer {
    /// Searched for nft, iptables-save, ip and friends.
    public var environment: [String: String]

    /// How long `--ruleset -` waits for the next byte on standard input.
    static let stdinTimeoutSeconds = 60

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    // MARK: live

    /// Reads what is loaded in this network namespace: `nft -j list ruleset`,
    /// `iptables-save` and `ip6tables-save`, plus the legacy tools when
    /// legacy tables are loaded next to iptables-nft ones.
    ///
    /// Tables that iptables-nft manages appear in both listings; they are
    /// analysed from iptables-save, whose text says what each match does
    /// (nft JSON shows only the compat extension's name) — but only when
    /// iptables-save really returned that table: a hand-written
    /// `table ip nat` with its own chain names is invisible to iptables-save
    /// and is analysed from nft.
    ///
    /// - Throws: `TunerError.rulesetToolMissing` when neither nft nor
    ///   iptables-save is installed, `.toolFailed` when one fails (not root).
    public func analyzeLive() throws -> RulesetReport {
        var report = RulesetReport(sources: [], findings: [], exemptions: [])
        var managedByIptablesNft: [String: TableContents] = [:]
        var legacyFamilies: Set<String> = []
        for (tool, family) in [("iptables-save", "ip"), ("ip6tables-save", "ip6")] {
            guard let saved = try readLive(tool) else { continue }
            let ruleset = try IptablesSaveRuleset(text: saved, source: tool, family: family)
            report.add(ruleset)
            if ruleset.writtenByIptablesNft {
                for (table, contents) in ruleset.contents { managedByIptablesNft["\(family) \(table)"] = contents }
            }
            // Legacy tables are invisible to nft and to iptables-nft-save.
            if !ruleset.writtenByLegacy && hasLegacyTables(family == "ip" ? KernelPaths.legacyIPv4Tables : KernelPaths.legacyIPv6Tables) {
                legacyFamilies.insert(family)
            }
        }
        for (tool, family) in [("iptables-legacy-save", "ip"), ("ip6tables-legacy-save", "ip6")] where legacyFamilies.contains(family) {
            guard let saved = try readLive(tool) else { continue }
            report.add(try IptablesSaveRuleset(text: saved, source: tool, family: family))
        }
        let nftReadable = ExternalTool.locate("nft", environment: environment) != nil
        if let listed = try readLive("nft", arguments: ["-j", "list", "ruleset"]) {
            let ruleset = try NftJSONRuleset(text: listed, source: "nft -j list ruleset", iptablesTables: managedByIptablesNft)
            let skipped = ruleset.tablesReadFromIptables
            let note =
                skipped.isEmpty
                ? nil
                : "tables managed by iptables-nft (\(skipped.joined(separator: ", "))) are analysed from iptables-save"
            report.insert(ruleset, note: note)
            // iptables-nft-save also prints a `*nat` for a hand-written nft
            // `table ip nat` it cannot show: that table's chains are listed
            // from nft already, each with its own delete command.
            let native = Set(ruleset.tables).subtracting(skipped)
            report.natChains.removeAll { chain in
                let table = "\(chain.location.family ?? "") nat"
                return chain.location.format == .iptablesSave && managedByIptablesNft[table] != nil && native.contains(table)
            }
        }
        if report.sources.isEmpty && !nftReadable {
            throw TunerError.rulesetToolMissing(tool: "nft", purpose: "read the live ruleset (neither nft nor iptables-save is installed)")
        }
        return report
    }

    /// Output of a tool, `nil` when it is not installed.
    private func readLive(_ name: String, arguments: [String] = []) throws -> String? {
        guard let tool = ExternalTool.locate(name, environment: environment) else { return nil }
        let output = try tool.run(arguments)
        guard output.succeeded else {
            let message = output.stderr.trimming(.whitespacesAndNewlines)
            let hint = getuid() == 0 ? "" : " — reading the firewall needs root (CAP_NET_ADMIN): run as root"
            throw TunerError.toolFailed(
                command: tool.commandLine(arguments), reason: (message.isEmpty ? "exit status \(output.status)" : message) + hint)
        }
        return output.stdout
    }

    /// Whether /proc/net/ip_tables_names (or the IPv6 one) lists a table.
    private func hasLegacyTables(_ path: FilePath) -> Bool {
        let text = (try? SystemRoot.live.contents(of: path)) ?? nil
        return !(text ?? "").trimming(.whitespacesAndNewlines).isEmpty
    }

    // MARK: saved

    /// Analyses a saved ruleset file, or stdin when `name` is `-`.
    public func analyze(file name: String) throws -> RulesetReport {
        if name == "-" {
            // A pipe is fine here; bounded, and a writer that stalls fails instead of hanging.
            switch FileIO.readStream(.standardInput, limit: ReadLimit.ruleset, timeoutSeconds: Self.stdinTimeoutSeconds) {
            case .success(let text): return try analyze(text: text, source: name)
            case .failure(let failure): throw FileIO.failure(failure, path: "standard input")
            }
        }
        let text: String
        switch FileIO.read(name, limit: ReadLimit.ruleset) {
        case .success(let read): text = read
        case .failure(.errno(.noSuchFileOrDirectory)):
            throw TunerError.invalidRuleset(
                location: name, problem: "no such file", fix: "give the path of a saved ruleset, or - to read stdin")
        case .failure(.errno(.isDirectory)):
            throw TunerError.invalidRuleset(
                location: name, problem: "is a directory", fix: "give the path of a saved ruleset file, or - to read stdin")
        case .failure(.errno(let errno)):
            throw TunerError.invalidRuleset(
                location: name, problem: "cannot be read: \(errnoText(errno))", fix: "run as root or copy it somewhere readable")
        case .failure(let failure):
            throw FileIO.failure(failure, path: name)
        }
        return try analyze(text: text, source: name, path: name)
    }

    /// Analyses a saved ruleset, detecting its format.
    ///
    /// - Parameters:
    ///   - text: the file's content.
    ///   - source: its name (`-` for stdin), used in locations and errors.
    ///   - path: the file, when there is one, so nft resolves `include`s
    ///     relative to it; stdin is fed through a pipe.
    /// - Throws: `TunerError.invalidRuleset` naming the line or element.
    public func analyze(text: String, source: String, path: String? = nil) throws -> RulesetReport {
        var report = RulesetReport(sources: [], findings: [], exemptions: [])
        switch try Self.detectFormat(text, source: source) {
        case .nftJSON:
            report.add(try NftJSONRuleset(text: text, source: source))
        case .iptablesSave:
            report.add(try IptablesSaveRuleset(text: text, source: source))
        case .nftText:
            let listed = try listNftText(text, source: source, path: path)
            report.add(try NftJSONRuleset(text: listed, source: source, format: .nftText))
        }
        return report
    }

    /// Tells nft JSON, iptables-save and nft text apart by their first
    /// significant line; the user never has to name the format.
    public static func detectFormat(_ text: String, source: String) throws -> RulesetFormat {
        var sawIptablesHeader = false
        // nft -j prints the whole ruleset on one line: look only at the start.
        if text.first(where: { !$0.isWhitespace }) == "{" { return .nftJSON }
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: isLineBreak).lazy.enumerated() {
            let line = rawLine.prefix(200).trimming(.whitespaces.union(ScalarSet(charactersIn: "\u{FEFF}\r")))
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                if line.contains("iptables-save") || line.contains("ip6tables-save") { sawIptablesHeader = true }
                continue
            }
            if line.hasPrefix("{") || line.hasPrefix("[") { return .nftJSON }
            if line.hasPrefix("*") || line.hasPrefix(":") || line.hasPrefix("-A ") || line == "COMMIT" || sawIptablesHeader {
                return .iptablesSave
            }
            let word = line.prefix { !$0.isWhitespace }
            if nftTextKeywords.contains(String(word)) { return .nftText }
            throw TunerError.invalidRuleset(
                location: "\(source):\(index + 1)",
                problem: "cannot tell the format from \"\(line.prefix(40))\"",
                fix: "give nft JSON (`nft -j list ruleset`), nft text (`nft list ruleset`) or iptables-save output")
        }
        throw TunerError.invalidRuleset(
            location: source, problem: sawIptablesHeader || !text.isEmpty ? "no rules or tables in the input" : "empty input",
            fix: "give a saved ruleset, or omit --ruleset to read the live one (an empty firewall is read live, not from a file)")
    }

    /// First words an nft script or `nft list ruleset` output starts with.
    static let nftTextKeywords: Set<String> = [
        "table", "flush", "add", "create", "define", "include", "delete", "destroy", "insert", "redefine", "undefine",
    ]

    // MARK: nft text

    /// Loads nft text into a private, empty network namespace with `nft -f`
    /// and reads it back with `nft -j list ruleset`, so nft itself parses
    /// it; the namespace is always deleted.
    ///
    /// - Throws: `TunerError.rulesetNeedsRoot` when not root,
    ///   `.invalidRuleset` with nft's own line:column message when nft rejects it.
    func listNftText(_ text: String, source: String, path: String?) throws -> String {
        guard getuid() == 0 else { throw TunerError.rulesetNeedsRoot(source: source) }
        guard let ip = ExternalTool.locate("ip", environment: environment) else {
            throw TunerError.rulesetToolMissing(tool: "ip", purpose: "create a private network namespace to load nft text")
        }
        guard ExternalTool.locate("nft", environment: environment) != nil else {
            throw TunerError.rulesetToolMissing(tool: "nft", purpose: "load nft text")
        }
        let namespace = "cttune-nft-text-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let created = try ip.run(["netns", "add", namespace])
        guard created.succeeded else {
            throw TunerError.toolFailed(
                command: ip.commandLine(["netns", "add", namespace]), reason: created.stderr.trimming(.whitespacesAndNewlines)
            )
        }
        defer { _ = try? ip.run(["netns", "delete", namespace]) }
        let file = path ?? "/dev/stdin"
        var loaded = try ip.run(["netns", "exec", namespace, "nft", "-f", file], input: path == nil ? text : nil)
        // A saved ruleset names the host's interfaces (`iif "virbr0"`, Docker's
        // bridges); the private namespace has none, and nft refuses `iif`/`oif`
        // on an interface that does not exist. Each missing one is made, as an
        // empty bridge, and the load tried again: the rules are judged as the
        // host has them, never dropped.
        var made: Set<String> = []
        while !loaded.succeeded, made.count < Self.largestInterfaceCount {
            let missing = Self.missingInterfaces(loaded.stderr, text: text).subtracting(made)
            guard !missing.isEmpty, missing.count + made.count <= Self.largestInterfaceCount else { break }
            for name in missing.sorted() {
                let added = try ip.run(["netns", "exec", namespace, "ip", "link", "add", name, "type", "bridge"])
                guard added.succeeded else {
                    throw TunerError.toolFailed(
                        command: ip.commandLine(["link", "add", name, "type", "bridge"]),
                        reason: added.stderr.trimming(.whitespacesAndNewlines))
                }
            }
            made.formUnion(missing)
            loaded = try ip.run(["netns", "exec", namespace, "nft", "-f", file], input: path == nil ? text : nil)
        }
        guard loaded.succeeded else {
            throw Self.nftLoadError(loaded.stderr, file: file, source: source)
        }
        let listed = try ip.run(["netns", "exec", namespace, "nft", "-j", "list", "ruleset"])
        guard listed.succeeded else {
            throw TunerError.toolFailed(
                command: "nft -j list ruleset", reason: listed.stderr.trimming(.whitespacesAndNewlines))
        }
        return listed.stdout
    }

    /// At most this many interfaces are made for one ruleset (a host with
    /// more named interfaces is not a firewall cttune is asked about).
    static let largestInterfaceCount = 256

    /// The interfaces nft reported missing ("Interface does not exist"), read
    /// from the text at each error's `LINE:FIRST-LAST` columns (bytes, from 1),
    /// unquoted; names the kernel could not take (over 15 bytes, `/`, blanks) are left out.
    static func missingInterfaces(_ stderr: String, text: String) -> Set<String> {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var names: Set<String> = []
        for error in stderr.split(separator: "\n") where error.hasSuffix("Error: Interface does not exist") {
            // FILE:LINE:FIRST-LAST: Error: …
            guard let marker = error.firstRange(of: ": Error: ") else { continue }
            let fields = error[..<marker.lowerBound].split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, let line = Int(fields[fields.count - 2]), line >= 1, line <= lines.count else { continue }
            let columns = fields[fields.count - 1].split(separator: "-").compactMap { Int($0) }
            guard let first = columns.first, first >= 1 else { continue }
            let bytes = Array(lines[line - 1].utf8)
            let last = Swift.min(columns.last ?? first, bytes.count)
            guard first <= last else { continue }
            let token = String(decoding: bytes[(first - 1)..<last], as: UTF8.self)
            let name = token.hasPrefix("\"") && token.hasSuffix("\"") && token.count >= 2 ? String(token.dropFirst().dropLast()) : token
            guard (1...15).contains(name.utf8.count), !name.contains("/"), !name.contains(where: \.isWhitespace), name != ".", name != ".."
            else { continue }
            names.insert(name)
        }
        return names
    }

    /// nft's first error, with its `FILE:LINE:COLUMN` location renamed to the source.
    static func nftLoadError(_ stderr: String, file: String, source: String) -> TunerError {
        let lines = stderr.split(separator: "\n").map(String.init)
        let first = lines.first { $0.contains("Error:") } ?? lines.first ?? "nft -f failed"
        guard let range = first.firstRange(of: ": Error: ") else {
            return TunerError.invalidRuleset(location: source, problem: first, fix: "fix the nft syntax (check it with `nft -c -f FILE`)")
        }
        var location = String(first[..<range.lowerBound])
        if location.hasPrefix(file) { location = source + location.dropFirst(file.count) }
        let context = lines.drop { $0 != first }.dropFirst().first.map { " in \"\($0.trimming(.whitespaces))\"" } ?? ""
        return TunerError.invalidRuleset(
            location: location, problem: String(first[range.upperBound...]) + context,
            fix: "fix the nft syntax (check it with `nft -c -f FILE`)")
    }
}

extension RulesetReport {
    mutating func add(_ ruleset: NftJSONRuleset, note: String? = nil) {
        sources.append(Source(name: ruleset.source, format: ruleset.format, rules: ruleset.ruleCount, note: note))
        findings += ruleset.findings
        exemptions += ruleset.exemptions
        natChains += ruleset.natChains
        natChainRules += ruleset.natChainRules
    }

    /// Puts nft first: it is the primary listing on current hosts.
    mutating func insert(_ ruleset: NftJSONRuleset, note: String?) {
        sources.insert(Source(name: ruleset.source, format: ruleset.format, rules: ruleset.ruleCount, note: note), at: 0)
        findings.insert(contentsOf: ruleset.findings, at: 0)
        exemptions.insert(contentsOf: ruleset.exemptions, at: 0)
        natChains.insert(contentsOf: ruleset.natChains, at: 0)
        natChainRules.insert(contentsOf: ruleset.natChainRules, at: 0)
    }

    mutating func add(_ ruleset: IptablesSaveRuleset) {
        sources.append(Source(name: ruleset.source, format: .iptablesSave, rules: ruleset.ruleCount, note: nil))
        findings += ruleset.findings
        exemptions += ruleset.exemptions
        natChains += ruleset.natChains
    }
}
