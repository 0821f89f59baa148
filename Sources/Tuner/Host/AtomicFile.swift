import Foundation
import SystemPackage

/// What writing or removing a file did, as the contract's `files[].action`.
public enum FileAction: String, Sendable, Equatable {
    case created, updated, unchanged, removed
}

/// Replaces files whole: a reader sees the old content or the new, never a
/// part, and a crash leaves no half-written file.
public enum AtomicFile {
    /// Writes `text` to `path` through a temporary file in the same
    /// directory, fsync and rename(2). The rename replaces a symlink at
    /// `path` instead of following it.
    ///
    /// - Returns: `.unchanged` when the file already holds `text` (nothing is written).
    public static func write(_ text: String, to path: FilePath, mode: mode_t = 0o644) throws -> FileAction {
        let existing: String?
        switch FileIO.read(path.string) {
        case .success(let old): existing = old
        case .failure(.noSuchFileOrDirectory): existing = nil
        case .failure(let errno): throw TunerError.unwritable(path: path.string, reason: errnoText(errno))
        }
        if existing == text { return .unchanged }
        let directory = path.removingLastComponent()
        do {
            try FileManager.default.createDirectory(atPath: directory.string, withIntermediateDirectories: true)
        } catch {
            throw TunerError.unwritable(path: path.string, reason: "cannot create \(directory)")
        }
        let temporary = directory.appending(".\(path.lastComponent?.string ?? "file").\(getpid()).tmp")
        let fd = open(temporary.string, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw TunerError.unwritable(path: path.string, reason: errnoText(Errno(rawValue: errno))) }
        var failure: Errno?
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count, failure == nil {
            let count = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 { if errno != EINTR { failure = Errno(rawValue: errno) } } else { offset += count }
        }
        if failure == nil && fsync(fd) != 0 { failure = Errno(rawValue: errno) }
        close(fd)
        if failure == nil && rename(temporary.string, path.string) != 0 { failure = Errno(rawValue: errno) }
        if let failure {
            unlink(temporary.string)
            throw TunerError.unwritable(path: path.string, reason: errnoText(failure))
        }
        return existing == nil ? .created : .updated
    }

    /// Removes `path`; `.unchanged` when it was already absent.
    public static func remove(_ path: FilePath) throws -> FileAction {
        if unlink(path.string) == 0 { return .removed }
        if errno == ENOENT { return .unchanged }
        throw TunerError.unwritable(path: path.string, reason: errnoText(Errno(rawValue: errno)))
    }
}
