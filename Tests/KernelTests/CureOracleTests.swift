import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerWorkflows

/// The kernel is the oracle for the cures. For each (ruleset, class) pair —
/// every ruleset of the rules oracle's corpus with two classes each, and
/// rulesets where notrack must be refused — the ruleset is loaded into the
/// lab's router (the host), `cttune plan` judges notrack there on the live
/// ruleset, and the class's traffic runs both ways (requests and their
/// replies; from the peer for inbound and forwarded classes, from the host
/// for outbound ones) three times: as the ruleset has it, under cttune's
/// table with the class notracked, and under its table with a timeouts
/// policy. What each side receives — which namespace, from which address
/// and port, the reply and where it came from — must be the same whenever
/// the cure was judged safe; the refusals must each be needed somewhere.
@Suite("the cures against the kernel: a cure judged safe changes nothing any side receives")
struct CureOracleTests {
    /// A class of the oracle: its traffic and its cttune class.
    struct OracleClass: Sendable {
        var protocolName: String
        var port: UInt16
        var direction: FlowClass.Direction

        var name: String { "\(direction.rawValue) \(protocolName)/\(port)" }
        var profileClass: ProfileClass {
            ProfileClass(
                name: name,
                match: ClassMatch(direction: direction, protocolNumber: protocolName == "tcp" ? 6 : 17, ports: [port...port]),
                burstFactor: 1)
        }
        var yaml: String {
            let load = protocolName == "tcp" ? "{tcp: {new_per_second: 10, established_seconds: 5}}" : "{udp: {new_per_second: 10}}"
            return """
                  - name: \(name)
                    match: {direction: \(direction.rawValue), protocol: \(protocolName), ports: \(port)}
                    load: \(load)
                    cures: [notrack]
                """
        }
    }

    static let classes: [OracleClass] = [
        OracleClass(protocolName: "udp", port: 53, direction: .inbound),
        OracleClass(protocolName: "tcp", port: 5432, direction: .outbound),
        OracleClass(protocolName: "tcp", port: 80, direction: .forwarded),
        OracleClass(protocolName: "tcp", port: 8080, direction: .inbound),
        OracleClass(protocolName: "udp", port: 5353, direction: .outbound),
        OracleClass(protocolName: "tcp", port: 22, direction: .inbound),
        OracleClass(protocolName: "udp", port: 123, direction: .forwarded),
    ]

    /// Why a refusal exists, shown by a ruleset where the cure would break delivery.
    enum RefusalKind: String, CaseIterable {
        case establishedReplies = "replies accepted only as established"
        case masquerade = "a masqueraded class"
        case dnat = "a DNAT'd port"
        case connectionCount = "a ct count limit"
    }

    struct RefusalCase {
        var kind: RefusalKind
        var ruleset: String
        var oracleClass: OracleClass
    }

    static let refusalCases: [RefusalCase] = [
        RefusalCase(
            kind: .establishedReplies,
            ruleset: """
                table inet fw {
                    chain input {
                        type filter hook input priority filter; policy drop;
                        tcp dport 8080 accept
                        ct state established,related accept
                    }
                }
                """,
            oracleClass: OracleClass(protocolName: "tcp", port: 5432, direction: .outbound)),
        RefusalCase(
            kind: .masquerade,
            ruleset: """
                table ip nat {
                    chain postrouting {
                        type nat hook postrouting priority srcnat; policy accept;
                        oifname "eth0" masquerade
                    }
                }
                """,
            oracleClass: OracleClass(protocolName: "tcp", port: 80, direction: .forwarded)),
        RefusalCase(
            kind: .dnat,
            ruleset: """
                table ip nat {
                    chain prerouting {
                        type nat hook prerouting priority dstnat; policy accept;
                        udp dport 53 dnat to 10.0.2.2
                    }
                }
                """,
            oracleClass: OracleClass(protocolName: "udp", port: 53, direction: .inbound)),
        RefusalCase(
            kind: .connectionCount,
            ruleset: """
                table inet fw {
                    chain input {
                        type filter hook input priority filter; policy accept;
                        tcp dport 8080 ct count over 2 reject
                    }
                }
                """,
            oracleClass: OracleClass(protocolName: "tcp", port: 8080, direction: .inbound)),
    ]

    /// One pair's three runs and cttune's judgement.
    struct Outcome: Sendable {
        var ruleset: String
        var className: String
        var safe: Bool?
        var reason = ""
        var untreated = ""
        var notracked = ""
        var underPolicy = ""
        var refusal: RefusalKind?
        /// The router's entries for the class after the notracked run (0: the cure took effect).
        var notrackedEntries = 0
        /// The longest time left on the class's entries under the policy (`nil`: none tracked).
        var longestUnderPolicy: Int?
        var errors: [String] = []

        var notrackChanges: Bool { notracked != untreated }
        var timeoutsChange: Bool { underPolicy != untreated }
        /// A cure judged safe that changed what a side received.
        var unsafe: Bool { safe == true && notrackChanges }
    }

