import Foundation
import TestSupport
import Testing

/// The sandboxing of cttune-apply.service and cttune-status.service: scored
/// by `systemd-analyze security`, and each command run under the unit's
/// restrictions. systemd is not PID 1 here (no `systemd-run`), so the
/// restrictions are approximated: the capability bounding set and
/// no_new_privs with setpriv, ProtectSystem=strict and ReadWritePaths= with
/// read-only bind mounts in a private mount namespace, inside a test
/// network namespace.
@Suite("Hardened systemd units")
struct HardenedUnitsTests {
    static let services = ["cttune-apply.service", "cttune-status.service"]

    /// The values of `key=` lines in a unit, in order (empty assignments included).
    static func directive(_ key: String, in unit: String) -> [String] {
        unit.split(separator: "\n").filter { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    static func unit(_ name: String) throws -> String {
        try String(contentsOf: TestPaths.package.appendingPathComponent("contrib/systemd/\(name)"), encoding: .utf8)
    }

    @Test(
        "systemd-analyze security scores both services at most 4.0 (--threshold=40 passes, --threshold=10 fails)",
        .enabled(if: Fleet.has("systemd-analyze"), "needs the systemd package (scripts/install-deps.sh test)"))
    func exposure() throws {
        let installation = try Installation()
        defer { installation.remove() }
        for service in Self.services {
            let unit = installation.path("lib/systemd/system/\(service)")
            let scored = try Shell.run(["systemd-analyze", "security", "--offline=true", "--threshold=40", unit])
            #expect(scored.status == 0, "\(service): \(scored.stdout.suffix(300))\(scored.stderr)")
            let summary = try #require(scored.stdout.range(of: "Overall exposure level for \(service): "), "\(scored.stdout.suffix(300))")
            let exposure = Double(scored.stdout[summary.upperBound...].prefix { $0.isNumber || $0 == "." }) ?? 99
            #expect(exposure <= 4.0, "\(service): \(exposure)")
            // The threshold has teeth: no unit running as root in the host's network scores below 1.0.
            let strict = try Shell.run(["systemd-analyze", "security", "--offline=true", "--threshold=10", unit])
            #expect(strict.status != 0, "\(service)")
        }
    }

    @Test("each unit grants exactly the capabilities, paths and kernel interfaces its command needs")
    func directives() throws {
        let apply = try Self.unit("cttune-apply.service")
        #expect(Self.directive("CapabilityBoundingSet", in: apply) == ["CAP_NET_ADMIN CAP_SYS_MODULE"])
        #expect(Self.directive("ProtectSystem", in: apply) == ["strict"])
        #expect(Self.directive("ReadWritePaths", in: apply) == ["-/run/cttune.lock"])
        #expect(Self.directive("StateDirectory", in: apply) == ["cttune"])
        #expect(Self.directive("ProtectKernelTunables", in: apply) == ["no"], "writes /proc/sys")
        #expect(Self.directive("ProtectKernelModules", in: apply) == ["no"], "unloads and reloads the family")
        #expect(Self.directive("SystemCallFilter", in: apply) == ["@system-service @module"])
        #expect(Self.directive("RestrictAddressFamilies", in: apply) == ["AF_UNIX AF_NETLINK"])
        #expect(Self.directive("RestrictNamespaces", in: apply) == ["yes"])
        #expect(Self.directive("PrivateNetwork", in: apply).isEmpty, "apply tunes the host's namespace")

        let status = try Self.unit("cttune-status.service")
        #expect(Self.directive("CapabilityBoundingSet", in: status) == ["CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_SYSLOG"])
        #expect(Self.directive("ProtectSystem", in: status) == ["strict"])
        #expect(Self.directive("ReadWritePaths", in: status) == ["-/var/lib/prometheus/node-exporter"])
        #expect(Self.directive("ProtectKernelTunables", in: status) == ["yes"], "status writes no sysctl")
        #expect(Self.directive("RestrictNamespaces", in: status) == ["net"])
        #expect(Self.directive("SystemCallFilter", in: status) == ["@system-service setns"])
        #expect(Self.directive("RestrictAddressFamilies", in: status) == ["AF_UNIX AF_NETLINK"])
        #expect(Self.directive("DeviceAllow", in: status) == ["/dev/kmsg r"])
        for unit in [apply, status] {
            #expect(Self.directive("NoNewPrivileges", in: unit) == ["yes"])
            #expect(Self.directive("PrivateTmp", in: unit) == ["yes"])
        }
    }

    @Test(
        "tmpfiles.d/cttune.conf creates the lock file the apply unit binds writable",
        .enabled(if: Fleet.has("systemd-tmpfiles"), "needs the systemd package (scripts/install-deps.sh test)"))
    func lockFileAtBoot() throws {
        let root = try TestPaths.temporaryDirectory("cttune-tmpfiles")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("run"), withIntermediateDirectories: true)
        let config = TestPaths.package.appendingPathComponent("contrib/systemd/cttune.tmpfiles").path
        let created = try Shell.run(["systemd-tmpfiles", "--root=\(root.path)", "--create", config])
        #expect(created.status == 0, "\(created.stderr)")
        var info = stat()
        #expect(lstat(root.appendingPathComponent("run/cttune.lock").path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o777 == 0o644)
    }

    /// setpriv arguments for a unit's CapabilityBoundingSet, with no_new_privs.
    static func setpriv(_ unit: String) throws -> [String] {
        let capabilities = try #require(directive("CapabilityBoundingSet", in: unit).last)
            .split(separator: " ").map { "+" + $0.dropFirst("CAP_".count).lowercased() }
        return ["setpriv", "--bounding-set=-all," + capabilities.joined(separator: ","), "--inh-caps=-all", "--no-new-privs"]
    }

    @Test(
        "the boot apply succeeds under the apply unit's capabilities, read-only system and writable paths, and fails without those paths",
        .enabled(if: TestHost.realKernel && Fleet.has("setpriv"), "needs root, conntrack, ip, nft and setpriv"))
    func applyUnderItsRestrictions() throws {
        let namespace = try TestNamespace("hard")
        defer { namespace.delete() }
        let state = try PrivateState()
        defer { state.remove() }
        let setpriv = try Self.setpriv(Self.unit("cttune-apply.service"))
        // ProtectSystem=strict: the root mount read-only, then the unit's
        // writable paths: StateDirectory=cttune and ReadWritePaths=-/run/cttune.lock.
        func sandboxed(writablePaths: Bool, _ command: [String]) -> [String] {
            let writable =
                writablePaths ? "mount --bind /var/lib/cttune /var/lib/cttune; mount --bind /run/cttune.lock /run/cttune.lock" : ""
            let script = """
                set -e
                mount --bind \(state.url.path)/var-lib /var/lib
                mount --bind \(state.url.path)/run /run
                mkdir -p /var/lib/cttune && touch /run/cttune.lock
                \(writable)
                mount -o remount,bind,ro /
                mount -o remount,bind,ro /var/lib
                mount -o remount,bind,ro /run
                exec "$@"
                """
            return ["ip", "netns", "exec", namespace.name, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
                + setpriv + command
        }
        let established = "net.netfilter.nf_conntrack_tcp_timeout_established"
        let before = try namespace.sysctl(established)
        let profile = try writeProfile(in: state.url, timeouts: ["nf_conntrack_tcp_timeout_established": before == 7440 ? 7441 : 7440])
        let apply = [TestPaths.cttune, "apply", "--runtime-only", "--profile", profile, "--allow-partial", "--format", "json"]

        let refused = try Shell.run(sandboxed(writablePaths: false, apply))
        #expect(refused.status == 1, "without the writable paths the lock cannot be taken: \(refused.stderr)")
        #expect(refused.stderr.contains("/run/cttune.lock") && refused.stderr.contains("read-only"), "\(refused.stderr)")
        #expect(try namespace.sysctl(established) == before)

        let applied = try Shell.run(sandboxed(writablePaths: true, apply))
        #expect(applied.status == 0, "\(applied.stderr)")
        let json = try PrintedJSON(applied)
        #expect(json.result(established) == "applied", "\(applied.stdout)")
        #expect(try namespace.sysctl(established) == json.planned(established))
        #expect(state.journalIDs().count == 1)

        // Reading the ruleset (stateless profiles) needs CAP_NET_ADMIN: there with the unit's set, refused without it.
        let listed = try Shell.run(sandboxed(writablePaths: true, ["nft", "list", "ruleset"]))
        #expect(listed.status == 0, "\(listed.stderr)")
        let withoutNetAdmin = try Shell.run(
            [
                "ip", "netns", "exec", namespace.name, "setpriv", "--bounding-set=-all,+sys_module", "--inh-caps=-all", "nft", "list",
                "ruleset",
            ])
        #expect(withoutNetAdmin.status != 0, "\(withoutNetAdmin.stdout)")
    }

    @Test(
        "status writes its textfile under the status unit's capabilities with /proc/sys and the system read-only, and can enter namespaces and read the kernel log",
        .enabled(
            if: TestHost.realKernel && Fleet.has("setpriv") && Fleet.has("nsenter"), "needs root, conntrack, ip, nft, setpriv and nsenter")
    )
    func statusUnderItsRestrictions() throws {
        let namespace = try TestNamespace("hard")
        defer { namespace.delete() }
        let other = try TestNamespace("hard")
        defer { other.delete() }
        let textfiles = try TestPaths.temporaryDirectory("cttune-textfile")
        defer { try? FileManager.default.removeItem(at: textfiles) }
        let setpriv = try Self.setpriv(Self.unit("cttune-status.service"))
        func sandboxed(_ command: [String], capabilities: [String]? = nil) -> [String] {
            let script = """
                set -e
                mount --bind \(textfiles.path) \(textfiles.path)
                mount -o remount,bind,ro /
                mount --bind /proc/sys /proc/sys
                mount -o remount,bind,ro /proc/sys
                exec "$@"
                """
            return ["ip", "netns", "exec", namespace.name, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
                + (capabilities ?? setpriv) + command
        }
        let textfile = textfiles.appendingPathComponent("cttune.prom").path
        let status = try Shell.run(sandboxed([TestPaths.cttune, "status", "--textfile", textfile]))
        #expect([0, 1, 2].contains(status.status), "\(status.stdout)\(status.stderr)")
        let metrics = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(metrics.contains("cttune_"), "\(metrics.prefix(200))")
        // /proc/sys is read-only in there: status changes nothing.
        let write = try Shell.run(sandboxed(["sh", "-c", "echo 100 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout"]))
        #expect(write.status != 0)

        // Entering another namespace (--all-namespaces): setns needs CAP_SYS_ADMIN.
        let entered = try Shell.run(sandboxed(["nsenter", "--net=/run/netns/\(other.name)", "true"]))
        #expect(entered.status == 0, "\(entered.stderr)")
        let withoutAdmin = try Shell.run(
            sandboxed(
                ["nsenter", "--net=/run/netns/\(other.name)", "true"],
                capabilities: ["setpriv", "--bounding-set=-all,+net_admin,+sys_ptrace,+syslog", "--inh-caps=-all", "--no-new-privs"]))
        #expect(withoutAdmin.status != 0)

        // The kernel log: CAP_SYSLOG where dmesg_restrict is set.
        let restricted = (try? String(contentsOfFile: "/proc/sys/kernel/dmesg_restrict", encoding: .utf8))?.hasPrefix("1") ?? false
        let kmsg = ["dd", "if=/dev/kmsg", "of=/dev/null", "bs=8192", "count=1", "iflag=nonblock", "status=none"]
        let read = try Shell.run(sandboxed(kmsg))
        #expect(read.status == 0, "\(read.stderr)")
        if restricted {
            let withoutSyslog = try Shell.run(
                sandboxed(
                    kmsg, capabilities: ["setpriv", "--bounding-set=-all,+net_admin,+sys_ptrace", "--inh-caps=-all", "--no-new-privs"]))
            #expect(withoutSyslog.status != 0)
        }
    }
}
