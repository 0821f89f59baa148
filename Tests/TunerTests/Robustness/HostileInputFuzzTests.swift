import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

extension SplitMix64 {
    /// One of `choices`, chosen by the seed's sequence (SplitMix64 is PlannerPropertyTests' generator).
    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(next() % UInt64(choices.count))] }
}

/// One generated hostile case: how to spoil the scene and which command to run.
struct HostileCase: CustomStringConvertible {
    var seed: UInt64
    var kind: String
    var arguments: [String]
    var stdin: String?
    var prepare: (BadInputScene) throws -> Void
    /// Whether the command may change the tree (a successful apply or rollback).
    var mayChangeTree: Bool

    var description: String { "seed \(seed) [\(kind)] cttune \(arguments.joined(separator: " "))" }

    /// Exit codes the contract allows for the command.
    var allowedExitCodes: Set<Int32> { [0, 1, 2, 64] }
}

/// Generators for the classes of hostile input in docs/robustness.md.
enum HostileInputs {
    static let hugeNumbers = [
        "9223372036854775807", "9223372036854775808", "4611686018427387904", "-1", "-120", "0", "1e400", "nan", "-0", "+5",
        "99999999999999999999999", "0x10", "1_000", " 7 ", "",
    ]
    static let junkLines = ["abc\n", "\n\n", "12\nkey: x\n", "\u{1B}[31mred\u{1B}[0m\n", "\0\0\0", "multi\nline\nvalue\n", "é\u{2028}x\n"]

    static func number(_ generator: inout SplitMix64) -> String { generator.pick(hugeNumbers) }

