import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// Every built-in profile's plan, pinned on three hosts: a change to the
/// model (flow classes, cures) that moves a plan of a profile which does not
/// use it shows up here, value by value.
@Suite("built-in profiles plan as pinned")
struct BuiltinPlanPinTests {
    static let hosts: [(name: String, memory: Int, cpus: Int)] = [("512M", 512 << 20, 1), ("4G", 4 << 30, 4), ("64G", 64 << 30, 32)]

    /// One line per profile and host: every planned value, the peaks, the
    /// memory, whether it fits and the reasons of max and the timeouts.
    static func pinned(_ plan: TuningPlan) -> String {
        let values = plan.settings.map { "\($0.setting.shortName)=\($0.planned)" }.joined(separator: " ")
        let estimate = plan.estimate
        let reasons = Set(plan.settings.map(\.reason)).sorted().joined(separator: "|")
        return """
            \(values) steady=\(estimate.steadyPeakEntries) peak=\(estimate.peakEntries) \
            memory=\(estimate.memoryBytes) fits=\(plan.fitsBudget) gap=\(estimate.gc.worstGapSeconds) \
            reasons=\(reasons)
            """
    }

    @Test("each built-in profile plans exactly as before on 512 MiB, 4 GiB and 64 GiB", arguments: ProfileCatalog.builtinNames)
    func pinnedPlan(profileName: String) throws {
        let profile = try ProfileCatalog(searchDirectories: []).load(profileName)
        for host in Self.hosts {
            let plan = Planner.plan(for: FixtureFacts.host(memory: host.memory, cpus: host.cpus), profile: profile)
            let key = "\(profileName)@\(host.name)"
            #expect(Self.pinned(plan) == Self.expected[key], "\(key)")
        }
    }

