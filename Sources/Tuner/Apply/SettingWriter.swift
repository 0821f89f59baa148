import Foundation
import SystemPackage

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
    /// absent or read-only (kernels before the sysctl became writable).
    public static func path(for setting: ConntrackSetting, under root: SystemRoot) throws -> FilePath {
        guard setting == .hashsize else { return KernelPaths.sysctl(setting.key) }
        let buckets = KernelPaths.sysctl(HostFacts.bucketsSysctl)
        let parameter = KernelPaths.conntrackHashsizeParameter
        if let mode = HostFacts.fileMode(try root.path(buckets).string), mode & S_IWUSR != 0 { return buckets }
        return root.exists(parameter) ? parameter : buckets
    }

    /// Writes `value` to the setting file at `path` (a system path), then
    /// reads it back.
    ///
    /// - Throws: a `TunerError` naming the key, the path and the fix; the
    ///   read-back check throws `.settingReadBackMismatch`.
    public static func write(_ value: Int, key: String, to path: FilePath, under root: SystemRoot) throws {
        let mapped = try root.path(path)
        let fd = open(mapped.string, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw error(errno, key: key, path: mapped, value: value) }
        defer { close(fd) }
        let text = Array("\(value)\n".utf8)
        var count: Int
        repeat {
            count = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        } while count < 0 && errno == EINTR
        guard count == text.count else { throw error(count < 0 ? errno : EIO, key: key, path: mapped, value: value) }
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
        default: return .writeFailed(path: path.string, reason: errnoText(Errno(rawValue: code)))
        }
    }
}
