import Foundation
import TestSupport

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The kernel-oracle corpus: `Fixtures/oracle/manifest.json` and the ruleset files beside it.
struct OracleCorpus: Decodable {
    struct Load: Decodable {
        /// nft, nft-json (`nft -j -f`), iptables-nft-restore, ip6tables-nft-restore, iptables-legacy-restore or ip6tables-legacy-restore.
        var tool: String
        /// Relative to the corpus directory.
        var file: String
    }

    struct Case: Decodable {
        var name: String
        /// tool, handwritten or nftables-tests.
        var source: String
        /// Where the ruleset comes from: the command that made it, the page it follows, or tag and path.
        var origin: String
        var loads: [Load]
        /// Why cttune may say "needed" while the kernel tracks nothing for the test traffic.
        var conservative: String?
        /// Interfaces the ruleset names by index (`iif`, `oif`) that the router
        /// must have before it loads (made as empty bridges, as `cttune rules` does).
        var interfaces: [String]?
    }

    var cases: [Case]

    static let directory = TestPaths.fixtures.appendingPathComponent("oracle")

    static func load() throws -> OracleCorpus {
        let data = try Data(contentsOf: directory.appendingPathComponent("manifest.json"))
        return try JSONDecoder().decode(OracleCorpus.self, from: data)
    }

    /// The command that lists what a load tool put into the kernel, as cttune reads it.
    static func saveCommand(for loadTool: String) -> [String]? {
        switch loadTool {
        case "nft", "nft-json": ["nft", "-j", "list", "ruleset"]
        case "iptables-nft-restore": ["iptables-nft-save"]
        case "ip6tables-nft-restore": ["ip6tables-nft-save"]
        case "iptables-legacy-restore": ["iptables-legacy-save"]
        case "ip6tables-legacy-restore": ["ip6tables-legacy-save"]
        default: nil
        }
    }
}

/// What the kernel and cttune said about one ruleset.
struct OracleOutcome {
    enum Agreement: String {
        case agree = "agree"
        /// cttune says needed, the kernel tracked nothing; the manifest gives a reason.
        case conservative = "conservative"
        /// As above, without a reason in the manifest.
        case conservativeUnexplained = "conservative, NO REASON"
        /// cttune says not needed, the kernel tracked: a host would lose its firewall or NAT.
        case unsafe = "UNSAFE"
        case error = "ERROR"
    }

    var testCase: OracleCorpus.Case
    /// The library on the saved listings (`nft -j list ruleset`, iptables-save).
    var saved: String = "-"
    /// `cttune rules --format json` run in the namespace (live reading).
    var live: String = "-"
    var counts: [String: Int] = [:]
    var probes = 0
    var answered = 0
    var errors: [String] = []

    var tracked: Int { counts.values.reduce(0, +) }

    static func saysNotNeeded(_ verdict: String) -> Bool { verdict == "not needed" || verdict == "not-needed" }

    /// Each reading compared with the kernel; the worst one decides.
    var agreement: Agreement {
        if !errors.isEmpty { return .error }
        let readings = [saved, live]
        if tracked > 0 { return readings.contains(where: Self.saysNotNeeded) ? .unsafe : .agree }
        if readings.allSatisfy(Self.saysNotNeeded) { return .agree }
        return testCase.conservative == nil ? .conservativeUnexplained : .conservative
    }
}

/// A client, a router and a server namespace joined by two veth pairs, the
/// router forwarding between them; the ruleset under test is loaded into the
/// router only.
///
///     client eth0 10.0.1.2 fd00:1::2 -- eth1 router eth0 -- eth0 server 10.0.2.2 fd00:2::2
///                                 10.0.1.1 fd00:1::1   10.0.2.1 fd00:2::1
///
/// The router's interfaces are called eth0 (outside) and eth1 (inside), the
/// names the rulesets use.
final class OracleLab {
    let client: String, router: String, server: String

