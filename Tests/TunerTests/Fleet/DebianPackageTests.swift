import Foundation
import TestSupport
import Testing

/// The package `make deb` builds from debian/ with dpkg-buildpackage: its
/// control data, files, conffiles and licences, lintian --pedantic, the
/// packaged binary running outside the source tree, and its whole life cycle
/// (install, enable, apply, remove, purge) in a minimal Debian root.
@Suite("Debian package")
struct DebianPackageTests {
    @Test(
        "the package depends on libkmod2, libmnl0 and libyaml-0-2, carries the binary, profiles, units, docs, man page and completions, and lintian --pedantic finds nothing"
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
        for library in ["libkmod2", "libmnl0", "libyaml-0-2"] {
            #expect(depends.contains { $0.hasPrefix(library) }, "\(library): \(depends)")
        }
        #expect(!depends.contains { $0.contains("swift") }, "the Swift runtime is linked in: \(depends)")
        let recommends = try Shell.check(["dpkg-deb", "--field", package, "Recommends"])
        #expect(recommends.contains("nftables") && recommends.contains("iptables") && recommends.contains("iproute2"), "\(recommends)")

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
                "/usr/share/doc/cttune/NOTICE", "/usr/share/doc/cttune/README.md.gz", "/usr/share/doc/cttune/README.Debian",
                "/usr/share/doc/cttune/apply.md.gz", "/usr/lib/tmpfiles.d/cttune.conf",
                "/etc/default/cttune", "/etc/cttune/profiles/README", "/usr/share/cttune/prometheus/cttune.rules.yml",
            ]
            + ["database", "ddos-edge", "default", "kubernetes-node", "nat-gateway", "stateless", "web-frontend"]
            .map { "/usr/share/cttune/profiles/\($0).yaml" }
        #expect(Set(expected).subtracting(paths).isEmpty, "missing: \(Set(expected).subtracting(paths).sorted())")
        #expect(listing.split(separator: "\n").allSatisfy { $0.contains(" root/root ") })

        // Only the profile README in /etc/cttune/profiles: the directory is the operator's.
        #expect(paths.filter { $0.hasPrefix("/etc/cttune/profiles/") && $0 != "/etc/cttune/profiles/" } == ["/etc/cttune/profiles/README"])

