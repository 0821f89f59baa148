import Foundation
import SystemPackage

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
        var evidence = KernelLogEvidence()
        for record in records.split(separator: "\n") where !record.hasPrefix(" ") {
            guard let separator = record.firstIndex(of: ";") else { continue }
            let message = String(record[record.index(after: separator)...])
            guard message.contains(marker) else { continue }
            let prefix = record[..<separator].split(separator: ",")
            guard prefix.count >= 3, let microseconds = Double(prefix[2]) else { continue }
            let inode = namespaceInode(in: message)
            let line = Line(secondsSinceBoot: microseconds / 1e6, message: message, netnsInode: inode)
            let ours = inode == nil ? own.kind != .nonInitial : inode == own.inode
            if ours { evidence.lines.append(line) } else { evidence.otherNamespaceLines += 1 }
        }
        return evidence
    }

    /// `N` from "… in netns N, …".
    static func namespaceInode(in message: String) -> UInt64? {
        guard let range = message.range(of: "in netns ") else { return nil }
        return UInt64(message[range.upperBound...].prefix { $0.isNumber })
    }

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
    /// once, then filtered per namespace with `tableFullLines(in:for:)`.
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
        var filter = MarkedLines(marker: Array(marker.utf8))
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
        if line.count <= Self.longestLine && Self.contains(marker, in: line) {
            kept.append(contentsOf: line)
            kept.append(UInt8(ascii: "\n"))
        }
        line.removeAll(keepingCapacity: true)
    }

    /// A plain scan: lines are short, and no String is built per line.
    static func contains(_ marker: [UInt8], in bytes: [UInt8]) -> Bool {
        guard let first = marker.first, bytes.count >= marker.count else { return false }
        var start = 0
        let last = bytes.count - marker.count
        while start <= last {
            guard let found = bytes[start...last].firstIndex(of: first) else { return false }
            if bytes[found..<found + marker.count].elementsEqual(marker) { return true }
            start = found + 1
        }
        return false
    }
}
