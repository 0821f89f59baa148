import Foundation
import SystemPackage
import Testing

@testable import Tuner

/// `rollback --all` (the state before cttune's first apply), journal
/// retention (`--prune --keep N` and after each apply) and the 80-column list.
@Suite("rollback --all and journal retention")
struct RollbackAllAndRetentionTests {
    static let adminModulesLoad = "# the administrator's list\nnf_conntrack\n"

    /// Three applies that change values and files: default, a smaller host
    /// with `--on-conflict override` (99-zz-cttune.conf), a pinned timeout.
    static func threeApplies(_ tree: ApplyFixtureTree) throws {
        let profile = try writeProfile(in: tree.url, timeouts: ["nf_conntrack_tcp_timeout_time_wait": 33])
        for arguments in [["apply"], ["apply", "--memory", "4G", "--on-conflict", "override"], ["apply", "--profile", profile]] {
            let result = try tree.cttune(arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
    }

    @Test(
        "rollback --all restores every value and file to before the first apply, removes every file cttune created under either sysctl.d name, restores a file it replaced; --check writes nothing; a second --all changes nothing"
    )
    func allRestoresTheBaseline() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        try tree.write("etc/modules-load.d/cttune.conf", Self.adminModulesLoad)
        try Self.threeApplies(tree)
        #expect(tree.sysctl("nf_conntrack_tcp_timeout_time_wait") == 33)
        #expect(tree.exists("etc/modprobe.d/cttune.conf") && tree.exists("etc/sysctl.d/90-cttune.conf"))
        #expect(tree.journalIDs().count == 3)

        let before = tree.snapshot()
        let check = try tree.cttune(["rollback", "--all", "--check", "--format", "json"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(try PrintedJSON(check).object["changed"] as? Bool == true)
        #expect(tree.snapshot() == before, "--check writes nothing")

        let all = try tree.cttune(["rollback", "--all", "--format", "json"])
        #expect(all.status == 0, "\(all.stderr)")
        let json = try PrintedJSON(all)
        #expect(json.object["rolls_back"] as? String == "all")
        #expect(json.object["changed"] as? Bool == true)
        for (name, value) in ApplyFixtureTree.bootValues where name != "nf_conntrack_count" {
            #expect(tree.sysctl(name) == value, "\(name)")
        }
        for file in ["etc/sysctl.d/90-cttune.conf", "etc/sysctl.d/99-zz-cttune.conf", "etc/modprobe.d/cttune.conf"] {
            #expect(!tree.exists(file), "\(file)")
        }
        #expect(tree.read("etc/modules-load.d/cttune.conf") == Self.adminModulesLoad)
        #expect(tree.journalIDs().count == 4)

        let second = try tree.cttune(["rollback", "--all", "--format", "json"])
        #expect(second.status == 0)
        #expect(try PrintedJSON(second).object["changed"] as? Bool == false)
        #expect(try PrintedJSON(second).object["journal_id"] is NSNull)
        #expect(tree.journalIDs().count == 4)
    }

    @Test("rollback --all with an empty journal restores nothing and succeeds")
    func allOnEmptyJournal() throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let result = try tree.cttune(["rollback", "--all"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("nothing to restore: the journal records no change by cttune"))
    }

    @Test(
        "rollback --prune --keep 1 keeps the newest entry and the entries holding a first record; rollback --all still reaches the state before the first apply"
    )
    func pruneKeepsTheBaseline() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        try Self.threeApplies(tree)
        for seconds in [34, 35] {
            let profile = try writeProfile(in: tree.url, name: "pin\(seconds)", timeouts: ["nf_conntrack_tcp_timeout_time_wait": seconds])
            #expect(try tree.cttune(["apply", "--profile", profile]).status == 0)
        }
        let ids = tree.journalIDs()
        #expect(ids.count == 5)

        let pruned = try tree.cttune(["rollback", "--prune", "--keep", "1", "--format", "json"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        let removed = try PrintedJSON(pruned).object["pruned"] as? [String] ?? []
        let kept = tree.journalIDs()
        #expect(Set(kept).union(removed) == Set(ids))
        #expect(kept.first == ids.first, "the first apply holds the baseline")
        #expect(kept.contains(ids[1]), "the second apply created 99-zz-cttune.conf: its first record")
        #expect(kept.last == ids.last)
        #expect(!removed.isEmpty)

        #expect(try tree.cttune(["rollback", "--all"]).status == 0)
        #expect(tree.sysctl("nf_conntrack_max") == ApplyFixtureTree.bootValues["nf_conntrack_max"])
        #expect(tree.sysctl("nf_conntrack_tcp_timeout_time_wait") == 120)
        #expect(!tree.exists("etc/sysctl.d/90-cttune.conf") && !tree.exists("etc/sysctl.d/99-zz-cttune.conf"))
    }

    @Test("apply prunes after each change to its retention count, keeping the baseline and entries left in progress")
    func applyPrunesAutomatically() throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let root = SystemRoot(base: FilePath(tree.path))
        let stuck = JournalEntry(
            id: "20000101T000000.000Z-1", command: "apply", created: "2000-01-01T00:00:00Z", profile: "default", status: .inProgress,
            actions: [])
        try Journal(root: root).save(stuck)
        var request = ApplyRequest()
        request.journalKeep = 2
        for seconds in 40...44 {
            let profile = try writeProfile(in: tree.url, name: "pin\(seconds)", timeouts: ["nf_conntrack_tcp_timeout_time_wait": seconds])
            let outcome = try Applier.apply(
                under: root, request: request, profile: try ProfileCatalog.standard(root: root).load(profile)
            ) { try HostFacts.gather(from: root) }
            #expect(outcome.journalID != nil)
        }
        let ids = tree.journalIDs()
        #expect(ids.count == 4, "\(ids)")
        #expect(ids.first == stuck.id)
        #expect(Rollback.defaultKeep == 20)
    }

    @Test("rollback --list fits 80 columns with a long profile path; the failure and what a rollback undid are in --list ID")
    func listFitsEightyColumns() throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let root = SystemRoot(base: FilePath(tree.path))
        let failure =
            "writing /etc/sysctl.d/90-cttune.conf: cannot write /etc/sysctl.d/90-cttune.conf: read-only file system — remount it read-write"
        try Journal(root: root).save(
            JournalEntry(
                id: "20261130T120000.000Z-100", command: "apply", created: "2026-11-30T12:00:00Z",
                profile: "/srv/provisioning/profiles/a-very-long-profile-name-for-the-frontends.yaml", status: .rolledBack,
                failure: failure, actions: [.sysctl(.init(key: "net.netfilter.nf_conntrack_max", path: "/proc/sys/x", old: 1, new: 2))]))
        try Journal(root: root).save(
            JournalEntry(
                id: "20261130T120001.000Z-101", command: "rollback", created: "2026-11-30T12:00:01Z", profile: nil, status: .applied,
                rollsBack: "20261130T120000.000Z-100", actions: []))
        let list = try tree.cttune(["rollback", "--list"])
        #expect(list.status == 0)
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines.allSatisfy { $0.count <= 80 }, "\(lines.map(\.count))")
        #expect(!list.stdout.contains("read-only file system"))

        let detail = try tree.cttune(["rollback", "--list", "20261130T120000.000Z-100"])
        #expect(detail.status == 0)
        #expect(detail.stdout.contains("failure:  \(failure)"))
        #expect(detail.stdout.contains("net.netfilter.nf_conntrack_max: 1 -> 2"))
        let undone = try tree.cttune(["rollback", "--list", "20261130T120001.000Z-101"])
        #expect(undone.stdout.contains("undoes:   20261130T120000.000Z-100"))
    }
}
