import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// The connection-tracking and NAT modules cttune blacklists and unloads, in
/// one place: (a) the core, NAT and protocol-helper modules, (b) the
/// matches, targets and expressions whose only job is conntrack or NAT.
///
/// Checked against a real Debian cloud-kernel tree (ModuleFamilyTests): every
/// member there depends on nf_conntrack, and every other module that depends
/// on it (ip_vs*, openvswitch, act_ct, nf_flow_table, xt_cluster, …) is
/// outside on purpose: its job is a feature of its own that happens to use
/// conntrack, so cttune never unloads it and refuses while one is in use.
///
/// nf_defrag_ipv4/6 are not members: nf_conntrack needs them, but so do
/// xt_socket, xt_TPROXY and nft_tproxy (transparent proxies) without
/// conntrack. They join only with `--include-defrag`.
///
/// Names vary by kernel version: older kernels had ip_conntrack,
/// ipt_MASQUERADE, ipt_state, per-family nf_conntrack_ipv4/nf_nat_ipv4 (the
/// prefixes cover those) and nft_chain_nat_ipv4/nft_masq_ipv4/nft_redir_ipv4.
public enum ModuleFamily {
    /// The core whose presence decides whether connections are tracked at all.
    public static let core = ["nf_conntrack", "ip_conntrack"]

    /// Named members, the core first (printing and unload order start here).
    public static let named = [
        // (a) core, NAT, the NAT tables and chains, conntrack's netlink interfaces
        "nf_conntrack", "nf_nat", "iptable_nat", "ip6table_nat", "nft_chain_nat",
        "nf_conntrack_netlink", "nfnetlink_cthelper", "nfnetlink_cttimeout",
        // (b) iptables matches and targets that only read or set conntrack state, or NAT
        "xt_conntrack", "xt_state", "xt_connmark", "xt_connlimit", "xt_connbytes", "xt_connlabel", "xt_helper",
        "xt_CT", "xt_CONNSECMARK", "xt_MASQUERADE", "xt_nat", "xt_NETMAP", "xt_REDIRECT",
        // (b) nftables expressions, the connection counter and synproxy (built on conntrack)
        "nft_ct", "nft_nat", "nft_masq", "nft_redir", "nft_connlimit", "nf_conncount",
        "nf_synproxy_core", "ipt_SYNPROXY", "ip6t_SYNPROXY", "nft_synproxy",
        // Names of older kernels
        "ip_conntrack", "ipt_MASQUERADE", "ipt_state", "ipt_REDIRECT", "ipt_NETMAP",
        "ip6t_MASQUERADE", "ip6t_REDIRECT", "ip6t_NETMAP",
        "nft_chain_nat_ipv4", "nft_chain_nat_ipv6", "nft_masq_ipv4", "nft_masq_ipv6", "nft_redir_ipv4", "nft_redir_ipv6",
    ]

    /// Protocol helpers (nf_conntrack_ftp, nf_nat_sip, …), nf_conntrack_bridge
    /// and the per-family modules of older kernels.
    static let prefixes = ["nf_conntrack_", "nf_nat_"]

    /// IP defragmentation: needed by nf_conntrack and by the transparent-proxy
    /// modules (xt_socket, xt_TPROXY, nft_tproxy) that do not track.
    public static let defrag = ["nf_defrag_ipv4", "nf_defrag_ipv6"]

    /// Whether cttune manages `name`; nf_defrag_* only when `includingDefrag`.
    public static func contains(_ name: String, includingDefrag: Bool = false) -> Bool {
        named.contains(name) || prefixes.contains { name.hasPrefix($0) } || (includingDefrag && defrag.contains(name))
    }

    /// The family members among `names`, named members first in their
    /// order, then helpers sorted, then nf_defrag_* when included.
    public static func members(of names: some Sequence<String>, includingDefrag: Bool = false) -> [String] {
        let found = Set(names.filter { contains($0, includingDefrag: includingDefrag) })
        let others = found.subtracting(named).subtracting(defrag).sorted()
        return named.filter(found.contains) + others + defrag.filter(found.contains)
    }

    /// Module names as the kernel prints them: libkmod and /proc/modules use
    /// `_` where file names may have `-`.
    static func normalized(_ name: some StringProtocol) -> String {
        String(name).replacing("-", with: "_")
    }
}
