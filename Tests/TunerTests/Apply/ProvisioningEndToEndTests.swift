import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Provisioning to boot with the real tools, as far as a machine where
/// systemd is not PID 1 allows: an image tree tuned with
/// `apply --persist-only --root`, its enable link made by `systemctl --root`,
/// its sysctl.d read as `systemd-analyze --root` reads it and applied by the
/// real systemd-sysctl in a network namespace, its module options as
/// `modprobe -n -v -d` passes them, then the boot unit's ExecStart on a host
/// tree holding the image's files.
@Suite("provisioning to boot, end to end")
struct ProvisioningEndToEndTests {
    static let ready =
        ModuleTrees.available && ModuleTrees.hasModprobe && TestHost.canUseNetns
        && (try? Shell.run(["which", "systemd-analyze"]).status) == 0 && (try? Shell.run(["which", "systemctl"]).status) == 0

    @Test(
        "an image tuned with apply --persist-only boots into the plan: enable link, sysctl.d as systemd-analyze reads it, timeouts set by systemd-sysctl in a netns, hashsize by modprobe, and the boot unit re-asserting the header's plan without a journal entry",
        .enabled(if: ready, "needs root, netns, systemd-analyze, systemctl, modprobe and the Debian module tree (scripts/module-tree.sh)"))
    func imageToBoot() throws {
        let image = try ImageBuildTests.image()
        defer { image.remove() }
        // The package's unit in the image, as make install writes it.
        let unit = try String(contentsOf: TestPaths.package.appendingPathComponent("contrib/systemd/cttune-apply.service"), encoding: .utf8)
            .replacingOccurrences(of: "@BINDIR@", with: "/usr/bin")
        try image.write("lib/systemd/system/cttune-apply.service", unit)
        try Shell.check(["systemctl", "--root", image.path, "enable", "cttune-apply.service"])
        #expect(image.exists("etc/systemd/system/multi-user.target.wants/cttune-apply.service"))
        #expect(try Shell.run(["systemctl", "--root", image.path, "is-enabled", "cttune-apply.service"]).stdout == "enabled\n")

        // Provisioning for the instance type, with pinned timeouts.
        let profile = try writeProfile(
            in: image.url, name: "frontend",
            timeouts: ["nf_conntrack_tcp_timeout_time_wait": 45, "nf_conntrack_tcp_timeout_close": 7, "nf_conntrack_udp_timeout": 25])
        let provisioning = try image.cttune([
            "apply", "--persist-only", "--profile", profile, "--memory", "2G", "--cpus", "2", "--format", "json",
        ])
        #expect(provisioning.status == 0, "\(provisioning.stderr)")
        let plan = try PrintedJSON(provisioning)
        let planned = Dictionary(
            uniqueKeysWithValues: plan.settings.compactMap { setting in
                (setting["key"] as? String).flatMap { key in (setting["planned"] as? Int).map { (key, $0) } }
            })

        // sysctl.d: the reader's files are systemd-analyze's, and the last one is cttune's.
        let root = SystemRoot(base: FilePath(image.path))
        let files = EffectiveSysctl.files(under: root)
        let analyze = try Shell.check(["systemd-analyze", "--root", image.path, "cat-config", "sysctl.d"])
        #expect(
            analyze.split(separator: "\n").filter { $0.hasPrefix("# /") }.map { String($0.dropFirst(2)) }
                == files.map { try! root.path($0.path).string })
        #expect(try Shell.check(["systemd-analyze", "--root", image.path, "cat-config", "modules-load.d"]).contains("\nnf_conntrack\n"))
        #expect(try PersistentConfig.overrides(of: PersistentConfig.filesOnDisk(under: root), under: root).isEmpty)

        // systemd-sysctl on those files in a fresh netns: per-namespace timeouts only
        // (the global max and buckets are read-only there and stay untouched).
        let namespace = try TestNamespace("e2e")
        defer { namespace.delete() }
        _ = try namespace.run(["/lib/systemd/systemd-sysctl"] + files.map(\.resolved.string))
        for setting in ConntrackSetting.timeouts {
            #expect(try namespace.sysctl(setting.key) == planned[setting.key], "\(setting.key)")
        }

        // modprobe loads nf_conntrack with the planned hash size.
        let modprobe = try Shell.check([
            "modprobe", "-n", "-v", "-d", image.path, "-S", ModuleTrees.version!, "-C", image.file("etc/modprobe.d"), "nf_conntrack",
        ])
        let insmod = try #require(modprobe.split(separator: "\n").first { $0.contains("/nf_conntrack.ko") })
        #expect(
            insmod.hasSuffix("hashsize=\(planned["nf_conntrack.hashsize"]!) ")
                || insmod.hasSuffix("hashsize=\(planned["nf_conntrack.hashsize"]!)"))

        // First boot: a host tree (8 GiB, 4 CPUs, boot values) holding the image's files.
        let host = try ApplyFixtureTree(.module)
        defer { host.remove() }
        try Shell.check(["cp", "-a", image.file("etc"), host.file("etc")])
        try Shell.check(["mkdir", "-p", host.file("var/lib")])
        try Shell.check(["cp", "-a", image.file("var/lib/cttune"), host.file("var/lib/cttune")])
        let journalBefore = host.journalIDs()
        let boot = try Shell.run(try BootApplyTests.bootCommand(root: host.path))
        #expect(boot.status == 0, "\(boot.stdout)\n\(boot.stderr)")
        for (key, value) in planned {
            let name = key == "nf_conntrack.hashsize" ? "nf_conntrack_buckets" : String(key.split(separator: ".").last!)
            #expect(host.sysctl(name) == value, "\(key)")
        }
        #expect(host.journalIDs() == journalBefore, "the boot re-asserts the persisted plan without a journal entry")
    }
}
