import FoundationEssentials
import SystemPackage

/// Every kernel and system path cttune knows, in one place. Each is absolute
/// and is mapped through a `SystemRoot` before use.
public enum KernelPaths {
    public static let meminfo: FilePath = "/proc/meminfo"
    public static let osRelease: FilePath = "/proc/sys/kernel/osrelease"
    /// The calling thread's namespace's ephemeral ports (`net.ipv4.ip_local_port_range`, also IPv6's).
    public static let localPortRange: FilePath = "/proc/sys/net/ipv4/ip_local_port_range"
    public static let onlineCPUs: FilePath = "/sys/devices/system/cpu/online"
    public static let slabinfo: FilePath = "/proc/slabinfo"
    public static let conntrackSlabSize: FilePath = "/sys/kernel/slab/nf_conntrack/slab_size"
    public static let conntrackSlabObjects: FilePath = "/sys/kernel/slab/nf_conntrack/objects"
    /// The running kernel's type information (world-readable): `sizeof(struct nf_conn)`.
    public static let vmlinuxBTF: FilePath = "/sys/kernel/btf/vmlinux"
    public static let procModules: FilePath = "/proc/modules"
    public static let procMounts: FilePath = "/proc/mounts"
    /// The running binary (a link to its real path).
    public static let selfExecutable: FilePath = "/proc/self/exe"
    public static let sysModule: FilePath = "/sys/module"
    public static let libModules: FilePath = "/lib/modules"
    public static let netfilterSysctls: FilePath = "/proc/sys/net/netfilter"
    public static let conntrackStat: FilePath = "/proc/net/stat/nf_conntrack"
    public static let conntrackModuleParameters: FilePath = "/sys/module/nf_conntrack/parameters"
    /// Resizes the hash table like nf_conntrack_buckets; the fallback where that sysctl is read-only.
    public static let conntrackHashsizeParameter = conntrackModuleParameters.appending(HashSizeNames.parameter)
    /// The live entries of this network namespace, one per line (CONFIG_NF_CONNTRACK_PROCFS).
    public static let conntrackTable: FilePath = "/proc/net/nf_conntrack"
    public static let conntrackCount: FilePath = "/proc/sys/net/netfilter/nf_conntrack_count"
    /// A link whose target `net:[INODE]` names this process's network namespace.
    public static let ownNetworkNamespace: FilePath = "/proc/self/ns/net"
    /// This process's open descriptors, each a link to what it names: never
    /// mapped through a root (it describes cttune itself).
    public static let ownDescriptors: FilePath = "/proc/self/fd"
    /// The kernel log ring buffer, one record per read(2).
    public static let kernelLog: FilePath = "/dev/kmsg"

