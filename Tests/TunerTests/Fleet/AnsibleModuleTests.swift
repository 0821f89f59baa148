import Foundation
import TestSupport
import Testing

/// The Ansible module `cttune.fleet.cttune`, run by a real ansible-playbook
/// against localhost: on a host tree (`root:`) and, as root, in a network
/// namespace. Each playbook registers every task's result and writes them to
/// a JSON file the test reads.
@Suite("Ansible module")
struct AnsibleModuleTests {
    static let hasAnsible = FileManager.default.isExecutableFile(atPath: Fleet.ansiblePlaybook)

    @Test(
        "another file that wins at boot: on_conflict warn succeeds with an Ansible warning naming file:line, refuse fails with cttune's message"
    )
    func overriddenAtBoot() throws {
        try #require(Self.hasAnsible, "no ansible-playbook in .cache/ansible-venv: \(Fleet.preparedBy)")
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        try tree.write("etc/sysctl.conf", "net.netfilter.nf_conntrack_max = 5000\n")
        try FileManager.default.createDirectory(atPath: tree.file("etc/sysctl.d"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: tree.file("etc/sysctl.d/99-sysctl.conf"), withDestinationPath: "../sysctl.conf")
        let run = try Playbook.run(
            defaults: ["root": tree.path],
            tasks: """
                - {name: strict, cttune.fleet.cttune: {on_conflict: refuse}, register: strict, ignore_errors: true}
                - {name: default, cttune.fleet.cttune: {}, register: warned}
                """)
        #expect(run["strict"].failed == true)
        #expect((run["strict"].value("msg") as? String)?.contains("99-sysctl.conf:1 sets 5000") == true)
        #expect(run["warned"].failed == false && run["warned"].changed == true)
        let location = tree.file("etc/sysctl.d/99-sysctl.conf") + ":1"
        #expect(
            run["warned"].warnings.contains { $0.contains("net.netfilter.nf_conntrack_max") && $0.contains(location) },
            "\(run["warned"].warnings)")
    }

    @Test(
        "on a host tree: check mode changes nothing, the first run changes, the second does not, failures carry cttune's message, absent rolls back once"
    )
    func hostTree() throws {
        try #require(Self.hasAnsible, "no ansible-playbook in .cache/ansible-venv: \(Fleet.preparedBy)")
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        let conf = tree.file("etc/sysctl.d/90-cttune.conf")
        let maxFile = tree.file("proc/sys/net/netfilter/nf_conntrack_max")
        let run = try Playbook.run(
            defaults: ["root": tree.path, "profile": "web-frontend"],
            tasks: """
                - {name: preview, cttune.fleet.cttune: {}, check_mode: true, diff: true, register: preview}
                - {stat: {path: "\(conf)"}, register: file_after_preview}
                - {command: "cat \(maxFile)", changed_when: false, register: max_after_preview}
                - {name: apply, cttune.fleet.cttune: {}, diff: true, register: first}
                - {stat: {path: "\(conf)"}, register: file_after_first}
                - {command: "cat \(maxFile)", changed_when: false, register: max_after_first}
                - {name: again, cttune.fleet.cttune: {}, register: second}
                - {name: unknown profile, cttune.fleet.cttune: {profile: no-such-profile}, register: bad, ignore_errors: true}
                - {name: nothing to apply, cttune.fleet.cttune: {runtime: false, persist: false}, register: neither, ignore_errors: true}
                - {name: preview rollback, cttune.fleet.cttune: {state: absent}, check_mode: true, register: absent_preview}
                - {name: rollback, cttune.fleet.cttune: {state: absent}, register: absent_first}
                - {name: rollback again, cttune.fleet.cttune: {state: absent}, register: absent_second}
                - {name: preview rollback again, cttune.fleet.cttune: {state: absent}, check_mode: true, register: absent_preview_second}
                """)
        let preview = run["preview"], first = run["first"]
        #expect(preview.changed == true)
        #expect(run["file_after_preview"].value("stat", "exists") as? Bool == false)
        #expect(run["max_after_preview"].stdout == "262144")
        let planned = try #require(preview.setting("net.netfilter.nf_conntrack_max")?["planned"] as? Int)
        #expect(planned != 262_144)
        #expect(preview.prepared.contains { $0.contains("+net.netfilter.nf_conntrack_max = \(planned)") })

        #expect(first.changed == true)
        #expect(first.value("journal_id") is String)
        #expect(run["file_after_first"].value("stat", "exists") as? Bool == true)
        #expect(run["max_after_first"].stdout == String(planned))
        #expect(first.setting("net.netfilter.nf_conntrack_max")?["result"] as? String == "applied")
        let before = first.value("diff") as? [[String: Any]] ?? []
        #expect(before.contains { ($0["before"] as? String)?.contains("net.netfilter.nf_conntrack_max = 262144") == true })

        #expect(run["second"].changed == false)
        #expect(run["second"].value("journal_id") is NSNull)
        #expect(run["second"].failed == false)

        let bad = run["bad"]
        #expect(bad.failed == true)
        let message = bad.value("msg") as? String ?? ""
        #expect(message.hasPrefix("no profile named \"no-such-profile\""), "\(message)")
        #expect(run["neither"].failed == true)
        #expect((run["neither"].value("msg") as? String)?.hasPrefix("runtime and persist are both false") == true)

        #expect(run["absent_preview"].changed == true)
        #expect(run["absent_first"].changed == true)
        #expect(run["absent_second"].changed == false)
        #expect(run["absent_preview_second"].changed == false)
        #expect(!tree.exists("etc/sysctl.d/90-cttune.conf"))
        #expect(tree.sysctl("nf_conntrack_max") == 262_144)
    }

