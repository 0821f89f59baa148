import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// One bad input given to one command of the built binary, and what the
/// contract promises back. In `arguments` and `words`, `{tree}` stands for
/// the --root directory, `{outside}` for the directory beside it and
/// `{profiles}` for Tests/TunerTests/Fixtures/profiles/bad.
struct BadInput: Sendable, CustomTestStringConvertible {
    var command: String
    var input: String
    var arguments: [String]
    var prepare: SpoiledTree.Preparation = { _ in }
    var runner: BadInputRunner = .root
    var exitCode: Int32 = 1
    var words: [String]
    var output: RefusalOutput = .nothing
    /// Words the report printed before the refusal must hold (the per-setting reason).
    var reportWords: [String] = []

    var testDescription: String { "\(command): \(input)" }

    func expand(_ text: String, _ scene: BadInputScene) -> String {
        text.replacingOccurrences(of: "{tree}", with: scene.tree.path)
            .replacingOccurrences(of: "{outside}", with: scene.outside.path)
            .replacingOccurrences(of: "{profiles}", with: TestPaths.fixtures.appendingPathComponent("profiles/bad").path)
    }

    /// Prepares a scene, runs the case and checks every promise; `around`
    /// wraps the command (a network namespace) and `extraChecks` runs after it.
    func run(around wrap: ([String]) -> [String] = { $0 }) throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try prepare(scene)
        let before = scene.snapshot()
        let command = wrap(runner.command(arguments.map { expand($0, scene) }, scene: scene))
        let result = try Shell.run(command)
        RefusalChecks.check(
            result, exitCode: exitCode, words: words.map { expand($0, scene) }, output: output,
            reportWords: reportWords.map { expand($0, scene) }, label: testDescription)
        let after = scene.withoutNewLock(scene.snapshot(), before: before)
        #expect(
            after == before,
            "\(testDescription): files changed: \(Set(after.map { "\($0.key): \($0.value)" }).symmetricDifference(before.map { "\($0.key): \($0.value)" }).sorted())"
        )
    }
}

/// Ways to spoil a host tree, shared by the commands that read one.
enum SpoiledTree {
    typealias Preparation = @Sendable (BadInputScene) throws -> Void

    static let smallVM: Preparation = { try $0.copyHost("small-vm") }

    static let sysctlNotANumber: Preparation = { scene in
        try scene.copyHost("small-vm")
        try scene.write("proc/sys/net/netfilter/nf_conntrack_max", "abc\n")
    }

    static let timeoutUnreadable: Preparation = { scene in
        try scene.copyHost("small-vm")
        try scene.makeUnreadable("proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait")
    }

    /// The directories `BadInputRunner.privateState` mounts.
    static let privateState: Preparation = { scene in
        for name in ["run", "var-lib", "sysctl.d"] {
            try FileManager.default.createDirectory(atPath: scene.outsidePath(name), withIntermediateDirectories: true)
        }
    }

    /// `outside/pinned.yaml`: the default load with every timeout pinned to
    /// the kernel's boot value, so a plan changes only the global settings.
    static let pinnedProfile: Preparation = { scene in
        let pins = ConntrackSetting.timeouts.map { "  \($0.shortName): \($0.kernelDefaultSeconds!)" }
        try scene.write("pinned.yaml", (["extends: default", "timeouts:"] + pins).joined(separator: "\n") + "\n", inTree: false)
    }

    /// A tree whose hash size can change only through /sys/module (its
    /// nf_conntrack_buckets is 0444, as on older kernels), with nf_conntrack_max
    /// already at the pinned plan's value: the hash size is the one change left.
    static let hashsizeOnlyThroughSys: Preparation = { scene in
        try scene.copyHost("small-vm")
        try pinnedProfile(scene)
        try scene.write("proc/sys/net/netfilter/nf_conntrack_buckets", "1024\n")
        try scene.write("sys/module/nf_conntrack/parameters/hashsize", "1024\n")
        chmod(scene.treePath("proc/sys/net/netfilter/nf_conntrack_buckets"), 0o444)
        let plan = try Shell.check([
            TestPaths.cttune, "plan", "--root", scene.tree.path, "--profile", scene.outsidePath("pinned.yaml"),
            "--memory", "8G", "--format", "json",
        ])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(plan.utf8)) as? [String: Any])
        let settings = try #require(object["settings"] as? [[String: Any]])
        let max = try #require(settings.first { $0["key"] as? String == ConntrackSetting.max.key }?["planned"] as? Int)
        try scene.write("proc/sys/net/netfilter/nf_conntrack_max", "\(max)\n")
    }

    /// A journal entry made by a real apply of the tree.
    static let applied: Preparation = { scene in
        try scene.copyHost("small-vm")
        try Shell.check([TestPaths.cttune, "apply", "--memory", "1G", "--root", scene.tree.path])
    }
}

/// One case per class of hostile input (docs/robustness.md, "Hostile input");
/// `HostileInputFuzzTests` generates many more of each.
extension BadInput {
    static func spoiled(_ relative: String, _ content: String) -> SpoiledTree.Preparation {
        { scene in
            try scene.copyHost("small-vm")
            try scene.write(relative, content)
        }
    }

    static func replaced(_ relative: String, by make: @escaping @Sendable (String) throws -> Void) -> SpoiledTree.Preparation {
        { scene in
            try scene.copyHost("small-vm")
            try FileManager.default.removeItem(atPath: scene.treePath(relative))
            try make(scene.treePath(relative))
        }
    }

