import CRootPath
import FoundationEssentials
import Glibc
import SystemPackage

/// The directory that stands for `/` when cttune reads or writes kernel and
/// configuration files.
///
/// Every path under /proc, /sys, /etc, /lib/modules, /var/lib and /run goes
/// through one `SystemRoot`, so tests replay fixture trees and image builders
/// (`--root DIR`) tune a tree that is not the running system.
///
/// Under a root other than `/`, every path is resolved as if the process were
/// chrooted into it (openat2 with RESOLVE_IN_ROOT): an absolute link such as
/// `DIR/lib -> /usr/lib` is read as `DIR/usr/lib`, and `..` stops at DIR, so
/// no read or write reaches the running system through a link in the tree.
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

    /// Maps an absolute system path (`/proc/meminfo`) into this root, for
    /// messages and for tools that take a path; reads and writes go through
    /// `open(_:flags:mode:)`, which also keeps links inside the root.
    ///
    /// - Throws: `TunerError.pathEscapesRoot` when `..` would leave the root.
    public func path(_ absolute: FilePath) throws -> FilePath {
        try Self.checkLength(absolute)
        guard let resolved = base.lexicallyResolving(absolute) else {
            throw TunerError.pathEscapesRoot(path: absolute.string, root: base.string)
        }
        return resolved
    }

    /// Opens a system path under this root, links resolved inside it.
    ///
    /// - Returns: the descriptor (close-on-exec), or the errno: ELOOP for a
    ///   link loop (`DIR/proc -> /proc`), ENOENT for a link whose target
    ///   exists only outside the root.
    /// - Throws: `TunerError.pathEscapesRoot` when `..` would leave the root.
    ///
    /// The corresponding C function is `openat2` with `RESOLVE_IN_ROOT`.
    public func open(_ absolute: FilePath, flags: Int32, mode: mode_t = 0) throws -> Result<FileDescriptor, Errno> {
        let mapped = try path(absolute)
        if isLive { return Self.result(Glibc.open(mapped.string, flags | O_CLOEXEC, mode)) }
        let rootDescriptor = Glibc.open(base.string, O_PATH_ONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootDescriptor >= 0 else { return .failure(Errno(rawValue: errno)) }
        defer { Glibc.close(rootDescriptor) }
        return Self.result(CRootPath_open(rootDescriptor, absolute.string, flags | O_CLOEXEC, mode))
    }

    /// The longest system path (PATH_MAX) and name (NAME_MAX) any file system holds.
    public static let longestPathBytes = 4096
    public static let longestNameBytes = 255

    /// Refuses a path no file system holds before it is parsed: FilePath's
    /// component parsing costs time quadratic in a component's length, so a
    /// 10 000-byte name from a flag or a tree would take a minute to refuse.
    ///
    /// - Throws: `TunerError.malformed` naming the (cut) path and the limit.
    static func checkLength(_ path: FilePath) throws {
        let text = path.string
        var run = 0
        var longest = 0
        for byte in text.utf8 {
            run = byte == UInt8(ascii: "/") ? 0 : run + 1
            longest = max(longest, run)
        }
        guard text.utf8.count > longestPathBytes || longest > longestNameBytes else { return }
        throw TunerError.malformed(
            path: Echo.quoted(text, limit: 80),
            detail:
                """
                a path of \(text.utf8.count) bytes with a name of \(longest) bytes, longer than any file system holds \
                (\(longestPathBytes) and \(longestNameBytes)) — check the value it was made from
                """)
    }

    static func result(_ descriptor: Int32) -> Result<FileDescriptor, Errno> {
        descriptor >= 0 ? .success(FileDescriptor(rawValue: descriptor)) : .failure(Errno(rawValue: errno))
    }

    /// Reads a whole regular file under this root, at most `limit` bytes.
    ///
    /// Opens without blocking and refuses anything but a regular file, so a
    /// FIFO or a device in a tree (or /dev/zero behind a link) never hangs or
    /// fills memory.
    ///
    /// - Returns: the text, or `nil` when the file does not exist (an absent
    ///   file is a fact about the host, not an error).
    /// - Throws: `TunerError.unreadable` (permissions, I/O, a directory, a
    ///   link loop), `.notARegularFile` or `.fileTooLarge`, naming the path.
    public func contents(of absolute: FilePath, limit: Int = ReadLimit.default) throws -> String? {
        let shown = try path(absolute).string
        switch try open(absolute, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY) {
        case .failure(let errno) where errno == .noSuchFileOrDirectory || errno == .notDirectory:
            try refuseDanglingLink(on: absolute)
            return nil
        case .failure(let errno): throw FileIO.failure(.errno(errno), path: shown)
        case .success(let descriptor):
            defer { try? descriptor.close() }
            switch FileIO.readAll(descriptor, limit: limit) {
            case .success(let text): return text
            case .failure(let failure): throw FileIO.failure(failure, path: shown)
            }
        }
    }

    /// Refuses a path that is absent only because a link on the way names
    /// nothing inside this root (`DIR/proc/sys/x -> /proc/sys/x` read as if
    /// chrooted, or a target that exists only outside): the file is not
    /// absent, it is somewhere cttune will not go, and treating it as absent
    /// would plan or apply a partial result. A path absent without a link
    /// on the way stays absent.
    ///
    /// - Parameter includingLast: `false` for a file cttune replaces: a link
    ///   in its place is replaced, never written through (docs/apply.md), so
    ///   only the directories on the way are checked.
    /// - Throws: `TunerError.pathEscapesRoot` naming the link.
    public func refuseDanglingLink(on absolute: FilePath, includingLast: Bool = true) throws {
        guard !isLive else { return }
        var prefix = FilePath("/")
        let components = Array(absolute.lexicallyNormalized().components)
        for component in includingLast ? components[...] : components.dropLast() {
            prefix.append(component)
            guard case .success(let entry) = try open(prefix, flags: O_PATH_ONLY | O_NOFOLLOW) else { return }
            var info = stat()
            let isLink = fstat(entry.rawValue, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
            try? entry.close()
            guard isLink else { continue }
            switch try open(prefix, flags: O_PATH_ONLY) {
            case .success(let resolved): try? resolved.close()
            case .failure(let errno) where errno == .noSuchFileOrDirectory:
                throw TunerError.pathEscapesRoot(path: try path(prefix).string, root: base.string)
            case .failure: return
            }
        }
    }

    /// Reads a file holding one integer (a sysctl or a module parameter).
    ///
    /// - Parameter range: the values the kernel can report; anything else
    ///   means the file is not what the kernel wrote.
    /// - Returns: `nil` when the file does not exist.
    /// - Throws: `TunerError.unreadable`, or `.malformed` when the text is not
    ///   an integer in `range`.
    public func integer(at absolute: FilePath, in range: ClosedRange<Int> = KernelValue.sysctlRange) throws -> Int? {
        guard let text = try contents(of: absolute, limit: ReadLimit.kernelValue) else { return nil }
        let trimmed = text.trimming(.whitespacesAndNewlines)
        guard let value = Int(trimmed) else {
            throw TunerError.malformed(path: try path(absolute).string, detail: "expected an integer, found \(Echo.quoted(trimmed))")
        }
        guard range.contains(value) else {
            throw TunerError.malformed(
                path: try path(absolute).string,
                detail: "\(value) is outside \(range.lowerBound)...\(range.upperBound), which the kernel never reports")
        }
        return value
    }

    /// Whether something exists at this path (a file, a directory, a link).
    public func exists(_ absolute: FilePath) -> Bool {
        guard case .success(let descriptor)? = try? open(absolute, flags: O_PATH_ONLY | O_NOFOLLOW) else { return false }
        try? descriptor.close()
        return true
    }

    /// The mode of the file at this path (links followed inside the root),
    /// `nil` when it does not exist.
    public func fileMode(_ absolute: FilePath) -> mode_t? {
        guard case .success(let descriptor)? = try? open(absolute, flags: O_PATH_ONLY) else { return nil }
        defer { try? descriptor.close() }
        var info = stat()
        return fstat(descriptor.rawValue, &info) == 0 ? info.st_mode : nil
    }

    /// Why this process may not write the file at this path (EACCES, EROFS),
    /// or `nil` when it may; checked on the file the root resolves to.
    public func writeDenied(_ absolute: FilePath) -> Errno? {
        guard case .success(let descriptor)? = try? open(absolute, flags: O_PATH_ONLY) else { return .noSuchFileOrDirectory }
        defer { try? descriptor.close() }
        // access(2) through the descriptor's /proc/self/fd link checks the
        // file it names (its mode and its mount's read-only flag).
        return access(KernelPaths.ownDescriptors.appending("\(descriptor.rawValue)").string, W_OK) == 0 ? nil : Errno(rawValue: errno)
    }

    /// The names in a directory, sorted; empty when it does not exist.
    public func entries(of absolute: FilePath) -> [String] {
        guard case .success(let descriptor)? = try? open(absolute, flags: O_RDONLY | O_DIRECTORY | O_NONBLOCK) else { return [] }
        guard let directory = fdopendir(descriptor.rawValue) else {
            try? descriptor.close()
            return []
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Checks a file that a library will open by path itself (libkmod's
    /// indexes and modprobe.d files) with a plain open(2), following links
    /// the usual way: what it reaches must be absent, or a regular file (or
    /// directory) inside the root, so the library neither blocks on a FIFO
    /// nor reads outside the tree.
    ///
    /// - Throws: `TunerError.notARegularFile` or `.pathEscapesRoot`.
    public func checkForPlainOpen(_ absolute: FilePath) throws {
        guard !isLive else { return }
        let shown = try path(absolute).string
        guard let reached = Self.realPath(shown) else { return }  // absent or dangling: the library skips it
        guard let top = Self.realPath(base.string), reached == top || reached.hasPrefix(top + "/") else {
            throw TunerError.pathEscapesRoot(path: shown, root: base.string)
        }
        var info = stat()
        guard stat(reached, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFREG || info.st_mode & S_IFMT == S_IFDIR else {
            throw TunerError.notARegularFile(path: shown, kind: FileIO.kind(info.st_mode))
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The real location of a directory under this root, links resolved
    /// inside it: for libraries that open files by path themselves (libkmod).
    ///
    /// - Returns: `nil` when it does not exist.
    public func resolvedDirectory(_ absolute: FilePath) throws -> FilePath? {
        if isLive { return try path(absolute) }
        switch try open(absolute, flags: O_PATH_ONLY | O_DIRECTORY) {
        case .failure(let errno) where errno == .noSuchFileOrDirectory || errno == .notDirectory: return nil
        case .failure(let errno): throw FileIO.failure(.errno(errno), path: try path(absolute).string)
        case .success(let descriptor):
            defer { try? descriptor.close() }
            guard
                let target = try? FileManager.default.destinationOfSymbolicLink(
                    atPath: KernelPaths.ownDescriptors.appending("\(descriptor.rawValue)").string)
            else { return try path(absolute) }
            return FilePath(target)
        }
    }
}

/// O_PATH, which Swift's Glibc module does not export.
let O_PATH_ONLY = CRootPath_pathOnly

/// Upper bounds on what one read takes in, by the file's purpose: a tree can
/// hold a file of any size, and none of these legitimately comes near.
public enum ReadLimit {
    /// A sysctl, a module parameter, a CPU list, a kernel release.
    public static let kernelValue = 4096
    /// /proc/meminfo, /proc/modules, /proc/slabinfo and similar tables.
    public static let kernelTable = 4 << 20
    /// A profile: a few dozen lines.
    public static let profile = 256 << 10
    /// A configuration file cttune replaces (sysctl.d, modprobe.d) or a journal entry holding them.
    public static let configuration = 16 << 20
    /// modules.dep, modules.builtin: a few hundred KiB for a distribution kernel.
    public static let moduleIndex = 64 << 20
    /// A saved ruleset (`--ruleset`): kube-proxy's iptables rules reach tens of MiB.
    public static let ruleset = 256 << 20
    /// Anything else (the live conntrack table, read by the census).
    public static let `default` = 1 << 30
}

/// Ranges of the numbers the kernel reports, checked where cttune reads them.
public enum KernelValue {
    /// Conntrack sysctls are C ints (proc_dointvec*): never negative here.
    public static let sysctlRange = 0...Int(Int32.max)
    /// /proc/meminfo's MemTotal in kB: at least 1 MiB, below 2^42 kB (4 PiB,
    /// past the 52-bit physical addresses of x86-64 and arm64).
    public static let memTotalKiB = 1024...(1 << 42)
    /// CPU numbers in a CPU list (NR_CPUS is at most 8192 today; --cpus takes 65536).
    public static let cpuNumber = 0...65535
    /// A slab object: nf_conntrack entries are a few hundred bytes; nothing in a slab is 1 MiB.
    public static let slabObjectBytes = 1...(1 << 20)
    /// Allocated slab objects: bounded by what fits in 2^52 bytes of memory.
    public static let slabObjects = 0...(1 << 40)
}

/// How a read of a descriptor failed.
package enum ReadFailure: Error {
    case errno(Errno)
    /// Not a regular file: the kind found (a FIFO, a device, a socket).
    case notRegular(String)
    case tooLarge(limit: Int)
    /// A pipe (stdin) said nothing for this long.
    case timedOut(seconds: Int)
}

/// Bounded POSIX reads: /proc and /sys report a size of 0, so a file is read
/// until end of file (or the limit) rather than by its stat size.
package enum FileIO {
    /// Reads a file named on the command line (a profile, a ruleset): links
    /// are followed as the user's shell would, but only a regular file is read.
    package static func read(_ path: String, limit: Int) -> Result<String, ReadFailure> {
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(.errno(Errno(rawValue: errno))) }
        let descriptor = FileDescriptor(rawValue: fd)
        defer { try? descriptor.close() }
        return readAll(descriptor, limit: limit)
    }

    /// Reads a regular file's descriptor to end of file, at most `limit` bytes.
    static func readAll(_ descriptor: FileDescriptor, limit: Int) -> Result<String, ReadFailure> {
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { return .failure(.errno(Errno(rawValue: errno))) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return .failure(.errno(.isDirectory))
        default: return .failure(.notRegular(kind(info.st_mode)))
        }
        return readStream(descriptor, limit: limit, timeoutSeconds: nil)
    }

    /// Reads a descriptor (a file or a pipe) to end of file, at most `limit`
    /// bytes; a pipe that stays silent for `timeoutSeconds` fails.
    package static func readStream(_ descriptor: FileDescriptor, limit: Int, timeoutSeconds: Int?) -> Result<String, ReadFailure> {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let timeoutSeconds {
                var entry = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
                let ready = poll(&entry, 1, Int32(timeoutSeconds * 1000))
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 { return .failure(.errno(Errno(rawValue: errno))) }
                if ready == 0 { return .failure(.timedOut(seconds: timeoutSeconds)) }
            }
            let count: Int
            do {
                count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0, retryOnInterrupt: true) }
            } catch let errno as Errno {
                if errno == .resourceTemporarilyUnavailable && timeoutSeconds != nil { continue }
                return .failure(.errno(errno))
            } catch {
                return .failure(.errno(.ioError))
            }
            if count == 0 { break }
            guard data.count + count <= limit else { return .failure(.tooLarge(limit: limit)) }
            data.append(contentsOf: buffer[0..<count])
        }
        return .success(String(decoding: data, as: UTF8.self))
    }

    package static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a named pipe (FIFO)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFDIR: return "a directory"
        default: return "not a regular file"
        }
    }

    /// The error for a failed read of `path`.
    package static func failure(_ failure: ReadFailure, path: String) -> TunerError {
        switch failure {
        case .errno(let errno): return .fileReadFailed(path: path, errno: errno)
        case .notRegular(let kind): return .notARegularFile(path: path, kind: kind)
        case .tooLarge(let limit): return .fileTooLarge(path: path, limitBytes: limit)
        case .timedOut(let seconds): return .unreadable(path: path, reason: "nothing arrived for \(seconds) s")
        }
    }
}