    /// A profile line or document from the hostile classes.
    static func profile(_ generator: inout SplitMix64) -> String {
        let key = generator.pick([
            "load:\n  tcp:\n    new_per_second", "load:\n  tcp:\n    established_seconds", "burst_factor", "headroom",
            "memory_budget_percent", "chain_length", "gc_latency_seconds", "timeouts:\n  nf_conntrack_tcp_timeout_time_wait",
            "timeout_floors:\n  nf_conntrack_udp_timeout",
            "classes:\n  - match: {protocol: udp}\n    load:\n      udp:\n        new_per_second",
            "classes:\n  - match: {protocol: tcp, ports: [80]}\n    burst_factor", "classes:\n  - match:\n      ports",
            "classes:\n  - match: {protocol: udp}\n    cure", "classes:\n  - match: {protocol: icmp}\n    match",
        ])
        switch generator.next() % 12 {
        case 0: return "\(key): \(number(&generator))\n"
        case 1:  // an alias bomb, at a random depth
            var text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
            let depth = Int(generator.next() % 8) + 1
            for level in 1...depth {
                text +=
                    "l\(level): &l\(level) [" + Array(repeating: "*\(level == 1 ? "a" : "l\(level - 1)")", count: 9).joined(separator: ",")
                    + "]\n"
            }
            return text
        case 2: return "? [a, b]\n: 1\n"
        case 3: return "? {a: 1}\n: 2\n"
        case 4: return "\"bad\\nkey\": 1\n"
        case 5: return "description: \"line1\\nline2\\u0007\"\n"
        case 6: return "description: x\u{01}y\n"
        case 7: return "extends: \(generator.pick(["self", "../outside/loop", "no such", "default\nx", "/dev/zero"]))\n"
        case 8: return String(repeating: "- ", count: Int(generator.next() % 200) + 1) + "x\n"
        case 9: return "\(key): \(generator.pick(["[1, 2]", "{a: 1}", "\"5\"", "!!binary aGk=", "~", ".inf", ".nan", "-.inf"]))\n"
        case 10: return String(repeating: "k\(generator.next() % 1000): 1\n", count: 3)
        default:
            var bytes = Array("load:\n  tcp:\n    new_per_second: 2000\nheadroom: 1.25\n".utf8)
            for _ in 0..<Int(generator.next() % 4 + 1) {
                bytes[Int(generator.next() % UInt64(bytes.count))] = generator.pick(Array("\t\n:&*[]{}#'\"\\%@`|>-? \u{7F}".utf8))
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Kernel files of a host tree worth spoiling, with the kind of value each holds.
    static let treeFiles = [
        "proc/meminfo", "sys/devices/system/cpu/online", "proc/sys/net/netfilter/nf_conntrack_max",
        "proc/sys/net/netfilter/nf_conntrack_count", "proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait",
        "proc/sys/net/netfilter/nf_conntrack_buckets", "proc/sys/kernel/osrelease", "proc/slabinfo",
        "sys/kernel/slab/nf_conntrack/slab_size", "proc/modules",
    ]

    /// Content for one spoiled kernel file.
    static func treeContent(for file: String, _ generator: inout SplitMix64) -> String {
        switch file {
        case "proc/meminfo": return "MemTotal: \(number(&generator)) kB\n"
        case "sys/devices/system/cpu/online":
            return generator.pick(["0-9223372036854775807\n", "-1\n", "0-\n", ",\n", "3-1\n", "0,,1\n", "0-65536\n", "\n", "0-3\n\n5\n"])
        case "proc/slabinfo": return "nf_conntrack \(number(&generator)) 1 \(number(&generator)) 1 1\n"
        default: return generator.pick([number(&generator) + "\n", generator.pick(junkLines)])
        }
    }

    /// A way to spoil one path of the tree: content, or something that is not a regular file.
    static func spoil(_ file: String, _ generator: inout SplitMix64) -> (String, (BadInputScene) throws -> Void) {
        switch generator.next() % 8 {
        case 0:
            return (
                "fifo",
                { scene in
                    try clear(scene, file)
                    mkfifo(scene.treePath(file), 0o644)
                }
            )
        case 1: return ("dev-zero link", { scene in try relink(scene, file, to: "/dev/zero") })
        case 2: return ("system link", { scene in try relink(scene, file, to: "/" + file) })
        case 3:
            return (
                "outside link",
                { scene in
                    try scene.write("stolen", "9\n", inTree: false)
                    try relink(scene, file, to: scene.outsidePath("stolen"))
                }
            )
        case 4: return ("loop", { scene in try relink(scene, file, to: file.split(separator: "/").last.map(String.init) ?? "x") })
        case 5:
            return (
                "directory",
                { scene in
                    try clear(scene, file)
                    try FileManager.default.createDirectory(atPath: scene.treePath(file), withIntermediateDirectories: true)
                }
            )
        default:
            let content = treeContent(for: file, &generator)
            return ("content \(Echo.quoted(content, limit: 30))", { scene in try scene.write(file, content) })
        }
    }

    static func relink(_ scene: BadInputScene, _ file: String, to target: String) throws {
        try clear(scene, file)
        try FileManager.default.createSymbolicLink(atPath: scene.treePath(file), withDestinationPath: target)
    }

    /// Removes `file` from the tree if present and makes sure its directory exists.
    static func clear(_ scene: BadInputScene, _ file: String) throws {
        try? FileManager.default.removeItem(atPath: scene.treePath(file))
        try FileManager.default.createDirectory(
            atPath: (scene.treePath(file) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    }

    /// A whole directory of the tree replaced by a link (`proc -> /proc`, `etc/sysctl.d -> outside`).
    static func directoryLink(_ generator: inout SplitMix64) -> (String, (BadInputScene) throws -> Void) {
        let directory = generator.pick([
            "proc", "sys", "etc", "etc/sysctl.d", "run", "var/lib/cttune", "proc/sys/net/netfilter", "etc/cttune/profiles",
        ])
        let toSystem = generator.next() % 2 == 0
        return (
            "\(directory) -> \(toSystem ? "/" + directory : "outside")",
            { scene in
                try? FileManager.default.removeItem(atPath: scene.treePath(directory))
                if toSystem {
                    try relink(scene, directory, to: "/" + directory)
                } else {
                    try scene.linkOutside(directory, to: "elsewhere")
                }
            }
        )
    }

    /// A flag with a hostile value.
    static func flag(_ generator: inout SplitMix64) -> [String] {
        switch generator.next() % 6 {
        case 0: return ["--memory", generator.pick(["-1", "0", "1e30G", "nan", "8G\n", "99999999999T", "", "1.5.5G", "-8G"])]
        case 1: return ["--cpus", generator.pick(["-1", "0", "65537", "9223372036854775808", "1\n2", "two"])]
        case 2: return ["--lock-timeout", generator.pick(["nan", "inf", "-1", "1e400", "-nan", "0x10"])]
        case 3: return ["--profile", generator.pick(["../../etc/passwd", "a\nb", "", "/dev/zero", "/", "no-such", "x.yaml"])]
        case 4: return ["--format", generator.pick(["xml", "json\n", ""])]
        default: return ["--kernel", generator.pick(["../..", "", "a/b", "6.1\n"])]
        }
    }

    /// The case for one seed.
    static func make(seed: UInt64) -> HostileCase {
        var generator = SplitMix64(state: seed)
        let command = generator.pick(["plan", "plan", "apply", "apply", "rollback", "rules", "modules"])
        var arguments = [command]
        var prepares: [(BadInputScene) throws -> Void] = [{ try $0.copyHost("small-vm") }]
        var kinds: [String] = []
        var stdin: String?
        switch command {
        case "rules":
            arguments += ["--ruleset"]
            switch generator.next() % 4 {
            case 0:
                arguments += ["-"]
                stdin = generator.pick([
                    "{\"nftables\": [", "*filter\n:INPUT ACCEPT\n", "", "\u{0}\u{1}", String(repeating: "[", count: 5000),
                ])
                kinds.append("ruleset on stdin")
            case 1:
                arguments += ["{outside}/ruleset"]
                prepares.append { scene in
                    try FileManager.default.createDirectory(atPath: scene.outside.path, withIntermediateDirectories: true)
                    mkfifo(scene.outsidePath("ruleset"), 0o644)
                }
                kinds.append("ruleset FIFO")
            case 2:
                arguments += [generator.pick(["/dev/zero", "/proc/self/mem", "{outside}"])]
                kinds.append("ruleset device or directory")
            default:
                let text = generator.pick([
                    "{\"nftables\": [{\"rule\": {\"expr\": [{\"match\": {\"left\": 1}}]}}]}", "{\"nftables\": 5}", "{", "[]",
                    "*nat\nCOMMIT\n",
                    "*filter\n-A INPUT -m conntrack --ctstate NEW\n", "table inet x {\n",
                ])
                arguments += ["{outside}/ruleset"]
                prepares.append { try $0.write("ruleset", text, inTree: false) }
                kinds.append("ruleset text")
            }
        default:
            arguments += ["--root", "{tree}"]
            // Applies never point a link at the running system: a resolver
            // bug must fail this test, not change the host.
            let readOnly = command == "plan" || command == "modules"
            switch generator.next() % 5 {
            case 0:
                let text = profile(&generator)
                arguments += ["--profile", "{outside}/hostile.yaml"]
                prepares.append { try $0.write("hostile.yaml", text, inTree: false) }
                kinds.append("profile \(Echo.quoted(text, limit: 40))")
            case 1, 2:
                let file = generator.pick(treeFiles)
                var (what, spoilIt) = spoil(file, &generator)
                if !readOnly && (what == "system link" || what == "dev-zero link") {
                    (what, spoilIt) = (
                        "fifo",
                        { scene in
                            try clear(scene, file)
                            mkfifo(scene.treePath(file), 0o644)
                        }
                    )
                }
                prepares.append(spoilIt)
                kinds.append("\(file): \(what)")
            case 3:
                var (what, link) = directoryLink(&generator)
                if !readOnly && what.contains("-> /") { (what, link) = ("run -> outside", { try $0.linkOutside("run", to: "elsewhere") }) }
                prepares.append(link)
                kinds.append(what)
            default:
                arguments += flag(&generator)
                kinds.append("flag")
            }
            if command == "apply" && generator.next() % 2 == 0 { arguments += ["--format", "json"] }
            if command == "rollback" && generator.next() % 2 == 0 {
                let entry = "var/lib/cttune/journal/20260101T000000.000Z-\(generator.next() % 100).json"
                var (what, spoilIt) = spoil(entry, &generator)
                if what == "system link" || what == "dev-zero link" { (what, spoilIt) = ("content", { try $0.write(entry, "{\"id\": ") }) }
                prepares.append(spoilIt)
                kinds.append("journal entry: \(what)")
            }
        }
        let steps = prepares
        return HostileCase(
            seed: seed, kind: kinds.joined(separator: ", "), arguments: arguments, stdin: stdin,
            prepare: { scene in for step in steps { try step(scene) } }, mayChangeTree: command == "apply" || command == "rollback")
    }
}

@Suite("Hostile input, generated from a seed: no crash, no hang, one line, nothing touched outside")
struct HostileInputFuzzTests {
    /// `CTTUNE_FUZZ_SEED=N` replays the run from seed N; `CTTUNE_FUZZ_CASES` changes how many.
    static let firstSeed = UInt64(ProcessInfo.processInfo.environment["CTTUNE_FUZZ_SEED"] ?? "") ?? 20_261_130
    static let caseCount = Int(ProcessInfo.processInfo.environment["CTTUNE_FUZZ_CASES"] ?? "") ?? 200
    /// No case may take longer: a hang is killed here and fails.
    static let secondsPerCase = 15

    /// The binaries under test: the debug build, and the release build that
    /// `make test` made for the package (some checks differ between them).
    static var binaries: [String] {
        let release = TestPaths.package.appendingPathComponent(".build/release/cttune").path
        return [TestPaths.cttune] + (FileManager.default.isExecutableFile(atPath: release) ? [release] : [])
    }

    @Test(
        "every generated case exits with a contract code, prints at most one error line and leaves the outside untouched",
        .enabled(if: TestHost.isRoot, "FIFOs and trees owned by root"), .timeLimit(.minutes(20)))
    func generatedCases() throws {
        let seeds = (0..<UInt64(Self.caseCount)).map { Self.firstSeed &+ $0 }
        print(
            "hostile-input fuzz: seeds \(Self.firstSeed)...\(Self.firstSeed &+ UInt64(Self.caseCount) - 1) on \(Self.binaries.count) build(s); replay one with: CTTUNE_FUZZ_SEED=N CTTUNE_FUZZ_CASES=1 swift test --skip-build --filter HostileInputFuzzTests"
        )
        // Eight at a time: each case mostly waits for its process.
        let workers = 8
        for binary in Self.binaries {
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for seed in seeds.enumerated().filter({ $0.offset % workers == worker }).map(\.element) {
                    do {
                        try run(HostileInputs.make(seed: seed), binary: binary)
                    } catch {
                        Issue.record("seed \(seed): the scene could not be prepared: \(error)")
                    }
                }
            }
        }
    }

    func run(_ hostile: HostileCase, binary: String) throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try hostile.prepare(scene)
        let before = scene.snapshot()
        let expand = { (text: String) in
            text.replacingOccurrences(of: "{tree}", with: scene.tree.path).replacingOccurrences(of: "{outside}", with: scene.outside.path)
        }
        let label = "\(hostile) (\(binary))"
        let started = Date()
        let result = try Shell.run(
            ["timeout", "-s", "KILL", "\(Self.secondsPerCase)", binary] + hostile.arguments.map(expand), input: hostile.stdin ?? "")
        #expect(result.status != 137 && result.status != 124, "\(label): killed after \(Self.secondsPerCase) s (a hang)")
        #expect(Date().timeIntervalSince(started) < Double(Self.secondsPerCase), "\(label): too slow")
        #expect(hostile.allowedExitCodes.contains(result.status), "\(label): exit \(result.status), stderr: \(result.stderr)")
        for crash in ["Fatal error", "Stack dump", "Backtracing", "Segmentation fault", "Illegal instruction", "Current stack trace"] {
            #expect(!result.stderr.contains(crash), "\(label): crashed: \(result.stderr.prefix(500))")
        }
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        let errorLines = lines.filter { $0.hasPrefix("cttune: error: ") || $0.hasPrefix("Error: ") }
        // A plan that does not fit the budget exits 1 with the plan itself
        // on stdout (the contract's "does not fit"), not an error line.
        let planDoesNotFit = hostile.arguments.first == "plan" && result.status == 1 && result.stdout.contains("DOES NOT FIT")
        if (result.status == 1 && !planDoesNotFit) || result.status == 64 {
            #expect(errorLines.count == 1, "\(label): expected one error line, got: \(result.stderr)")
        }
        if errorLines.first?.hasPrefix("cttune: error: ") == true {
            #expect(lines.count == 1, "\(label): more than the error line on stderr: \(result.stderr)")
        }
        if hostile.arguments.contains("json") && !result.stdout.isEmpty {
            let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
            #expect(object is [String: Any], "\(label): stdout is not one JSON object: \(result.stdout.prefix(300))")
        }
        let after = scene.withoutNewLock(scene.snapshot(), before: before)
        let changed = Set(after.map { "\($0.key): \($0.value)" }).symmetricDifference(before.map { "\($0.key): \($0.value)" })
        let outsideChanged = changed.filter { $0.hasPrefix("outside/") }
        #expect(outsideChanged.isEmpty, "\(label): changed outside the root: \(outsideChanged.sorted())")
        // A refusal, or a command that only reads, leaves the tree as it was
        // (an empty lock file aside).
        // A partial apply without --allow-partial applies what it can and exits 1 (the contract).
        let partial = result.stderr.contains("not applied here:")
        if (result.status != 0 && result.status != 2 && !partial) || !hostile.mayChangeTree {
            #expect(changed.isEmpty, "\(label): files changed: \(changed.sorted().map { $0.prefix(200) })")
        }
    }
}
