import Foundation
import TestSupport
import Testing

/// The journal on a host tree: which entry a rollback undoes by default.
@Suite("journal entries on a fixture tree")
struct JournalTests {
    @Test("an entry left in progress by a run that died midway is what rollback undoes by default; a failed apply is skipped")
    func rollbackUndoesInterruptedRun() throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        // As a killed run leaves it: the entry saved, max written, the file not yet.
        try tree.write("proc/sys/net/netfilter/nf_conntrack_max", "300032\n")
        let entries: [(id: String, status: String, old: Int)] = [
            ("20200101T000000.000Z-1", "in-progress", 262_144),
            ("20200101T000001.000Z-2", "rolled-back", 1),
        ]
        for entry in entries {
            let object: [String: Any] = [
                "id": entry.id, "command": "apply", "created": "2020-01-01T00:00:00Z", "status": entry.status,
                "actions": [
                    [
                        "type": "sysctl", "key": "net.netfilter.nf_conntrack_max", "path": "/proc/sys/net/netfilter/nf_conntrack_max",
                        "old": entry.old, "new": 300_032,
                    ],
                    ["type": "file", "path": "/etc/sysctl.d/90-cttune.conf", "new_content": "net.netfilter.nf_conntrack_max = 300032\n"],
                ],
            ]
            try tree.write(
                "var/lib/cttune/journal/\(entry.id).json",
                String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        }
        let result = try tree.cttune(["rollback", "--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try PrintedJSON(result)
        #expect(json.object["rolls_back"] as? String == "20200101T000000.000Z-1")
        #expect(tree.sysctl("nf_conntrack_max") == 262_144)
        let restored = try #require(json.object["restored"] as? [[String: Any]])
        #expect(restored.map { $0["result"] as? String } == ["unchanged", "rolled-back"])
    }
}