    init(index: Int) throws {
        let prefix = "cttune-or-\(getpid())-\(index)"
        (client, router, server) = (prefix + "-c", prefix + "-r", prefix + "-s")
        do {
            try wire()
        } catch {
            delete()  // a half-built lab is not left behind
            throw error
        }
    }

    /// Creates the three namespaces and joins them through the router.
    private func wire() throws {
        try Tool.check(["ip", "-batch", "-"], input: [client, router, server].map { "netns add \($0)\n" }.joined())
        try Tool.check(
            ["ip", "-n", router, "-batch", "-"],
            input: """
                link set lo up
                link add eth1 type veth peer name eth0 netns \(client)
                link add eth0 type veth peer name eth0 netns \(server)
                addr add 10.0.1.1/24 dev eth1
                addr add fd00:1::1/64 dev eth1 nodad
                addr add 10.0.2.1/24 dev eth0
                addr add fd00:2::1/64 dev eth0 nodad
                link set eth1 up
                link set eth0 up

                """)
        for (namespace, net) in [(client, 1), (server, 2)] {
            try Tool.check(
                ["ip", "-n", namespace, "-batch", "-"],
                input: """
                    link set lo up
                    addr add 10.0.\(net).2/24 dev eth0
                    addr add fd00:\(net)::2/64 dev eth0 nodad
                    link set eth0 up
                    route add default via 10.0.\(net).1
                    route add default via fd00:\(net)::1

                    """)
        }
        try Tool.check(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
    }

    func delete() {
        // -force: go on past a namespace that was never made.
        _ = try? Tool.run(["ip", "-force", "-batch", "-"], input: [client, router, server].map { "netns delete \($0)\n" }.joined())
    }

    func inRouter(_ arguments: [String], input: String? = nil) throws -> Shell.Result {
        try Tool.run(["ip", "netns", "exec", router] + arguments, input: input)
    }

    /// Loads, reads back, analyses, sends traffic and counts for one ruleset.
    static func run(_ testCase: OracleCorpus.Case, index: Int) -> OracleOutcome {
        var outcome = OracleOutcome(testCase: testCase)
        do {
            let lab = try OracleLab(index: index)
            defer { lab.delete() }
            try lab.load(testCase)
            outcome.saved = lab.savedVerdict(testCase, errors: &outcome.errors)
            outcome.live = lab.liveVerdict(errors: &outcome.errors)
            try lab.sendTraffic(into: &outcome)
        } catch {
            outcome.errors.append("\(error)")
        }
        return outcome
    }

    func load(_ testCase: OracleCorpus.Case) throws {
        for name in testCase.interfaces ?? [] {
            let added = try inRouter(["ip", "link", "add", name, "type", "bridge"])
            guard added.status == 0 else { throw Shell.Failure(command: "ip link add \(name) type bridge", result: added) }
        }
        for load in testCase.loads {
            let path = OracleCorpus.directory.appendingPathComponent(load.file).path
            let arguments =
                switch load.tool {
                case "nft": ["nft", "-f", path]
                case "nft-json": ["nft", "-j", "-f", path]
                default: [load.tool, path]
                }
            let result = try inRouter(arguments)
            guard result.status == 0 else {
                throw Shell.Failure(command: "ip netns exec ROUTER " + arguments.joined(separator: " "), result: result)
            }
        }
    }

    /// The library's verdict on what the save tools print in the router: the
    /// way `cttune rules --ruleset FILE` reads a saved copy.
    func savedVerdict(_ testCase: OracleCorpus.Case, errors: inout [String]) -> String {
        var commands: [[String]] = []
        for load in testCase.loads {
            if let command = OracleCorpus.saveCommand(for: load.tool), !commands.contains(command) { commands.append(command) }
        }
        var anyNeeded = false, anyPartiallyAvoidable = false
        for command in commands {
            let source = command.joined(separator: " ")
            do {
                let listed = try inRouter(command)
                guard listed.status == 0 else { throw Shell.Failure(command: source, result: listed) }
                // The same text through `cttune rules --ruleset -` first: an
                // analyser that crashes then fails this ruleset, not the test process.
                let guarded = try Tool.run([TestPaths.cttune, "rules", "--ruleset", "-", "--format", "json"], input: listed.stdout)
                guard guarded.status < 128 else {
                    errors.append(
                        "`cttune rules --ruleset -` crashed (signal \(guarded.status - 128)) on the output of `\(source)` in the router namespace; reproduce: load \(testCase.loads.map(\.file).joined(separator: ", ")) with nft -f in a fresh netns, then `nft -j list ruleset | cttune rules --ruleset -`"
                    )
                    return "crash"
                }
                let verdict = try RulesetAnalyzer().analyze(text: listed.stdout, source: source).verdict
                anyNeeded = anyNeeded || verdict == .needed
                anyPartiallyAvoidable = anyPartiallyAvoidable || verdict == .partiallyAvoidable
            } catch {
                errors.append("cttune's analyser rejected the output of `\(source)`: \(error)")
                return "error"
            }
        }
        if anyNeeded { return "needed" }
        return anyPartiallyAvoidable ? "partially-avoidable" : "not-needed"
    }

    /// `cttune rules --format json` inside the router: the live reading.
    func liveVerdict(errors: inout [String]) -> String {
        do {
            let result = try inRouter([TestPaths.cttune, "rules", "--format", "json"])
            let object = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any]
            if result.status >= 128 {
                errors.append("live `cttune rules` in the router namespace crashed (signal \(result.status - 128))")
                return "crash"
            }
            guard result.status == 0, let verdict = object?["verdict"] as? String else {
                let line = result.stderr.split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
                errors.append("live `cttune rules` in the router namespace failed: \(line)")
                return "error"
            }
            return verdict
        } catch {
            errors.append("live `cttune rules`: \(error)")
            return "error"
        }
    }

