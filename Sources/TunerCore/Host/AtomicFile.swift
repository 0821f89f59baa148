import FoundationEssentials
import Glibc
import SystemPackage

/// What writing or removing a file did, as the contract's `files[].action`.
public enum FileAction: String, Sendable, Equatable {
    case created, updated, unchanged, removed
}

/// Writes and removes files so a reader sees the old file or the new one,
/// never a mix, and never through a link that leaves the root. Every file
/// cttune writes (sysctl.d, modprobe.d, the journal, the blacklist, the
/// Prometheus textfile) goes through here.
///
/// Under a root other than `/`, every component is resolved inside the root
/// (`SystemRoot.open`), so no write leaves it through a link.
///
/// A write goes to a temporary file in the target's directory (its name does
/// not end like the target's, so collectors reading `*.prom` or `*.conf` never
/// see it), is synced, renamed over the target, and the directory is synced:
/// rename(2) within one directory is atomic, and the directory sync makes it
/// survive a crash. The rename replaces a link at the target rather than
/// writing through it.
public enum AtomicFile {
    /// Replaces (or creates) `path` under `root` with `content`.
    ///
    /// - Parameters:
    ///   - createDirectories: create missing parent directories (0755).
    /// - Returns: `.unchanged` (and writes nothing) when the file already
    ///   holds `content`, else `.created` or `.updated`.
    /// - Throws: `TunerError.pathEscapesRoot` when an existing component is a
    ///   link resolving outside the root; `.writeFailed` naming the path and
    ///   the reason otherwise. On failure the target is left as it was.
    @discardableResult
    public static func write(
        _ content: String, to path: FilePath, under root: SystemRoot = .live,
        mode: mode_t = 0o644, createDirectories: Bool = true
    ) throws -> FileAction {
        let target = try checkedPath(path, under: root)
        let existing = try currentContent(path, under: root, shown: target)
        if existing == content { return .unchanged }
        guard let name = path.lastComponent?.string else { throw failure(target, EISDIR) }
        let directory = try openDirectory(path.removingLastComponent(), under: root, create: createDirectories, for: target)
        defer { try? directory.close() }
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<100 {
            temporary = ".\(name).cttune-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
            fd = openat(directory.rawValue, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw failure(target, errno) }
        let file = FileDescriptor(rawValue: fd)
        var committed = false
        defer {
            try? file.close()
            if !committed { unlinkat(directory.rawValue, temporary, 0) }
        }
        do {
            _ = try file.writeAll(content.utf8)
        } catch let error as Errno {
            throw failure(target, error.rawValue)
        }
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else { throw failure(target, errno) }
        guard renameat(directory.rawValue, temporary, directory.rawValue, name) == 0 else { throw failure(target, errno) }
        committed = true
        fsync(directory.rawValue)
        return existing == nil ? .created : .updated
    }

    /// Removes `path` under `root`.
    ///
    /// - Returns: `.removed`, or `.unchanged` when it was already absent.
    @discardableResult
    public static func remove(_ path: FilePath, under root: SystemRoot = .live) throws -> FileAction {
        let target = try checkedPath(path, under: root)
        guard let name = path.lastComponent?.string else { throw failure(target, EISDIR) }
        let directory: FileDescriptor
        switch try root.open(path.removingLastComponent(), flags: O_RDONLY | O_DIRECTORY) {
        case .success(let opened): directory = opened
        case .failure(let errno) where errno == .noSuchFileOrDirectory: return .unchanged
        case .failure(let errno): throw failure(target, errno.rawValue)
        }
        defer { try? directory.close() }
        if unlinkat(directory.rawValue, name, 0) != 0 {
            if errno == ENOENT { return .unchanged }
            throw failure(target, errno)
        }
        fsync(directory.rawValue)
        return .removed
    }

    /// The content of a file under `root`, `nil` when absent.
    public static func contents(of path: FilePath, under root: SystemRoot) throws -> String? {
        let target = try checkedPath(path, under: root)
        return try currentContent(path, under: root, shown: target)
    }

    /// What a file cttune replaces holds now: a regular file, bounded.
    static func currentContent(_ path: FilePath, under root: SystemRoot, shown target: FilePath) throws -> String? {
        switch try root.open(path, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY) {
        case .failure(let errno) where errno == .noSuchFileOrDirectory || errno == .notDirectory:
            try root.refuseDanglingLink(on: path, includingLast: false)
            return nil
        case .failure(let errno): throw failure(target, errno.rawValue)
        case .success(let descriptor):
            defer { try? descriptor.close() }
            switch FileIO.readAll(descriptor, limit: ReadLimit.configuration) {
            case .success(let text): return text
            case .failure(.errno(let errno)): throw failure(target, errno.rawValue)
            case .failure(let other): throw FileIO.failure(other, path: target.string)
            }
        }
    }

    /// Maps `path` into `root` and refuses it when a directory on the way is
    /// a link that names nothing inside the root (its target exists only
    /// outside: links are read as if the root were /) or a link loop. Links
    /// that stay inside (`lib -> usr/lib`, `etc/sysctl.d -> ../srv/sysctl`)
    /// are followed; the file itself may be a link, which a write replaces.
    public static func checkedPath(_ path: FilePath, under root: SystemRoot) throws -> FilePath {
        let target = try root.path(path)
        guard !root.isLive else { return target }
        var prefix = FilePath("/")
        for component in path.lexicallyNormalized().components.dropLast() {
            prefix.append(component)
            // Absent: the rest does not exist yet either.
            guard case .success(let entry) = try root.open(prefix, flags: O_PATH_ONLY | O_NOFOLLOW) else { break }
            var info = stat()
            let isLink = fstat(entry.rawValue, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
            try? entry.close()
            guard isLink else { continue }
            switch try root.open(prefix, flags: O_PATH_ONLY) {
            case .success(let resolved): try? resolved.close()
            case .failure: throw TunerError.pathEscapesRoot(path: try root.path(prefix).string, root: root.base.string)
            }
        }
        return target
    }

    /// Opens a directory under `root` (mkdir -p first when `create`, each new
    /// directory 0755, created through the parent's descriptor so it lands
    /// where the root resolves it).
    ///
    /// - Parameter target: the file the directory is opened for, named in errors.
    package static func openDirectory(_ directory: FilePath, under root: SystemRoot, create: Bool, for target: FilePath? = nil) throws
        -> FileDescriptor
    {
        let mapped = try root.path(directory)
        let shown = target ?? mapped
        switch try root.open(directory, flags: O_RDONLY | O_DIRECTORY) {
        case .success(let opened): return opened
        case .failure(let errno) where errno == .noSuchFileOrDirectory && create && !directory.removingLastComponent().isEmpty:
            guard let name = directory.lastComponent?.string, directory.removingLastComponent() != directory else {
                throw failure(shown, errno.rawValue)
            }
            let parent = try openDirectory(directory.removingLastComponent(), under: root, create: true, for: target)
            defer { try? parent.close() }
            if mkdirat(parent.rawValue, name, 0o755) != 0 && Glibc.errno != EEXIST { throw failure(shown, Glibc.errno) }
            switch try root.open(directory, flags: O_RDONLY | O_DIRECTORY) {
            case .success(let opened): return opened
            // mkdirat found something (a dangling link) that still names nothing inside the root.
            case .failure(.noSuchFileOrDirectory): throw TunerError.pathEscapesRoot(path: mapped.string, root: root.base.string)
            case .failure(let errno): throw failure(shown, errno.rawValue)
            }
        case .failure(let errno):
            throw failure(shown, errno.rawValue)
        }
    }

    package static func failure(_ path: FilePath, _ code: Int32) -> TunerError {
        .fileWriteFailed(path: path.string, errno: Errno(rawValue: code))
    }
}
