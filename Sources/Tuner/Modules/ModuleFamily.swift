import Foundation

/// The connection-tracking and NAT modules cttune manages: everything that
/// keeps nf_conntrack loaded or needs it.
///
/// Names vary by kernel version: older kernels had ip_conntrack,
/// ipt_MASQUERADE, ipt_state and per-family nf_conntrack_ipv4/nf_nat_ipv4,
/// which the prefixes below also cover.
public enum ModuleFamily {
    /// Named members, the core first (printing and unload order start here).
    public static let named = [
        "nf_conntrack", "nf_nat", "nf_defrag_ipv4", "nf_defrag_ipv6",
        "xt_conntrack", "xt_state", "xt_MASQUERADE", "xt_nat", "xt_CT",
        "iptable_nat", "ip6table_nat", "nft_ct", "nft_nat", "nft_masq", "nft_chain_nat",
        "nf_conntrack_netlink", "ip_conntrack", "ipt_MASQUERADE", "ipt_state",
    ]

    /// Protocol helpers (nf_conntrack_ftp, nf_nat_sip, …) and per-family
    /// modules of older kernels.
    static let prefixes = ["nf_conntrack_", "nf_nat_"]

    /// The core whose presence decides whether connections are tracked at all.
    public static let core = ["nf_conntrack", "ip_conntrack"]

    public static func contains(_ name: String) -> Bool {
        named.contains(name) || prefixes.contains { name.hasPrefix($0) }
    }

    /// The family members among `names`, named members first in their
    /// order, then helpers sorted.
    public static func members(of names: some Sequence<String>) -> [String] {
        let found = Set(names.filter(contains))
        return named.filter(found.contains) + found.subtracting(named).sorted()
    }

    /// Module names as the kernel prints them: libkmod and /proc/modules use
    /// `_` where file names may have `-`.
    static func normalized(_ name: some StringProtocol) -> String {
        name.replacingOccurrences(of: "-", with: "_")
    }
}
