import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Generated modprobe.d files checked with the real modprobe reading the
/// real Debian tree.
@Suite("blacklist file", .enabled(if: ModuleTrees.available && ModuleTrees.hasModprobe, ModuleTrees.missingHint))
struct BlacklistFileTests {
    static let lister: String = { TestPaths.package.appendingPathComponent(".cache/initramfs-tools/bin").path }()

    func cttune(_ arguments: [String], path extra: String? = nil) throws -> Shell.Result {
        let environment = extra.map { ["PATH": "\($0):" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")] }
        return try Shell.run([TestPaths.cttune] + arguments, environment: environment)
    }

    func withRoot<T>(_ body: (URL) throws -> T) throws -> T {
        let root = try ModuleTrees.scratchRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        return try body(root)
    }

    func dryLoad(_ module: String, root: URL) throws -> String {
        try Shell.check([
            "modprobe", "-d", root.path, "-S", ModuleTrees.version!, "-C", root.appendingPathComponent("etc/modprobe.d").path,
            "-n", "-v", module,
        ])
    }

    @Test("modprobe --showconfig lists a blacklist and an install /bin/false line for every family module of the tree")
    func showconfigListsEveryModule() throws {
        try withRoot { root in
            let result = try cttune(["blacklist", "--root", root.path, "--format", "json"])
            #expect(result.status == 0, "\(result.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let modules = try #require(object["modules"] as? [String])
            let host = try ModuleHost(root: SystemRoot(base: .init(root.path)))
            #expect(modules == ModuleFamily.members(of: host.tree!.moduleNames))
            #expect(modules.starts(with: ["nf_conntrack", "nf_nat"]))
            #expect(!modules.contains { $0.hasPrefix("nf_defrag") }, "defrag is blacklisted only with --include-defrag")
            #expect(modules.contains("nf_conntrack_ftp") && modules.contains("nf_nat_sip"))
            let config = try Shell.check(["modprobe", "-C", root.appendingPathComponent("etc/modprobe.d").path, "--showconfig"])
            let lines = Set(config.split(separator: "\n").map(String.init))
            for module in modules {
                #expect(lines.contains("blacklist \(module)"))
                #expect(lines.contains("install \(module) /bin/false"))
            }
        }
    }

    @Test("with the file, modprobe -n -v nf_nat runs install /bin/false instead of loading nf_conntrack.ko; without it, it loads it")
    func dependencyLoadIsStopped() throws {
        try withRoot { root in
            #expect(try dryLoad("nf_nat", root: root).contains("/nf_conntrack.ko"))
            #expect(try cttune(["blacklist", "--root", root.path]).status == 0)
            let withFile = try dryLoad("nf_nat", root: root)
            #expect(withFile.contains("install /bin/false"))
            #expect(!withFile.contains("nf_conntrack.ko"))
            #expect(!withFile.contains("nf_nat.ko"))
        }
    }

    @Test("a rerun leaves the file unchanged, --remove deletes it, and a second --remove changes nothing")
    func rerunAndRemove() throws {
        try withRoot { root in
            let file = root.appendingPathComponent("etc/modprobe.d/cttune-blacklist.conf").path
            let runs = try [[], [], ["--remove"], ["--remove"]].map { try cttune(["blacklist", "--root", root.path] + $0).stdout }
            #expect(runs[0].contains(": created"))
            #expect(runs[1].contains(": unchanged"))
            #expect(runs[2].contains(": removed"))
            #expect(runs[3].contains(": unchanged"))
            #expect(!FileManager.default.fileExists(atPath: file))
        }
    }

    @Test("--dry-run prints the file and writes nothing")
    func dryRunWritesNothing() throws {
        try withRoot { root in
            let result = try cttune(["blacklist", "--root", root.path, "--dry-run"])
            #expect(result.status == 0)
            #expect(result.stdout.contains("would be created"))
            #expect(result.stdout.contains("install nf_conntrack /bin/false"))
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("etc/modprobe.d/cttune-blacklist.conf").path))
        }
    }

    @Test("the file replaces a symlink instead of writing through it, and --output writes where asked")
    func replacesSymlinkAndHonoursOutput() throws {
        try withRoot { root in
            let outside = root.appendingPathComponent("outside.conf")
            try "keep\n".write(to: outside, atomically: true, encoding: .utf8)
            let file = root.appendingPathComponent("etc/modprobe.d/cttune-blacklist.conf")
            try FileManager.default.createSymbolicLink(at: file, withDestinationURL: outside)
            #expect(try cttune(["blacklist", "--root", root.path]).status == 0)
            #expect(try String(contentsOf: outside, encoding: .utf8) == "keep\n")
            #expect((try FileManager.default.attributesOfItem(atPath: file.path)[.type] as? FileAttributeType) == .typeRegular)

            let chosen = root.appendingPathComponent("chosen/blacklist.conf")
            let host = try ModuleHost(root: SystemRoot(base: .init(root.path)))
            let result = try host.writeBlacklist(output: .init(chosen.path), allKernels: true, dryRun: false)
            #expect(result.action == .created)
            #expect(try String(contentsOf: chosen, encoding: .utf8) == BlacklistFile.contents(for: result.modules))
        }
    }

