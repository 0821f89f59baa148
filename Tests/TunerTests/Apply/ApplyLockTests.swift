import Foundation
import TestSupport
import Testing

/// Two applies never interleave: the lock on /run/cttune.lock.
@Suite("apply lock")
struct ApplyLockTests {
    @Test("while another process holds /run/cttune.lock, apply waits, then fails with a clear message and writes nothing")
    func busyLockFailsCleanly() throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        try FileManager.default.createDirectory(atPath: tree.file("run"), withIntermediateDirectories: true)
        let fd = open(tree.file("run/cttune.lock"), O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let before = tree.snapshot()

        let started = Date()
        let result = try tree.cttune(["apply", "--lock-timeout", "1"])
        let waited = Date().timeIntervalSince(started)
        #expect(result.status == 1)
        #expect(result.stderr.contains("another cttune apply or rollback holds \(tree.file("run/cttune.lock")) (waited 1 s)"))
        #expect(waited >= 1.0 && waited < 8)
        #expect(tree.snapshot() == before)

        let rollback = try tree.cttune(["rollback", "--lock-timeout", "0"])
        #expect(rollback.status == 1)
        #expect(rollback.stderr.contains("holds"))
    }

    @Test("two applies started together leave one consistent result: one changes and journals, the other waits and finds nothing to change")
    func concurrentApplies() throws {
        let tree = try ApplyFixtureTree(.module)
        defer { tree.remove() }
        let processes = try (0..<2).map { _ in
            try BackgroundProcess([TestPaths.cttune, "apply", "--detailed-exitcode", "--root", tree.path, "--format", "json"])
        }
        var statuses: [Int32] = []
        var changed: [Bool] = []
        for process in processes {
            let output = process.wait()
            statuses.append(process.exitStatus)
            let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            changed.append(object?["changed"] as? Bool ?? false)
        }
        #expect(statuses.sorted() == [0, 2])
        #expect(changed.sorted { !$0 && $1 } == [false, true])
        #expect(tree.journalIDs().count == 1)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: tree.file("etc/sysctl.d"))
        #expect(leftovers == ["90-cttune.conf"])
        // A third run agrees that the tree matches the plan.
        #expect(try tree.cttune(["apply", "--check", "--detailed-exitcode"]).status == 0)
    }
}
