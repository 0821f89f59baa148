import Foundation
import SystemPackage

/// The directory that stands for `/` when cttune reads or writes kernel and
/// configuration files.
///
/// Every path under /proc, /sys, /etc, /lib/modules, /var/lib and /run goes
/// through one `SystemRoot`, so tests replay fixture trees and image builders
/// (`--root DIR`) tune a tree that is not the running system.
public struct SystemRoot: Sendable, Equatable, CustomStringConvertible {
    /// The directory that stands for `/`.
    public let base: FilePath

    /// The running system.
    public static let live = SystemRoot(base: "/")

    public init(base: FilePath) {
        self.base = base
    }

    /// Whether this root is the running system, so live-only probes (syscalls,
    /// page size, running tools) describe it.
    public var isLive: Bool { base.lexicallyNormalized() == "/" }

    public var description: String { base.string }

    /// Maps an absolute system path (`/proc/meminfo`) into this root.
    ///
    /// - Throws: `TunerError.pathEscapesRoot` when `..` would leave the root.
    public func path(_ absolute: FilePath) throws -> FilePath {
        guard let resolved = base.lexicallyResolving(absolute) else {
            throw TunerError.pathEscapesRoot(path: absolute.string, root: base.string)
        }
        return resolved
    }

    /// Reads a whole file under this root.
    ///
    /// - Returns: the text, or `nil` when the file does not exist (an absent
    ///   file is a fact about the host, not an error).
    /// - Throws: `TunerError.unreadable` for any other failure (permissions,
    ///   I/O), naming the path and the reason.
    public func contents(of absolute: FilePath) throws -> String? {
        let path = try path(absolute)
        switch FileIO.read(path.string) {
        case .success(let text): return text
        case .failure(let errno) where errno == .noSuchFileOrDirectory || errno == .notDirectory: return nil
        case .failure(let errno):
            throw TunerError.unreadable(path: path.string, reason: errnoText(errno))
        }
    }

    /// Reads a file holding one integer (a sysctl or a module parameter).
    ///
    /// - Returns: `nil` when the file does not exist.
    /// - Throws: `TunerError.unreadable` or `.malformed` when the text is not an integer.
    public func integer(at absolute: FilePath) throws -> Int? {
        guard let text = try contents(of: absolute) else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = Int(trimmed) else {
            throw TunerError.malformed(path: try path(absolute).string, detail: "expected an integer, found \"\(trimmed.prefix(40))\"")
        }
        return value
    }

    /// Whether something exists at this path (a file, a directory, a link).
    public func exists(_ absolute: FilePath) -> Bool {
        guard let path = try? path(absolute) else { return false }
        var info = stat()
        return lstat(path.string, &info) == 0
    }

    /// The names in a directory, sorted; empty when it does not exist.
    public func entries(of absolute: FilePath) -> [String] {
        guard let path = try? path(absolute),
            let names = try? FileManager.default.contentsOfDirectory(atPath: path.string)
        else { return [] }
        return names.sorted()
    }
}

/// Plain POSIX file reads: /proc and /sys report a size of 0, so the file is
/// read until end of file rather than by its stat size.
enum FileIO {
    static func read(_ path: String) -> Result<String, Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(rawValue: errno)) }
        defer { close(fd) }
        return readAll(fd)
    }

    /// Reads a descriptor (a file or a pipe) to end of file.
    static func readAll(_ fd: Int32) -> Result<String, Errno> {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(rawValue: errno))
            }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        return .success(String(decoding: data, as: UTF8.self))
    }
}