    public static let sysctlD: FilePath = "/etc/sysctl.d"
    public static let modprobeD: FilePath = "/etc/modprobe.d"
    public static let modulesLoadD: FilePath = "/etc/modules-load.d"
    public static let sysctlConf: FilePath = "/etc/sysctl.d/90-cttune.conf"
    /// cttune's sysctl.d file under `--on-conflict override`: `99-zz-` sorts
    /// after Debian's `99-sysctl.conf` link and other tools' `99-*` files.
    public static let sysctlConfLast: FilePath = "/etc/sysctl.d/99-zz-cttune.conf"
    /// Where systemd-sysctl reads configuration, highest priority first
    /// (systemd's CONF_PATHS("sysctl.d"); `/lib/sysctl.d` with a split /usr).
    public static let sysctlConfigDirectories: [FilePath] = [
        "/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d",
    ]
    public static let modprobeConf: FilePath = "/etc/modprobe.d/cttune.conf"
    public static let modulesLoadConf: FilePath = "/etc/modules-load.d/cttune.conf"
    public static let blacklistConf: FilePath = "/etc/modprobe.d/cttune-blacklist.conf"
    public static let profilesDirectory: FilePath = "/etc/cttune/profiles"
    /// cttune's nft table of cures as the boot apply loads it (a replacement script).
    public static let curesTable: FilePath = "/etc/cttune/cures.nft"
    /// Where `make install` and the Debian package put the profiles, relative
    /// to the directory holding the binary (`PREFIX/bin` → `PREFIX/share/cttune/profiles`).
    /// Not mapped through a `SystemRoot`: it is cttune's own data.
    public static let installedProfilesRelativeToBinary = "../share/cttune/profiles"
    public static let journalDirectory: FilePath = "/var/lib/cttune/journal"
    public static let lockFile: FilePath = "/run/cttune.lock"
    /// How many times `status --census-every N` ran since boot.
    public static let statusRunCounter: FilePath = "/run/cttune/status-runs"
    /// The calling thread's view of /proc/net/stat/nf_conntrack: after setns(2)
    /// only the thread is in the other namespace, and /proc/self/net (and
    /// /proc/net) still show the process's.
    public static let threadConntrackStat: FilePath = "/proc/thread-self/net/stat/nf_conntrack"
    /// The calling thread's network namespace (setns(2) moves threads, not processes).
    public static let threadNetworkNamespace: FilePath = "/proc/thread-self/ns/net"
    /// Namespaces named by `ip netns add NAME`.
    public static let namedNetworkNamespaces: FilePath = "/run/netns"
    /// Namespaces of Docker containers (the Docker daemon's bind mounts).
    public static let dockerNetworkNamespaces: FilePath = "/var/run/docker/netns"

    /// Where modprobe and libkmod read configuration, first directory first
    /// (a name in an earlier one hides the same name in later ones).
    ///
    /// libkmod's compiled-in list (libkmod.c `default_config_paths`) differs
    /// by release: kmod ≤ 31 (Debian 12 ships 30) reads /etc, /run,
    /// /usr/local/lib and /lib; kmod 32 adds DISTCONFDIR /usr/lib before
    /// /lib, and kmod 34 (Debian 13) drops /lib. cttune reads the union, in
    /// kmod ≥ 32's order, so a file that either layout reads is seen: on a
    /// merged-/usr system the last two are one directory, elsewhere a file
    /// only one layout reads is reported as if it counted (the safe side).
    /// On the live host libkmod itself is given no list and uses its own.
    public static let modprobeConfigDirectories: [FilePath] = [
        "/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d",
    ]
    /// The proc directory itself: present in a live system, usually absent in an image tree.
    public static let proc: FilePath = "/proc"
    public static let osReleaseFile: FilePath = "/etc/os-release"
    public static let boot: FilePath = "/boot"
    /// initramfs-tools' list of modules forced into the initramfs (Debian, Ubuntu).
    public static let initramfsToolsModules: FilePath = "/etc/initramfs-tools/modules"
    /// dracut's configuration (Fedora, RHEL, SUSE): `add_drivers+=" … "`.
    public static let dracutConf: FilePath = "/etc/dracut.conf"
    public static let dracutConfD: FilePath = "/etc/dracut.conf.d"

    /// The /sys/module directory of a loaded or built-in module.
    public static func sysModule(_ module: String) -> FilePath {
        sysModule.appending(module)
    }
    /// Legacy (x_tables) iptables tables loaded in this network namespace;
    /// empty or absent when only nftables is in use.
    public static let legacyIPv4Tables: FilePath = "/proc/net/ip_tables_names"
    public static let legacyIPv6Tables: FilePath = "/proc/net/ip6_tables_names"
    /// Where firewall tools live; a non-root PATH often lacks them.
    public static let sbinDirectories = ["/usr/sbin", "/sbin"]

    /// The /proc/sys file of a sysctl key: dots become slashes.
    public static func sysctl(_ key: String) -> FilePath {
        FilePath("/proc/sys/" + key.split(separator: ".", omittingEmptySubsequences: false).joined(separator: "/"))
    }

}
