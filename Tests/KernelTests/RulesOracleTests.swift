import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The kernel is the oracle for `cttune rules`: each ruleset of the corpus
/// (Fixtures/oracle, made by real tools, hand-written in the nftables wiki's
/// and Debian's style, and the nftables project's own test dumps) is loaded
/// by the real tool into a router namespace, IPv4 and IPv6 TCP, UDP and ICMP
/// pass through it and to it, and `nf_conntrack_count` says whether the
/// kernel tracked. cttune's verdict, saved and live, must never be "not
/// needed" when it did.
@Suite("cttune rules agrees with the kernel on a corpus of real rulesets")
struct RulesOracleTests {
    static let sources = ["tool", "handwritten", "nftables-tests"]

    @Test("the corpus holds at least 40 rulesets, 5 from each source, and every file it names exists")
    func corpusIsComplete() throws {
        let corpus = try OracleCorpus.load()
        #expect(corpus.cases.count >= 40)
        for source in Self.sources {
            #expect(corpus.cases.filter { $0.source == source }.count >= 5, "source \(source)")
        }
        #expect(Set(corpus.cases.map(\.source)).isSubset(of: Set(Self.sources)))
        #expect(Set(corpus.cases.map(\.name)).count == corpus.cases.count, "ruleset names are unique")
        let named = Set(corpus.cases.flatMap { $0.loads.map(\.file) })
        for file in named {
            #expect(FileManager.default.fileExists(atPath: OracleCorpus.directory.appendingPathComponent(file).path), "\(file)")
        }
        for testCase in corpus.cases {
            #expect(
                !testCase.loads.isEmpty && testCase.loads.allSatisfy { OracleCorpus.saveCommand(for: $0.tool) != nil }, "\(testCase.name)")
        }
        // Every ruleset file in the corpus is in the manifest (the .S file is the Docker source text).
        let onDisk = try FileManager.default.subpathsOfDirectory(atPath: OracleCorpus.directory.path)
            .filter { $0.contains("/") && !$0.hasSuffix(".S") }
        #expect(Set(onDisk) == named)
    }

    @Test(
        "no ruleset is judged \"not needed\" while the kernel tracks, and each conservative verdict has a recorded reason",
        .enabled(
            if: TestHost.realKernel && TestHost.hasOracleTools, "needs root, network namespaces, nft, iptables (both backends) and python3")
    )
    func verdictsAgreeWithTheKernel() throws {
        let corpus = try OracleCorpus.load()
        let started = Date()
        // nf_conntrack_max bounds every namespace's table: holding the lock of
        // the tests that shrink it keeps a full table from hiding tracking.
        let outcomes = try GlobalConntrack.withExclusiveAccess { OracleLab.runAll(corpus.cases, width: 6) }
        print(OracleLab.summary(outcomes))
        print("\(outcomes.count) rulesets in \(Int(Date().timeIntervalSince(started))) s")
        #expect(outcomes.count == corpus.cases.count)
        for outcome in outcomes {
            let testCase = outcome.testCase
            let files = testCase.loads.map(\.file).joined(separator: ", ")
            switch outcome.agreement {
            case .agree, .conservative: break
            case .unsafe:
                let readings = [("saved listing (library)", outcome.saved), ("live `cttune rules`", outcome.live)]
                    .filter { OracleOutcome.saysNotNeeded($0.1) }.map(\.0)
                Issue.record(
                    "UNSAFE: \(testCase.name) (\(files)): the \(readings.joined(separator: " and ")) \(readings.count == 1 ? "says" : "say") not needed, but the kernel tracked \(outcome.tracked) connections through the router namespace (counts \(outcome.counts)). Source: \(testCase.origin)"
                )
            case .conservativeUnexplained:
                Issue.record(
                    "\(testCase.name) (\(files)): cttune says \(outcome.saved) (saved) / \(outcome.live) (live) but the kernel tracked nothing for traffic through and to the router: the analyser is more cautious than the kernel here. Fix the analyser, or, when the kernel is right only for this test's traffic (a path it does not exercise), record why in the case's `conservative` field of Fixtures/oracle/manifest.json. Source: \(testCase.origin)"
                )
            case .error:
                Issue.record("\(testCase.name) (\(files)): \(outcome.errors.joined(separator: "; "))")
            }
            #expect(outcome.answered > 0, "\(testCase.name): no probe was answered: the lab's wiring is broken")
            // The client and server hold no rules: an entry there means the count is not the router's alone.
            if !outcome.counts.isEmpty {
                #expect(outcome.counts["client"] == 0 && outcome.counts["server"] == 0, "\(testCase.name): \(outcome.counts)")
            }
        }
    }
}

extension TestHost {
    static let hasOracleTools = ["python3", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-legacy-restore"].allSatisfy {
        (try? Shell.run(["which", $0]).status) == 0
    }
}
