import Foundation
import TestSupport
import Testing

/// `cttune rollback --root` on a host tree: what it restores, its own
/// journal entry, and its messages when there is nothing to undo.
@Suite("rollback on a fixture tree")
struct RollbackTests {
    static let sysctlConf = ApplyFixtureTreeTests.sysctlConf
    static let modprobeConf = ApplyFixtureTreeTests.modprobeConf
    static let modulesLoadConf = ApplyFixtureTreeTests.modulesLoadConf

    @Test(
        "rollback restores the journaled kernel values and the replaced file, removes created files, and is itself journaled and idempotent"
    )
    func rollbackRestores() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        let original = "# kept by the administrator\nnet.netfilter.nf_conntrack_max = 100000\n"
        try tree.write(Self.sysctlConf, original)
        let before = ApplyFixtureTree.bootValues.keys.sorted().map { tree.sysctl($0) }
        let apply = try PrintedJSON(try tree.cttune(["apply", "--format", "json"]))
        let applyID = try #require(apply.object["journal_id"] as? String)
        #expect(tree.read(Self.sysctlConf) != original)

        let journal = try #require(tree.read("var/lib/cttune/journal/\(applyID).json"))
        #expect(journal.contains("\"old\" : 262144"))
        #expect(journal.contains("\"old_content\" : \"# kept by the administrator\\nnet.netfilter.nf_conntrack_max = 100000\\n\""))

        let rollback = try tree.cttune(["rollback", "--format", "json"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        let rolled = try PrintedJSON(rollback)
        #expect(rolled.object["rolls_back"] as? String == applyID)
        #expect(rolled.object["changed"] as? Bool == true)
        #expect(ApplyFixtureTree.bootValues.keys.sorted().map { tree.sysctl($0) } == before)
        #expect(tree.read(Self.sysctlConf) == original)
        #expect(!tree.exists(Self.modprobeConf) && !tree.exists(Self.modulesLoadConf))

        let again = try PrintedJSON(try tree.cttune(["rollback", "--format", "json"]))
        #expect(again.object["changed"] as? Bool == false)
        #expect(again.object["journal_id"] is NSNull)

        let list = try PrintedJSON(try tree.cttune(["rollback", "--list", "--format", "json"]))
        let entries = try #require(list.object["journal"] as? [[String: Any]])
        #expect(entries.map { $0["command"] as? String } == ["apply", "rollback"])
        #expect(entries[1]["rolls_back"] as? String == applyID)

        // Rolling back the rollback puts the applied state back.
        let rollbackID = try #require(rolled.object["journal_id"] as? String)
        #expect(try tree.cttune(["rollback", rollbackID]).status == 0)
        #expect(tree.sysctl("nf_conntrack_max") == apply.planned("net.netfilter.nf_conntrack_max"))
        #expect(tree.exists(Self.modprobeConf))
    }

    @Test(
        "rollback names what to do when there is nothing to roll back or the ID is unknown",
        arguments: [
            ([] as [String], "nothing to roll back"), (["20200101T000000.000Z-1"], "no journal entry 20200101T000000.000Z-1"),
        ])
    func rollbackWithoutEntry(arguments: [String], message: String) throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let result = try tree.cttune(["rollback"] + arguments)
        #expect(result.status == 1)
        #expect(result.stderr.contains(message))
    }

    @Test(
        "a rollback step that fails is the one item reported failed, under the tree's path; the others are reported unchanged",
        .enabled(if: TestHost.isRoot, "needs root to mount"))
    func failedStepNamesItsItem() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        try tree.write(Self.sysctlConf, "# kept by the administrator\nnet.netfilter.nf_conntrack_max = 100000\n")
        #expect(try tree.cttune(["apply"]).status == 0)
        // The created modules-load.d file cannot be removed: its directory is read-only.
        let loadDirectory = tree.file("etc/modules-load.d")
        let result = try Shell.run([
            "unshare", "-m", "--propagation", "private", "sh", "-c",
            "mount --bind \(loadDirectory) \(loadDirectory) && mount -o remount,ro,bind \(loadDirectory) && exec \"$@\"", "sh",
            TestPaths.cttune, "rollback", "--root", tree.path, "--format", "json",
        ])
        #expect(result.status == 1, "\(result.stderr)")
        let restored = try #require(try PrintedJSON(result).object["restored"] as? [[String: Any]])
        let failed = restored.filter { $0["result"] as? String == "failed" }
        #expect(failed.map { $0["target"] as? String } == [tree.file(Self.modulesLoadConf)])
        #expect(restored.allSatisfy { ["failed", "unchanged"].contains($0["result"] as? String) })
        #expect(tree.exists(Self.modulesLoadConf))
    }
}
