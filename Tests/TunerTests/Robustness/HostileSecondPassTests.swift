import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerWorkflows

/// The second pass of hostile input (docs/robustness.md, "Hostile input"):
/// `..` in values read from a tree, FIFOs and devices as namespaces, files
/// too large to read, links out of the root, journal actions naming nothing,
/// duplicate JSON members and names longer than any file system holds.
extension BadInput {
    /// Rewrites every action of `type` in the tree's one journal entry (made by a real apply).
    static func journalAction(_ type: String, path: String) -> SpoiledTree.Preparation {
        { scene in
            try SpoiledTree.applied(scene)
            let directory = scene.treePath("var/lib/cttune/journal")
            let entry = try #require(FileManager.default.contentsOfDirectory(atPath: directory).first)
            let url = URL(fileURLWithPath: directory + "/" + entry)
            var document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            let actions = try #require(document["actions"] as? [[String: Any]])
            document["actions"] = actions.map { action in
                guard action["type"] as? String == type else { return action }
                var changed = action
                changed["path"] = path
                return changed
            }
            try JSONSerialization.data(withJSONObject: document).write(to: url)
        }
    }

    static let longName = String(repeating: "a", count: 10_000)

    static let secondPassCases: [BadInput] = [
        // `..` in values read from a tree
        BadInput(
            command: "modules", input: "a kernel release of ../../etc in osrelease", arguments: ["modules", "--root", "{tree}"],
            prepare: spoiled("proc/sys/kernel/osrelease", "../../etc\n"),
            words: ["{tree}/proc/sys/kernel/osrelease", "\"../../etc\""]),
        BadInput(
            command: "blacklist", input: "a kernel release of .. in osrelease", arguments: ["blacklist", "--dry-run", "--root", "{tree}"],
            prepare: spoiled("proc/sys/kernel/osrelease", "..\n"), words: ["{tree}/proc/sys/kernel/osrelease", "\"..\""]),
        BadInput(
            command: "unload", input: "a module named .. in /proc/modules", arguments: ["unload", "--dry-run", "--root", "{tree}"],
            prepare: spoiled("proc/modules", "nf_conntrack 1 1 .. Live 0x0\n.. 1 0 - Live 0x0\n"),
            words: ["{tree}/proc/modules", "line 1", "\"..\"", "not a module name"]),
        BadInput(
            command: "modules", input: "a module named ../x in /proc/modules", arguments: ["modules", "--root", "{tree}"],
            prepare: spoiled("proc/modules", "../x 1 0 - Live 0x0\n"), words: ["{tree}/proc/modules", "\"../x\""]),
        // Journal semantics
        BadInput(
            command: "rollback", input: "a journal file action with an empty path", arguments: ["rollback", "--root", "{tree}"],
            prepare: journalAction("file", path: ""), words: ["var/lib/cttune/journal/", "\"file\" action names \"\"", "move it aside"]),
        BadInput(
            command: "rollback", input: "a journal file action with a .. component",
            arguments: ["rollback", "--root", "{tree}"], prepare: journalAction("file", path: "/etc/sysctl.d/../sysctl.d/90-cttune.conf"),
            words: ["/etc/sysctl.d/../sysctl.d/90-cttune.conf", "move it aside"]),
        BadInput(
            command: "rollback", input: "a journal sysctl action with a relative path", arguments: ["rollback", "--root", "{tree}"],
            prepare: journalAction("sysctl", path: "proc/sys/net/netfilter/nf_conntrack_max"), words: ["move it aside"]),
        // Files too large to read, FIFOs in place of cttune's own file
        BadInput(
            command: "apply", input: "a sysctl.d file over 16 MiB with --on-conflict refuse",
            arguments: ["apply", "--memory", "1G", "--on-conflict", "refuse", "--root", "{tree}"],
            prepare: spoiled(
                "etc/sysctl.d/95-big.conf", "net.netfilter.nf_conntrack_max = 5\n" + String(repeating: "#", count: 17 << 20) + "\n"),
            words: ["{tree}/etc/sysctl.d/95-big.conf is larger than 16384 KiB"]),
        BadInput(
            command: "plan", input: "a sysctl.d file over 16 MiB", arguments: ["plan", "--memory", "1G", "--root", "{tree}"],
            prepare: spoiled("etc/sysctl.d/95-big.conf", String(repeating: "#", count: 17 << 20) + "\n"),
            words: ["95-big.conf is larger than"]),
        BadInput(
            command: "apply", input: "--persisted with a FIFO as cttune's sysctl.d file",
            arguments: ["apply", "--persisted", "--memory", "1G", "--root", "{tree}"],
            prepare: { scene in
                try scene.copyHost("small-vm")
                try FileManager.default.createDirectory(atPath: scene.treePath("etc/sysctl.d"), withIntermediateDirectories: true)
                mkfifo(scene.treePath("etc/sysctl.d/90-cttune.conf"), 0o644)
            },
            words: ["{tree}/etc/sysctl.d/90-cttune.conf is a named pipe (FIFO)"]),
        // Links out of --root
        BadInput(
            command: "apply", input: "a timeout file linked to a file outside --root",
            arguments: ["apply", "--memory", "1G", "--root", "{tree}"],
            prepare: { scene in
                try scene.copyHost("small-vm")
                try scene.write("timeout", "10\n", inTree: false)
                let link = scene.treePath("proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close")
                try FileManager.default.removeItem(atPath: link)
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: scene.outsidePath("timeout"))
            },
            words: ["{tree}/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close leads outside the root {tree}"]),
        // Duplicate JSON members
        BadInput(
            command: "rules", input: "nft JSON naming a member twice", arguments: ["rules", "--ruleset", "{outside}/dup.json"],
            prepare: { try $0.write("dup.json", #"{"nftables": [], "nftables": 5}"#, inTree: false) },
            words: ["{outside}/dup.json:1:", "member \"nftables\" appears twice"]),
        // Names longer than any file system holds: refused at once, cut in the message
        BadInput(
            command: "plan", input: "--profile of 10 000 characters", arguments: ["plan", "--profile", longName, "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, words: ["no profile named", "…"]),
        BadInput(
            command: "plan", input: "--kernel of 10 000 characters", arguments: ["plan", "--kernel", longName, "--root", "{tree}"],
            prepare: SpoiledTree.smallVM, exitCode: 64, words: ["--kernel takes a kernel release", "…"]),
        BadInput(
            command: "rollback", input: "an ID of 10 000 characters", arguments: ["rollback", longName, "--root", "{tree}"],
            prepare: SpoiledTree.applied, words: ["no journal entry", "…"]),
        // Namespaces that are not namespace files
        BadInput(
            command: "status", input: "--namespace naming a FIFO", arguments: ["status", "--window", "0", "--namespace", "{outside}/fifo"],
            prepare: { mkfifo($0.outsidePath("fifo"), 0o644) }, exitCode: 3,
            words: ["{outside}/fifo is a named pipe (FIFO), not a network namespace file"], output: .unknownLine),
        BadInput(
            command: "status", input: "--namespace /dev/zero, as JSON",
            arguments: ["status", "--window", "0", "--format", "json", "--namespace", "/dev/zero"], exitCode: 3,
            words: ["/dev/zero is a character device"], output: .jsonObject, reportWords: ["\"verdict\": \"unknown\""]),
        BadInput(
            command: "status", input: "--namespace with a line break in its name",
            arguments: ["status", "--window", "0", "--namespace", "a\nb"], exitCode: 3, words: ["a\\nb", "does not exist"],
            output: .unknownLine),
        BadInput(
            command: "status", input: "--namespace pid:1, as nobody", arguments: ["status", "--window", "0", "--namespace", "pid:1"],
            runner: .nobody, exitCode: 3, words: ["/proc/1/ns/net", "permission denied"], output: .unknownLine),
        BadInput(
            command: "learn", input: "--namespace naming a FIFO", arguments: ["learn", "--seconds", "1", "--namespace", "{outside}/fifo"],
            prepare: { mkfifo($0.outsidePath("fifo"), 0o644) }, words: ["{outside}/fifo is a named pipe (FIFO)"]),
    ]
}

@Suite("Hostile input, second pass: relative paths, .. components, FIFOs as namespaces, oversized files, scale")
struct HostileSecondPassTests {
    @Test(
        "each is refused with the contract's exit code and one line naming the file or value; nothing changes",
        .enabled(if: TestHost.isRoot, "FIFOs, setpriv and trees owned by root"), arguments: BadInput.secondPassCases)
    func refused(_ badInput: BadInput) throws {
        try badInput.run()
    }

    /// Runs the built cttune in `directory`, as a user who typed a relative path there.
    static func run(in directory: String, _ arguments: [String]) throws -> Shell.Result {
        try Shell.run(["sh", "-c", #"cd "$0" && exec "$@""#, directory, TestPaths.cttune] + arguments)
    }

    @Test(
        "relative path arguments name files under the working directory, not under /",
        .enabled(if: TestHost.realKernel, "status reads the running kernel"))
    func relativePaths() throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try scene.copyHost("small-vm")
        let name = "cttune-relative-\(getpid()).prom"
        defer { unlink("/" + name) }
        let status = try Self.run(in: scene.outside.path, ["status", "--window", "0", "--textfile", name])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(FileManager.default.fileExists(atPath: scene.outsidePath(name)))
        #expect(!FileManager.default.fileExists(atPath: "/" + name))
        let plan = try Self.run(in: scene.url.path, ["plan", "--memory", "1G", "--root", "tree", "--format", "json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        try scene.write("dup.json", #"{"nftables": [], "nftables": 5}"#, inTree: false)
        let rules = try Self.run(in: scene.outside.path, ["rules", "--ruleset", "./x/../dup.json"])
        #expect(rules.status == 1 && rules.stderr.contains(scene.outsidePath("dup.json") + ":1:"), "\(rules.stderr)")
    }

    @Test(
        "--on-conflict refuse changes nothing, not even the lock file",
        .enabled(if: TestHost.isRoot, "compares with the other cases run as root"))
    func conflictRefusalLeavesNoLock() throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try scene.copyHost("small-vm")
        try scene.write("etc/sysctl.d/95-other.conf", "net.netfilter.nf_conntrack_max = 5\n")
        let before = scene.snapshot()
        let result = try Shell.run([TestPaths.cttune, "apply", "--memory", "1G", "--on-conflict", "refuse", "--root", scene.tree.path])
        #expect(result.status == 1 && result.stderr.contains("95-other.conf:1"), "\(result.stderr)")
        #expect(scene.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: scene.treePath("run")))
    }

    @Test(
        "2 000 holder modules: every one is listed once, and the table stays linear in size",
        .enabled(if: TestHost.isRoot, "trees owned by root"))
    func manyHolders() throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        let count = 2000  // the bench runs 10 000 against the release build
        let holders = (1...count).map { "nf_conntrack_h\($0)" }
        try scene.copyHost("small-vm")
        try scene.write(
            "proc/modules",
            (["nf_conntrack 1 \(count) \(holders.joined(separator: ",")) Live 0x0"] + holders.map { "\($0) 1 0 - Live 0x0" })
                .joined(separator: "\n") + "\n")
        let modules = try Shell.run([TestPaths.cttune, "modules", "--root", scene.tree.path])
        #expect(modules.status == 0, "\(modules.stderr)")
        let lines = modules.stdout.split(separator: "\n")
        #expect(lines.count >= count + 1)
        // Each row is bounded: eight holder names and a count, never all of them.
        #expect(lines.allSatisfy { $0.utf8.count < 1024 }, "a row holds \(lines.map(\.utf8.count).max() ?? 0) bytes")
        #expect(modules.stdout.contains("+\(count - 8) more"))
        let unload = try Shell.run([TestPaths.cttune, "unload", "--dry-run", "--root", scene.tree.path])
        #expect(unload.status == 0, "\(unload.stderr)")
        #expect(unload.stdout.contains("\(count + 1). nf_conntrack"))
    }

    @Test(
        "rollback --list with 2 000 journal entries lists each once", .enabled(if: TestHost.isRoot, "trees owned by root"))
    func manyJournalEntries() throws {
        let scene = try BadInputScene()
        defer { scene.remove() }
        try SpoiledTree.applied(scene)
        let directory = scene.treePath("var/lib/cttune/journal")
        let entry = try #require(FileManager.default.contentsOfDirectory(atPath: directory).first)
        let text = try String(contentsOfFile: directory + "/" + entry, encoding: .utf8)
        let id = String(entry.dropLast(".json".count))
        for index in 1...2000 {
            let other = "20260101T000000.000Z-\(index)"
            try text.replacingOccurrences(of: id, with: other).write(
                toFile: "\(directory)/\(other).json", atomically: false, encoding: .utf8)
        }
        let list = try Shell.run([TestPaths.cttune, "rollback", "--list", "--root", scene.tree.path, "--format", "json"])
        #expect(list.status == 0, "\(list.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let entries = try #require(object["journal"] as? [[String: Any]])
        #expect(entries.count == 2001)
    }
}
