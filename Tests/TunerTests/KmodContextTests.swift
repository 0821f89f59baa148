import Foundation
import Testing
@testable import Tuner

@Suite("libkmod context")
struct KmodContextTests {
    @Test("a context opens a module directory under the root and reports it back")
    func opensDirectoryUnderRoot() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("lib/modules/6.1.0-test"), withIntermediateDirectories: true)
        let context = try KmodContext(root: SystemRoot(base: .init(root.path)), release: "6.1.0-test")
        #expect(context.resolvedDirectory == root.appendingPathComponent("lib/modules/6.1.0-test").path)
    }
}
