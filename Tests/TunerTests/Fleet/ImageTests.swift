import Foundation
import TestSupport
import Testing

/// The OCI image `make image` writes (scripts/build-image.sh), unpacked the
/// way a runtime unpacks it; its commands run in a chroot of that root.
@Suite(
    "make image: the package in a minimal Debian root, as an OCI archive whose commands run",
    .serialized, .enabled(if: TestHost.isRoot, "needs root to unpack the image's files with their owners and to chroot"))
struct ImageTests {
    static func image() throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Fleet.generated.path)) ?? []
        let name = try #require(
            names.filter { $0.hasPrefix("cttune-image_") && $0.hasSuffix(".oci.tar") }.sorted().last,
            "no cttune-image_*.oci.tar in .build/fleet: built by `make image` (make test runs it)")
        return Fleet.generated.appendingPathComponent(name).path
    }

    static func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// The image's layout unpacked, its digests checked, and its one layer extracted to `rootfs`.
    static func unpack(into directory: URL) throws -> URL {
        let layout = directory.appendingPathComponent("layout")
        try FileManager.default.createDirectory(at: layout, withIntermediateDirectories: true)
        try Shell.check(["tar", "-xf", try image(), "-C", layout.path])
        func blob(_ digest: String) -> String { layout.appendingPathComponent("blobs/sha256/" + digest.dropFirst("sha256:".count)).path }
        func sha256(_ path: String) throws -> String { "sha256:" + (try Shell.check(["sha256sum", path]).prefix(64)) }
        let index = try json(layout.appendingPathComponent("index.json").path)
        let manifestDigest = try #require((index["manifests"] as? [[String: Any]])?.first?["digest"] as? String)
        #expect(try sha256(blob(manifestDigest)) == manifestDigest)
        let manifest = try json(blob(manifestDigest))
        let configDigest = try #require((manifest["config"] as? [String: Any])?["digest"] as? String)
        #expect(try sha256(blob(configDigest)) == configDigest)
        let layers = try #require(manifest["layers"] as? [[String: Any]])
        #expect(layers.count == 1)
        let layerDigest = try #require(layers.first?["digest"] as? String)
        #expect(try sha256(blob(layerDigest)) == layerDigest)
        let config = try json(blob(configDigest))
        let diffIDs = try #require((config["rootfs"] as? [String: Any])?["diff_ids"] as? [String])
        let uncompressed = directory.appendingPathComponent("layer.tar").path
        try Shell.check(["sh", "-c", "gzip -dc \"$0\" > \"$1\"", blob(layerDigest), uncompressed])
        #expect(diffIDs == [try sha256(uncompressed)], "the config's diff_id is the uncompressed layer's digest")
        let rootfs = directory.appendingPathComponent("rootfs")
        try FileManager.default.createDirectory(at: rootfs, withIntermediateDirectories: true)
        try Shell.check(["tar", "-xpf", uncompressed, "-C", rootfs.path])
        return rootfs
    }

    /// A shell command run in a chroot of the image's root, with this host's
    /// /proc and /sys mounted as a runtime mounts them (the Swift runtime
    /// reads its arguments from /proc/self/cmdline), in a private mount namespace.
    static func inImage(_ rootfs: URL, _ command: String) throws -> Shell.Result {
        try Shell.run([
            "unshare", "--mount", "--fork", "sh", "-c",
            "mount --make-rprivate / && mount -t proc proc \"$0/proc\" && mount --rbind /sys \"$0/sys\" && exec chroot \"$0\" sh -c \"$1\"",
            rootfs.path, command,
        ])
    }

    @Test("the archive's digests hold; the root has cttune, its rules and a shell, and no package lists or documentation")
    func layout() throws {
        let directory = try TestPaths.temporaryDirectory("cttune-image")
        defer { try? FileManager.default.removeItem(at: directory) }
        let rootfs = try Self.unpack(into: directory)
        for path in [
            "usr/bin/cttune", "usr/share/cttune/prometheus/cttune.rules.yml", "usr/share/cttune/profiles/kubernetes-node.yaml", "bin/sh",
        ] {
            #expect(FileManager.default.fileExists(atPath: rootfs.appendingPathComponent(path).path), "\(path)")
        }
        let lists = (try? FileManager.default.contentsOfDirectory(atPath: rootfs.appendingPathComponent("var/lib/apt/lists").path)) ?? []
        #expect(lists.filter { $0.hasSuffix("Packages") }.isEmpty, "apt lists removed")
        #expect(!FileManager.default.fileExists(atPath: rootfs.appendingPathComponent("usr/share/man/man1/cttune.1.gz").path))
        let size = try FileManager.default.attributesOfItem(atPath: try Self.image())[.size] as? Int ?? 0
        print("image: \(try Self.image()): \(size / 1_048_576) MiB")
    }

    @Test("the DaemonSet's commands run inside the image: apply with the ConfigMap's profile on a --root fixture, status on this kernel")
    func commandsRunInTheImage() throws {
        let directory = try TestPaths.temporaryDirectory("cttune-image")
        defer { try? FileManager.default.removeItem(at: directory) }
        let rootfs = try Self.unpack(into: directory)
        // The ConfigMap's profile where the DaemonSet mounts it, and a host fixture as --root.
        let configMap = try String(
            contentsOf: TestPaths.package.appendingPathComponent("contrib/kubernetes/base/configmap.yaml"), encoding: .utf8)
        let profile = try #require(configMap.components(separatedBy: "profile.yaml: |\n").last)
            .split(separator: "\n").map { String($0.dropFirst(4)) }.joined(separator: "\n")
        let profileDirectory = rootfs.appendingPathComponent("etc/cttune/profile")
        try FileManager.default.createDirectory(at: profileDirectory, withIntermediateDirectories: true)
        try profile.write(to: profileDirectory.appendingPathComponent("profile.yaml"), atomically: true, encoding: .utf8)
        try Shell.check([
            "cp", "-a", TestPaths.fixtures.appendingPathComponent("hosts/small-vm").path, rootfs.appendingPathComponent("fixture").path,
        ])
        // The init container's command, on the fixture (a small VM: sized as a bigger node so the plan fits).
        let apply = try Self.inImage(
            rootfs, "cttune apply --profile /etc/cttune/profile/profile.yaml --root /fixture --memory 16G --cpus 4 --format json")
        #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
        #expect(apply.stdout.contains("\"command\": \"apply\""), "\(apply.stdout.prefix(300))")

        // The status container's command, one round, with /proc and /sys of this host.
        let daemonSet = try String(
            contentsOf: TestPaths.package.appendingPathComponent("contrib/kubernetes/base/daemonset.yaml"), encoding: .utf8)
        let status = try #require(
            daemonSet.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("cttune status ") })
        try FileManager.default.createDirectory(
            at: rootfs.appendingPathComponent("var/lib/prometheus/node-exporter"), withIntermediateDirectories: true)
        let result = try Self.inImage(rootfs, status)
        #expect([0, 1, 2].contains(result.status), "\(result.stdout)\(result.stderr)")
        let textfile = try String(
            contentsOf: rootfs.appendingPathComponent("var/lib/prometheus/node-exporter/cttune.prom"), encoding: .utf8)
        #expect(textfile.contains("# TYPE cttune_status gauge") && textfile.contains("cttune_conntrack_namespaces "))
    }
}
