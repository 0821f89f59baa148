import Foundation
import Testing

/// The package `make deb` builds: its control data, its files, lintian, and
/// the packaged binary running outside the source tree.
@Suite("Debian package")
struct DebianPackageTests {
    @Test(
        "the package depends on libkmod2, carries the binary, profiles, units, man page and completions, and has no lintian errors or warnings"
    )
    func controlContentsAndLintian() throws {
        let package = try Fleet.debianPackage()
        let control = try Shell.check(["dpkg-deb", "--field", package, "Package", "Architecture", "Depends", "Section"])
        let fields = Dictionary(
            uniqueKeysWithValues: control.split(separator: "\n").map {
                let parts = $0.split(separator: ":", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
            })
        #expect(fields["Package"] == "cttune")
        #expect(
            fields["Architecture"] == (try Shell.check(["dpkg", "--print-architecture"])).trimmingCharacters(in: .whitespacesAndNewlines))
        let depends = fields["Depends", default: ""].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(depends.contains { $0.hasPrefix("libkmod2") }, "\(depends)")
        #expect(!depends.contains { $0.contains("swift") }, "the Swift runtime is linked in: \(depends)")

        let listing = try Shell.check(["dpkg-deb", "--contents", package])
        let paths = Set(listing.split(separator: "\n").compactMap { $0.split(separator: " ").last.map { String($0.dropFirst()) } })
        let expected =
            [
                "/usr/bin/cttune",
                "/lib/systemd/system/cttune-apply.service", "/lib/systemd/system/cttune-status.service",
                "/lib/systemd/system/cttune-status.timer",
                "/usr/share/man/man1/cttune.1.gz",
                "/usr/share/bash-completion/completions/cttune", "/usr/share/zsh/vendor-completions/_cttune",
                "/usr/share/fish/vendor_completions.d/cttune.fish",
                "/usr/share/doc/cttune/copyright", "/usr/share/doc/cttune/changelog.gz",
            ]
            + ["database", "ddos-edge", "default", "kubernetes-node", "nat-gateway", "stateless", "web-frontend"]
            .map { "/usr/share/cttune/profiles/\($0).yaml" }
        #expect(Set(expected).subtracting(paths).isEmpty, "missing: \(Set(expected).subtracting(paths).sorted())")
        #expect(listing.split(separator: "\n").allSatisfy { $0.contains(" root/root ") })

        try #require(Fleet.has("lintian"), "lintian is installed by scripts/install-deps.sh test")
        let lintian = try Shell.run(["lintian", "--fail-on", "error,warning", package])
        #expect(lintian.status == 0, "\(lintian.stdout)")
        let findings = lintian.stdout.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") }
        #expect(findings.isEmpty, "\(findings)")
    }

    @Test("the packaged binary needs no Swift runtime, plans from its own /usr/share/cttune/profiles, and its units run /usr/bin/cttune")
    func packagedBinaryRunsOutsideTheSourceTree() throws {
        let package = try Fleet.debianPackage()
        let unpacked = try TestPaths.temporaryDirectory("cttune-deb")
        defer { try? FileManager.default.removeItem(at: unpacked) }
        try Shell.check(["dpkg-deb", "-x", package, unpacked.path])
        let binary = unpacked.appendingPathComponent("usr/bin/cttune").path

        let dynamic = try Shell.check(["readelf", "-d", binary])
        let needed = dynamic.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(needed.contains { $0.contains("libkmod.so.2") })
        #expect(!needed.contains { $0.contains("libswift") || $0.contains("Foundation") }, "\(needed)")
        #expect(!dynamic.contains("RUNPATH") && !dynamic.contains("RPATH"), "no $ORIGIN search path in a packaged binary")

        // A profile only the package has: found in the share directory beside the binary.
        let shared = unpacked.appendingPathComponent("usr/share/cttune/profiles")
        try "extends: web-frontend\ndescription: shipped with the package\n"
            .write(to: shared.appendingPathComponent("packaged-probe.yaml"), atomically: true, encoding: .utf8)
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let plan = try Shell.run([binary, "plan", "--profile", "packaged-probe", "--format", "json", "--root", tree.path])
        #expect(plan.status == 0, "\(plan.stderr)")
        let json = try PrintedJSON(plan)
        #expect(json.object["profile"] as? String == "packaged-probe")
        #expect(json.planned("net.netfilter.nf_conntrack_max") != nil)

        let unit = try String(contentsOf: unpacked.appendingPathComponent("lib/systemd/system/cttune-status.service"), encoding: .utf8)
        #expect(
            unit.contains("\nExecStart=/usr/bin/cttune status --textfile ${CTTUNE_TEXTFILE} --quiet --census-every 15 --all-namespaces\n"))
    }
}