    @Test("an image's /etc/modprobe.d linking outside the root is refused and nothing is written there")
    func refusesLinkOutOfRoot() throws {
        try withRoot { root in
            let outside = try TestPaths.temporaryDirectory("cttune-outside")
            defer { try? FileManager.default.removeItem(at: outside) }
            let modprobeD = root.appendingPathComponent("etc/modprobe.d")
            try FileManager.default.removeItem(at: modprobeD)
            try FileManager.default.createSymbolicLink(at: modprobeD, withDestinationURL: outside)
            let result = try cttune(["blacklist", "--root", root.path])
            #expect(result.status == 1)
            #expect(result.stderr.contains("/etc/modprobe.d leads outside the root"), "the link is named")
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        }
    }

    @Test("with two kernels under the root, blacklist covers both while modules asks for --kernel")
    func twoKernels() throws {
        let root = try TestPaths.temporaryDirectory("cttune-two-kernels")
        defer { try? FileManager.default.removeItem(at: root) }
        let modules = root.appendingPathComponent("lib/modules")
        try FileManager.default.createDirectory(at: modules, withIntermediateDirectories: true)
        for release in ["6.1.0-1-cloud-amd64", "6.1.0-2-cloud-amd64"] {
            // Hard links: a link out of the --root tree is not followed.
            try Shell.check([
                "cp", "-al", ModuleTrees.full.appendingPathComponent("lib/modules/\(ModuleTrees.version!)").path,
                modules.appendingPathComponent(release).path,
            ])
        }
        let listing = try cttune(["modules", "--root", root.path])
        #expect(listing.status == 1)
        #expect(
            listing.stderr.contains("holds several kernels (6.1.0-1-cloud-amd64, 6.1.0-2-cloud-amd64) — pick one with --kernel VERSION"))
        #expect(try cttune(["modules", "--root", root.path, "--kernel", "6.1.0-2-cloud-amd64"]).status == 0)
        let written = try cttune(["blacklist", "--root", root.path])
        #expect(written.status == 0, "\(written.stderr)")
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("etc/modprobe.d/cttune-blacklist.conf").path))
    }

    @Test("built-in nf_conntrack is left out of the file: a blacklist cannot keep it off")
    func builtinLeftOut() throws {
        let host = try ModuleHost(root: SystemRoot(base: .init(ModuleTrees.builtinConntrack.path)))
        let modules = try host.blacklistCandidates(allKernels: true)
        #expect(!modules.contains("nf_conntrack"))
        #expect(modules.first == "nf_nat")
    }

    struct InitramfsCase: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var osRelease: String
        var imageModules: [String]?
        var forcedModules: String?
        var expectedNeeded: Bool?
        var expectedCommand: String?
    }

    static let initramfsCases = [
        InitramfsCase(
            testDescription: "no initramfs image: no rebuild", osRelease: "ID=debian", imageModules: nil,
            expectedNeeded: false, expectedCommand: nil),
        InitramfsCase(
            testDescription: "Debian image holding nf_conntrack.ko: update-initramfs", osRelease: "ID=debian",
            imageModules: ["nf_conntrack", "nf_defrag_ipv4"], expectedNeeded: true, expectedCommand: "update-initramfs -u -k all"),
        InitramfsCase(
            testDescription: "image without family modules: no rebuild", osRelease: "ID=ubuntu\nID_LIKE=debian",
            imageModules: ["ext4"], expectedNeeded: false, expectedCommand: "update-initramfs -u -k all"),
        InitramfsCase(
            testDescription: "Fedora forcing nf_nat through dracut: dracut", osRelease: "ID=fedora",
            imageModules: ["ext4"], forcedModules: "add_drivers+=\" nf_nat \"", expectedNeeded: true,
            expectedCommand: "dracut -f --regenerate-all"),
    ]

    @Test(
        "the initramfs advice comes from the images lsinitramfs lists and the initramfs configuration",
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: lister + "/lsinitramfs"),
            "no lsinitramfs in .cache/initramfs-tools/bin: run scripts/initramfs-lister.sh (make test does)"),
        arguments: initramfsCases)
    func initramfsAdvice(testCase: InitramfsCase) throws {
        try withRoot { root in
            try testCase.osRelease.write(to: root.appendingPathComponent("etc/os-release"), atomically: true, encoding: .utf8)
            if let forced = testCase.forcedModules {
                try FileManager.default.createDirectory(
                    at: root.appendingPathComponent("etc/dracut.conf.d"), withIntermediateDirectories: true)
                try forced.write(to: root.appendingPathComponent("etc/dracut.conf.d/net.conf"), atomically: true, encoding: .utf8)
            }
            if let modules = testCase.imageModules {
                try makeInitramfs(at: root.appendingPathComponent("boot/initrd.img-\(ModuleTrees.version!)"), modules: modules)
            }
            let result = try cttune(["blacklist", "--root", root.path, "--format", "json"], path: Self.lister)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let advice = try #require(object["initramfs"] as? [String: Any])
            #expect(advice["rebuild_needed"] as? Bool == testCase.expectedNeeded)
            #expect(advice["command"] as? String == testCase.expectedCommand)
        }
    }

    /// A gzip'ed newc cpio holding empty .ko files, as mkinitramfs lays them out.
    func makeInitramfs(at image: URL, modules: [String]) throws {
        let staging = try TestPaths.temporaryDirectory("cttune-initramfs")
        defer { try? FileManager.default.removeItem(at: staging) }
        let directory = staging.appendingPathComponent("usr/lib/modules/\(ModuleTrees.version!)/kernel/net/netfilter")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for module in modules {
            _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("\(module).ko").path, contents: Data())
        }
        try FileManager.default.createDirectory(at: image.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Shell.check(["sh", "-c", "cd \"$1\" && find . | cpio -o -H newc --quiet | gzip > \"$2\"", "sh", staging.path, image.path])
    }
}
