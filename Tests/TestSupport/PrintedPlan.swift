import Foundation
import Testing
import TunerCore
import TunerModel

/// The parts of a printed plan these tests read.
package struct PrintedPlan {
    package let object: [String: Any]

    package init(_ json: String) throws {
        object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "plan printed: \(json)")
    }

    package func planned(_ key: String) -> Int? {
        (object["settings"] as? [[String: Any]])?.first { $0["key"] as? String == key }?["planned"] as? Int
    }

    /// Entries in the slab with every namespace at its worst-phase peak:
    /// the expected memory less the hash table, over the entry size.
    package func expectedEntriesAcrossNamespaces() throws -> Double {
        let estimate = try #require(object["estimate"] as? [String: Any])
        let bytes = try #require(estimate["expected_memory_bytes"] as? Int)
        let entryBytes = try #require((object["facts"] as? [String: Any])?["entry_bytes"] as? Int)
        let buckets = try #require(planned(ConntrackSetting.hashsize.key))
        return Double(bytes - buckets * Planner.hashPointerBytes) / Double(entryBytes)
    }
}

/// The JSON object `--format json` printed.
package struct PrintedJSON {
    package let object: [String: Any]

    package init(_ result: Shell.Result) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw Shell.Failure(command: "parse JSON", result: result)
        }
        self.object = object
    }

    package var settings: [[String: Any]] { object["settings"] as? [[String: Any]] ?? [] }

    package func setting(_ key: String) -> [String: Any] {
        settings.first { $0["key"] as? String == key } ?? [:]
    }

    package func result(_ key: String) -> String? { setting(key)["result"] as? String }
    package func planned(_ key: String) -> Int? { setting(key)["planned"] as? Int }

    /// File path (relative to the end) → action.
    package var fileActions: [String: String] {
        var actions: [String: String] = [:]
        for file in object["files"] as? [[String: Any]] ?? [] {
            if let path = file["path"] as? String, let action = file["action"] as? String { actions[path] = action }
        }
        return actions
    }
}