    func sendTraffic(into outcome: inout OracleOutcome) throws {
        let script = TestPaths.package.appendingPathComponent("scripts/oracle-traffic.py").path
        let output = try Tool.check(["python3", script, client, router, server])
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        outcome.counts = object?["counts"] as? [String: Int] ?? [:]
        outcome.probes = object?["probes"] as? Int ?? 0
        outcome.answered = object?["answered"] as? Int ?? 0
    }

    /// Runs every case, `width` at a time (each waits mostly on the tools it spawns).
    static func runAll(_ cases: [OracleCorpus.Case], width: Int) -> [OracleOutcome] {
        inParallel(cases.count, width: width) { run(cases[$0], index: $0) }
    }

    /// One line per ruleset, for the test log.
    static func summary(_ outcomes: [OracleOutcome]) -> String {
        let header = ["ruleset", "source", "saved verdict", "live verdict", "tracked c/r/s", "answered", "agreement"]
        let rows = outcomes.map { outcome in
            [
                outcome.testCase.name, outcome.testCase.source, outcome.saved, outcome.live,
                ["client", "router", "server"].map { String(outcome.counts[$0] ?? -1) }.joined(separator: "/"),
                "\(outcome.answered)/\(outcome.probes)", outcome.agreement.rawValue,
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n")
    }
}

/// `body(0)`, `body(1)`, … `body(count - 1)`, `width` at a time on threads of
/// their own (the labs wait mostly on the tools they spawn), in index order.
func inParallel<T>(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let results = ParallelResults<T>(count: count)
    let group = DispatchGroup()
    for _ in 0..<min(width, count) {
        group.enter()
        Thread.detachNewThread {
            while let index = results.take() { results.store(body(index), at: index) }
            group.leave()
        }
    }
    group.wait()
    return results.values.compactMap { $0 }
}

/// The next index to run and the results so far, shared by `inParallel`'s threads.
private final class ParallelResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private(set) var values: [T?]

    init(count: Int) { values = Array(repeating: nil, count: count) }

    func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < values.count else { return nil }
        next += 1
        return next - 1
    }

    func store(_ value: T, at index: Int) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }
}