    @Test(
        "as root in a network namespace: a runtime-only apply with allow_partial sets the netns's timeouts, skips the global max with a warning, writes no files, and absent restores them",
        .enabled(if: TestHost.realKernel, "needs root, nf_conntrack, ip and nft"))
    func networkNamespace() throws {
        try #require(Self.hasAnsible, "no ansible-playbook in .cache/ansible-venv: \(Fleet.preparedBy)")
        let namespace = try TestNamespace("ansible")
        defer { namespace.delete() }
        let state = try PrivateState()
        defer { state.remove() }
        let established = "net.netfilter.nf_conntrack_tcp_timeout_established"
        let initialBefore = try GlobalConntrack.read("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established")
        let netnsBefore = try namespace.sysctl(established)
        let read = "cat /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established"
        // OpenWrt's established timeout, pinned: a change on any host, whatever its RAM.
        let profile = try writeProfile(in: state.url, timeouts: ["nf_conntrack_tcp_timeout_established": 7440])
        let run = try Playbook.run(
            defaults: ["profile": profile, "persist": "false", "allow_partial": "true"],
            tasks: """
                - {name: preview, cttune.fleet.cttune: {}, check_mode: true, register: preview}
                - {command: "\(read)", changed_when: false, register: after_preview}
                - {name: apply, cttune.fleet.cttune: {}, register: first}
                - {command: "\(read)", changed_when: false, register: after_first}
                - {name: again, cttune.fleet.cttune: {}, register: second}
                - {name: partial refused, cttune.fleet.cttune: {allow_partial: false}, register: partial, ignore_errors: true}
                - {name: rollback, cttune.fleet.cttune: {state: absent}, register: absent}
                - {command: "\(read)", changed_when: false, register: after_absent}
                """,
            wrap: { ["ip", "netns", "exec", namespace.name] + state.privateMounts(running: $0) })

        let planned = try #require(run["first"].setting(established)?["planned"] as? Int)
        #expect(planned == 7440 && netnsBefore != 7440)
        #expect(run["preview"].changed == true)
        #expect(run["after_preview"].stdout == String(netnsBefore))
        #expect(run["first"].changed == true)
        #expect(run["first"].setting(established)?["result"] as? String == "applied")
        #expect(run["after_first"].stdout == String(planned))
        #expect(run["first"].setting("net.netfilter.nf_conntrack_max")?["result"] as? String == "skipped")
        #expect(run["first"].warnings.contains { $0.hasPrefix("net.netfilter.nf_conntrack_max not changed") })
        #expect((run["first"].value("files") as? [Any])?.isEmpty == true, "persist: false lists no files")
        #expect(run["second"].changed == false)
        // Without allow_partial the skipped global settings fail the task, with cttune's reasons.
        #expect(run["partial"].failed == true)
        #expect(run["partial"].changed == false)
        let refusal = run["partial"].value("msg") as? String ?? ""
        #expect(refusal.hasPrefix("not applied here: net.netfilter.nf_conntrack_max"), "\(refusal)")
        #expect(refusal.contains("--allow-partial"))
        #expect(refusal.contains("\nnet.netfilter.nf_conntrack_max: "), "\(refusal)")
        #expect(run["absent"].changed == true)
        #expect(run["after_absent"].stdout == String(netnsBefore))

        #expect(try GlobalConntrack.read("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established") == initialBefore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state.sysctlD.path).isEmpty, "persist: false writes no sysctl.d file")
        #expect(state.journalIDs().count == 2, "the apply and its rollback, journaled in the private /var/lib")
    }
}

