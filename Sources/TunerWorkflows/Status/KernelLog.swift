import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// The kernel's own word that the table overflowed: `nf_conntrack: table full,
/// dropping packet` lines (`… table full in netns N, dropping packet` outside
/// the initial namespace since 6.17), read from the kernel log ring buffer.
public struct KernelLogEvidence: Sendable, Equatable {
    /// One "table full" record.
    public struct Line: Sendable, Equatable {
        /// The record's timestamp: seconds since boot.
        public var secondsSinceBoot: Double
        public var message: String
        /// The namespace inode the line names; `nil` for the initial namespace
        /// (and for every namespace on kernels before 6.17).
        public var netnsInode: UInt64?

        public init(secondsSinceBoot: Double, message: String, netnsInode: UInt64? = nil) {
            self.secondsSinceBoot = secondsSinceBoot
            self.message = message
            self.netnsInode = netnsInode
        }
    }

    /// Why the log could not be read (`nil` when it was).
    public var unreadableReason: String?
    /// Lines about this network namespace, oldest first.
    public var lines: [Line] = []
    /// Lines naming other namespaces: they share the same global max.
    public var otherNamespaceLines = 0

    public var readable: Bool { unreadableReason == nil }

    public init(unreadableReason: String? = nil, lines: [Line] = [], otherNamespaceLines: Int = 0) {
        self.unreadableReason = unreadableReason
        self.lines = lines
        self.otherNamespaceLines = otherNamespaceLines
    }

    /// The kernel rate-limits these lines (net_warn_ratelimited), so they show
    /// that drops happened and when, not how many: the counters say how many.
    static let marker = "nf_conntrack: table full"

    /// Keeps the "table full" lines of `records` (the text of /dev/kmsg records,
    /// `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE`, one per line; lines
    /// starting with a space continue the previous record) that concern the
    /// namespace `own` (`nil` inode with `kind == .initial`: lines naming no namespace).
    static func tableFullLines(in records: String, for own: NamespaceIdentity) -> KernelLogEvidence {
        evidence(from: parse(records), for: own)
    }

    /// The lines of `lines` about `own`, and how many name another namespace.
    static func evidence(from lines: [Line], for own: NamespaceIdentity) -> KernelLogEvidence {
        var evidence = KernelLogEvidence()
        for line in lines {
            let ours = line.netnsInode == nil ? own.kind != .nonInitial : line.netnsInode == own.inode
            if ours { evidence.lines.append(line) } else { evidence.otherNamespaceLines += 1 }
        }
        return evidence
    }

    /// Every "table full" line of `records`, whatever namespace it names:
    /// parsed once for all the namespaces a status run reports.
    static func parse(_ records: String) -> [Line] {
        var lines: [Line] = []
        // On bytes, not Characters: a host that overflowed keeps thousands of
        // these records, and the status timer runs every minute.
        for record in records.utf8.split(separator: UInt8(ascii: "\n")) where record.first != UInt8(ascii: " ") {
            guard let separator = record.firstIndex(of: UInt8(ascii: ";")) else { continue }
            let message = record[record.index(after: separator)...]
            guard ByteSearch.offset(of: markerBytes, in: message) != nil else { continue }
            let prefix = record[..<separator].split(separator: UInt8(ascii: ","))
            guard prefix.count >= 3, let microseconds = Double(String(decoding: prefix[2], as: UTF8.self)) else { continue }
            lines.append(
                Line(
                    secondsSinceBoot: microseconds / 1e6, message: String(decoding: message, as: UTF8.self),
                    netnsInode: namespaceInode(in: message)))
        }
        return lines
    }

    static let markerBytes = Array(marker.utf8)

    /// `N` from "… in netns N, …".
    static func namespaceInode(in message: Substring.UTF8View) -> UInt64? {
        guard let offset = ByteSearch.offset(of: namespacePrefix, in: message) else { return nil }
        let digits = message.dropFirst(offset + namespacePrefix.count).prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }

    private static let namespacePrefix = Array("in netns ".utf8)

    /// Reads the ring buffer without waiting for new records.
    ///
    /// /dev/kmsg returns one record per read(2) from the oldest kept record;
    /// EAGAIN means the end, EPIPE that a record was overwritten while reading
    /// (skip it). An unreadable log (not root, dmesg_restrict) is reported, not thrown.
    /// The corresponding file is `/dev/kmsg`.
    public static func read(from root: SystemRoot, for own: NamespaceIdentity) -> KernelLogEvidence {
        switch records(from: root) {
        case .success(let text): return tableFullLines(in: text, for: own)
        case .failure(let reason): return KernelLogEvidence(unreadableReason: reason.text)
        }
    }

