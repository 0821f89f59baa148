import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

@Suite("Profile validation")
struct ProfileValidationTests {
    static let bad = TestPaths.fixtures.appendingPathComponent("profiles/bad")
    static let good = TestPaths.fixtures.appendingPathComponent("profiles/good")

    /// Every malformed profile under Fixtures/profiles/bad, with the line and
    /// the part of the message that tells the user what is wrong and what is allowed.
    static let cases: [(file: String, expected: String)] = [
        (
            "unknown-top-key.yaml",
            "unknown-top-key.yaml:2: burst_facter: unknown key — allowed here: extends, description, load, burst_factor"
        ),
        (
            "unknown-tcp-key.yaml",
            "unknown-tcp-key.yaml:4: load.tcp.established: unknown key — allowed here: new_per_second, established_seconds"
        ),
        ("rate-not-number.yaml", "rate-not-number.yaml:3: load.tcp.new_per_second: must be a number, found \"lots\""),
        ("negative-rate.yaml", "negative-rate.yaml:3: load.tcp.new_per_second: must be between 0 and 5000000, found -5"),
        ("ratio-above-one.yaml", "ratio-above-one.yaml:3: load.tcp.orphan_ratio: must be between 0 and 1, found 1.5"),
        ("absurd-rate.yaml", "absurd-rate.yaml:3: load.tcp.new_per_second: must be between 0 and 5000000, found 1000000000000"),
        ("burst-below-one.yaml", "burst-below-one.yaml:1: burst_factor: must be between 1 and 100, found 0.5"),
        ("absurd-headroom.yaml", "absurd-headroom.yaml:1: headroom: must be between 1 and 10, found 50"),
        ("zero-budget.yaml", "zero-budget.yaml:1: memory_budget_percent: must be between 0.01 and 90, found 0"),
        ("fractional-chain.yaml", "fractional-chain.yaml:1: chain_length: must be a whole number, found \"2.5\""),
        (
            "unknown-timeout.yaml",
            "unknown-timeout.yaml:2: timeouts.nf_conntrack_tcp_timeout_time_weight: unknown timeout — allowed: nf_conntrack_tcp_timeout_established"
        ),
        ("zero-timeout.yaml", "zero-timeout.yaml:2: timeouts.nf_conntrack_tcp_timeout_time_wait: must be between 1 and 2000000, found 0"),
        (
            "floor-not-number.yaml",
            "floor-not-number.yaml:2: timeout_floors.nf_conntrack_tcp_timeout_established: must be a whole number, found \"ten minutes\""
        ),
        ("stateful-not-bool.yaml", "stateful-not-bool.yaml:1: stateful: must be true or false, found \"maybe\""),
        ("tcp-is-list.yaml", "tcp-is-list.yaml:2: load.tcp: must be a mapping of keys to values, found a list"),
        ("bad-indentation.yaml", "bad-indentation.yaml:4: not valid YAML: did not find expected key"),
        ("top-level-list.yaml", "top-level-list.yaml:1: (top level): must be a mapping of keys to values, found a list"),
        ("shares-above-one.yaml", "shares-above-one.yaml: load.tcp: orphan_ratio + half_open_ratio is 1.2, more than all flows"),
        ("missing-parent.yaml", "missing-parent.yaml: extends: no profile named \"no-such-parent\""),
        ("cycle-a.yaml", "cycle-a.yaml -> "),
        ("duplicate-key.yaml", "duplicate-key.yaml: key headroom appears twice — keep one"),
        (
            "quoted-number.yaml",
            "quoted-number.yaml:3: load.tcp.new_per_second: must be a number, found the quoted string \"100\" — remove the quotes"
        ),
        ("absurd-gc-latency.yaml", "absurd-gc-latency.yaml:1: gc_latency_seconds: must be between 0 and 600, found 9000"),
        ("zero-namespaces.yaml", "zero-namespaces.yaml:1: namespaces: must be between 1 and 100000, found 0"),
    ]

    @Test("a malformed profile is rejected with file, line, key path and what is allowed", arguments: cases)
    func rejects(file: String, expected: String) throws {
        let path = Self.bad.appendingPathComponent(file).path
        let error = #expect(throws: TunerError.self) { try ProfileCatalog(searchDirectories: []).load(path) }
        let message = error?.description ?? ""
        #expect(message.contains(expected), "message was: \(message)")
    }

