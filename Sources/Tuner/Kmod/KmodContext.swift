import CKmod
import Glibc
import SystemPackage

/// The one owner of a libkmod context (`struct kmod_ctx`); the only file that
/// imports CKmod.
///
/// Reads the module indexes (modules.dep.bin, modules.alias.bin, …) of one
/// kernel's module directory under a `SystemRoot`, with modprobe.d config
/// taken from that root too, never the host's. Not thread-safe (libkmod
/// contexts are not): use it from one task.
public final class KmodContext {
    private let context: OpaquePointer
    /// The directory holding modules.dep.bin, e.g. ROOT/lib/modules/6.1.0-1-cloud-amd64.
    public let modulesDirectory: FilePath

    /// Creates a context for kernel `release` under `root`.
    ///
    /// The corresponding libkmod call is `kmod_new`.
    public init(root: SystemRoot, release: String) throws {
        modulesDirectory = try root.path(KernelPaths.libModules.appending(release))
        let configPaths = try Self.configDirectories.map { try root.path($0).string }
        let made: OpaquePointer? = modulesDirectory.string.withCString { directory in
            withCStringArray(configPaths) { kmod_new(directory, $0) }
        }
        guard let made else {
            throw TunerError.unreadable(path: modulesDirectory.string, reason: "libkmod could not create a context")
        }
        context = made
    }

    deinit { kmod_unref(context) }

    /// Where modprobe reads configuration, mapped under the root so a tree's
    /// own config is used (libkmod's NULL default would read the host's).
    static let configDirectories: [FilePath] = ["/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d"]

    /// The directory libkmod resolved (it may differ from the one given when
    /// it follows links); proves the context is live.
    ///
    /// The corresponding libkmod call is `kmod_get_dirname`.
    public var resolvedDirectory: String {
        kmod_get_dirname(context).map { String(cString: $0) } ?? ""
    }
}

/// Passes `strings` as a NULL-terminated `const char *[]` for the call's duration.
private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = duplicates.map { $0.map { UnsafePointer($0) } } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
