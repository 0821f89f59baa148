import CRootPath
import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// A scratch tree for `--root` path resolution, with a directory beside it
/// standing for the rest of the system.
private struct ResolverScene {
    let url: URL
    var tree: URL { url.appendingPathComponent("tree") }
    var outside: URL { url.appendingPathComponent("outside") }
    var root: SystemRoot { SystemRoot(base: FilePath(tree.path)) }

    init() throws {
        url = try TestPaths.temporaryDirectory("cttune-resolver")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try "outside\n".write(to: outside.appendingPathComponent("secret"), atomically: false, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    func write(_ relative: String, _ text: String) throws {
        let file = tree.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: false, encoding: .utf8)
    }

    func link(_ relative: String, to target: String) throws {
        let file = tree.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: file.path, withDestinationPath: target)
    }

    /// Reads `path` through the C resolver: openat2, or the component walk.
    func read(_ path: String, walking: Bool) -> Result<String, Errno> {
        let rootFD = open(tree.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(rootFD) }
        let fd =
            walking
            ? CRootPath_openWalking(rootFD, path, O_RDONLY | O_CLOEXEC, 0) : CRootPath_open(rootFD, path, O_RDONLY | O_CLOEXEC, 0)
        guard fd >= 0 else { return .failure(Errno(rawValue: errno)) }
        let descriptor = FileDescriptor(rawValue: fd)
        defer { try? descriptor.close() }
        return FileIO.readAll(descriptor, limit: 1 << 20).mapError { _ in Errno.ioError }
    }
}

@Suite("--root resolves every path as if chrooted into the tree")
struct RootResolverTests {
    @Test("links that stay inside the tree are followed, with openat2 and with the component walk", arguments: [false, true])
    func insideLinksWork(walking: Bool) throws {
        let scene = try ResolverScene()
        defer { scene.remove() }
        // A merged-/usr tree, relative and absolute spellings.
        try scene.write("usr/lib/modules/6.1.0/modules.dep", "kernel/a.ko:\n")
        try scene.link("lib", to: "usr/lib")
        try scene.link("lib64", to: "/usr/lib")
        // Debian's sysctl.d link to the old single file.
        try scene.write("etc/sysctl.conf", "net.ipv4.ip_forward=1\n")
        try scene.link("etc/sysctl.d/99-sysctl.conf", to: "../sysctl.conf")
        #expect(try scene.read("/lib/modules/6.1.0/modules.dep", walking: walking).get() == "kernel/a.ko:\n")
        #expect(try scene.read("lib64/modules/6.1.0/modules.dep", walking: walking).get() == "kernel/a.ko:\n")
        #expect(try scene.read("/etc/sysctl.d/99-sysctl.conf", walking: walking).get() == "net.ipv4.ip_forward=1\n")
        #expect(try scene.root.contents(of: "/lib/modules/6.1.0/modules.dep") == "kernel/a.ko:\n")
        #expect(try scene.root.contents(of: "/etc/sysctl.d/99-sysctl.conf") == "net.ipv4.ip_forward=1\n")
    }

    @Test(
        "links that would leave the tree resolve inside it (absent, or a loop), never to the outside file; cttune refuses them naming the link",
        arguments: [false, true])
    func outsideLinksStayInside(walking: Bool) throws {
        let scene = try ResolverScene()
        defer { scene.remove() }
        try scene.link("etc/absolute", to: scene.outside.appendingPathComponent("secret").path)
        try scene.link("etc/dotdot", to: "../../../../../../../../outside/secret")
        try scene.link("etc/up", to: "../../..")
        try scene.link("proc", to: "/proc")
        #expect(scene.read("/etc/absolute", walking: walking) == .failure(.noSuchFileOrDirectory))
        #expect(scene.read("/etc/dotdot", walking: walking) == .failure(.noSuchFileOrDirectory))
        #expect(scene.read("/etc/up/outside/secret", walking: walking) == .failure(.noSuchFileOrDirectory))
        #expect(scene.read("/proc/meminfo", walking: walking) == .failure(.tooManySymbolicLinkLevels))
        #expect(throws: TunerError.pathEscapesRoot(path: scene.tree.path + "/etc/absolute", root: scene.tree.path)) {
            try scene.root.contents(of: "/etc/absolute")
        }
        #expect(throws: TunerError.self) { try scene.root.contents(of: "/proc/meminfo") }
        // The running system is read as usual.
        #expect(try SystemRoot.live.contents(of: "/proc/meminfo")?.contains("MemTotal:") == true)
    }

    @Test("writes follow inside links and never reach outside: the lock, a sysctl.d file, a setting")
    func writesStayInside() throws {
        let scene = try ResolverScene()
        defer { scene.remove() }
        try FileManager.default.createDirectory(at: scene.tree.appendingPathComponent("srv/sysctl"), withIntermediateDirectories: true)
        try scene.link("etc/sysctl.d", to: "/srv/sysctl")
        #expect(try AtomicFile.write("x = 1\n", to: "/etc/sysctl.d/90-cttune.conf", under: scene.root) == .created)
        #expect(try String(contentsOf: scene.tree.appendingPathComponent("srv/sysctl/90-cttune.conf"), encoding: .utf8) == "x = 1\n")

        try scene.link("etc/modprobe.d", to: scene.outside.path)
        #expect(throws: TunerError.pathEscapesRoot(path: scene.tree.path + "/etc/modprobe.d", root: scene.tree.path)) {
            try AtomicFile.write("blacklist x\n", to: "/etc/modprobe.d/cttune.conf", under: scene.root)
        }
        try scene.link("run", to: "/proc/self/fd")
        #expect(throws: TunerError.self) { _ = try ApplyLock(root: scene.root, waitSeconds: 0) }

        try scene.link("proc", to: "/proc")
        #expect(throws: TunerError.self) {
            try SettingWriter.write(
                1, key: "net.netfilter.nf_conntrack_max", to: KernelPaths.sysctl("net.netfilter.nf_conntrack_max"), under: scene.root)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scene.outside.path) == ["secret"])
    }

    @Test("a FIFO, a device or an oversized file is refused without blocking")
    func nonRegularFilesAreRefused() throws {
        let scene = try ResolverScene()
        defer { scene.remove() }
        try FileManager.default.createDirectory(at: scene.tree.appendingPathComponent("proc"), withIntermediateDirectories: true)
        #expect(mkfifo(scene.tree.appendingPathComponent("proc/meminfo").path, 0o644) == 0)
        #expect(throws: TunerError.notARegularFile(path: scene.tree.path + "/proc/meminfo", kind: "a named pipe (FIFO)")) {
            try scene.root.contents(of: "/proc/meminfo")
        }
        #expect(throws: TunerError.notARegularFile(path: "/dev/zero", kind: "a character device")) {
            try SystemRoot.live.contents(of: "/dev/zero")
        }
        try scene.write("proc/sys/kernel/osrelease", String(repeating: "6", count: 5000))
        #expect(throws: TunerError.fileTooLarge(path: scene.tree.path + "/proc/sys/kernel/osrelease", limitBytes: ReadLimit.kernelValue)) {
            try scene.root.contents(of: KernelPaths.osRelease, limit: ReadLimit.kernelValue)
        }
    }
}
