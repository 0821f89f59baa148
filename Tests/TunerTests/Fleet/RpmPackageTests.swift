import Foundation
import TestSupport
import Testing

/// contrib/rpm/cttune.spec, built with Debian's rpmbuild from the binary and
/// man page `make deb` already built (`--with prebuilt`), then inspected with
/// rpm and unpacked.
@Suite("RPM package")
struct RpmPackageTests {
    @Test(
        "rpmbuild builds the spec; the package requires libkmod, keeps /etc/sysconfig/cttune as config, and its units read it",
        .enabled(if: Fleet.has("rpmbuild") && Fleet.has("rpm2cpio"), "needs rpm (scripts/install-deps.sh test)"))
    func buildAndInspect() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: TestPaths.package.appendingPathComponent(".build/release/cttune").path),
            "no release binary: \(Fleet.preparedBy)")
        try #require(FileManager.default.fileExists(atPath: Fleet.manPage), "no generated man page: \(Fleet.preparedBy)")
        let top = try TestPaths.temporaryDirectory("cttune-rpm")
        defer { try? FileManager.default.removeItem(at: top) }
        // --nodeps: Debian's rpm database knows none of the dpkg-installed
        // build dependencies. gzip -1: the payload's compression is not under test.
        let built = try Shell.run([
            "sh", "-c",
            "cd \"$1\" && rpmbuild -bb --nodeps --build-in-place --with prebuilt --define \"_topdir $2\" --define '_binary_payload w1.gzdio' contrib/rpm/cttune.spec",
            "sh", TestPaths.package.path, top.path,
        ])
        #expect(built.status == 0, "\(built.stderr.suffix(2000))")
        let rpms = (FileManager.default.enumerator(atPath: top.appendingPathComponent("RPMS").path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".rpm") }
        let rpm = top.appendingPathComponent("RPMS").appendingPathComponent(try #require(rpms.first, "\(built.stdout.suffix(500))")).path

        // The spec's Version follows the binary's, as debian/changelog does.
        let version = try Shell.check(["rpm", "-qp", "--queryformat", "%{VERSION}", rpm])
        let binaryVersion = try Shell.check([TestPaths.package.appendingPathComponent(".build/release/cttune").path, "--version"])
        #expect(version == binaryVersion.trimmingCharacters(in: .whitespacesAndNewlines))
        let license = try Shell.check(["rpm", "-qp", "--queryformat", "%{LICENSE}", rpm])
        #expect(license.hasPrefix("Apache-2.0"), "\(license)")
        let requires = try Shell.check(["rpm", "-qp", "--requires", rpm])
        #expect(requires.contains("libkmod.so.2()(64bit)"), "\(requires)")
        #expect(!requires.contains("libswift"), "the Swift runtime is linked in")
        let config = try Shell.check(["rpm", "-qp", "--configfiles", rpm]).split(separator: "\n").sorted()
        #expect(config == ["/etc/cttune/profiles/README", "/etc/sysconfig/cttune"])
        let files = try Shell.check(["rpm", "-qpl", rpm])
        for path in [
            "/usr/bin/cttune", "/usr/lib/systemd/system/cttune-apply.service", "/usr/lib/tmpfiles.d/cttune.conf",
            "/usr/share/cttune/profiles/web-frontend.yaml", "/usr/share/cttune/prometheus/cttune.rules.yml",
            "/usr/share/licenses/cttune-\(version)/NOTICE",
        ] {
            #expect(files.contains(path + "\n"), "\(path)")
        }
        let scripts = try Shell.check(["rpm", "-qp", "--scripts", rpm])
        #expect(scripts.contains("/usr/bin/cttune rollback --all"))
        #expect(scripts.contains("rm -rf \"$path\""))

        // The units read /etc/sysconfig/cttune, not Debian's /etc/default/cttune.
        let unpacked = top.appendingPathComponent("unpacked")
        try FileManager.default.createDirectory(at: unpacked, withIntermediateDirectories: true)
        let extracted = try Shell.run(["sh", "-c", "cd \"$1\" && rpm2cpio \"$2\" | cpio -idm --quiet", "sh", unpacked.path, rpm])
        #expect(extracted.status == 0, "\(extracted.stderr)")
        for service in ["cttune-apply.service", "cttune-status.service"] {
            let unit = try String(contentsOf: unpacked.appendingPathComponent("usr/lib/systemd/system/\(service)"), encoding: .utf8)
            #expect(unit.contains("\nEnvironmentFile=-/etc/sysconfig/cttune\n"), "\(service)")
            #expect(!unit.contains("/etc/default/cttune"), "\(service)")
            #expect(unit.contains("\nExecStart=/usr/bin/cttune "), "\(service)")
        }
        let sysconfig = try String(contentsOf: unpacked.appendingPathComponent("etc/sysconfig/cttune"), encoding: .utf8)
        #expect(sysconfig.split(separator: "\n").allSatisfy { $0.hasPrefix("#") })
    }
}