    /// Why the log could not be read.
    struct Unreadable: Error {
        var text: String
    }

    /// The ring buffer's "table full" records as text, one per line: read
    /// and parsed once (`parse`), then split per namespace (`evidence(from:for:)`).
    /// Only records carrying the marker are kept, matched on the bytes as
    /// each arrives: a busy ring buffer holds thousands of other records,
    /// and the status timer runs every minute.
    static func records(from root: SystemRoot) -> Result<String, Unreadable> {
        let path: String
        do { path = try root.path(KernelPaths.kernelLog).string } catch {
            return .failure(Unreadable(text: "\(error)"))
        }
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: [.nonBlocking, .closeOnExec])
        } catch {
            return .failure(Unreadable(text: "cannot read \(path): \(errnoText(error as? Errno ?? .ioError))"))
        }
        defer { try? descriptor.close() }
        var filter = MarkedLines(marker: markerBytes)
        var buffer = [UInt8](repeating: 0, count: 8192)
        // One record per read; the ring buffer holds at most a few MiB, and the
        // bound only guards a file that never ends. EINTR is retried by
        // FileDescriptor.read; EPIPE means the next record was overwritten.
        for _ in 0..<1_000_000 {
            do {
                let count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0) }
                if count == 0 { break }
                filter.add(buffer[0..<count])
            } catch Errno.resourceTemporarilyUnavailable {
                break
            } catch Errno.brokenPipe {
                continue
            } catch {
                return .failure(Unreadable(text: "cannot read \(path): \(errnoText(error as? Errno ?? .ioError))"))
            }
        }
        filter.finish()
        return .success(String(decoding: filter.kept, as: UTF8.self))
    }
}

/// Keeps the lines of a byte stream that contain a marker, matched on the
/// bytes as they arrive: /dev/kmsg gives one record per read, a log file in
/// a `--root` tree any number of lines per read.
struct MarkedLines {
    let marker: [UInt8]
    /// The kept lines, each ending in a newline.
    private(set) var kept: [UInt8] = []
    private var line: [UInt8] = []
    /// A kernel record is at most about 1 KiB; a longer "line" is not one.
    static let longestLine = 64 * 1024

    init(marker: [UInt8]) { self.marker = marker }

    mutating func add(_ bytes: ArraySlice<UInt8>) {
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            append(bytes[start..<newline])
            endLine()
            start = newline + 1
        }
        append(bytes[start...])
    }

    /// Ends a last line that had no newline.
    mutating func finish() {
        if !line.isEmpty { endLine() }
    }

    private mutating func append(_ bytes: ArraySlice<UInt8>) {
        if line.count <= Self.longestLine { line.append(contentsOf: bytes) }
    }

    private mutating func endLine() {
        if line.count <= Self.longestLine && ByteSearch.offset(of: marker, in: line) != nil {
            kept.append(contentsOf: line)
            kept.append(UInt8(ascii: "\n"))
        }
        line.removeAll(keepingCapacity: true)
    }
}

/// Finds bytes in bytes with memchr and memcmp: the standard library's
/// generic `firstRange(of:)` costs more than the rest of a status run.
enum ByteSearch {
    /// The offset of the first `needle` in `haystack`, or `nil`.
    static func offset(of needle: [UInt8], in haystack: some Collection<UInt8>) -> Int? {
        if let found = haystack.withContiguousStorageIfAvailable({ offset(of: needle, in: UnsafeRawBufferPointer($0)) }) {
            return found
        }
        return Array(haystack).withUnsafeBytes { offset(of: needle, in: $0) }
    }

    static func offset(of needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count, let base = haystack.baseAddress else { return nil }
        let last = haystack.count - needle.count
        var start = 0
        while start <= last {
            guard let hit = memchr(base + start, Int32(first), last - start + 1) else { return nil }
            let offset = base.distance(to: UnsafeRawPointer(hit))
            if needle.withUnsafeBytes({ memcmp(base + offset, $0.baseAddress!, needle.count) }) == 0 { return offset }
            start = offset + 1
        }
        return nil
    }
}
