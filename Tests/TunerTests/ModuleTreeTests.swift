import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Runs against a real Debian cloud kernel's module tree; the expected
/// answers come from the real modprobe reading the same tree.
@Suite("module tree read through libkmod", .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
struct ModuleTreeTests {
    @Test(
        "the dependency closure equals what modprobe --show-depends loads for the same tree",
        .enabled(if: ModuleTrees.hasModprobe), arguments: ["nf_nat", "xt_MASQUERADE", "nft_chain_nat", "nf_conntrack"])
    func closureMatchesModprobe(module: String) throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let host = try ModuleHost(root: SystemRoot(base: .init(root.path)), release: ModuleTrees.version)
        let entry = try #require(try host.indexEntry(module))
        let expected = try ModuleTrees.modprobeShowDepends(root: root, module: module)
        #expect(entry.dependenciesInLoadOrder + [module] == expected)
        #expect(host.state(of: module) == .available)
    }

    @Test(
        "nf_conntrack listed in modules.builtin is reported built in, and nf_nat then needs only libcrc32c",
        .enabled(if: ModuleTrees.hasModprobe))
    func builtinVariant() throws {
        let root = ModuleTrees.builtinConntrack
        let host = try ModuleHost(root: SystemRoot(base: .init(root.path)), release: ModuleTrees.version)
        #expect(host.state(of: "nf_conntrack") == .builtIn)
        let inventory = try host.inventory()
        #expect(inventory.modules.first { $0.name == "nf_conntrack" }?.state == .builtIn)
        let natDependencies = try #require(try host.indexEntry("nf_nat")).dependenciesInLoadOrder
        #expect(natDependencies + ["nf_nat"] == (try ModuleTrees.modprobeShowDepends(root: root, module: "nf_nat")))
        #expect(natDependencies == ["libcrc32c"])
    }

    @Test("softdeps come from the tree's modules.softdep and install commands from the tree's own modprobe.d, not the host's")
    func configFromTheTree() throws {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        try "install nf_nat /bin/true\nblacklist nft_ct\nsoftdep nf_conntrack post: nf_conntrack_netlink\n"
            .write(to: root.appendingPathComponent("etc/modprobe.d/site.conf"), atomically: true, encoding: .utf8)
        let host = try ModuleHost(root: SystemRoot(base: .init(root.path)), release: ModuleTrees.version)
        let modules = Dictionary(uniqueKeysWithValues: try host.inventory().modules.map { ($0.name, $0) })
        #expect(modules["nf_nat"]?.installCommand == "/bin/true")
        #expect(modules["nft_ct"]?.blacklisted == true)
        #expect(modules["nf_nat"]?.blacklisted == false)
        #expect(modules["nf_conntrack"]?.softdepsAfter == ["nf_conntrack_netlink"])
    }

    @Test("cttune modules --root prints the family as JSON with states and dependencies")
    func modulesCommandJSON() throws {
        let result = try Shell.run([TestPaths.cttune, "modules", "--root", ModuleTrees.builtinConntrack.path, "--format", "json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["kernel"] as? String == ModuleTrees.version)
        #expect(object["module_support"] as? String == "not-running")
        let modules = try #require(object["modules"] as? [[String: Any]])
        #expect(modules.first?["name"] as? String == "nf_conntrack")
        #expect(modules.first?["state"] as? String == "built-in")
        let masquerade = try #require(modules.first { $0["name"] as? String == "xt_MASQUERADE" })
        #expect(masquerade["state"] as? String == "available")
        #expect(masquerade["dependencies"] as? [String] == ["x_tables", "libcrc32c", "nf_nat"])
    }
}
