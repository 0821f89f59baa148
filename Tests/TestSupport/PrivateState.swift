import Foundation

/// Runs cttune with private, empty copies of /etc/sysctl.d, /var/lib and /run
/// (a mount namespace of its own, optionally inside a network namespace), so
/// real-kernel tests apply for real without touching the host's files.
package final class PrivateState {
    package let url: URL
    package var sysctlD: URL { url.appendingPathComponent("sysctl.d") }
    package var journal: URL { url.appendingPathComponent("var-lib/cttune/journal") }

    /// With `privateEtc`, all of /etc is an overlay whose changes land in
    /// this state (`etc-upper`), so an apply that writes /etc/cttune leaves
    /// the host's /etc as it was.
    package let privateEtc: Bool

    package init(privateEtc: Bool = false) throws {
        self.privateEtc = privateEtc
        url = try TestPaths.temporaryDirectory("cttune-private-state")
        for name in ["sysctl.d", "var-lib", "run", "etc-upper", "etc-work"] {
            try FileManager.default.createDirectory(at: url.appendingPathComponent(name), withIntermediateDirectories: true)
        }
    }

    /// A file the commands wrote under the private /etc (`cttune/cures.nft`).
    package func etcFile(_ relative: String) -> String? {
        try? String(contentsOf: url.appendingPathComponent("etc-upper").appendingPathComponent(relative), encoding: .utf8)
    }

    package func remove() { try? FileManager.default.removeItem(at: url) }

    /// `cttune ARGUMENTS` inside `namespace` (or the initial one). With
    /// `readOnlySysctlD` the sysctl.d copy is mounted read-only (EROFS).
    package func cttune(_ arguments: [String], in namespace: TestNamespace? = nil, readOnlySysctlD: Bool = false) throws -> Shell.Result {
        let command = privateMounts(running: [TestPaths.cttune] + arguments, readOnlySysctlD: readOnlySysctlD)
        return try Shell.run((namespace.map { ["ip", "netns", "exec", $0.name] } ?? []) + command)
    }

    /// `command` in a mount namespace of its own with this state's private
    /// /etc/sysctl.d, /var/lib and /run.
    package func privateMounts(running command: [String], readOnlySysctlD: Bool = false) -> [String] {
        let base = url.path
        let overlay =
            privateEtc
            ? "mount -t overlay cttune-etc -o lowerdir=/etc,upperdir=\(base)/etc-upper,workdir=\(base)/etc-work /etc" : ""
        let script = """
            set -e
            \(overlay)
            mount --bind \(base)/sysctl.d /etc/sysctl.d
            \(readOnlySysctlD ? "mount -o remount,ro,bind /etc/sysctl.d" : "")
            mount --bind \(base)/var-lib /var/lib
            mount --bind \(base)/run /run
            exec "$@"
            """
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + command
    }

    package func journalIDs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: journal.path)) ?? [])
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }
}
