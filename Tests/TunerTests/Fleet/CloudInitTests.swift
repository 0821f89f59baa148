import Foundation
import TestSupport
import Testing

/// The documented `#cloud-config` snippet and the image-builder example.
@Suite("cloud-init snippet and image builds")
struct CloudInitTests {
    static let snippet = TestPaths.package.appendingPathComponent("contrib/cloud-init/cttune.yaml").path

    @Test(
        "the #cloud-config snippet passes cloud-init's schema, and a broken copy does not",
        .enabled(if: Fleet.has("cloud-init"), "needs the cloud-init package (scripts/install-deps.sh test)"))
    func schemaValid() throws {
        let text = try String(contentsOfFile: Self.snippet, encoding: .utf8)
        #expect(text.hasPrefix("#cloud-config\n"))
        let valid = try Shell.run(["cloud-init", "schema", "--config-file", Self.snippet])
        #expect(valid.status == 0, "\(valid.stdout)\(valid.stderr)")
        #expect(valid.stdout.contains("Valid cloud-config"))

        let directory = try TestPaths.temporaryDirectory("cttune-cloud-init")
        defer { try? FileManager.default.removeItem(at: directory) }
        let broken = directory.appendingPathComponent("broken.yaml").path
        try text.replacingOccurrences(of: "packages:\n  - cttune", with: "packages: cttune")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let invalid = try Shell.run(["cloud-init", "schema", "--config-file", broken])
        #expect(invalid.status != 0)
        #expect((invalid.stdout + invalid.stderr).contains("packages: 'cttune' is not of type 'array'"))
    }

    @Test("every cttune command in the snippet's runcmd is accepted by cttune, and the profile matches /etc/default/cttune")
    func runcmdCommandsWork() throws {
        let parsed = try Shell.check([
            "/usr/bin/python3", "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", Self.snippet,
        ])
        let config = try #require(try JSONSerialization.jsonObject(with: Data(parsed.utf8)) as? [String: Any])
        let commands = (config["runcmd"] as? [[String]] ?? []).filter { $0.first == "cttune" }
        #expect(!commands.isEmpty)
        let defaults = (config["write_files"] as? [[String: Any]] ?? []).first { $0["path"] as? String == "/etc/default/cttune" }
        let profileLine = try #require((defaults?["content"] as? String)?.split(separator: "\n").first { $0.hasPrefix("CTTUNE_PROFILE=") })
        for command in commands {
            let tree = try ApplyFixtureTree(.module)
            defer { tree.remove() }
            let result = try tree.cttune(Array(command.dropFirst()) + ["--check"])
            #expect(result.status == 0, "\(command): \(result.stderr)")
            if let index = command.firstIndex(of: "--profile") {
                #expect(profileLine == "CTTUNE_PROFILE=\(command[index + 1])")
            }
        }
        #expect((config["packages"] as? [String]) == ["cttune"])
    }

    @Test("the image-builder example: apply --persist-only --root on a bare image tree writes the boot-time files and no kernel values")
    func imageBuilderExample() throws {
        let image = try TestPaths.temporaryDirectory("cttune-image")
        defer { try? FileManager.default.removeItem(at: image) }
        try FileManager.default.createDirectory(at: image.appendingPathComponent("etc"), withIntermediateDirectories: true)
        let result = try Shell.run([
            TestPaths.cttune, "apply", "--persist-only", "--root", image.path,
            "--profile", "web-frontend", "--memory", "8G", "--cpus", "4", "--format", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try PrintedJSON(result)
        let conf = image.appendingPathComponent("etc/sysctl.d/90-cttune.conf").path
        #expect(json.fileActions == [conf: "created"])
        let max = try #require(json.planned("net.netfilter.nf_conntrack_max"))
        let text = try String(contentsOfFile: conf, encoding: .utf8)
        #expect(text.contains("\nnet.netfilter.nf_conntrack_max = \(max)\n"))
        #expect(!FileManager.default.fileExists(atPath: image.appendingPathComponent("proc").path))
    }
}
