import Foundation
import SystemPackage

/// Writes and removes configuration files so a reader sees the old file or
/// the new one, never a mix, and never through a link that leaves the root.
///
/// A write goes to a temporary file in the target's directory, is synced,
/// renamed over the target and the directory is synced: rename(2) within one
/// directory is atomic, and the directory sync makes it survive a crash.
public enum AtomicFile {
    /// Replaces (or creates) `path` under `root` with `content`, mode 0644.
    /// Missing parent directories are created (0755).
    ///
    /// - Throws: `TunerError.pathEscapesRoot` when an existing component is a
    ///   link resolving outside the root; `.writeFailed` naming the path and
    ///   the reason otherwise. On failure the target is left as it was.
    public static func write(_ content: String, to path: FilePath, under root: SystemRoot) throws {
        let target = try checkedPath(path, under: root)
        let directory = target.removingLastComponent()
        try createDirectories(directory, under: root)
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
        guard fchmod(fd, 0o644) == 0, fsync(fd) == 0 else { throw failure(target, errno) }
        guard rename(temporary, target.string) == 0 else { throw failure(target, errno) }
        committed = true
        syncDirectory(directory)
    }

    /// Removes `path` under `root`; an absent file is not an error.
    public static func remove(_ path: FilePath, under root: SystemRoot) throws {
        let target = try checkedPath(path, under: root)
        if unlink(target.string) != 0 && errno != ENOENT { throw failure(target, errno) }
        syncDirectory(target.removingLastComponent())
    }

    /// The content of a file under `root`, `nil` when absent.
    public static func contents(of path: FilePath, under root: SystemRoot) throws -> String? {
        _ = try checkedPath(path, under: root)
        return try root.contents(of: path)
    }

    /// Maps `path` into `root` and refuses it when an existing component is a
    /// symbolic link that resolves outside the root (lstat walk from the
    /// root down). Links that stay inside are allowed.
    public static func checkedPath(_ path: FilePath, under root: SystemRoot) throws -> FilePath {
        let target = try root.path(path)
        guard !root.isLive else { return target }
        guard let base = realPath(root.base.string) else { throw TunerError.rootNotADirectory(root: root.base.string) }
        var prefix = root.base
        for component in try root.path(path).components.dropFirst(root.base.components.count) {
            prefix.append(component)
            var info = stat()
            guard lstat(prefix.string, &info) == 0 else { break } // the rest does not exist yet
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

    static func createDirectories(_ directory: FilePath, under root: SystemRoot) throws {
        var info = stat()
        if stat(directory.string, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw failure(directory, ENOTDIR) }
            return
        }
        try createDirectories(directory.removingLastComponent(), under: root)
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
