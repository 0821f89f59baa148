import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// Writes one kernel setting and reads it back.
///
/// Each errno the kernel returns becomes its own `TunerError` so the report
/// says what to do: EACCES (not root, or a global sysctl outside the initial
/// network namespace, mode 0444), EROFS (/sys mounted read-only), EOPNOTSUPP
/// (the hashsize parameter outside the initial namespace), EINVAL (a value
/// the kernel refuses).
public enum SettingWriter {
    /// The file that changes `setting` here: its /proc/sys file; for the hash
    /// size `net.netfilter.nf_conntrack_buckets`, or the module parameter
    /// `/sys/module/nf_conntrack/parameters/hashsize` when the sysctl is
    /// absent or read-only (kernels before the sysctl became writable), as
    /// `HashSizeNames.sysctlWritable` says.
    public static func path(for setting: ConntrackSetting, bucketsSysctlWritable: Bool, under root: SystemRoot) throws -> FilePath {
        guard setting == .hashsize else { return KernelPaths.sysctl(setting.key) }
        let buckets = KernelPaths.sysctl(HashSizeNames.sysctl)
        let parameter = KernelPaths.conntrackHashsizeParameter
        if bucketsSysctlWritable { return buckets }
        return root.exists(parameter) ? parameter : buckets
    }

    /// Writes `value` to the setting file at `path` (a system path), then
    /// reads it back.
    ///
    /// - Throws: a `TunerError` naming the key, the path and the fix; the
    ///   read-back check throws `.settingReadBackMismatch`.
    public static func write(_ value: Int, key: String, to path: FilePath, under root: SystemRoot) throws {
        let mapped = try root.path(path)
        // O_NONBLOCK: a FIFO in a tree fails to open (ENXIO) rather than
        // waiting for a reader; only a regular file (as /proc/sys files are) is written.
        let file: FileDescriptor
        switch try root.open(path, flags: O_WRONLY | O_TRUNC | O_NONBLOCK | O_NOCTTY) {
        case .success(let opened): file = opened
        case .failure(let errno): throw error(errno.rawValue, key: key, path: mapped, value: value)
        }
        defer { try? file.close() }
        var info = stat()
        guard fstat(file.rawValue, &info) == 0 else { throw error(errno, key: key, path: mapped, value: value) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw TunerError.notARegularFile(path: mapped.string, kind: FileIO.kind(info.st_mode))
        }
        let text = Array("\(value)\n".utf8)
        let count: Int
        do {
            // One write(2): a sysctl takes the value from a single write.
            count = try text.withUnsafeBytes { try file.write($0, retryOnInterrupt: true) }
        } catch let errno as Errno {
            throw error(errno.rawValue, key: key, path: mapped, value: value)
        }
        guard count == text.count else { throw error(EIO, key: key, path: mapped, value: value) }
        let readBack = try root.integer(at: path)
        guard readBack == value else {
            throw TunerError.settingReadBackMismatch(key: key, path: mapped.string, written: value, readBack: readBack)
        }
    }

    static func error(_ code: Int32, key: String, path: FilePath, value: Int) -> TunerError {
        switch code {
        case EACCES, EPERM: return .settingPermissionDenied(key: key, path: path.string)
        case EROFS: return .settingOnReadOnlyFileSystem(key: key, path: path.string)
        case EOPNOTSUPP: return .settingNotSupportedHere(key: key, path: path.string)
        case EINVAL, ERANGE: return .settingValueRejected(key: key, path: path.string, value: value)
        default: return AtomicFile.failure(path, code)
        }
    }
}
