import Foundation
import SystemPackage

/// Every failure cttune reports. Each message names what failed, where
/// (path, key, file and field) and what to do next; no raw errno numbers.
public enum TunerError: Error, Equatable, CustomStringConvertible {
    /// A path given to a `SystemRoot` would leave it through `..` or a link.
    case pathEscapesRoot(path: String, root: String)
    /// `--root` names nothing usable.
    case rootNotADirectory(root: String)
    /// A file exists but cannot be read.
    case unreadable(path: String, reason: String)
    /// A kernel or system file has unexpected content.
    case malformed(path: String, detail: String)
    /// A fact the planner cannot do without is missing.
    case missingFact(fact: String, path: String, fix: String)
    /// No profile of this name in the search path.
    case profileNotFound(name: String, searched: [String])
    /// A profile file breaks the schema; `field` is a dotted key path, `line` 1-based.
    case invalidProfile(file: String, line: Int?, field: String, problem: String)
    /// `extends:` loops back on itself.
    case profileCycle(chain: [String])
    /// A size such as `--memory 4G` that does not parse.
    case invalidSize(text: String)
    /// An external program (nft, iptables-save, ip) failed or could not start.
    case toolFailed(command: String, reason: String)
    /// A ruleset cannot be read; `location` is `FILE:LINE`, `FILE:LINE:COLUMN`
    /// or `FILE: nftables[N]`, so the user can find the bad line or element.
    case invalidRuleset(location: String, problem: String, fix: String)
    /// Reading the live ruleset or loading nft text needs a tool that is missing.
    case rulesetToolMissing(tool: String, purpose: String)
    /// Loading nft text needs a private network namespace, which needs root.
    case rulesetNeedsRoot(source: String)
    /// The stateless profile was asked for, but the firewall depends on connection state.
    case statelessRefused(ruleCount: Int)

    public var description: String {
        switch self {
        case let .pathEscapesRoot(path, root):
            return "\(path) leads outside the root \(root) — refusing to follow it; remove the link or pick another --root"
        case let .rootNotADirectory(root):
            return "--root \(root) is not a directory — give the directory that stands for / (for example an image tree)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason) — run as root, or point --root at a readable copy"
        case let .malformed(path, detail):
            return "unexpected content in \(path): \(detail)"
        case let .missingFact(fact, path, fix):
            return "cannot find \(fact) (\(path) is absent) — \(fix)"
        case let .profileNotFound(name, searched):
            return "no profile named \"\(name)\" (looked in: \(searched.joined(separator: ", "))) — run `cttune plan --profile PATH.yaml`, or pick one of the built-in profiles listed by `cttune plan --help`"
        case let .invalidProfile(file, line, field, problem):
            let location = line.map { "\(file):\($0)" } ?? file
            return field.isEmpty ? "\(location): \(problem)" : "\(location): \(field): \(problem)"
        case let .profileCycle(chain):
            return "profiles extend each other in a loop: \(chain.joined(separator: " -> ")) — remove one of these `extends:` lines"
        case let .invalidSize(text):
            return "\"\(text)\" is not a size — give bytes or a number with K, M, G or T (powers of 1024), for example 4G or 512MiB"
        case let .toolFailed(command, reason):
            return "`\(command)` failed: \(reason)"
        case let .invalidRuleset(location, problem, fix):
            return "\(location): \(problem) — \(fix)"
        case let .rulesetToolMissing(tool, purpose):
            return "\(tool) is not installed, and it is needed to \(purpose) — install it (Debian: apt-get install \(tool == "nft" ? "nftables" : tool == "ip" ? "iproute2" : "iptables"))"
        case let .rulesetNeedsRoot(source):
            return "\(source) is nft text: cttune loads it into a private network namespace to read it back as JSON, which needs root — run as root, or give the JSON of `nft -j list ruleset` instead"
        case let .statelessRefused(ruleCount):
            return "refusing the stateless profile: \(ruleCount) rule\(ruleCount == 1 ? "" : "s") of this firewall need connection tracking (listed above) — change or remove them first, or keep a stateful profile"
        }
    }
}

/// Text for an errno value, without the number: "permission denied".
func errnoText(_ code: Errno) -> String {
    String(cString: strerror(code.rawValue)).lowercased()
}
