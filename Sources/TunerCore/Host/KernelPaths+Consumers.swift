import SystemPackage

/// Paths that tell who else needs the conntrack family: boot-time module
/// lists, persisted rulesets, and the kernel's views of IPVS and bridge
/// netfilter.
extension KernelPaths {
    /// Where systemd-modules-load reads modules to load at boot, in its order.
    public static let modulesLoadDirectories: [FilePath] = [
        "/etc/modules-load.d", "/run/modules-load.d", "/usr/local/lib/modules-load.d", "/usr/lib/modules-load.d",
        "/lib/modules-load.d",
    ]
    /// Debian's historical boot-time module list (kmod's init script reads it).
    public static let etcModules: FilePath = "/etc/modules"
    /// Rulesets loaded at boot: nftables.service and netfilter-persistent.
    public static let persistedRulesetFiles: [FilePath] = [
        "/etc/nftables.conf", "/etc/iptables/rules.v4", "/etc/iptables/rules.v6",
    ]
    /// IPVS virtual services and their real servers (present while ip_vs is loaded).
    public static let ipvsTable: FilePath = "/proc/net/ip_vs"
    /// 1 when bridged IPv4 frames pass the iptables rules (br_netfilter loaded).
    public static let bridgeNfCallIptables: FilePath = "/proc/sys/net/bridge/bridge-nf-call-iptables"
}

extension KernelPaths {
    /// One entry per network device of this network namespace.
    public static let sysClassNet: FilePath = "/sys/class/net"
}