        // The .changes covers the .deb and the .buildinfo dpkg-buildpackage wrote; the .dsc the source package.
        try #require(Fleet.has("lintian"), "lintian is installed by scripts/install-deps.sh test")
        let changes = String(package.dropLast(".deb".count)) + ".changes"
        let version = try Shell.check(["dpkg-deb", "--field", package, "Version"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let source = Fleet.generated.appendingPathComponent("cttune_\(version).dsc").path
        #expect(FileManager.default.fileExists(atPath: source), "make deb builds the source package too")
        let lintian = try Shell.run(["lintian", "--pedantic", "--fail-on", "error,warning,pedantic", changes, source])
        #expect(lintian.status == 0, "\(lintian.stdout)\(lintian.stderr)")
        let findings = lintian.stdout.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") || $0.hasPrefix("P:") }
        #expect(findings.isEmpty, "\(findings)")
        // The one override is used (a stale one would be reported as unused).
        #expect(!lintian.stdout.contains("unused-override"), "\(lintian.stdout)")
    }

    @Test("/etc/default/cttune and the profiles README are conffiles, and every variable in the defaults file is commented out")
    func conffiles() throws {
        let package = try Fleet.debianPackage()
        let control = try TestPaths.temporaryDirectory("cttune-deb-control")
        defer { try? FileManager.default.removeItem(at: control) }
        try Shell.check(["dpkg-deb", "-e", package, control.path])
        let conffiles = try String(contentsOf: control.appendingPathComponent("conffiles"), encoding: .utf8)
        #expect(conffiles.split(separator: "\n").sorted() == ["/etc/cttune/profiles/README", "/etc/default/cttune"])

        let unpacked = try TestPaths.temporaryDirectory("cttune-deb")
        defer { try? FileManager.default.removeItem(at: unpacked) }
        try Shell.check(["dpkg-deb", "-x", package, unpacked.path])
        let defaults = try String(contentsOf: unpacked.appendingPathComponent("etc/default/cttune"), encoding: .utf8)
        let lines = defaults.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.allSatisfy { $0.hasPrefix("#") }, "\(lines.filter { !$0.hasPrefix("#") })")
        for variable in ["CTTUNE_PROFILE", "CTTUNE_ARGS", "CTTUNE_TEXTFILE"] {
            #expect(lines.contains { $0.hasPrefix("#\(variable)=") }, "\(variable)")
        }
        // Sourced as the units' EnvironmentFile would be, it sets nothing.
        let sourced = try Shell.run([
            "sh", "-c", ". \"$1\"; env | grep ^CTTUNE_ || true", "sh", unpacked.appendingPathComponent("etc/default/cttune").path,
        ])
        #expect(sourced.status == 0 && sourced.stdout.isEmpty, "\(sourced)")

        for script in ["postinst", "prerm", "postrm"] {
            let path = control.appendingPathComponent(script).path
            let parsed = try Shell.run(["sh", "-n", path])
            #expect(parsed.status == 0, "\(script): \(parsed.stderr)")
        }
        let prerm = try String(contentsOf: control.appendingPathComponent("prerm"), encoding: .utf8)
        #expect(prerm.contains("rollback --all"))
    }

    @Test("debian/copyright is DEP-5 and names the licence of every library linked into the binary, as their own licence files give it")
    func copyrightCoversWhatTheBinaryContains() throws {
        let copyright = try String(contentsOf: TestPaths.package.appendingPathComponent("debian/copyright"), encoding: .utf8)
        let notice = try String(contentsOf: TestPaths.package.appendingPathComponent("NOTICE"), encoding: .utf8)
        #expect(copyright.hasPrefix("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"))
        // The licence each dependency's checkout declares, and the DEP-5 name debian/copyright must use for it.
        let checkouts = TestPaths.package.appendingPathComponent(".build/checkouts")
        let expected: [(checkout: String, file: String, marker: String, name: String, license: String)] = [
            (
                "swift-argument-parser", "LICENSE.txt", "Runtime Library Exception", "swift-argument-parser",
                "Apache-2.0-with-Swift-exception"
            ),
            ("swift-system", "LICENSE.txt", "Runtime Library Exception", "swift-system", "Apache-2.0-with-Swift-exception"),
        ]
        for dependency in expected {
            let text = try String(
                contentsOf: checkouts.appendingPathComponent("\(dependency.checkout)/\(dependency.file)"), encoding: .utf8)
            #expect(text.contains(dependency.marker), "\(dependency.checkout)'s licence changed: check NOTICE and debian/copyright")
            #expect(copyright.contains(dependency.name) && notice.contains(dependency.name), "\(dependency.name)")
            #expect(copyright.contains("\nLicense: \(dependency.license)\n"), "\(dependency.license)")
        }
        // LibYAML is the system's shared library (libyaml-dev), not compiled in; FoundationEssentials has no ICU.
        let packageManifest = try String(contentsOf: TestPaths.package.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(!packageManifest.contains("Yams") && packageManifest.contains("pkgConfig: \"yaml-0.1\""), "no vendored LibYAML")
        for component in ["Swift standard library", "FoundationEssentials", "LibYAML"] {
            #expect(copyright.contains(component) && notice.contains(component), "\(component)")
        }
        for gone in ["Yams", "ICU", "UNICODE LICENSE V3", "Kirill Simonov"] {
            #expect(!copyright.contains(gone) && !notice.contains(gone), "\(gone) is no longer linked in")
        }
        let header = copyright.components(separatedBy: "\n\n")[0]
        #expect(header.hasSuffix("\nLicense: Apache-2.0 and Apache-2.0-with-Swift-exception"), "\(header)")
        // The project's own licence.
        let license = try String(contentsOf: TestPaths.package.appendingPathComponent("LICENSE"), encoding: .utf8)
        #expect(license.contains("Apache License") && license.contains("Version 2.0, January 2004"))
        let manifest = try String(contentsOf: TestPaths.package.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.hasPrefix("// swift-tools-version:6.0\n// SPDX-License-Identifier: Apache-2.0\n"))
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
        #expect(needed.contains { $0.contains("libkmod.so.2") } && needed.contains { $0.contains("libyaml-0.so.2") }, "\(needed)")
        #expect(!needed.contains { $0.contains("libswift") || $0.contains("Foundation") }, "\(needed)")
        #expect(!dynamic.contains("RUNPATH") && !dynamic.contains("RPATH"), "no $ORIGIN search path in a packaged binary")
        #expect(dynamic.contains("BIND_NOW"), "full RELRO: the release build links with -z now")

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

    @Test(
        "in a minimal Debian root: installed with nothing enabled, enabled, applied, removed back to the earlier timeouts, purged with nothing of cttune left",
        .enabled(if: TestHost.canUseNetns && Fleet.has("mmdebstrap"), "needs root, conntrack and mmdebstrap (scripts/install-deps.sh test)")
    )
    func lifeCycleInAMinimalRoot() throws {
        let package = try Fleet.debianPackage()
        let lower = try Shell.check([TestPaths.package.appendingPathComponent("scripts/debian-minbase.sh").path, package])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let work = try TestPaths.temporaryDirectory("cttune-deb-life")
        defer { try? FileManager.default.removeItem(at: work) }
        let script = TestPaths.package.appendingPathComponent("scripts/deb-lifecycle.sh").path
        let run = try Shell.run(["unshare", "--net", "--mount", "--propagation", "private", script, package, lower, work.path])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let steps = Fleet.steps(run.stdout)
        func timeouts(_ step: String) -> [String: Int] {
            Dictionary(
                uniqueKeysWithValues: steps[step, default: ""].split(separator: "\n").compactMap { line -> (String, Int)? in
                    let parts = line.split(separator: "=")
                    return parts.count == 2 ? (String(parts[0]), Int(parts[1]) ?? -1) : nil
                })
        }
        let before = timeouts("timeouts before")
        #expect(before["nf_conntrack_tcp_timeout_established"] != nil, "\(steps)")

        // Installed: nothing enabled, and the message says how.
        #expect(steps["install", default: ""].contains("cttune: no unit enabled"), "\(steps["install", default: ""])")
        #expect(
            steps["enabled links", default: ""].split(separator: "\n").sorted() == [
                "etc/systemd/system/multi-user.target.wants/cttune-apply.service",
                "etc/systemd/system/timers.target.wants/cttune-status.timer",
            ], "\(steps["enabled links", default: ""])")

        // Applied in the namespace: timeouts changed, the global max skipped.
        #expect(steps["apply", default: ""].contains("exit 0"), "\(steps["apply", default: ""])")
        let applied = try PrintedJSON(
            Shell.Result(status: 0, stdout: String(contentsOf: work.appendingPathComponent("apply.json"), encoding: .utf8), stderr: ""))
        #expect(applied.result("net.netfilter.nf_conntrack_max") == "skipped")
        #expect(timeouts("timeouts applied")["nf_conntrack_tcp_timeout_established"] == 7440, "\(steps["apply", default: ""])")
        #expect(timeouts("timeouts applied")["nf_conntrack_udp_timeout"] == 45)

        // Removed: rollback --all puts the namespace's timeouts back; a cttune
        // without it is named in one clear line and the removal goes on.
        let removal = steps["remove", default: ""]
        if steps["rollback help", default: ""].contains("--all") {
            #expect(timeouts("timeouts after remove") == before, "\(removal)")
            #expect(!removal.contains("failed"), "\(removal)")
        } else {
            #expect(removal.contains("cttune: this cttune has no 'rollback --all'"), "\(removal)")
            #expect(timeouts("timeouts after remove") == timeouts("timeouts applied"))
        }

        // Purged: every file cttune may write is named as removed…
        let purge = steps["purge", default: ""]
        for path in steps["left for purge", default: ""].split(separator: "\n") {
            #expect(purge.contains("cttune: removed \(path)\n"), "\(path): \(purge)")
        }
        #expect(steps["dpkg status", default: ""].contains("no packages found matching cttune"), "\(steps["dpkg status", default: ""])")
        // …and nothing named cttune is left anywhere in the root: the overlay's
        // upper directory holds every file the life cycle created or changed.
        let upper = work.appendingPathComponent("upper")
        var left: [String] = []
        let walk = FileManager.default.enumerator(atPath: upper.path)
        while let relative = walk?.nextObject() as? String {
            if relative.contains("cttune") { left.append(relative) }
        }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}

extension Fleet {
    /// The output of a script that starts each step with "=== NAME", by step name.
    static func steps(_ output: String) -> [String: String] {
        var steps: [String: String] = [:]
        var current = ""
        for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("=== ") {
                current = String(line.dropFirst(4))
                steps[current] = ""
            } else if !current.isEmpty {
                steps[current, default: ""] += line + "\n"
            }
        }
        return steps
    }
}
