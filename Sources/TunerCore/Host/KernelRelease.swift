import FoundationEssentials

/// Which kernel release a command describes, on the host or in an image tree.
public enum KernelRelease {
    /// The kernel release to describe: `requested`, else the running
    /// kernel's (/proc/sys/kernel/osrelease under the root), else the only
    /// directory under ROOT/lib/modules.
    ///
    /// - Returns: `nil` when nothing names a release (no /proc, no /lib/modules).
    /// - Throws: `TunerError.ambiguousKernel` when several trees exist and nothing picks one.
    public static func resolve(under root: SystemRoot, requested: String?) throws -> String? {
        if let requested { return requested }
        if let running = try root.contents(of: KernelPaths.osRelease)?.trimming(.whitespacesAndNewlines), !running.isEmpty {
            return running
        }
        let installed = root.entries(of: KernelPaths.libModules)
        if installed.count > 1 {
            throw TunerError.ambiguousKernel(directory: try root.path(KernelPaths.libModules).string, releases: installed)
        }
        return installed.first
    }
}
