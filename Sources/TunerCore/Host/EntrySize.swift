import FoundationEssentials
import Glibc
import SystemPackage

/// Where the plan's bytes per conntrack entry come from, in the order tried:
/// `--entry-size`, the table of known kernels, BTF, a fallback. The live slab
/// is never the source (a non-root caller cannot read /proc/slabinfo, and a
/// plan must not depend on who runs it); it is shown beside it.
public enum EntrySizeSource: String, Sendable, Equatable {
    case flag = "flag"
    case table = "table"
    case btf = "btf"
    case fallback = "fallback"
}

/// One row of the table of known kernels.
public struct KnownEntrySize: Sendable, Equatable {
    public var release: String
    public var architecture: String
    /// The slab slot size of nf_conntrack (what one entry costs).
    public var bytes: Int
    /// How the row was obtained.
    public var source: String
}

public enum EntrySize {
    /// Kernel releases whose entry size was read, with where from. Add a row
    /// for a kernel you provision for (the BTF reader gives the size; the
    /// slab's `objsize` in /proc/slabinfo confirms it).
    public static let known: [KnownEntrySize] = [
        KnownEntrySize(
            release: "6.18.44-fc-v669", architecture: "x86_64", bytes: 256,
            source:
                "BTF sizeof(struct nf_conn) 248 B in a 64 B-aligned slab (objsize 256 in /proc/slabinfo), read 2026-11-30")
    ]

    /// Assumed when nothing else says: larger than the 256 B of common
    /// 64-bit kernels, since debug options (lockdep, KASAN) grow nf_conn.
    public static let fallbackBytes = 320

    /// The slab cache is created with SLAB_HWCACHE_ALIGN
    /// (nf_conntrack_init_start): objects are rounded up to the cache line.
    public static let cacheLineBytes = 64

    /// Plausible entry sizes: a `struct nf_conn` is a few hundred bytes.
    public static let validBytes = 64...65_536

    /// The entry size for a kernel, and a sentence saying where it came from.
    ///
    /// - Parameters:
    ///   - flag: `--entry-size`, which wins.
    ///   - btf: BTF of the kernel (`/sys/kernel/btf/vmlinux`), read only when
    ///     the table has no row.
    public static func resolve(
        flag: Int?, release: String?, architecture: String?, btf: () -> Int?
    ) -> (bytes: Int, source: EntrySizeSource, detail: String) {
        if let flag { return (flag, .flag, "--entry-size \(flag)") }
        if let release,
            let row = known.first(where: { $0.release == release && (architecture == nil || $0.architecture == architecture) })
        {
            return (row.bytes, .table, "table row \(row.release) \(row.architecture): \(row.source)")
        }
        if let size = btf(), validBytes.contains(size) {
            let slot = (size + cacheLineBytes - 1) / cacheLineBytes * cacheLineBytes
            return (slot, .btf, "BTF sizeof(struct nf_conn) \(size) B, rounded up to the \(cacheLineBytes) B slab alignment")
        }
        return (
            fallbackBytes, .fallback,
            "fallback \(fallbackBytes) B: kernel \(release ?? "unknown") is not in the table and has no readable BTF; pass --entry-size"
        )
    }
}

/// Reads the size of one struct from raw BTF (the kernel's type information,
/// /sys/kernel/btf/vmlinux; see Documentation/bpf/btf.rst).
enum BTFReader {
    /// The byte size of `struct name`, or `nil` when the data is not BTF or
    /// has no such struct.
    static func structSize(named name: String, in data: [UInt8]) -> Int? {
        data.withUnsafeBufferPointer { structSize(named: name, in: $0) }
    }

    static func structSize(named name: String, in data: UnsafeBufferPointer<UInt8>) -> Int? {
        guard data.count >= 24 else { return nil }
        func u16(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 }
        func u32(_ at: Int) -> Int? {
            guard at >= 0, at + 4 <= data.count else { return nil }
            return Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 | Int(data[at + 3]) << 24
        }
        // Little-endian only (x86_64, arm64): the magic reads 0xeb9f.
        guard u16(0) == 0xEB9F, let headerLength = u32(4), let typeOffset = u32(8), let typeLength = u32(12),
            let stringOffset = u32(16), let stringLength = u32(20)
        else { return nil }
        let typesStart = headerLength + typeOffset, typesEnd = typesStart + typeLength
        let stringsStart = headerLength + stringOffset, stringsEnd = stringsStart + stringLength
        guard typesEnd <= data.count, stringsEnd <= data.count else { return nil }
        let wanted = Array(name.utf8)

        func nameMatches(_ offset: Int) -> Bool {
            let start = stringsStart + offset
            guard offset >= 0, start + wanted.count < stringsEnd else { return false }
            return data[start..<start + wanted.count].elementsEqual(wanted) && data[start + wanted.count] == 0
        }

        var cursor = typesStart
        while cursor + 12 <= typesEnd {
            guard let nameOffset = u32(cursor), let info = u32(cursor + 4), let size = u32(cursor + 8) else { return nil }
            let kind = (info >> 24) & 0x1F, count = info & 0xFFFF
            if kind == 4 && nameMatches(nameOffset) { return size }
            cursor += 12
            switch kind {
            case 1, 14, 17: cursor += 4  // INT, VAR, DECL_TAG
            case 3: cursor += 12  // ARRAY
            case 4, 5, 15, 19: cursor += 12 * count  // STRUCT, UNION, DATASEC, ENUM64
            case 6, 13: cursor += 8 * count  // ENUM, FUNC_PROTO
            case 2, 7, 8, 9, 10, 11, 12, 16, 18: break
            default: return nil  // a kind this reader does not know: stop rather than misread
            }
        }
        return nil
    }

    /// `sizeof(struct nf_conn)` from the BTF under `root`, if readable.
    static func conntrackEntrySize(_ root: SystemRoot) -> Int? {
        guard let path = try? root.path(KernelPaths.vmlinuxBTF) else { return nil }
        let fd = open(path.string, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        // A regular file (sysfs reports its real size), and no more than a
        // vmlinux BTF could be.
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > 0, info.st_size < 64 << 20 else { return nil }
        // The host's sysfs maps the kernel's own BTF (Linux 6.16 and later): the
        // scan then touches only the pages it reads, where a read copies
        // megabytes into freshly faulted memory, most of a plan's time. Not
        // under --root: a file that shrank under a mapping would kill the process.
        if root.isLive, let mapped = mmap(nil, Int(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED {
            defer { munmap(mapped, Int(info.st_size)) }
            let bytes = UnsafeBufferPointer(start: mapped.assumingMemoryBound(to: UInt8.self), count: Int(info.st_size))
            return structSize(named: "nf_conn", in: bytes)
        }
        var data = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < data.count {
            let count = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            filled += count
        }
        return structSize(named: "nf_conn", in: Array(data[0..<filled]))
    }
}