    static func profile(_ text: String) -> SpoiledTree.Preparation {
        { scene in
            try scene.copyHost("small-vm")
            try scene.write("hostile.yaml", text, inTree: false)
        }
    }

    static let hostileCases: [BadInput] = [
        // Blocking and unbounded reads
        BadInput(
            command: "plan", input: "/proc/meminfo is a FIFO", arguments: ["plan", "--root", "{tree}"],
            prepare: replaced("proc/meminfo") { mkfifo($0, 0o644) },
            words: ["{tree}/proc/meminfo is a named pipe (FIFO), not a regular file"]),
        BadInput(
            command: "apply", input: "a sysctl file is a FIFO", arguments: ["apply", "--root", "{tree}"],
            prepare: replaced("proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close") { mkfifo($0, 0o644) },
            words: ["nf_conntrack_tcp_timeout_close is a named pipe (FIFO)"]),
        BadInput(
            command: "plan", input: "the profile is a FIFO", arguments: ["plan", "--profile", "{outside}/fifo.yaml", "--root", "{tree}"],
            prepare: { scene in
                try scene.copyHost("small-vm")
                mkfifo(scene.outsidePath("fifo.yaml"), 0o644)
            },
            words: ["{outside}/fifo.yaml is a named pipe (FIFO)"]),
        BadInput(
            command: "plan", input: "the profile is /dev/zero", arguments: ["plan", "--profile", "/dev/zero", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["/dev/zero is a character device"]),
        BadInput(
            command: "rules", input: "--ruleset is a FIFO", arguments: ["rules", "--ruleset", "{outside}/ruleset"],
            prepare: { mkfifo($0.outsidePath("ruleset"), 0o644) }, words: ["{outside}/ruleset is a named pipe (FIFO)"]),
        BadInput(
            command: "rules", input: "--ruleset is /dev/zero", arguments: ["rules", "--ruleset", "/dev/zero"],
            words: ["/dev/zero is a character device"]),
        // Links out of --root
        BadInput(
            command: "plan", input: "/proc/meminfo linked to the running system's", arguments: ["plan", "--root", "{tree}"],
            prepare: replaced("proc/meminfo") {
                try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "/proc/meminfo")
            },
            words: ["cannot read {tree}/proc/meminfo", "symbolic link loop, or a link out of the root"]),
        BadInput(
            command: "apply", input: "/proc linked to the running system's", arguments: ["apply", "--root", "{tree}"],
            prepare: replaced("proc") { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "/proc") },
            words: ["{tree}/proc/", "symbolic link loop, or a link out of the root"]),
        // Impossible values
        BadInput(
            command: "plan", input: "MemTotal of 0 kB", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("proc/meminfo", "MemTotal: 0 kB\n"), words: ["{tree}/proc/meminfo", "MemTotal is 0 kB", "--memory SIZE"]),
        BadInput(
            command: "plan", input: "MemTotal of 2^53 kB", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("proc/meminfo", "MemTotal: 9007199254740992 kB\n"), words: ["MemTotal is 9007199254740992 kB"]),
        BadInput(
            command: "plan", input: "a CPU list 0-9223372036854775807", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("sys/devices/system/cpu/online", "0-9223372036854775807\n"),
            words: ["{tree}/sys/devices/system/cpu/online", "\"0-9223372036854775807\"", "--cpus N"]),
        BadInput(
            command: "plan", input: "a CPU list -1", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("sys/devices/system/cpu/online", "-1\n"), words: ["CPU list", "\"-1\""]),
        BadInput(
            command: "plan", input: "a CPU list 0-", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("sys/devices/system/cpu/online", "0-\n"), words: ["CPU list", "\"0-\""]),
        BadInput(
            command: "plan", input: "nf_conntrack_count 2^63-1", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("proc/sys/net/netfilter/nf_conntrack_count", "9223372036854775807\n"),
            words: ["nf_conntrack_count", "9223372036854775807 is outside 0...2147483647"]),
        BadInput(
            command: "apply", input: "a time_wait timeout of -120", arguments: ["apply", "--root", "{tree}"],
            prepare: spoiled("proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait", "-120\n"),
            words: ["nf_conntrack_tcp_timeout_time_wait", "-120 is outside 0...2147483647"]),
        BadInput(
            command: "plan", input: "a timeout of 2^62", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("proc/sys/net/netfilter/nf_conntrack_udp_timeout", "4611686018427387904\n"),
            words: ["nf_conntrack_udp_timeout", "is outside 0...2147483647"]),
        BadInput(
            command: "plan", input: "--memory -1", arguments: ["plan", "--memory", "-1", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--memory", "\"-1\" is not a size"]),
        BadInput(
            command: "apply", input: "--lock-timeout nan", arguments: ["apply", "--lock-timeout", "nan", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--lock-timeout must be between 0 and 86400 seconds, got nan"]),
        BadInput(
            command: "rollback", input: "a journal entry recording a negative sysctl value", arguments: ["rollback", "--root", "{tree}"],
            prepare: { scene in
                try SpoiledTree.applied(scene)
                let directory = scene.treePath("var/lib/cttune/journal")
                let entry = try #require(FileManager.default.contentsOfDirectory(atPath: directory).first)
                let text = try String(contentsOfFile: directory + "/" + entry, encoding: .utf8)
                let spoiled = text.replacingOccurrences(of: #""old" : \d+"#, with: #""old" : -5"#, options: .regularExpression)
                try spoiled.write(toFile: directory + "/" + entry, atomically: false, encoding: .utf8)
            },
            words: ["var/lib/cttune/journal/", "-> ", "outside 0...2147483647", "move it aside"]),
        // YAML
        BadInput(
            command: "plan", input: "an alias bomb in a mapping key",
            arguments: ["plan", "--profile", "{outside}/hostile.yaml", "--root", "{tree}"],
            prepare: profile(
                "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n? *c\n: 1\n"
            ),
            words: ["hostile.yaml:2", "YAML aliases (*name) are not allowed"]),
        BadInput(
            command: "plan", input: "a complex mapping key",
            arguments: ["plan", "--profile", "{outside}/hostile.yaml", "--root", "{tree}"],
            prepare: profile("? [a, b]\n: 1\n"), words: ["(a list used as a key): unknown key"]),
        // One line
        BadInput(
            command: "plan", input: "a key with a newline", arguments: ["plan", "--profile", "{outside}/hostile.yaml", "--root", "{tree}"],
            prepare: profile("\"bad\\nkey\": 1\n"), words: ["bad\\nkey: unknown key"]),
        BadInput(
            command: "plan", input: "a control character in a value",
            arguments: ["plan", "--profile", "{outside}/hostile.yaml", "--root", "{tree}"],
            prepare: profile("description: a\u{01}b\n"), words: ["hostile.yaml", "not valid YAML", "control characters are not allowed"]),
        BadInput(
            command: "plan", input: "--cpus with a newline", arguments: ["plan", "--cpus", "1\n2", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["1\\n2", "--cpus"]),
        BadInput(
            command: "plan", input: "a sysctl holding two lines", arguments: ["plan", "--root", "{tree}"],
            prepare: spoiled("proc/sys/net/netfilter/nf_conntrack_max", "12\nkey: x\n"),
            words: ["nf_conntrack_max", "expected an integer, found \"12\\nkey: x\""]),
    ]
}

/// Inputs checked against fixture trees only: no kernel value can change.
extension BadInput {
    static let treeCases: [BadInput] = [
        // plan
        BadInput(
            command: "plan", input: "--kernel that is a path", arguments: ["plan", "--kernel", "../../etc", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--kernel takes a kernel release", "\"../../etc\""]),
        BadInput(
            command: "plan", input: "--kernel with no module tree", arguments: ["plan", "--kernel", "9.9.9-none", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["{tree}/lib/modules/9.9.9-none", "--kernel"]),
        BadInput(
            command: "apply", input: "--on-conflict that is not a policy",
            arguments: ["apply", "--on-conflict", "maybe", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--on-conflict", "warn", "refuse", "override"]),
        BadInput(
            command: "plan", input: "unknown profile name", arguments: ["plan", "--profile", "no-such-profile", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM,
            words: ["no profile named \"no-such-profile\"", "{tree}/etc/cttune/profiles", "built-in", "--profile PATH.yaml"]),
        BadInput(
            command: "plan", input: "profile file that does not exist",
            arguments: ["plan", "--profile", "{outside}/absent.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["no profile file {outside}/absent.yaml", "check the path"]),
        BadInput(
            command: "plan", input: "malformed YAML",
            arguments: ["plan", "--profile", "{profiles}/bad-indentation.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["bad-indentation.yaml:4", "not valid YAML", "check the indentation"]),
        BadInput(
            command: "plan", input: "non-numeric profile value",
            arguments: ["plan", "--profile", "{profiles}/rate-not-number.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["rate-not-number.yaml:3", "load.tcp.new_per_second", "must be a number", "\"lots\""]),
        BadInput(
            command: "plan", input: "negative profile value",
            arguments: ["plan", "--profile", "{profiles}/negative-rate.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["negative-rate.yaml:3", "load.tcp.new_per_second", "must be between 0 and 5000000", "-5"]),
        BadInput(
            command: "plan", input: "ratio above one",
            arguments: ["plan", "--profile", "{profiles}/ratio-above-one.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["load.tcp.orphan_ratio", "must be between 0 and 1", "1.5"]),
        BadInput(
            command: "plan", input: "unknown profile key",
            arguments: ["plan", "--profile", "{profiles}/unknown-top-key.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["burst_facter: unknown key", "allowed here:", "burst_factor"]),
        BadInput(
            command: "plan", input: "--memory not a size", arguments: ["plan", "--memory", "lots", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--memory", "\"lots\" is not a size", "4G"]),
        BadInput(
            command: "plan", input: "--cpus out of range", arguments: ["plan", "--cpus", "0", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--cpus must be between 1 and 65536, got 0"]),
        BadInput(
            command: "plan", input: "--cpus not a number", arguments: ["plan", "--cpus", "two", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--cpus", "two"]),
        BadInput(
            command: "plan", input: "unknown --format", arguments: ["plan", "--format", "xml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--format", "xml"]),
        BadInput(
            command: "plan", input: "--root that does not exist", arguments: ["plan", "--root", "{outside}/missing"],
            words: ["--root {outside}/missing is not a directory"]),
        BadInput(
            command: "plan", input: "--root that is a file", arguments: ["plan", "--root", "{outside}/file"],
            prepare: { try $0.write("file", "x", inTree: false) }, words: ["--root {outside}/file is not a directory"]),
        BadInput(
            command: "plan", input: "unreadable /proc/meminfo", arguments: ["plan", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.makeUnreadable("proc/meminfo")
            },
            words: ["cannot read {tree}/proc/meminfo", "is a directory"]),
        BadInput(
            command: "plan", input: "/proc/meminfo without MemTotal", arguments: ["plan", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.write("proc/meminfo", "MemFree: 1 kB\n")
            },
            words: ["{tree}/proc/meminfo", "MemTotal", "copy it again"]),
        BadInput(
            command: "plan", input: "/proc/meminfo absent", arguments: ["plan", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("bare")
                try FileManager.default.removeItem(atPath: $0.treePath("proc/meminfo"))
            },
            words: ["the amount of RAM", "{tree}/proc/meminfo is absent", "--memory SIZE"]),
        BadInput(
            command: "plan", input: "CPU list that is not one", arguments: ["plan", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.write("sys/devices/system/cpu/online", "many\n")
            },
            words: ["{tree}/sys/devices/system/cpu/online", "CPU list", "\"many"]),
        BadInput(
            command: "plan", input: "non-numeric sysctl", arguments: ["plan", "--root", "{tree}"],
            prepare: SpoiledTree.sysctlNotANumber,
            words: ["{tree}/proc/sys/net/netfilter/nf_conntrack_max", "expected an integer", "\"abc\""]),
        BadInput(
            command: "plan", input: "a /proc file only root may read, run as nobody", arguments: ["plan", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                chmod($0.treePath("proc/sys/net/netfilter/nf_conntrack_udp_timeout"), 0o600)
            },
            runner: .nobody,
            words: ["cannot read {tree}/proc/sys/net/netfilter/nf_conntrack_udp_timeout", "permission denied", "run as root"]),

        // apply
        BadInput(
            command: "apply", input: "unknown profile name", arguments: ["apply", "--profile", "no-such-profile", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["no profile named \"no-such-profile\""]),
        BadInput(
            command: "apply", input: "malformed YAML",
            arguments: ["apply", "--profile", "{profiles}/bad-indentation.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["bad-indentation.yaml:4", "not valid YAML"]),
        BadInput(
            command: "apply", input: "out-of-range profile value",
            arguments: ["apply", "--profile", "{profiles}/absurd-rate.yaml", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["absurd-rate.yaml:3", "load.tcp.new_per_second", "must be between 0 and 5000000"]),
        BadInput(
            command: "apply", input: "--runtime-only with --persist-only",
            arguments: ["apply", "--runtime-only", "--persist-only", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--runtime-only and --persist-only exclude each other"]),
        BadInput(
            command: "apply", input: "negative --lock-timeout", arguments: ["apply", "--lock-timeout", "-1", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--lock-timeout"]),
        BadInput(
            command: "apply", input: "--root that does not exist", arguments: ["apply", "--root", "{outside}/missing"],
            words: ["--root {outside}/missing is not a directory"]),
        BadInput(
            command: "apply", input: "non-numeric sysctl", arguments: ["apply", "--root", "{tree}"],
            prepare: SpoiledTree.sysctlNotANumber, words: ["nf_conntrack_max", "expected an integer"]),
        BadInput(
            command: "apply", input: "unreadable timeout file", arguments: ["apply", "--root", "{tree}"],
            prepare: SpoiledTree.timeoutUnreadable,
            words: ["cannot read {tree}/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait", "is a directory"]),
        BadInput(
            command: "apply", input: "a plan beyond the memory budget",
            arguments: ["apply", "--profile", "web-frontend", "--memory", "16M", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["refusing to apply", "web-frontend", "cttune plan --explain"]),
        BadInput(
            command: "apply", input: "/etc/sysctl.d linked outside --root", arguments: ["apply", "--memory", "1G", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.linkOutside("etc/sysctl.d", to: "host-sysctl.d")
            },
            words: ["{tree}/etc/sysctl.d leads outside the root {tree}", "remove the link"]),
        BadInput(
            command: "apply", input: "/var/lib/cttune linked outside --root", arguments: ["apply", "--memory", "1G", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.linkOutside("var/lib/cttune", to: "host-var-lib-cttune")
            },
            words: ["{tree}/var/lib/cttune leads outside the root"]),
        BadInput(
            command: "apply", input: "/run linked outside --root", arguments: ["apply", "--memory", "1G", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.linkOutside("run", to: "host-run")
            },
            words: ["{tree}/run leads outside the root"]),
        BadInput(
            command: "apply", input: "run as nobody", arguments: ["apply", "--memory", "1G", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, runner: .nobody, words: ["cannot write {tree}/run", "permission denied", "run as root"]),
        BadInput(
            command: "apply", input: "read-only /sys where the hash size must go through /sys/module",
            arguments: [
                "apply", "--runtime-only", "--profile", "{outside}/pinned.yaml", "--memory", "8G", "--format", "json", "--root", "{tree}",
            ],
            prepare: SpoiledTree.hashsizeOnlyThroughSys, runner: .readOnlySys,
            words: ["not applied here: nf_conntrack.hashsize", "--allow-partial"], output: .jsonObject,
            reportWords: ["{tree}/sys/module/nf_conntrack/parameters/hashsize is on a read-only file system"]),

        // rollback
        BadInput(
            command: "rollback", input: "nothing recorded", arguments: ["rollback", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["nothing to roll back", "{tree}/var/lib/cttune/journal"]),
        BadInput(
            command: "rollback", input: "unknown journal ID", arguments: ["rollback", "20990101T000000.000Z-1", "--root", "{tree}"],
            prepare: SpoiledTree.applied, words: ["no journal entry 20990101T000000.000Z-1", "cttune rollback --list"]),
        BadInput(
            command: "rollback", input: "journal ID that is a path", arguments: ["rollback", "../../../outside/entry", "--root", "{tree}"],
            prepare: SpoiledTree.applied, words: ["no journal entry ../../../outside/entry"]),
        BadInput(
            command: "rollback", input: "corrupt journal entry", arguments: ["rollback", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.write("var/lib/cttune/journal/20260101T000000.000Z-1.json", "{\"id\": ")
            },
            words: ["{tree}/var/lib/cttune/journal/20260101T000000.000Z-1.json", "not a cttune journal entry", "move it aside"]),
        BadInput(
            command: "rollback", input: "journal entry naming a path outside --root", arguments: ["rollback", "--root", "{tree}"],
            prepare: { scene in
                try SpoiledTree.applied(scene)
                let directory = scene.treePath("var/lib/cttune/journal")
                let entry = try #require(FileManager.default.contentsOfDirectory(atPath: directory).first)
                let text = try String(contentsOfFile: directory + "/" + entry, encoding: .utf8)
                try text.replacingOccurrences(of: "/etc/sysctl.d/90-cttune.conf", with: "/../outside/stolen.conf")
                    .write(toFile: directory + "/" + entry, atomically: false, encoding: .utf8)
            },
            words: [
                "{tree}/var/lib/cttune/journal/", "\"/../outside/stolen.conf\"", "not an absolute path without . or .. components",
                "move it aside",
            ]),
        BadInput(
            command: "rollback", input: "/etc/sysctl.d replaced by a link outside --root after the apply",
            arguments: ["rollback", "--root", "{tree}"],
            prepare: { scene in
                try SpoiledTree.applied(scene)
                try FileManager.default.moveItem(atPath: scene.treePath("etc/sysctl.d"), toPath: scene.outsidePath("host-sysctl.d"))
                try scene.linkOutside("etc/sysctl.d", to: "host-sysctl.d")
            },
            words: ["{tree}/etc/sysctl.d leads outside the root {tree}"]),
        BadInput(
            command: "rollback", input: "--all with an ID", arguments: ["rollback", "--all", "x", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--all and --prune take no ID"]),
        BadInput(
            command: "rollback", input: "--prune without --keep", arguments: ["rollback", "--prune", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--prune needs --keep N"]),
        BadInput(
            command: "rollback", input: "--list of an entry that does not exist",
            arguments: ["rollback", "--list", "x", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 1, words: ["no journal entry x in {tree}/var/lib/cttune/journal"]),
        BadInput(
            command: "rollback", input: "a journal entry that is a FIFO", arguments: ["rollback", "--root", "{tree}"],
            prepare: { scene in
                try scene.copyHost("small-vm")
                try FileManager.default.createDirectory(atPath: scene.treePath("var/lib/cttune/journal"), withIntermediateDirectories: true)
                mkfifo(scene.treePath("var/lib/cttune/journal/20260101T000000.000Z-1.json"), 0o644)
            },
            words: ["{tree}/var/lib/cttune/journal/20260101T000000.000Z-1.json is a named pipe (FIFO)"]),
        BadInput(
            command: "rollback", input: "--root that does not exist", arguments: ["rollback", "--root", "{outside}/missing"],
            words: ["--root {outside}/missing is not a directory"]),
        BadInput(
            command: "rollback", input: "run as nobody", arguments: ["rollback", "--root", "{tree}"],
            prepare: SpoiledTree.applied, runner: .nobody,
            words: ["cannot write {tree}/run/cttune.lock", "permission denied", "run as root"]),

        // status: refused before it reads the kernel
        BadInput(
            command: "status", input: "--watch 0", arguments: ["status", "--watch", "0"], exitCode: 64,
            words: ["--watch must be between 0 and 86400"]),
        BadInput(
            command: "status", input: "--count without --watch", arguments: ["status", "--count", "2"], exitCode: 64,
            words: ["--count needs --watch"]),
        BadInput(
            command: "status", input: "--count 0", arguments: ["status", "--watch", "1", "--count", "0"], exitCode: 64,
            words: ["--count must be at least 1"]),
        BadInput(
            command: "status", input: "negative --window", arguments: ["status", "--window=-1"], exitCode: 64,
            words: ["--window must be between 0 and 3600"]),
        BadInput(
            command: "status", input: "--textfile with --watch", arguments: ["status", "--watch", "1", "--textfile", "{outside}/c.prom"],
            exitCode: 64, words: ["--textfile writes one snapshot"]),
        BadInput(
            command: "status", input: "--root, which status does not take (it reads this network namespace)",
            arguments: ["status", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--root"]),
        BadInput(
            command: "rules", input: "--root, which rules does not take", arguments: ["rules", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--root"]),
        BadInput(
            command: "status", input: "--watch not a number", arguments: ["status", "--watch", "often"], exitCode: 64,
            words: ["--watch", "often"]),

        // rules
        BadInput(
            command: "rules", input: "ruleset file that does not exist", arguments: ["rules", "--ruleset", "{outside}/absent.json"],
            words: ["{outside}/absent.json: no such file", "give the path of a saved ruleset"]),
        BadInput(
            command: "rules", input: "ruleset path that is a directory", arguments: ["rules", "--ruleset", "{outside}"],
            words: ["{outside}: is a directory", "saved ruleset file"]),
        BadInput(
            command: "rules", input: "truncated nft JSON", arguments: ["rules", "--ruleset", "{outside}/cut.json"],
            prepare: { try $0.write("cut.json", "{\"nftables\": [\n", inTree: false) },
            words: ["{outside}/cut.json:2:1", "not valid JSON", "nft -j list ruleset"]),
        BadInput(
            command: "rules", input: "a file in no ruleset format", arguments: ["rules", "--ruleset", "{outside}/notes.txt"],
            prepare: { try $0.write("notes.txt", "hello world\n", inTree: false) },
            words: ["{outside}/notes.txt:1", "cannot tell the format", "iptables-save"]),
        BadInput(
            command: "rules", input: "nft text as nobody", arguments: ["rules", "--ruleset", "{outside}/rules.nft"],
            prepare: {
                try $0.write(
                    "rules.nft",
                    "table inet filter {\n  chain input { type filter hook input priority 0; ct state established accept; }\n}\n",
                    inTree: false)
            },
            runner: .nobody, words: ["{outside}/rules.nft is nft text", "needs root", "nft -j list ruleset"]),
        BadInput(
            command: "rules", input: "unknown --format", arguments: ["rules", "--format", "yaml"], exitCode: 64,
            words: ["--format", "yaml"]),

        // modules, unload, blacklist: trees without a module directory
        BadInput(
            command: "modules", input: "--root that does not exist", arguments: ["modules", "--root", "{outside}/missing"],
            words: ["--root {outside}/missing is not a directory"]),
        BadInput(
            command: "modules", input: "malformed /proc/modules", arguments: ["modules", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.write("proc/modules", "garbage\n")
            },
            words: ["{tree}/proc/modules", "line 1", "\"garbage\""]),
        BadInput(
            command: "modules", input: "unreadable /proc/modules", arguments: ["modules", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.makeUnreadable("proc/modules")
            },
            words: ["cannot read {tree}/proc/modules", "is a directory"]),
        BadInput(
            command: "modules", input: "several kernels and nothing picks one", arguments: ["modules", "--root", "{tree}"],
            prepare: {
                try $0.write("lib/modules/6.1.0-1-amd64/modules.dep", "")
                try $0.write("lib/modules/6.1.0-2-amd64/modules.dep", "")
            },
            words: ["{tree}/lib/modules holds several kernels", "6.1.0-1-amd64, 6.1.0-2-amd64", "--kernel VERSION"]),
        BadInput(
            command: "modules", input: "--kernel that is a path", arguments: ["modules", "--kernel", "../../etc", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--kernel takes a kernel release", "\"../../etc\""]),
        BadInput(
            command: "unload", input: "--root that does not exist", arguments: ["unload", "--dry-run", "--root", "{outside}/missing"],
            words: ["--root {outside}/missing is not a directory"]),
        BadInput(
            command: "unload", input: "--root without --dry-run", arguments: ["unload", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--root DIR describes a tree, not the running kernel", "--dry-run"]),
        BadInput(
            command: "unload", input: "malformed /proc/modules", arguments: ["unload", "--dry-run", "--root", "{tree}"],
            prepare: {
                try $0.copyHost("small-vm")
                try $0.write("proc/modules", "nf_conntrack 1 x\n")
            },
            words: ["{tree}/proc/modules", "line 1"]),
        BadInput(
            command: "blacklist", input: "--root that does not exist", arguments: ["blacklist", "--root", "{outside}/missing"],
            words: ["--root {outside}/missing is not a directory"]),
        BadInput(
            command: "blacklist", input: "--output with --root",
            arguments: ["blacklist", "--output", "{outside}/b.conf", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["give either --output FILE or --root DIR, not both"]),
        BadInput(
            command: "blacklist", input: "--kernel that is a path", arguments: ["blacklist", "--kernel", "..", "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--kernel takes a kernel release"]),
        BadInput(
            command: "blacklist", input: "a tree with no loadable module", arguments: ["blacklist", "--root", "{tree}"],
            prepare: { try $0.copyHost("bare") },
            words: ["no loadable conntrack/NAT module under {tree}/lib/modules", "nothing to blacklist"]),
    ]

    /// Inputs that need the depmod'ed Debian module tree (scripts/module-tree.sh).
    static let moduleTreeCases: [BadInput] = [
        BadInput(
            command: "modules", input: "a modprobe.d file that is a FIFO", arguments: ["modules", "--root", "{tree}"],
            prepare: { scene in
                try scene.linkModuleTree()
                try FileManager.default.createDirectory(atPath: scene.treePath("etc/modprobe.d"), withIntermediateDirectories: true)
                mkfifo(scene.treePath("etc/modprobe.d/hang.conf"), 0o644)
            },
            words: ["{tree}/etc/modprobe.d/hang.conf is a named pipe (FIFO)"]),
        BadInput(
            command: "blacklist", input: "a modprobe.d file linked to /dev/zero",
            arguments: ["blacklist", "--dry-run", "--root", "{tree}"],
            prepare: { scene in
                try scene.linkModuleTree()
                try FileManager.default.createDirectory(atPath: scene.treePath("etc/modprobe.d"), withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(
                    atPath: scene.treePath("etc/modprobe.d/zero.conf"), withDestinationPath: "/dev/zero")
            },
            words: ["{tree}/etc/modprobe.d/zero.conf leads outside the root"]),
        BadInput(
            command: "modules", input: "modules.dep that is a FIFO", arguments: ["modules", "--root", "{tree}"],
            prepare: { scene in
                try scene.linkModuleTree()
                let dependencies = scene.treePath("lib/modules/\(ModuleTrees.version ?? "")/modules.dep")
                try FileManager.default.removeItem(atPath: dependencies)
                mkfifo(dependencies, 0o644)
            },
            words: ["modules.dep is a named pipe (FIFO)"]),
        BadInput(
            command: "modules", input: "module directory without libkmod indexes", arguments: ["modules", "--root", "{tree}"],
            prepare: { try $0.unindexedModuleTree() },
            words: ["has modules.dep but no modules.dep.bin", "depmod -b ROOT VERSION"]),
        BadInput(
            command: "unload", input: "module directory without libkmod indexes", arguments: ["unload", "--dry-run", "--root", "{tree}"],
            prepare: { try $0.unindexedModuleTree() }, words: ["has modules.dep but no modules.dep.bin"]),
        BadInput(
            command: "blacklist", input: "module directory without libkmod indexes", arguments: ["blacklist", "--root", "{tree}"],
            prepare: { try $0.unindexedModuleTree() }, words: ["has modules.dep but no modules.dep.bin", "depmod"]),
        BadInput(
            command: "blacklist", input: "/etc/modprobe.d linked outside --root", arguments: ["blacklist", "--root", "{tree}"],
            prepare: {
                try $0.linkModuleTree()
                try $0.linkOutside("etc/modprobe.d", to: "host-modprobe.d")
            },
            words: ["{tree}/etc/modprobe.d leads outside the root {tree}", "remove the link"]),
        BadInput(
            command: "blacklist", input: "--remove with /etc/modprobe.d linked outside --root",
            arguments: ["blacklist", "--remove", "--root", "{tree}"],
            prepare: { scene in
                try scene.linkModuleTree()
                try scene.linkOutside("etc/modprobe.d", to: "host-modprobe.d")
                try scene.write("host-modprobe.d/cttune-blacklist.conf", "blacklist nf_conntrack\n", inTree: false)
            },
            words: ["{tree}/etc/modprobe.d leads outside the root"]),
        BadInput(
            command: "blacklist", input: "run as nobody", arguments: ["blacklist", "--root", "{tree}"],
            prepare: {
                try $0.linkModuleTree()
                try FileManager.default.createDirectory(atPath: $0.treePath("etc/modprobe.d"), withIntermediateDirectories: true)
            },
            runner: .nobody, words: ["cannot write {tree}/etc/modprobe.d/cttune-blacklist.conf", "permission denied", "run as root"]),
    ]
}

/// Inputs run on the real kernel, inside a fresh network namespace.
extension BadInput {
    static let netfilterSysctls = "/proc/sys/net/netfilter/"

    static let liveCases: [BadInput] = [
        BadInput(
            command: "status", input: "--textfile in a directory that does not exist",
            arguments: ["status", "--window", "0", "--textfile", "{outside}/missing/conntrack.prom"], exitCode: 3,
            words: ["cannot write {outside}/missing/conntrack.prom", "no such file or directory", "existing, writable directory"],
            output: .unknownLine),
        BadInput(
            command: "status", input: "--textfile in a directory that does not exist, as JSON",
            arguments: ["status", "--window", "0", "--format", "json", "--textfile", "{outside}/missing/conntrack.prom"], exitCode: 3,
            words: ["cannot write {outside}/missing/conntrack.prom"], output: .jsonObject, reportWords: ["\"verdict\": \"unknown\""]),
        BadInput(
            command: "status", input: "--textfile in a directory only root may write, as nobody",
            arguments: ["status", "--window", "0", "--textfile", "{outside}/conntrack.prom"], runner: .nobody, exitCode: 3,
            words: ["cannot write {outside}/conntrack.prom", "permission denied"], output: .unknownLine),
        BadInput(
            command: "status", input: "a kernel count that is not a number",
            arguments: ["status", "--window", "0"],
            prepare: { try $0.write("replacement", "junk\n", inTree: false) },
            runner: .kernelFileReplaced(path: netfilterSysctls + "nf_conntrack_count", asNobody: false), exitCode: 3,
            words: ["\(netfilterSysctls)nf_conntrack_count", "expected an integer", "\"junk\""], output: .unknownLine),
        BadInput(
            command: "status", input: "an unreadable /proc file, as nobody",
            arguments: ["status", "--window", "0"],
            prepare: { scene in
                try scene.write("replacement", "262144\n", inTree: false)
                chmod(scene.outsidePath("replacement"), 0o600)
            },
            runner: .kernelFileReplaced(path: netfilterSysctls + "nf_conntrack_max", asNobody: true), exitCode: 3,
            words: ["cannot read \(netfilterSysctls)nf_conntrack_max", "permission denied", "run as root"], output: .unknownLine),
        BadInput(
            command: "apply", input: "run as nobody", arguments: ["apply"], runner: .nobody,
            words: ["cannot write /run/cttune.lock", "permission denied", "run as root"]),
        BadInput(
            command: "apply", input: "global settings from a non-initial network namespace, without --allow-partial",
            arguments: ["apply", "--runtime-only", "--profile", "{outside}/pinned.yaml", "--format", "json"],
            prepare: {
                try SpoiledTree.privateState($0)
                try SpoiledTree.pinnedProfile($0)
            }, runner: .privateState,
            words: [
                "not applied here: net.netfilter.nf_conntrack_max, nf_conntrack.hashsize", "apply these on the host", "--allow-partial",
            ],
            output: .jsonObject, reportWords: ["global setting, read-only in this network namespace"]),
        BadInput(
            command: "rollback", input: "nothing recorded on this host", arguments: ["rollback"],
            prepare: SpoiledTree.privateState, runner: .privateState, words: ["nothing to roll back", "/var/lib/cttune/journal"]),
        BadInput(
            command: "rules", input: "the live ruleset, as nobody", arguments: ["rules"], runner: .nobody,
            words: ["reading the firewall needs root", "run as root"]),
        BadInput(
            command: "unload", input: "as nobody (the live rules cannot be read)", arguments: ["unload"], runner: .nobody,
            words: ["reading the firewall needs root"]),
        BadInput(
            command: "unload", input: "a kernel without loadable modules", arguments: ["unload"],
            words: ["no loadable module support", "notrack rule"]),
    ]
}

@Suite("Every command refuses bad input clearly and changes nothing")
struct RobustnessCatalogueTests {
    @Test(
        "a bad input on a fixture tree gets the contract's exit code and one line naming the path and the fix; no file changes",
        .enabled(if: TestHost.isRoot, "setpriv and private mounts need root"),
        arguments: BadInput.treeCases)
    func refusedOnTree(_ badInput: BadInput) throws {
        try badInput.run()
    }

    @Test(
        "a hostile input (a FIFO, a link out of the root, an impossible value, a YAML bomb, a line break) is refused the same way",
        .enabled(if: TestHost.isRoot, "FIFOs and trees owned by root"), arguments: BadInput.hostileCases)
    func refusedHostile(_ badInput: BadInput) throws {
        try badInput.run()
    }

    @Test(
        "a bad module tree is refused the same way",
        .enabled(if: TestHost.isRoot && ModuleTrees.available, ModuleTrees.missingHint),
        arguments: BadInput.moduleTreeCases)
    func refusedOnModuleTree(_ badInput: BadInput) throws {
        try badInput.run()
    }

    /// One hold of the global lock for every case: other suites hold it for
    /// minutes (load tests), and the host's max and hash size are only
    /// comparable while nobody else may change them.
    @Test(
        "a bad input on the running kernel, in a network namespace, leaves the namespace's and the host's conntrack values as they were",
        .enabled(if: TestHost.realKernel, "needs root, nf_conntrack and network namespaces"))
    func refusedOnLiveKernel() throws {
        try GlobalConntrack.withExclusiveAccess {
            for badInput in BadInput.liveCases {
                let namespace = try TestNamespace("robust")
                defer { namespace.delete() }
                let hostBefore = try ConntrackValues.read(), namespaceBefore = try ConntrackValues.read(in: namespace)
                try badInput.run { ["ip", "netns", "exec", namespace.name] + $0 }
                #expect(try ConntrackValues.read() == hostBefore, "\(badInput.testDescription)")
                #expect(try ConntrackValues.read(in: namespace) == namespaceBefore, "\(badInput.testDescription)")
            }
        }
    }

    @Test(
        "status --textfile replaces a link at that path and never writes through it",
        .enabled(if: TestHost.realKernel, "needs root, nf_conntrack and network namespaces"))
    func textfileNeverWritesThroughALink() throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try scene.write("elsewhere.prom", "keep\n", inTree: false)
        let link = scene.outsidePath("conntrack.prom")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: scene.outsidePath("elsewhere.prom"))
        let namespace = try TestNamespace("robust")
        defer { namespace.delete() }
        let result = try namespace.run([TestPaths.cttune, "status", "--window", "0", "--textfile", link])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOfFile: scene.outsidePath("elsewhere.prom"), encoding: .utf8) == "keep\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil)
        #expect(try String(contentsOfFile: link, encoding: .utf8).contains("cttune_conntrack_entries{netns="))
    }

    @Test(
        "an apply refused for its profile or flags leaves no lock file in the tree; one refused for the host's facts (read under the lock) leaves only the empty lock file",
        .enabled(if: TestHost.isRoot, "compares with the other cases run as root"),
        arguments: [
            (["apply", "--profile", "no-such-profile"], false), (["apply", "--memory", "-1"], false),
            (["apply", "--profile", "web-frontend", "--memory", "256M"], true),
        ])
    func refusedApplyLeavesNoLock(_ arguments: [String], leavesLock: Bool) throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try scene.copyHost("small-vm")
        let result = try Shell.run([TestPaths.cttune] + arguments + ["--root", scene.tree.path])
        #expect(result.status == (leavesLock ? 1 : 64) || (result.status == 1 && !leavesLock))
        #expect(FileManager.default.fileExists(atPath: scene.treePath("run")) == leavesLock)
        if leavesLock {
            #expect(try FileManager.default.contentsOfDirectory(atPath: scene.treePath("run")) == ["cttune.lock"])
            #expect(try String(contentsOfFile: scene.treePath("run/cttune.lock"), encoding: .utf8) == "")
        }
    }
}
