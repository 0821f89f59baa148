import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

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
    /// The longest wait `--lock-timeout` takes: a day.
    public static let longestWaitSeconds = 86400.0

    /// Takes the lock, retrying every 100 ms for up to `waitSeconds`.
    ///
    /// - Throws: `TunerError.lockBusy` when another process still holds it;
    ///   `.writeFailed` when the lock file cannot be created.
    public init(root: SystemRoot, waitSeconds: Double = ApplyLock.defaultWaitSeconds) throws {
        let path = try AtomicFile.checkedPath(KernelPaths.lockFile, under: root)
        let directory = try AtomicFile.openDirectory(KernelPaths.lockFile.removingLastComponent(), under: root, create: true, for: path)
        defer { try? directory.close() }
        let name = KernelPaths.lockFile.lastComponent?.string ?? "cttune.lock"
        let fd = openat(directory.rawValue, name, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0o644)
        guard fd >= 0 else { throw AtomicFile.failure(path, errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            let kind = FileIO.kind(info.st_mode)
            close(fd)
            throw TunerError.notARegularFile(path: path.string, kind: kind)
        }
        // A wait that is not a finite number of seconds (NaN from a script) is no wait.
        let waitSeconds = waitSeconds.isFinite ? min(max(waitSeconds, 0), ApplyLock.longestWaitSeconds) : 0
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