    static let expected: [String: String] = [
        "database@4G": """
        nf_conntrack_max=195072 hashsize=195072 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=155864 peak=155864 memory=51499008 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|worst-phase peak 155864 entries x \
        headroom 1.25, rounded
        """,
        "database@512M": """
        nf_conntrack_max=188416 hashsize=188416 nf_conntrack_tcp_timeout_established=7200 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=150324 peak=150324 memory=49741824 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|shortened to its floor 10 s to fit the \
        memory budget|shortened to its floor 30 s to fit the memory budget|shortened to its floor 60 s to \
        fit the memory budget|shortened to its floor 7200 s to fit the memory budget|worst-phase peak 150324 \
        entries x headroom 1.25, rounded
        """,
        "database@64G": """
        nf_conntrack_max=195072 hashsize=195072 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=155864 peak=155864 memory=51499008 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|worst-phase peak 155864 entries x \
        headroom 1.25, rounded
        """,
        "ddos-edge@4G": """
        nf_conntrack_max=6996480 hashsize=6996480 nf_conntrack_tcp_timeout_established=600 \
        nf_conntrack_tcp_timeout_time_wait=30 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=20 nf_conntrack_tcp_timeout_fin_wait=30 \
        nf_conntrack_tcp_timeout_last_ack=20 nf_conntrack_tcp_timeout_syn_sent=20 \
        nf_conntrack_tcp_timeout_syn_recv=20 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=4664000 peak=4664000 memory=1847070720 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|pinned by the profile|shortened to its \
        floor 10 s to fit the memory budget|shortened to its floor 60 s to fit the memory budget|worst-phase \
        peak 4664000 entries x headroom 1.5, rounded
        """,
        "ddos-edge@512M": """
        nf_conntrack_max=6996480 hashsize=6996480 nf_conntrack_tcp_timeout_established=600 \
        nf_conntrack_tcp_timeout_time_wait=30 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=20 nf_conntrack_tcp_timeout_fin_wait=30 \
        nf_conntrack_tcp_timeout_last_ack=20 nf_conntrack_tcp_timeout_syn_sent=20 \
        nf_conntrack_tcp_timeout_syn_recv=20 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=4664000 peak=4664000 memory=1847070720 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|pinned by the profile|shortened to its \
        floor 10 s to fit the memory budget|shortened to its floor 60 s to fit the memory budget|worst-phase \
        peak 4664000 entries x headroom 1.5, rounded
        """,
        "ddos-edge@64G": """
        nf_conntrack_max=7120896 hashsize=7120896 nf_conntrack_tcp_timeout_established=600 \
        nf_conntrack_tcp_timeout_time_wait=30 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=20 nf_conntrack_tcp_timeout_fin_wait=30 \
        nf_conntrack_tcp_timeout_last_ack=20 nf_conntrack_tcp_timeout_syn_sent=20 \
        nf_conntrack_tcp_timeout_syn_recv=20 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=4747000 peak=4747000 memory=1879916544 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|pinned by the profile|worst-phase peak \
        4747000 entries x headroom 1.5, rounded
        """,
        "default@4G": """
        nf_conntrack_max=329216 hashsize=329216 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=263074 peak=263074 memory=86913024 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|worst-phase peak 263074 entries x \
        headroom 1.25, rounded
        """,
        "default@512M": """
        nf_conntrack_max=111104 hashsize=111104 nf_conntrack_tcp_timeout_established=600 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=88754 peak=88754 memory=29331456 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|shortened to its floor 10 s to fit the \
        memory budget|shortened to its floor 30 s to fit the memory budget|shortened to its floor 60 s to \
        fit the memory budget|shortened to its floor 600 s to fit the memory budget|worst-phase peak 88754 \
        entries x headroom 1.25, rounded
        """,
        "default@64G": """
        nf_conntrack_max=329216 hashsize=329216 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=263074 peak=263074 memory=86913024 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|worst-phase peak 263074 entries x \
        headroom 1.25, rounded
        """,
        "kubernetes-node@4G": """
        nf_conntrack_max=934912 hashsize=233984 nf_conntrack_tcp_timeout_established=86400 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=3600 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=747810 peak=747810 memory=241209344 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 4, multiple of 512|pinned by the profile|shortened to its \
        floor 10 s to fit the memory budget|shortened to its floor 30 s to fit the memory budget|shortened \
        to its floor 60 s to fit the memory budget|worst-phase peak 747810 entries x headroom 1.25, rounded
        """,
        "kubernetes-node@512M": """
        nf_conntrack_max=934912 hashsize=233984 nf_conntrack_tcp_timeout_established=86400 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=3600 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=747810 peak=747810 memory=241209344 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 4, multiple of 512|pinned by the profile|shortened to its \
        floor 10 s to fit the memory budget|shortened to its floor 30 s to fit the memory budget|shortened \
        to its floor 60 s to fit the memory budget|worst-phase peak 747810 entries x headroom 1.25, rounded
        """,
        "kubernetes-node@64G": """
        nf_conntrack_max=1192960 hashsize=298496 nf_conntrack_tcp_timeout_established=86400 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=3600 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=954288 peak=954288 memory=307785728 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 4, multiple of 512|pinned by the profile|worst-phase peak \
        954288 entries x headroom 1.25, rounded
        """,
        "nat-gateway@4G": """
        nf_conntrack_max=3319296 hashsize=3319296 nf_conntrack_tcp_timeout_established=1800 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=60 nf_conntrack_udp_timeout_stream=180 \
        nf_conntrack_generic_timeout=60 steady=2655285 peak=2655285 memory=876294144 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|pinned by the profile|shortened to its \
        floor 1800 s to fit the memory budget|shortened to its floor 30 s to fit the memory budget|shortened \
        to its floor 60 s to fit the memory budget|worst-phase peak 2655285 entries x headroom 1.25, rounded
        """,
        "nat-gateway@512M": """
        nf_conntrack_max=3319296 hashsize=3319296 nf_conntrack_tcp_timeout_established=1800 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=60 nf_conntrack_udp_timeout_stream=180 \
        nf_conntrack_generic_timeout=60 steady=2655285 peak=2655285 memory=876294144 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|pinned by the profile|shortened to its \
        floor 1800 s to fit the memory budget|shortened to its floor 30 s to fit the memory budget|shortened \
        to its floor 60 s to fit the memory budget|worst-phase peak 2655285 entries x headroom 1.25, rounded
        """,
        "nat-gateway@64G": """
        nf_conntrack_max=10267648 hashsize=10267648 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=60 nf_conntrack_udp_timeout_stream=180 \
        nf_conntrack_generic_timeout=600 steady=8213991 peak=8213991 memory=2710659072 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|pinned by the profile|worst-phase peak \
        8213991 entries x headroom 1.25, rounded
        """,
        "stateless@4G": """
        nf_conntrack_max=2048 hashsize=2048 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=0 peak=0 memory=540672 fits=true gap=65.12 reasons=kernel \
        default|max / chain length 1, multiple of 512|the load needs only 0; kept at the minimum 2048
        """,
        "stateless@512M": """
        nf_conntrack_max=2048 hashsize=2048 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=0 peak=0 memory=540672 fits=true gap=65.12 reasons=kernel \
        default|max / chain length 1, multiple of 512|the load needs only 0; kept at the minimum 2048
        """,
        "stateless@64G": """
        nf_conntrack_max=2048 hashsize=2048 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=0 peak=0 memory=540672 fits=true gap=65.12 reasons=kernel \
        default|max / chain length 1, multiple of 512|the load needs only 0; kept at the minimum 2048
        """,
        "web-frontend@4G": """
        nf_conntrack_max=905728 hashsize=905728 nf_conntrack_tcp_timeout_established=600 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=724435 peak=724435 memory=239112192 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|shortened to its floor 10 s to fit the \
        memory budget|shortened to its floor 30 s to fit the memory budget|shortened to its floor 60 s to \
        fit the memory budget|shortened to its floor 600 s to fit the memory budget|worst-phase peak 724435 \
        entries x headroom 1.25, rounded
        """,
        "web-frontend@512M": """
        nf_conntrack_max=905728 hashsize=905728 nf_conntrack_tcp_timeout_established=600 \
        nf_conntrack_tcp_timeout_time_wait=60 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=30 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=10 nf_conntrack_udp_timeout_stream=60 \
        nf_conntrack_generic_timeout=60 steady=724435 peak=724435 memory=239112192 fits=false gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|shortened to its floor 10 s to fit the \
        memory budget|shortened to its floor 30 s to fit the memory budget|shortened to its floor 60 s to \
        fit the memory budget|shortened to its floor 600 s to fit the memory budget|worst-phase peak 724435 \
        entries x headroom 1.25, rounded
        """,
        "web-frontend@64G": """
        nf_conntrack_max=4637696 hashsize=4637696 nf_conntrack_tcp_timeout_established=432000 \
        nf_conntrack_tcp_timeout_time_wait=120 nf_conntrack_tcp_timeout_close=10 \
        nf_conntrack_tcp_timeout_close_wait=60 nf_conntrack_tcp_timeout_fin_wait=120 \
        nf_conntrack_tcp_timeout_last_ack=30 nf_conntrack_tcp_timeout_syn_sent=120 \
        nf_conntrack_tcp_timeout_syn_recv=60 nf_conntrack_udp_timeout=30 nf_conntrack_udp_timeout_stream=120 \
        nf_conntrack_generic_timeout=600 steady=3710082 peak=3710082 memory=1224351744 fits=true gap=65.12 \
        reasons=kernel default|max / chain length 1, multiple of 512|worst-phase peak 3710082 entries x \
        headroom 1.25, rounded
        """,
    ]
}
