import Foundation
import TestSupport
import Testing

/// The image-builder flow: `apply --persist-only --root IMAGE` on a tree laid
/// out as an image (no /proc, no /sys) holding the real Debian module tree.
@Suite("image builds: --kernel and the boot-time files of a module kernel")
struct ImageBuildTests {
    /// An image tree: lib/modules/VERSION is the cached Debian tree
    /// (built-in variant with `builtIn`), an empty etc, no /proc or /sys.
    static func image(kernels: [(name: String, builtIn: Bool)] = [(ModuleTrees.version!, false)]) throws -> ApplyFixtureTree {
        let tree = try ApplyFixtureTree.empty()
        try FileManager.default.createDirectory(atPath: tree.file("lib/modules"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree.file("etc"), withIntermediateDirectories: true)
        for kernel in kernels {
            let source = (kernel.builtIn ? ModuleTrees.builtinConntrack : ModuleTrees.full).appendingPathComponent(
                "lib/modules/\(ModuleTrees.version!)")
            // A copy of hard links, not a symbolic link: --root resolves every
            // path inside the tree, so a link to the cache would lead nowhere.
            try Shell.check(["cp", "-al", source.path, tree.file("lib/modules/\(kernel.name)")])
        }
        return tree
    }

    static let sizing = ["--memory", "8G", "--cpus", "4", "--format", "json"]

    @Test(
        "on an image without /proc, apply --persist-only takes the tree's only kernel, sees nf_conntrack as a loadable module and writes sysctl.d, modprobe.d options and modules-load.d; real modprobe -n -v -d passes that hashsize",
        .enabled(if: ModuleTrees.available && ModuleTrees.hasModprobe, ModuleTrees.missingHint))
    func moduleKernelGetsThreeFiles() throws {
        let image = try Self.image()
        defer { image.remove() }
        let result = try image.cttune(["apply", "--persist-only"] + Self.sizing)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try PrintedJSON(result)
        let facts = try #require(json.object["facts"] as? [String: Any])
        #expect(facts["kernel"] as? String == ModuleTrees.version)
        #expect(facts["conntrack"] as? String == "not-loaded")
        #expect(json.fileActions.values.sorted() == ["created", "created", "created"])
        let hashsize = try #require(json.planned("nf_conntrack.hashsize"))
        #expect(image.read("etc/modules-load.d/cttune.conf")?.hasSuffix("\nnf_conntrack\n") == true)
        #expect(image.read("etc/sysctl.d/90-cttune.conf")?.contains("net.netfilter.nf_conntrack_max = ") == true)

        let output = try Shell.check([
            "modprobe", "-n", "-v", "-d", image.path, "-S", ModuleTrees.version!, "-C", image.file("etc/modprobe.d"), "nf_conntrack",
        ])
        let insmod = try #require(output.split(separator: "\n").first { $0.contains("/nf_conntrack.ko") })
        #expect(insmod.split(separator: " ").last { $0.hasPrefix("hashsize=") } == "hashsize=\(hashsize)")

        // The image has no buckets sysctl to size the hash at boot, so a sysctl.d line
        // that sets it resizes the table after modprobe's hashsize=, whatever its name.
        try image.write("usr/lib/sysctl.d/10-vendor.conf", "net.netfilter.nf_conntrack_buckets = 16384\n")
        let planned = try PrintedJSON(try image.cttune(["plan"] + Self.sizing))
        let override = try #require((planned.setting("nf_conntrack.hashsize")["overridden_by"] as? [[String: Any]])?.first)
        #expect(override["path"] as? String == image.file("usr/lib/sysctl.d/10-vendor.conf") && override["value"] as? Int == 16384)
        try FileManager.default.removeItem(atPath: image.file("usr/lib/sysctl.d/10-vendor.conf"))

        let again = try image.cttune(["apply", "--persist-only", "--memory", "8G", "--cpus", "4"])
        #expect(again.status == 0)
        #expect(
            again.stdout.hasSuffix(
                "nothing to change: the boot-time files already match the plan (--persist-only: kernel settings not written)\n"))
    }

    @Test(
        "with several kernels in the tree plan and apply refuse without --kernel, naming them; --kernel picks one, and a built-in nf_conntrack gets no module files",
        .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
    func severalKernels() throws {
        let image = try Self.image(kernels: [(ModuleTrees.version!, false), ("6.1.0-99-builtin", true)])
        defer { image.remove() }
        for command in ["plan", "apply"] {
            let refused = try image.cttune([command, "--memory", "8G", "--cpus", "4"])
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains("6.1.0-99-builtin") && refused.stderr.contains(ModuleTrees.version!)
                    && refused.stderr.contains("--kernel"), "\(refused.stderr)")
        }
        #expect(image.journalIDs().isEmpty && !image.exists("etc/sysctl.d"))

        let builtIn = try image.cttune(["apply", "--persist-only", "--kernel", "6.1.0-99-builtin"] + Self.sizing)
        #expect(builtIn.status == 0, "\(builtIn.stderr)")
        let json = try PrintedJSON(builtIn)
        #expect((json.object["facts"] as? [String: Any])?["conntrack"] as? String == "built-in")
        #expect(Array(json.fileActions.keys) == [image.file("etc/sysctl.d/90-cttune.conf")])
        #expect((json.object["notes"] as? [String])?.contains { $0.contains("nf_conntrack.hashsize=") } == true)
        #expect(image.read("etc/sysctl.d/90-cttune.conf")?.contains("--kernel 6.1.0-99-builtin") == true)

        let module = try image.cttune(["plan", "--kernel", ModuleTrees.version!] + Self.sizing)
        #expect((try PrintedJSON(module).object["facts"] as? [String: Any])?["conntrack"] as? String == "not-loaded")
    }

    @Test(
        "cttune's blacklist in the tree: no modules-load.d or options file, whose boot-time load would fail; a note says why",
        .enabled(if: ModuleTrees.available, ModuleTrees.missingHint))
    func blacklistStopsModuleFiles() throws {
        let image = try Self.image()
        defer { image.remove() }
        try image.write(
            "etc/modprobe.d/cttune-blacklist.conf",
            "# Generated by cttune blacklist: keeps …\nblacklist nf_conntrack\ninstall nf_conntrack /bin/false\n")
        let result = try image.cttune(["apply", "--persist-only"] + Self.sizing)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!image.exists("etc/modules-load.d/cttune.conf") && !image.exists("etc/modprobe.d/cttune.conf"))
        #expect(image.exists("etc/sysctl.d/90-cttune.conf"))
        #expect((try PrintedJSON(result).object["notes"] as? [String])?.contains { $0.contains("cttune-blacklist.conf") } == true)
    }

    @Test("a boot apply where nf_conntrack is not loaded says which settings were skipped and why, not \"nothing to change\"")
    func allSkippedSaysWhat() throws {
        let tree = try ApplyFixtureTree.empty()
        defer { tree.remove() }
        try tree.write("proc/meminfo", "MemTotal:        8388608 kB\n")
        try tree.write("sys/devices/system/cpu/online", "0-3\n")
        try tree.write("proc/sys/kernel/osrelease", "6.1.0-test\n")
        let result = try tree.cttune(["apply", "--runtime-only"])
        #expect(result.status == 1)
        let last = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(
            last.hasPrefix("nothing changed: 13 settings that differ from the plan were skipped (nf_conntrack_max, hashsize,"), "\(last)")
        #expect(last.contains("nf_conntrack is not loaded"))
        #expect(!result.stdout.contains("nothing to change"))
    }
}
