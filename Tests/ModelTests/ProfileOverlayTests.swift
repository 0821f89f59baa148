import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

@Suite("A local profile may extend the profile it shadows")
struct ProfileOverlayTests {
    @Test("a local default.yaml with `extends: default` extends the built-in default, not itself")
    func localDefaultExtendsBuiltIn() throws {
        let directory = try TestPaths.temporaryDirectory("cttune-overlay")
        defer { try? FileManager.default.removeItem(at: directory) }
        try "extends: default\nheadroom: 2\n".write(
            to: directory.appendingPathComponent("default.yaml"), atomically: false, encoding: .utf8)
        let profile = try ProfileCatalog(searchDirectories: [directory.path]).load("default")
        #expect(profile.headroom == 2)
        #expect(profile.sources == [directory.path + "/default.yaml", "built-in:default"])
        let builtIn = try ProfileCatalog(searchDirectories: []).load("default")
        #expect(profile.tcp == builtIn.tcp)
    }

    @Test("two directories shadowing the same name chain in search order; a real loop is still a loop")
    func chainsAndLoops() throws {
        let first = try TestPaths.temporaryDirectory("cttune-overlay"), second = try TestPaths.temporaryDirectory("cttune-overlay")
        defer { [first, second].forEach { try? FileManager.default.removeItem(at: $0) } }
        try "extends: web\nheadroom: 3\n".write(to: first.appendingPathComponent("web.yaml"), atomically: false, encoding: .utf8)
        try "extends: web\nburst_factor: 4\n".write(to: second.appendingPathComponent("web.yaml"), atomically: false, encoding: .utf8)
        try "extends: default\n".write(to: second.appendingPathComponent("base.yaml"), atomically: false, encoding: .utf8)
        try "extends: loop-b\n".write(to: first.appendingPathComponent("loop-a.yaml"), atomically: false, encoding: .utf8)
        try "extends: loop-a\n".write(to: first.appendingPathComponent("loop-b.yaml"), atomically: false, encoding: .utf8)
        let catalog = ProfileCatalog(searchDirectories: [first.path, second.path], builtins: ["web": "headroom: 1.5\n", "default": ""])
        let web = try catalog.load("web")
        #expect(web.headroom == 3 && web.burstFactor == 4)
        #expect(web.sources == [first.path + "/web.yaml", second.path + "/web.yaml", "built-in:web"])
        #expect(
            throws: TunerError.profileCycle(chain: [first.path + "/loop-a.yaml", first.path + "/loop-b.yaml", first.path + "/loop-a.yaml"])
        ) {
            try catalog.load("loop-a")
        }
    }
}
