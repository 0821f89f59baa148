import Foundation
import TestSupport
import Testing

/// kubernetes-validate (pinned in scripts/test-python.sh) from the tests' venv.
private enum KubernetesValidate {
    static let path = TestPaths.package.appendingPathComponent(".cache/python-venv/bin/kubernetes-validate").path
    static let isAvailable = FileManager.default.isExecutableFile(atPath: path)
    /// The Kubernetes API version the manifests are checked against.
    static let apiVersion = "1.33.0"
    static let base = TestPaths.package.appendingPathComponent("contrib/kubernetes/base")

    static func validate(_ files: [String]) throws -> Shell.Result {
        try Shell.run([path, "--strict", "--kubernetes-version", apiVersion] + files)
    }
}

@Suite(
    "contrib/kubernetes: the kustomize base validates against the Kubernetes API schemas",
    .enabled(if: KubernetesValidate.isAvailable, "needs kubernetes-validate (scripts/test-python.sh)"))
struct KubernetesManifestTests {
    /// The resources kustomization.yaml lists, as paths.
    static func resources() throws -> [String] {
        let text = try String(contentsOf: KubernetesValidate.base.appendingPathComponent("kustomization.yaml"), encoding: .utf8)
        var inList = false
        var files: [String] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("resources:") {
                inList = true
            } else if inList, line.hasPrefix("  - ") {
                files.append(KubernetesValidate.base.appendingPathComponent(String(line.dropFirst(4))).path)
            } else if inList, !line.hasPrefix(" ") {
                inList = false
            }
        }
        return files
    }

    @Test("every resource of the kustomization passes strict schema validation, and every YAML file in base is one of them")
    func resourcesValidate() throws {
        let files = try Self.resources()
        #expect(files.count == 4)
        let present = try FileManager.default.contentsOfDirectory(atPath: KubernetesValidate.base.path)
            .filter { $0.hasSuffix(".yaml") && $0 != "kustomization.yaml" }
            .map { KubernetesValidate.base.appendingPathComponent($0).path }
        #expect(Set(present) == Set(files), "files not in the kustomization: \(Set(present).subtracting(files))")
        let result = try KubernetesValidate.validate(files)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.components(separatedBy: " passed for resource ").count - 1 == files.count, "\(result.stdout)")
    }

    @Test("the validator rejects a misspelt field, so the check above can fail")
    func validatorRejectsTypos() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemonSet = try String(contentsOf: KubernetesValidate.base.appendingPathComponent("daemonset.yaml"), encoding: .utf8)
        let broken = directory.appendingPathComponent("daemonset.yaml")
        try daemonSet.replacingOccurrences(of: "hostNetwork: true", with: "hostNetworking: true").write(
            to: broken, atomically: true, encoding: .utf8)
        #expect(try KubernetesValidate.validate([broken.path]).status != 0)
    }

    @Test("the DaemonSet: every node, the host's network and PIDs, a privileged init container only, the status container's capabilities")
    func daemonSetShape() throws {
        let text = try String(contentsOf: KubernetesValidate.base.appendingPathComponent("daemonset.yaml"), encoding: .utf8)
        for line in [
            "hostNetwork: true", "hostPID: true", "- operator: Exists", "automountServiceAccountToken: false",
            "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false", "drop: [\"ALL\"]",
        ] {
            #expect(text.contains(line), "\(line)")
        }
        #expect(text.components(separatedBy: "privileged: true").count - 1 == 1, "only the init container is privileged")
        #expect(text.contains("command: [\"cttune\", \"apply\", \"--profile\", \"/etc/cttune/profile/profile.yaml\"]"))
        // The status container runs the timer's command.
        let unit = try String(
            contentsOf: TestPaths.package.appendingPathComponent("contrib/systemd/cttune-status.service"), encoding: .utf8)
        let timer = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let arguments = timer.split(separator: " ").dropFirst(3).joined(separator: " ")  // after `cttune status --textfile`
        #expect(
            text.contains(
                "cttune status --textfile /var/lib/prometheus/node-exporter/cttune.prom \(arguments.dropFirst("${CTTUNE_TEXTFILE} ".count))"
            ))
        for capability in ["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "SYSLOG", "DAC_READ_SEARCH"] {
            #expect(text.contains("- \(capability)\n"), "\(capability)")
        }
        #expect(text.contains("requests: {cpu: ") && text.contains("limits: {cpu: "))
    }
}
