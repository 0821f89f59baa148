import FoundationEssentials

/// Names read from a tree, the kernel or a journal that become one component
/// of a path (a kernel release, a module name, a file in a directory): `..`
/// or a `/` there would name another directory of the root, so such a value
/// is refused where it is read, never joined into a path.
public enum PathName {
    /// Whether `name` names exactly one directory entry: not empty, not `.`
    /// or `..`, no `/` or NUL, at most 255 bytes (NAME_MAX).
    public static func isOneComponent(_ name: some StringProtocol) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= 255 && !name.utf8.contains(where: { $0 == 0x2F || $0 == 0 })
    }

    /// Whether `path` is an absolute system path as cttune records one: it
    /// starts at `/`, names something below it, and has no empty, `.` or `..`
    /// component (nothing to resolve, so it names what it says).
    public static func isPlainAbsolute(_ path: String) -> Bool {
        guard path.hasPrefix("/"), path.count > 1, !path.utf8.contains(0) else { return false }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).allSatisfy(isOneComponent)
    }
}

/// Which kernel release a command describes, on the host or in an image tree.
public enum KernelRelease {
    /// The kernel release to describe: `requested`, else the running
    /// kernel's (/proc/sys/kernel/osrelease under the root), else the only
    /// directory under ROOT/lib/modules.
    ///
    /// - Returns: `nil` when nothing names a release (no /proc, no /lib/modules).
    /// - Throws: `TunerError.ambiguousKernel` when several trees exist and nothing picks one.
    public static func resolve(under root: SystemRoot, requested: String?) throws -> String? {
        if let requested {
            // The CLI refuses these first (exit 64); a library caller gets the same rule.
            guard PathName.isOneComponent(requested) else {
                throw TunerError.malformed(
                    path: "kernel release \(Echo.quoted(requested))",
                    detail: "a release is one directory name under /lib/modules (no /, not . or ..) — pass one like 6.1.0-28-cloud-amd64")
            }
            return requested
        }
        if let running = try HostFacts.readRelease(root) { return running }
        let installed = root.entries(of: KernelPaths.libModules)
        if installed.count > 1 {
            throw TunerError.ambiguousKernel(directory: try root.path(KernelPaths.libModules).string, releases: installed)
        }
        return installed.first
    }
}
