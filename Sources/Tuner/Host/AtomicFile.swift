import Foundation
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
        let existing: String?
        switch FileIO.read(target.string) {
        case .success(let old): existing = old
        case .failure(.noSuchFileOrDirectory), .failure(.notDirectory): existing = nil
        case .failure(let errno): throw failure(target, errno.rawValue)
        }
        if existing == content { return .unchanged }
        let directory = target.removingLastComponent()
        if createDirectories { try makeDirectories(directory) }
        var template = Array(directory.appending(".\(target.lastComponent?.string ?? "file").cttune-XXXXXX").string.utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw failure(target, errno) }
        let temporary = String(cString: template)
        var committed = false
        defer {
            close(fd)
            if !committed { unlink(temporary) }
        }
        let bytes = Array(content.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(target, errno)
            }
            written += count
        }
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else { throw failure(target, errno) }
        guard rename(temporary, target.string) == 0 else { throw failure(target, errno) }
        committed = true
        syncDirectory(directory)
        return existing == nil ? .created : .updated
    }

    /// Removes `path` under `root`.
    ///
    /// - Returns: `.removed`, or `.unchanged` when it was already absent.
    @discardableResult
    public static func remove(_ path: FilePath, under root: SystemRoot = .live) throws -> FileAction {
        let target = try checkedPath(path, under: root)
        if unlink(target.string) != 0 {
            if errno == ENOENT { return .unchanged }
            throw failure(target, errno)
        }
        syncDirectory(target.removingLastComponent())
        return .removed
    }

    /// The content of a file under `root`, `nil` when absent.
    public static func contents(of path: FilePath, under root: SystemRoot) throws -> String? {
        _ = try checkedPath(path, under: root)
        return try root.contents(of: path)
    }

    /// Maps `path` into `root` and refuses it when an existing component is a
    /// symbolic link that resolves outside the root (lstat walk from the
    /// root down: an image tree's /etc/modprobe.d pointing at the host's).
    /// Links that stay inside are allowed.
    public static func checkedPath(_ path: FilePath, under root: SystemRoot) throws -> FilePath {
        let target = try root.path(path)
        guard !root.isLive else { return target }
        guard let base = realPath(root.base.string) else { throw TunerError.rootNotADirectory(root: root.base.string) }
        var prefix = root.base
        for component in target.components.dropFirst(root.base.components.count) {
            prefix.append(component)
            var info = stat()
            guard lstat(prefix.string, &info) == 0 else { break }  // the rest does not exist yet
            if info.st_mode & S_IFMT == S_IFLNK {
                guard let resolved = realPath(prefix.string), resolved == base || resolved.hasPrefix(base + "/") else {
                    throw TunerError.pathEscapesRoot(path: prefix.string, root: root.base.string)
                }
            }
        }
        return target
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// mkdir -p, each new directory 0755; a file in the way is ENOTDIR.
    static func makeDirectories(_ directory: FilePath) throws {
        var info = stat()
        if stat(directory.string, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw failure(directory, ENOTDIR) }
            return
        }
        try makeDirectories(directory.removingLastComponent())
        if mkdir(directory.string, 0o755) != 0 && errno != EEXIST { throw failure(directory, errno) }
    }

    static func syncDirectory(_ directory: FilePath) {
        let fd = open(directory.string, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    static func failure(_ path: FilePath, _ code: Int32) -> TunerError {
        .writeFailed(path: path.string, reason: errnoText(Errno(rawValue: code)))
    }
}