    @Test(
        "over the corpus and the refusal rulesets: no safe cure changes delivery; each refusal is needed",
        .enabled(if: TestHost.realKernel && TestHost.hasOracleTools, "needs root, network namespaces, nft, iptables and python3"),
        .timeLimit(.minutes(20)))
    func curesAgreeWithTheKernel() throws {
        let corpus = try OracleCorpus.load()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Two classes per corpus ruleset, in turn, so every class meets many rulesets.
        var pending: [(name: String, load: (OracleLab) throws -> Void, classes: [OracleClass], refusal: RefusalKind?)] = []
        for (index, testCase) in corpus.cases.enumerated() {
            let pair = [Self.classes[index % Self.classes.count], Self.classes[(index + 3) % Self.classes.count]]
            pending.append((testCase.name, { try $0.load(testCase) }, pair, nil))
        }
        for refusal in Self.refusalCases {
            pending.append(
                (
                    refusal.kind.rawValue,
                    { lab in
                        let loaded = try lab.inRouter(["nft", "-f", "-"], input: refusal.ruleset)
                        guard loaded.status == 0 else { throw Shell.Failure(command: "nft -f", result: loaded) }
                    }, [refusal.oracleClass], refusal.kind
                ))
        }
        let jobs = pending
        let started = Date()
        // Under the global lock: a ctnetlink dump (`conntrack -L`, read here
        // after each run) evicts the expired entries it walks past in every
        // namespace, which would hide the GC phase another test measures.
        let outcomes = try GlobalConntrack.withExclusiveAccess {
            inParallel(jobs.count, width: 3) { index in
                Self.run(
                    jobs[index].name, load: jobs[index].load, classes: jobs[index].classes, refusal: jobs[index].refusal,
                    index: index, directory: directory)
            }.flatMap { $0 }
        }
        print(Self.summary(outcomes))
        print("\(outcomes.count) pairs in \(Int(Date().timeIntervalSince(started))) s")

        #expect(outcomes.count >= 25)
        for outcome in outcomes {
            #expect(outcome.errors.isEmpty, "\(outcome.ruleset), \(outcome.className): \(outcome.errors)")
            #expect(outcome.safe != nil, "\(outcome.ruleset), \(outcome.className): no judgement")
            #expect(
                !outcome.unsafe,
                """
                \(outcome.ruleset), \(outcome.className): notrack judged safe (\(outcome.reason)) but delivery changed
                as the ruleset has it: \(outcome.untreated)
                notracked:             \(outcome.notracked)
                """)
            #expect(
                !outcome.timeoutsChange,
                """
                \(outcome.ruleset), \(outcome.className): the timeouts cure changed delivery
                as the ruleset has it: \(outcome.untreated)
                under the policy:      \(outcome.underPolicy)
                """)
        }
        // The cures took effect: notracked, the class has no entry in the
        // router; under the policy, no entry outlives it (60 s established, 10 s UDP).
        for outcome in outcomes {
            #expect(
                outcome.notrackedEntries == 0, "\(outcome.ruleset), \(outcome.className): \(outcome.notrackedEntries) entries notracked")
            let bound = outcome.className.contains("tcp") ? 60 : 10
            #expect(
                (outcome.longestUnderPolicy ?? 0) <= bound,
                "\(outcome.ruleset), \(outcome.className): \(outcome.longestUnderPolicy ?? 0) s left")
        }
        #expect(outcomes.filter { $0.longestUnderPolicy != nil }.count >= 25, "the policy was seen on the entries of most pairs")
        for kind in RefusalKind.allCases {
            let shown = outcomes.filter { $0.refusal == kind }
            #expect(shown.contains { $0.safe == false && $0.notrackChanges }, "\(kind.rawValue): refused and needed? \(shown)")
        }
        #expect(outcomes.contains { $0.safe == true && $0.untreated.contains("r0:") }, "some safe pair delivers traffic")
    }

    /// Runs each class's traffic three times, each in a fresh lab with the
    /// ruleset loaded (a connection limit or a set remembers earlier flows):
    /// as the ruleset has it, with cttune's table notracking the classes,
    /// and with its table giving them a timeouts policy. The classes of one
    /// ruleset share no packet, so one table holds both.
    static func run(
        _ name: String, load: (OracleLab) throws -> Void, classes: [OracleClass], refusal: RefusalKind?, index: Int, directory: URL
    ) -> [Outcome] {
        var outcomes = classes.map { Outcome(ruleset: name, className: $0.name, refusal: refusal) }
        func fail(_ message: String) -> [Outcome] {
            for position in outcomes.indices { outcomes[position].errors.append(message) }
            return outcomes
        }
        let declared = classes.map(\.profileClass)
        let notrack = declared.map { CureDecision(className: $0.name, applied: .notrack, options: [], policy: nil, reason: "") }
        let timeouts = zip(classes, declared).map { oracleClass, declared in
            CureDecision(
                className: declared.name, applied: .timeouts, options: [],
                policy: oracleClass.protocolName == "tcp"
                    ? CurePolicy(
                        protocolName: "tcp",
                        timeouts: Dictionary(uniqueKeysWithValues: CurePolicy.settings(for: .tcp).map { ($0, 5) }).merging(
                            [.tcpTimeoutEstablished: 60]) { $1 })
                    : CurePolicy(protocolName: "udp", timeouts: [.udpTimeout: 5, .udpTimeoutStream: 10]),
                reason: "")
        }
        let tables: [String?] = [
            nil, CureTable.ruleset(for: notrack, classes: declared), CureTable.ruleset(for: timeouts, classes: declared),
        ]
        for (variant, table) in tables.enumerated() {
            let lab: OracleLab
            do { lab = try OracleLab(index: 1000 + index * 3 + variant) } catch { return fail("lab: \(error)") }
            defer { lab.delete() }
            do { try load(lab) } catch { return fail("load: \(error)") }
            if variant == 0 {
                // cttune's own judgement, on the router's live ruleset.
                do {
                    let judged = try judge(lab, classes, profile: directory.appendingPathComponent("pair-\(index).yaml"))
                    for position in outcomes.indices { (outcomes[position].safe, outcomes[position].reason) = judged[position] }
                } catch {
                    return fail("cttune plan in the router: \(error)")
                }
            }
            do {
                if let table {
                    let loaded = try lab.inRouter(["nft", "-f", "-"], input: CureTable.replacement(with: table))
                    guard loaded.status == 0 else { throw Shell.Failure(command: "nft -f (cttune's table)", result: loaded) }
                }
                for (position, oracleClass) in classes.enumerated() {
                    let record = try traffic(lab, oracleClass, base: 40_000 + position * 100)
                    let tracked = try entries(lab, oracleClass)
                    switch variant {
                    case 0: outcomes[position].untreated = record
                    case 1: (outcomes[position].notracked, outcomes[position].notrackedEntries) = (record, tracked.count)
                    default: (outcomes[position].underPolicy, outcomes[position].longestUnderPolicy) = (record, tracked.longest)
                    }
                }
            } catch {
                return fail("traffic: \(error)")
            }
        }
        return outcomes
    }

    /// `cttune plan` in the router: for each class, whether notrack is safe and why.
    static func judge(_ lab: OracleLab, _ classes: [OracleClass], profile: URL) throws -> [(Bool?, String)] {
        try ("classes:\n" + classes.map(\.yaml).joined(separator: "\n") + "\n").write(to: profile, atomically: true, encoding: .utf8)
        let planned = try lab.inRouter(
            [TestPaths.cttune, "plan", "--profile", profile.path, "--memory", "4G", "--cpus", "2", "--format", "json"])
        let object = (try? JSONSerialization.jsonObject(with: Data(planned.stdout.utf8))) as? [String: Any]
        guard planned.status == 0, let cures = object?["cures"] as? [[String: Any]] else {
            throw Shell.Failure(command: "cttune plan", result: planned)
        }
        return classes.map { oracleClass in
            let cure = cures.first { $0["class"] as? String == oracleClass.name }
            let option = (cure?["options"] as? [[String: Any]])?.first { $0["cure"] as? String == "notrack" }
            return (option?["safe"] as? Bool, option?["reason"] as? String ?? "")
        }
    }

    /// The router's entries for the class (by the original destination
    /// port), and the longest time one has left.
    static func entries(_ lab: OracleLab, _ oracleClass: OracleClass) throws -> (count: Int, longest: Int?) {
        let listed = try lab.inRouter(
            ["conntrack", "-L", "-p", oracleClass.protocolName, "--orig-port-dst", String(oracleClass.port)])
        let lines = listed.stdout.split(separator: "\n").filter { $0.hasPrefix(oracleClass.protocolName) }
        // "udp      17 28 src=…": the third field is the seconds left.
        let seconds = lines.compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first.flatMap { Int($0) }
        }
        return (lines.count, seconds.max())
    }

    /// What each side received for the class's flows (scripts/cure-traffic.py).
    static func traffic(_ lab: OracleLab, _ oracleClass: OracleClass, base: Int) throws -> String {
        let script = TestPaths.package.appendingPathComponent("scripts/cure-traffic.py").path
        return try Tool.check([
            "python3", script, lab.client, lab.router, lab.server, oracleClass.protocolName, String(oracleClass.port),
            oracleClass.direction.rawValue, String(base),
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One line per pair, for the test log.
    static func summary(_ outcomes: [Outcome]) -> String {
        let header = ["ruleset", "class", "notrack", "delivered", "same notracked", "same under policy", "policy seen"]
        let rows = outcomes.map { outcome in
            [
                outcome.ruleset, outcome.className,
                outcome.safe.map { $0 ? "safe" : "refused" } ?? "?",
                outcome.untreated.components(separatedBy: "\"reply\": \"r").count - 1 > 0 ? "yes" : "no",
                outcome.notrackChanges ? "NO" : "yes", outcome.timeoutsChange ? "NO" : "yes",
                outcome.longestUnderPolicy.map { "\($0) s" } ?? "-",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n")
    }
}
