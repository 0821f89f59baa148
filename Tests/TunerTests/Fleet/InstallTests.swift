import Foundation
import TestSupport
import Testing

/// `make install` / `make uninstall`, the installed profile directory, the
/// man page, the completions and the systemd units, checked with the tools
/// that consume them.
@Suite("make install, man page, completions and systemd units")
struct InstallTests {
    static let installed =
        [
            "bin/cttune",
            "lib/systemd/system/cttune-apply.service",
            "lib/systemd/system/cttune-status.service",
            "lib/systemd/system/cttune-status.timer",
            "lib/tmpfiles.d/cttune.conf",
            "share/bash-completion/completions/cttune",
            "share/fish/vendor_completions.d/cttune.fish",
            "share/man/man1/cttune.1",
            "share/zsh/site-functions/_cttune", "share/cttune/prometheus/cttune.rules.yml",
        ]
        + ["database", "ddos-edge", "default", "kubernetes-node", "nat-gateway", "stateless", "web-frontend"]
        .map { "share/cttune/profiles/\($0).yaml" }

    @Test("make install-files honours DESTDIR and PREFIX, and make uninstall removes every file it installed")
    func installAndUninstall() throws {
        let installation = try Installation(underDestdir: true)
        defer { installation.remove() }
        #expect(installation.files() == Self.installed.map { "usr/" + $0 }.sorted())
        #expect(FileManager.default.isExecutableFile(atPath: installation.path("bin/cttune")))
        let unit = try String(contentsOfFile: installation.path("lib/systemd/system/cttune-apply.service"), encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/bin/cttune apply --runtime-only --persisted --profile ${CTTUNE_PROFILE} $CTTUNE_ARGS\n"))
        #expect(!unit.contains("@BINDIR@"))
        try installation.make("uninstall")
        #expect(installation.files() == [])
        #expect(!FileManager.default.fileExists(atPath: installation.path("share/cttune")))
    }

    @Test("the installed binary finds profiles in PREFIX/share/cttune/profiles: after /etc/cttune/profiles, before the built-in ones")
    func installedProfileDirectory() throws {
        let installation = try Installation()
        defer { installation.remove() }
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let cttune = installation.path("bin/cttune")
        func firstLine(_ profile: String) throws -> String {
            let result = try Shell.run([cttune, "plan", "--profile", profile, "--root", tree.path])
            #expect(result.status == 0, "\(result.stderr)")
            return String(result.stdout.split(separator: "\n").first ?? "")
        }
        let shared = installation.path("share/cttune/profiles")
        try "extends: default\ndescription: installed beside the binary\n".write(
            toFile: shared + "/fleet-probe.yaml", atomically: true, encoding: .utf8)
        #expect(try firstLine("fleet-probe") == "profile fleet-probe: installed beside the binary")

        // The installed default.yaml now wins over the built-in copy…
        let original = try String(contentsOfFile: shared + "/default.yaml", encoding: .utf8)
        try original.replacingOccurrences(of: "\ndescription: ", with: "\ndescription: edited, ")
            .write(toFile: shared + "/default.yaml", atomically: true, encoding: .utf8)
        #expect(try firstLine("default").hasPrefix("profile default: edited, "))

        // …and /etc/cttune/profiles (under --root) wins over the installed one.
        try tree.write("etc/cttune/profiles/fleet-probe.yaml", "extends: default\ndescription: from /etc\n")
        #expect(try firstLine("fleet-probe") == "profile fleet-probe: from /etc")

        // Without it the installed one is found again; the build in the source tree has none.
        try FileManager.default.removeItem(atPath: tree.file("etc/cttune/profiles/fleet-probe.yaml"))
        #expect(try firstLine("fleet-probe") == "profile fleet-probe: installed beside the binary")
        let fromSourceTree = try Shell.run([TestPaths.cttune, "plan", "--profile", "fleet-probe", "--root", tree.path])
        #expect(fromSourceTree.status == 1)
        #expect(fromSourceTree.stderr.contains("no profile named \"fleet-probe\""))
    }

    @Test(
        "the man page renders with man -l, has no mandoc errors, and documents every subcommand and the exit codes",
        .enabled(if: Fleet.has("man") && Fleet.has("mandoc"), "needs man-db and mandoc (scripts/install-deps.sh test)"))
    func manPage() throws {
        let installation = try Installation()
        defer { installation.remove() }
        let page = installation.path("share/man/man1/cttune.1")
        let lint = try Shell.run(["mandoc", "-T", "lint", "-W", "error", page])
        #expect(lint.status == 0, "\(lint.stdout)\(lint.stderr)")
        let rendered = try Shell.run(["man", "-l", page], environment: ["MANWIDTH": "100"])
        #expect(rendered.status == 0, "\(rendered.stderr)")
        let text = rendered.stdout.replacingOccurrences(of: ".\u{8}", with: "", options: .regularExpression)  // overstrike
        #expect(text.contains("cttune — Size Linux connection tracking"))
        for subcommand in ["plan", "apply", "rollback"] {
            #expect(text.range(of: "\n +\(subcommand)( +[A-Z]|\n)", options: .regularExpression) != nil, "\(subcommand)")
        }
        #expect(text.contains("--runtime-only"))
        #expect(text.contains("Exit codes: 0 success"))
        // MANPATH finds it where it was installed.
        let found = try Shell.run(["man", "-w", "cttune"], environment: ["MANPATH": installation.path("share/man")])
        #expect(found.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == page)
    }

    @Test(
        "the completion scripts parse in their shells and complete cttune's subcommands and flags",
        arguments: [
            (shell: "bash", file: "share/bash-completion/completions/cttune", check: ["bash", "-n"]),
            (shell: "zsh", file: "share/zsh/site-functions/_cttune", check: ["zsh", "-n"]),
            (shell: "fish", file: "share/fish/vendor_completions.d/cttune.fish", check: ["fish", "--no-execute"]),
        ])
    func completions(shell: String, file: String, check: [String]) throws {
        try #require(Fleet.has(shell), "\(shell) is installed by scripts/install-deps.sh test")
        let installation = try Installation()
        defer { installation.remove() }
        let script = installation.path(file)
        let parsed = try Shell.run(check + [script])
        #expect(parsed.status == 0, "\(parsed.stderr)")
        let text = try String(contentsOfFile: script, encoding: .utf8)
        for word in ["apply", "rollback", "runtime-only", "persist-only"] { #expect(text.contains(word), "\(word)") }
        #expect(!text.hasPrefix("#!"), "completion scripts are sourced, not run")
    }

    @Test("bash completion offers the subcommands and apply's flags when sourced")
    func bashCompletesForReal() throws {
        let installation = try Installation()
        defer { installation.remove() }
        let script = """
            source \(installation.path("share/bash-completion/completions/cttune"))
            complete_words() {
              COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
              _cttune cttune "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"  # as `complete -F` calls it
              printf '%s\\n' "${COMPREPLY[@]}"
            }
            echo '--- subcommands'; complete_words cttune ''
            echo '--- apply'; complete_words cttune apply --r
            """
        let result = try Shell.run(["bash", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        let sections = result.stdout.components(separatedBy: "--- apply\n")
        #expect(Set(sections[0].split(separator: "\n").map(String.init)).isSuperset(of: ["plan", "apply", "rollback"]))
        #expect(Set(sections.last?.split(separator: "\n").map(String.init) ?? []) == ["--root", "--ruleset", "--runtime-only"])
    }

    @Test(
        "the systemd units pass systemd-analyze verify with ExecStart pointing at the installed binary",
        .enabled(
            if: Fleet.has("systemd-analyze") && FileManager.default.fileExists(atPath: "/lib/systemd/system/sysinit.target"),
            "needs the systemd package (scripts/install-deps.sh test)"))
    func unitsVerify() throws {
        let installation = try Installation()
        defer { installation.remove() }
        let units = ["cttune-apply.service", "cttune-status.service", "cttune-status.timer"]
            .map { installation.path("lib/systemd/system/\($0)") }
        let environment = ["MANPATH": installation.path("share/man")]
        let verified = try Shell.run(["systemd-analyze", "verify"] + units, environment: environment)
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stderr.isEmpty, "\(verified.stderr)")

        let apply = try String(contentsOfFile: units[0], encoding: .utf8)
        #expect(apply.contains("\nAfter=systemd-modules-load.service systemd-sysctl.service local-fs.target\n"))
        #expect(apply.contains("\nBefore=network-pre.target shutdown.target\n"))
        #expect(apply.contains("\nType=oneshot\n"))
        #expect(
            apply.contains(
                "\nExecStart=\(installation.path("bin/cttune")) apply --runtime-only --persisted --profile ${CTTUNE_PROFILE} $CTTUNE_ARGS\n"
            ))
        let timer = try String(contentsOfFile: units[2], encoding: .utf8)
        #expect(timer.contains("\nOnUnitActiveSec=1min\n"))

        // The check has teeth: without the binary the same units fail.
        try FileManager.default.removeItem(atPath: installation.path("bin/cttune"))
        let broken = try Shell.run(["systemd-analyze", "verify"] + units, environment: environment)
        #expect(broken.status != 0)
        #expect(broken.stderr.contains("cttune") && broken.stderr.contains("is not executable"), "\(broken.stderr)")
    }
}