/// One ansible-playbook run against localhost with the module's collection.
struct Playbook {
    /// Registered results by name.
    let results: [String: Any]

    subscript(name: String) -> TaskResult { TaskResult(fields: results[name] as? [String: Any] ?? [:]) }

    /// Runs `tasks` (YAML list items, each registering its result) with
    /// `defaults` as the module's parameters, then reads every registered result.
    /// - Parameter wrap: turns the ansible-playbook command into the one to run (a namespace).
    static func run(defaults: [String: String], tasks: String, wrap: ([String]) -> [String] = { $0 }) throws -> Playbook {
        let directory = try TestPaths.temporaryDirectory("cttune-ansible")
        defer { try? FileManager.default.removeItem(at: directory) }
        let resultsFile = directory.appendingPathComponent("results.json").path
        let registered = tasks.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "register: ") else { return nil }
            return String(line[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" })
        }
        let parameters = (["executable": TestPaths.cttune].merging(defaults) { _, new in new })
            .sorted { $0.key < $1.key }.map { "        \($0.key): \"\($0.value)\"" }.joined(separator: "\n")
        let playbook = """
            - hosts: localhost
              connection: local
              gather_facts: false
              module_defaults:
                cttune.fleet.cttune:
            \(parameters)
              tasks:
            \(tasks.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
                - copy:
                    dest: \(resultsFile)
                    content: "{{ {\(registered.map { "'\($0)': \($0)" }.joined(separator: ", "))} | to_json }}"
            """
        let playbookFile = directory.appendingPathComponent("playbook.yml").path
        try playbook.write(toFile: playbookFile, atomically: true, encoding: .utf8)
        let environment = [
            "ANSIBLE_COLLECTIONS_PATH": Fleet.collections, "HOME": directory.path,
            "ANSIBLE_LOCAL_TEMP": directory.appendingPathComponent("tmp").path,
            "ANSIBLE_REMOTE_TEMP": directory.appendingPathComponent("tmp").path,
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
        ]
        let command = wrap([Fleet.ansiblePlaybook, "-i", "localhost,", "-e", "ansible_python_interpreter=/usr/bin/python3", playbookFile])
        let result = try Shell.run(command, environment: environment)
        #expect(result.status == 0, "ansible-playbook failed:\n\(result.stdout)\n\(result.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: resultsFile))
        let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(results.keys) == Set(registered))
        return Playbook(results: results)
    }

    /// A registered task result.
    struct TaskResult {
        let fields: [String: Any]
        var changed: Bool? { fields["changed"] as? Bool }
        var failed: Bool { fields["failed"] as? Bool ?? false }
        var stdout: String? { (fields["stdout"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines) }
        var warnings: [String] { fields["warnings"] as? [String] ?? [] }
        /// The file diffs Ansible shows in diff mode.
        var prepared: [String] { (fields["diff"] as? [[String: Any]] ?? []).compactMap { $0["prepared"] as? String } }

        func value(_ keys: String...) -> Any? {
            var current: Any? = fields
            for key in keys { current = (current as? [String: Any])?[key] }
            return current
        }

        func setting(_ key: String) -> [String: Any]? {
            (fields["settings"] as? [[String: Any]])?.first { $0["key"] as? String == key }
        }
    }
}