    @Test("every fixture under profiles/bad has a case")
    func everyFixtureIsCovered() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.bad.path).filter { $0.hasSuffix(".yaml") }
        let covered = Set(Self.cases.map(\.file) + ["cycle-b.yaml"])
        #expect(Set(files) == covered)
    }

    @Test("a loop through extends names every file in it")
    func cycleNamesChain() throws {
        let error = #expect(throws: TunerError.self) {
            try ProfileCatalog(searchDirectories: []).load(Self.bad.appendingPathComponent("cycle-a.yaml").path)
        }
        guard case let .profileCycle(chain)? = error else {
            Issue.record("expected a cycle error, got \(String(describing: error))")
            return
        }
        #expect(chain.map { URL(fileURLWithPath: $0).lastPathComponent } == ["cycle-a.yaml", "cycle-b.yaml", "cycle-a.yaml"])
    }

    @Test("an unknown profile name lists where it looked")
    func unknownName() throws {
        let error = #expect(throws: TunerError.self) { try ProfileCatalog(searchDirectories: ["/nonexistent"]).load("no-such-profile") }
        #expect(error?.description.contains("/nonexistent") == true)
        #expect(error?.description.contains("built-in (database, ddos-edge, default") == true)
    }

    @Test("every built-in profile loads")
    func builtinsLoad() throws {
        #expect(
            ProfileCatalog.builtinNames == [
                "database", "ddos-edge", "default", "kubernetes-node", "nat-gateway", "stateless", "web-frontend",
            ])
        for name in ProfileCatalog.builtinNames {
            let profile = try ProfileCatalog(searchDirectories: []).load(name)
            #expect(profile.name == name)
            #expect(!profile.summary.isEmpty)
        }
    }

    @Test("the built-in profiles are the files in profiles/, byte for byte")
    func builtinsMatchSources() throws {
        for name in ProfileCatalog.builtinNames {
            let file = try String(contentsOf: TestPaths.profiles.appendingPathComponent("\(name).yaml"), encoding: .utf8)
            #expect(BuiltinProfiles.yamlByName[name]?.trimmingCharacters(in: .newlines) == file.trimmingCharacters(in: .newlines))
        }
    }
}

@Suite("Profile inheritance")
struct ProfileInheritanceTests {
    @Test("a child inherits every key it does not set, through two levels and a built-in parent")
    func grandchild() throws {
        let catalog = ProfileCatalog(searchDirectories: [])
        let profile = try catalog.load(ProfileValidationTests.good.appendingPathComponent("grandchild.yaml").path)
        let web = try catalog.load("web-frontend")
        #expect(profile.name == "grandchild")
        #expect(profile.headroom == 2)  // grandchild
        #expect(profile.tcp.newPerSecond == 100)  // child
        #expect(profile.pinnedTimeouts == [.tcpTimeoutTimeWait: 30])  // child
        #expect(profile.summary == "child of web-frontend")  // child
        #expect(profile.tcp.establishedSeconds == web.tcp.establishedSeconds)  // web-frontend
        #expect(profile.burstFactor == 3)  // web-frontend
        #expect(profile.memoryBudgetPercent == 5)  // default
        #expect(profile.timeoutFloors[.tcpTimeoutEstablished] == 600)  // default
        #expect(profile.timeoutFloors[.udpTimeout] == 5)  // grandchild overrides one floor
        #expect(profile.sources.count == 4)
        #expect(profile.sources.last == "built-in:default")
    }

    @Test("an empty profile is the schema defaults")
    func empty() throws {
        let profile = try ProfileCatalog(searchDirectories: []).load(ProfileValidationTests.good.appendingPathComponent("empty.yaml").path)
        var expected = LoadProfile(name: "empty")
        expected.sources = profile.sources
        #expect(profile == expected)
    }

    @Test("a name is found in the search path before the built-in profiles")
    func searchPathWins() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try "extends: default\nheadroom: 3\n".write(
            to: directory.appendingPathComponent("web-frontend.yaml"), atomically: true, encoding: .utf8)
        let profile = try ProfileCatalog(searchDirectories: [directory.path]).load("web-frontend")
        #expect(profile.headroom == 3)
        #expect(profile.tcp.newPerSecond == 200)  // from default, not the built-in web-frontend
    }

    @Test("CTTUNE_PROFILE_PATH directories come first, then /etc/cttune/profiles under the root")
    func standardSearchPath() throws {
        let catalog = ProfileCatalog.standard(root: SystemRoot(base: "/srv/image"), environment: ["CTTUNE_PROFILE_PATH": "/a:/b"])
        #expect(catalog.searchDirectories == ["/a", "/b", "/srv/image/etc/cttune/profiles"])
    }
}
