import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

@Suite("libkmod context")
struct KmodContextTests {
    @Test("a context opens a module directory under the root and reports it back")
    func opensDirectoryUnderRoot() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("lib/modules/6.1.0-test"), withIntermediateDirectories: true)
        let context = try KmodContext(root: SystemRoot(base: .init(root.path)), release: "6.1.0-test")
        #expect(context.resolvedDirectory == root.appendingPathComponent("lib/modules/6.1.0-test").path)
    }

    @Test(
        "a name the tree does not have gets no path, no dependencies and no softdeps",
        .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
    func unknownModule() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let context = try KmodContext(root: SystemRoot(base: .init(root.path)), release: ModuleTrees.version!)
        let entry = try context.module(named: "ip_conntrack")
        #expect(entry == ModuleIndexEntry(name: "ip_conntrack", path: nil))
        #expect(try context.module(named: "nf_conntrack").path?.hasSuffix("/kernel/net/netfilter/nf_conntrack.ko") == true)
        #expect(context.blacklistedNames().isEmpty)
    }

    @Test(
        "loading through libkmod reaches the kernel: without module support finit_module answers ENOSYS",
        .enabled(if: ModuleTrees.available, ModuleTrees.missingHint),
        .enabled(
            if: !FileManager.default.fileExists(atPath: "/proc/modules") && TestHost.isRoot,
            "only on a kernel without loadable modules, where nothing can really be loaded"))
    func realProbeOnKernelWithoutModules() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let context = try KmodContext(root: SystemRoot(base: .init(root.path)), release: ModuleTrees.version!)
        #expect(try context.load(moduleNamed: "nf_defrag_ipv4") == .noFunction)
    }
}
