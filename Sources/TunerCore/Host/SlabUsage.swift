/// Host-wide slab memory of the conntrack entries (the cache is shared by all
/// namespaces): how many are allocated and the kernel memory each takes.
public struct SlabUsage: Sendable, Equatable {
    public var activeObjects: Int
    /// The slab slot size: what one entry really costs (248 B objects sit in
    /// 256 B slots on 6.18).
    public var objectBytes: Int
    public var bytes: Int { activeObjects * objectBytes }

    /// Which file the usage was read from.
    public enum Source: String, Sendable, Equatable {
        case slabinfo = "/proc/slabinfo"
        case sysfs = "/sys/kernel/slab"
    }

    public init(activeObjects: Int, objectBytes: Int) {
        self.activeObjects = activeObjects
        self.objectBytes = objectBytes
    }

    /// Reads /sys/kernel/slab/nf_conntrack/{objects,slab_size}, else
    /// /proc/slabinfo's `nf_conntrack` line (root only). The sysfs files are
    /// read first: the kernel formats them for this one cache, while
    /// slabinfo walks every cache, and the status timer runs every minute.
    /// The cache is never merged with another (SLAB_TYPESAFE_BY_RCU), so
    /// both count only conntrack entries.
    ///
    /// - Returns: the usage and which file said so, or `nil` when neither
    ///   exists (no nf_conntrack cache, or a tree without them).
    public static func read(from root: SystemRoot) throws -> (usage: SlabUsage, source: Source)? {
        // `objects` reads "240 N0=240": the total comes first.
        if let objects = try? root.contents(of: KernelPaths.conntrackSlabObjects, limit: ReadLimit.kernelTable),
            let active = objects.split(separator: " ").first.flatMap({ Int($0.trimming(.whitespacesAndNewlines)) }),
            KernelValue.slabObjects.contains(active),
            let size = try? root.integer(at: KernelPaths.conntrackSlabSize, in: KernelValue.slabObjectBytes)
        {
            return (SlabUsage(activeObjects: active, objectBytes: size), .sysfs)
        }
        if let slabinfo = try? root.contents(of: KernelPaths.slabinfo, limit: ReadLimit.kernelTable) {
            for line in slabinfo.split(separator: "\n") where line.hasPrefix("nf_conntrack ") {
                // name <active_objs> <num_objs> <objsize> ...
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count > 3, let active = Int(fields[1]), let size = Int(fields[3]),
                    KernelValue.slabObjects.contains(active), KernelValue.slabObjectBytes.contains(size)
                {
                    return (SlabUsage(activeObjects: active, objectBytes: size), .slabinfo)
                }
            }
        }
        return nil
    }
}
