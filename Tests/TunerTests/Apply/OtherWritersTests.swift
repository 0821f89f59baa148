import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// kube-proxy and tuned found in a host tree from fixture command lines and
/// configuration files (kube-proxy is not packaged here), with what each
/// writes after boot per kube-proxy's source.
@Suite("other conntrack writers: kube-proxy and tuned")
struct OtherWritersTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var testDescription: String
        var cmdline: [String]?
        var config: String?
        var configPath = "/var/lib/kube-proxy/config.conf"
        /// Expected writes: key → value; empty means kube-proxy leaves conntrack alone.
        var writes: [String: Int]
    }

    static let cases: [Case] = [
        Case(
            testDescription:
                "a kubeadm kube-proxy with an empty conntrack section writes max(min, 32768 x CPUs), hashsize max/4, established 24h and close_wait 1h",
            cmdline: ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=node-1"],
            config: "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nconntrack: {}\n",
            writes: [
                "net.netfilter.nf_conntrack_max": 131072, "nf_conntrack.hashsize": 32768,
                "net.netfilter.nf_conntrack_tcp_timeout_established": 86400, "net.netfilter.nf_conntrack_tcp_timeout_close_wait": 3600,
            ]),
        Case(
            testDescription: "command-line flags override the file: --conntrack-tcp-timeout-close-wait 30m, --conntrack-max-per-core=65536",
            cmdline: [
                "kube-proxy", "--config", "/etc/kp.yaml", "--conntrack-tcp-timeout-close-wait", "30m", "--conntrack-max-per-core=65536",
            ],
            config: "kind: KubeProxyConfiguration\nconntrack:\n  maxPerCore: 1000\n  tcpEstablishedTimeout: 2h0m0s\n  udpTimeout: 45s\n",
            configPath: "/etc/kp.yaml",
            writes: [
                "net.netfilter.nf_conntrack_max": 262144, "nf_conntrack.hashsize": 65536,
                "net.netfilter.nf_conntrack_tcp_timeout_established": 7200, "net.netfilter.nf_conntrack_tcp_timeout_close_wait": 1800,
                "net.netfilter.nf_conntrack_udp_timeout": 45,
            ]),
        Case(
            testDescription: "configured to leave conntrack to cttune (maxPerCore 0, timeouts 0s), kube-proxy is not reported",
            cmdline: ["/usr/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"],
            config: "kind: KubeProxyConfiguration\nconntrack:\n  maxPerCore: 0\n  tcpEstablishedTimeout: 0s\n  tcpCloseWaitTimeout: 0s\n",
            writes: [:]),
        Case(
            testDescription: "an image tree: kube-proxy's configuration file at a kubeadm path, no process",
            cmdline: nil,
            config: "kind: KubeProxyConfiguration\nconntrack:\n  maxPerCore: 8192\n  min: 0\n  tcpEstablishedTimeout: 0s\n",
            writes: [
                "net.netfilter.nf_conntrack_max": 32768, "nf_conntrack.hashsize": 8192,
                "net.netfilter.nf_conntrack_tcp_timeout_close_wait": 3600,
            ]),
    ]

    @Test("kube-proxy's writes from its command line and configuration file", arguments: cases)
    func kubeProxy(_ testCase: Case) throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        if let cmdline = testCase.cmdline {
            try tree.write("proc/4242/cmdline", cmdline.joined(separator: "\0") + "\0")
            try tree.write("proc/4243/cmdline", "/usr/sbin/sshd\0-D\0")
        }
        if let config = testCase.config { try tree.write(String(testCase.configPath.dropFirst()), config) }
        let writers = ConntrackWriters.find(under: SystemRoot(base: FilePath(tree.path)), cpus: 4)
        if testCase.writes.isEmpty {
            #expect(writers.isEmpty)
            return
        }
        #expect(writers.count == 1)
        let writer = try #require(writers.first)
        #expect(writer.name == "kube-proxy")
        #expect(Dictionary(uniqueKeysWithValues: writer.writes.map { ($0.key, $0.value) }) == testCase.writes)
        #expect(
            writer.source.hasPrefix(
                testCase.cmdline == nil ? tree.file(String(testCase.configPath.dropFirst())) : tree.file("proc/4242/cmdline")))
        #expect(writer.fix.contains("maxPerCore: 0"))
    }

    @Test("plan names kube-proxy and the active tuned profile, and the settings they undo")
    func planReportsWriters() throws {
        let tree = try ApplyFixtureTree(.builtIn)
        defer { tree.remove() }
        try tree.write("proc/4242/cmdline", "kube-proxy\0--config=/var/lib/kube-proxy/config.conf\0")
        try tree.write("var/lib/kube-proxy/config.conf", "kind: KubeProxyConfiguration\nconntrack: {}\n")
        try tree.write(
            "usr/lib/tuned/throughput/tuned.conf",
            "[main]\nsummary=x\n[sysctl]\nnet.core.somaxconn=4096\nnet.netfilter.nf_conntrack_max = 1048576\nnet/netfilter/nf_conntrack_tcp_timeout_time_wait=7\n"
        )
        try tree.write("usr/lib/tuned/balanced/tuned.conf", "[sysctl]\nvm.swappiness=10\n")
        try tree.write("etc/tuned/active_profile", "throughput\n")
        let result = try tree.cttune(["plan", "--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let writers = try #require(try PrintedJSON(result).object["writers"] as? [[String: Any]])
        #expect(writers.map { $0["name"] as? String } == ["kube-proxy", "tuned profile throughput (active)"])
        let kubeWrites = writers[0]["writes"] as? [[String: Any]] ?? []
        let established = kubeWrites.first { $0["key"] as? String == "net.netfilter.nf_conntrack_tcp_timeout_established" }
        #expect(established?["value"] as? Int == 86400 && established?["undoes_plan"] as? Bool == true)
        let tunedWrites = writers[1]["writes"] as? [[String: Any]] ?? []
        #expect(
            tunedWrites.map { $0["key"] as? String } == [
                "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
            ])

        let text = try tree.cttune(["plan"]).stdout
        #expect(text.contains("other conntrack writers"))
        #expect(
            text.contains("sets net.netfilter.nf_conntrack_tcp_timeout_time_wait = 7 whenever tuned applies the profile (cttune plans 120)")
        )
    }

    @Test(
        "Go durations as kube-proxy writes them",
        arguments: [("24h0m0s", 86400), ("1h", 3600), ("30m", 1800), ("0s", 0), ("1m30s", 90), ("bad", -1)])
    func durations(_ text: String, _ seconds: Int) {
        #expect(ConntrackWriters.goDurationSeconds(text) ?? -1 == seconds)
    }
}
