import Foundation
import SystemPackage

/// An exclusive flock(2) on `/run/cttune.lock` (under the root) held while an
/// apply or rollback reads the current values and changes them, so two runs
/// (two Ansible passes, a boot unit and an operator) never interleave.
///
/// The kernel drops the lock when the process exits, however it exits, so a
/// crashed run never leaves a stale lock behind.
public final class ApplyLock {
    private let fd: Int32

    /// Default wait before giving up: long enough for another apply to finish.
    public static let defaultWaitSeconds = 10.0

    /// Takes the lock, retrying every 100 ms for up to `waitSeconds`.
    ///
    /// - Throws: `TunerError.lockBusy` when another process still holds it;
    ///   `.writeFailed` when the lock file cannot be created.
    public init(root: SystemRoot, waitSeconds: Double = ApplyLock.defaultWaitSeconds) throws {
        let path = try AtomicFile.checkedPath(KernelPaths.lockFile, under: root)
        try AtomicFile.makeDirectories(path.removingLastComponent())
        let fd = open(path.string, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw TunerError.writeFailed(path: path.string, reason: errnoText(Errno(rawValue: errno))) }
        let deadline = Date().addingTimeInterval(waitSeconds)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
                close(fd)
                throw TunerError.lockBusy(path: path.string, waitedSeconds: waitSeconds)
            }
            usleep(100_000)
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
