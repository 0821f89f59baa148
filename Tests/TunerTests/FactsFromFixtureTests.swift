import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// A copy of a committed fixture tree in a temporary directory, so a test can
/// change modes (git keeps no 0444) and remove files.
struct FixtureCopy {
    let url: URL
    var root: SystemRoot { SystemRoot(base: FilePath(url.path)) }

    init(_ name: String) throws {
        url = try TestPaths.temporaryDirectory("cttune-fixture")
        try FileManager.default.removeItem(at: url)
        try FileManager.default.copyItem(at: TestPaths.fixtures.appendingPathComponent("hosts/\(name)"), to: url)
    }

    func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }
    func chmod(_ relative: String, _ mode: mode_t) { _ = Glibc.chmod(path(relative), mode) }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

@Suite("Host facts read from fixture trees")
struct FactsFromFixtureTests {
    @Test("a small VM with nf_conntrack loaded as a module")
    func smallVM() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        let facts = try HostFacts.gather(from: fixture.root)
        #expect(facts.memoryBytes == 512 << 20)
        #expect(facts.cpus == 1)
        #expect(facts.kernelRelease == "6.1.0-28-cloud-amd64")
        #expect(facts.conntrack == .module)
        // 6.1.0-28 is not in the table and the tree has no BTF: the fallback,
        // whatever the live slab says (shown beside it).
        #expect(facts.entryBytes == HostFacts.fallbackEntryBytes)
        #expect(facts.entryBytesSource == .fallback)
        #expect(facts.liveSlabEntryBytes == 320)
        #expect(facts.count == 37)
        #expect(facts.current[.max] == 4096)
        #expect(facts.current[.hashsize] == 4096)
        #expect(facts.current[.tcpTimeoutEstablished] == 432_000)
        #expect(facts.current[.udpTimeoutStream] == 120)
        #expect(facts.netns == .initial)
        #expect(facts.blockers.isEmpty, "every file is writable in the copy: \(facts.blockers)")
    }

    @Test("outside the initial network namespace the global settings are 0444 and marked not applicable")
    func containerNamespace() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        fixture.chmod("proc/sys/net/netfilter/nf_conntrack_max", 0o444)
        fixture.chmod("proc/sys/net/netfilter/nf_conntrack_buckets", 0o444)
        let facts = try HostFacts.gather(from: fixture.root)
        #expect(facts.netns == .nonInitial)
        #expect(facts.blockers[.max]?.contains("global setting, read-only in this network namespace") == true)
        #expect(facts.blockers[.hashsize]?.contains("global setting") == true)
        #expect(facts.blockers[.tcpTimeoutTimeWait] == nil)

        let plan = Planner.plan(for: facts, profile: try ProfileCatalog(searchDirectories: []).load("default"))
        #expect(plan.settings.first { $0.setting == .max }?.applicable == false)
        #expect(plan.settings.first { $0.setting == .tcpTimeoutTimeWait }?.applicable == true)
        #expect(plan.advice.contains { $0.contains("global") })
    }

    @Test("a tree without conntrack: absent, fallback entry size, no current values, nothing writable")
    func bareHost() throws {
        let fixture = try FixtureCopy("bare")
        defer { fixture.remove() }
        let facts = try HostFacts.gather(from: fixture.root)
        #expect(facts.memoryBytes == 8 << 30)
        #expect(facts.cpus == 4)
        #expect(facts.conntrack == .absent)
        #expect(facts.entryBytes == HostFacts.fallbackEntryBytes)
        #expect(facts.entryBytesSource == .fallback)
        #expect(facts.count == nil)
        #expect(facts.netns == nil)
        #expect(facts.current.isEmpty)
        #expect(facts.blockers[.max]?.contains("not loaded") == true)
    }

    @Test("--memory and --cpus replace what the tree says")
    func overrides() throws {
        let fixture = try FixtureCopy("bare")
        defer { fixture.remove() }
        let facts = try HostFacts.gather(from: fixture.root, memoryBytes: 64 << 30, cpus: 32)
        #expect(facts.memoryBytes == 64 << 30)
        #expect(facts.cpus == 32)
    }

    @Test("a missing /proc/meminfo is an error that names the file and the --memory fix")
    func missingMeminfo() throws {
        let fixture = try FixtureCopy("bare")
        defer { fixture.remove() }
        try FileManager.default.removeItem(atPath: fixture.path("proc/meminfo"))
        let error = #expect(throws: TunerError.self) { try HostFacts.gather(from: fixture.root) }
        #expect(error?.description.contains("proc/meminfo is absent") == true)
        #expect(error?.description.contains("--memory") == true)
    }

    @Test("a malformed sysctl value names the file and what was found")
    func malformedSysctl() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        try "lots\n".write(toFile: fixture.path("proc/sys/net/netfilter/nf_conntrack_max"), atomically: true, encoding: .utf8)
        let error = #expect(throws: TunerError.self) { try HostFacts.gather(from: fixture.root) }
        #expect(error?.description.contains("nf_conntrack_max: expected an integer, found \"lots\"") == true)
    }

    @Test("the live host: nf_conntrack built in, slab size from the kernel", .enabled(if: TestHost.isRoot && TestHost.hasConntrack))
    func liveHost() throws {
        let facts = try HostFacts.gather(from: .live)
        #expect(facts.memoryBytes > 0)
        #expect(facts.cpus == ProcessInfo.processInfo.activeProcessorCount)
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(facts.kernelRelease == release)
        #expect(facts.entryBytesSource != .fallback)
        #expect(facts.current[.max] != nil && facts.current[.hashsize] != nil)
        #expect(facts.pageSizeBytes == Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    @Test("a path with .. cannot leave the root")
    func pathEscape() throws {
        let root = SystemRoot(base: "/srv/image")
        #expect(try root.path("/proc/meminfo") == "/srv/image/proc/meminfo")
        #expect(throws: TunerError.pathEscapesRoot(path: "/../../etc/shadow", root: "/srv/image")) {
            try root.path("/../../etc/shadow")
        }
    }

    @Test("CPU lists", arguments: [("0", 1), ("0-3", 4), ("0-3,8,10-11", 7), ("0-1\n", 2)])
    func cpuLists(text: String, count: Int) {
        #expect(CPUList.count(text) == count)
    }

    @Test("malformed CPU lists are rejected", arguments: ["", "a-b", "3-1", "1-2-3"])
    func badCPULists(text: String) {
        #expect(CPUList.count(text) == nil)
    }
}
