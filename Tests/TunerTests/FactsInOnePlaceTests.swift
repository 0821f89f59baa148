import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerWorkflows

/// Facts that several parts of cttune need, each defined once: these tests
/// pin the definition, and where the kernel can say, check it against the kernel.
@Suite("facts kept in one place")
struct FactsInOnePlaceTests {
    @Test("the hash size's four names round-trip: contract key and kernel parameter, sysctl, module parameter file, modprobe.d option")
    func hashSizeNames() throws {
        #expect(HashSizeNames.contractKey == "\(HashSizeNames.module).\(HashSizeNames.parameter)")
        #expect(ConntrackSetting(rawValue: HashSizeNames.contractKey) == .hashsize)

        let parameter = HashSizeNames.kernelParameter(4096).split(separator: "=").map(String.init)
        #expect(parameter == [HashSizeNames.contractKey, "4096"])

        let options = EffectiveModprobe.parse(HashSizeNames.modprobeOption(4096), module: HashSizeNames.module, path: "", fileName: "")
        #expect(options.map(\.name) == [HashSizeNames.parameter] && options.map(\.value) == ["4096"])
        // The same line written the way people write it (dash, extra option) reads the same.
        let written = EffectiveModprobe.parse(
            "options nf-conntrack expect_hashsize=5 hashsize=4096\n", module: HashSizeNames.module, path: "", fileName: "")
        #expect(written.last { $0.name == HashSizeNames.parameter }?.value == "4096")

        #expect(KernelPaths.conntrackHashsizeParameter == "/sys/module/nf_conntrack/parameters/hashsize")
        #expect(KernelPaths.sysctl(HashSizeNames.sysctl) == "/proc/sys/net/netfilter/nf_conntrack_buckets")
    }

    @Test(
        "on this kernel the buckets sysctl and the module parameter report the same table",
        .enabled(if: FileManager.default.fileExists(atPath: "/sys/module/nf_conntrack/parameters/hashsize"), "no nf_conntrack here"))
    func hashSizeOnTheKernel() throws {
        let sysctl = try SystemRoot.live.integer(at: KernelPaths.sysctl(HashSizeNames.sysctl))
        let parameter = try SystemRoot.live.integer(at: KernelPaths.conntrackHashsizeParameter)
        #expect(sysctl != nil && sysctl == parameter)
    }

    @Test("the kernel's boot timeouts are one table: the learner's defaults are the planner's")
    func defaultTimeoutsOnce() {
        let learner = LearnTimeouts()
        #expect(learner.tcpEstablishedSeconds == ConntrackSetting.tcpTimeoutEstablished.kernelDefaultSeconds)
        #expect(learner.synSentSeconds == ConntrackSetting.tcpTimeoutSynSent.kernelDefaultSeconds)
        #expect(learner.udpSeconds == ConntrackSetting.udpTimeout.kernelDefaultSeconds)
        #expect(
            Anchors.kernelDefault(memoryBytes: 1 << 30).establishedTimeoutSeconds
                == ConntrackSetting.tcpTimeoutEstablished.kernelDefaultSeconds)
    }

    @Test(
        "a new network namespace starts with exactly the boot timeouts cttune records",
        .enabled(if: TestHost.canUseNetns, "needs root and ip netns"))
    func defaultTimeoutsMatchTheKernel() throws {
        let namespace = try TestNamespace("defaults")
        defer { namespace.delete() }
        for setting in ConntrackSetting.timeouts {
            let live = try namespace.sysctl(setting.key)
            #expect(live == setting.kernelDefaultSeconds, "\(setting.key): kernel \(live), recorded \(setting.kernelDefaultSeconds ?? -1)")
        }
    }
}
