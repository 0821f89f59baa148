import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// One kernel's module directory under a root: the names depmod indexed,
/// the built-in list, and a libkmod context for dependencies and config.
public final class ModuleTree {
    public let release: String
    public let kmod: KmodContext
    /// Names with a .ko in modules.dep.
    public let moduleNames: Set<String>
    /// Each module's full dependency list from modules.dep (depmod writes
    /// the transitive closure there).
    public let dependencies: [String: [String]]
    /// Names listed in modules.builtin.
    public let builtinNames: Set<String>

    /// Opens ROOT/lib/modules/RELEASE.
    ///
    /// - Returns: `nil` when the directory has no modules.dep (no tree to read).
    public init?(root: SystemRoot, release: String) throws {
        let directory = KernelPaths.libModules.appending(release)
        guard let dependencies = try root.contents(of: directory.appending("modules.dep"), limit: ReadLimit.moduleIndex) else { return nil }
        // Without the binary index libkmod answers every lookup with "no such
        // module" instead of failing: dependencies would silently come back empty.
        guard root.exists(directory.appending(Self.dependencyIndex)) else {
            throw TunerError.missingModuleIndex(directory: try root.path(directory).string, index: Self.dependencyIndex)
        }
        self.release = release
        var parsed: [String: [String]] = [:]
        for line in dependencies.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let file = parts.first, !file.isEmpty else { continue }
            let needs = parts.count > 1 ? parts[1].split(separator: " ").map(Self.moduleName(fromPath:)) : []
            parsed[Self.moduleName(fromPath: file)] = needs
        }
        self.dependencies = parsed
        moduleNames = Set(parsed.keys)
        builtinNames = Set(
            (try root.contents(of: directory.appending("modules.builtin"), limit: ReadLimit.moduleIndex) ?? "")
                .split(separator: "\n").map(Self.moduleName(fromPath:)))
        kmod = try KmodContext(root: root, release: release)
    }

    /// The modules outside `blacklisted` that need one of them (modules.dep):
    /// modprobe runs `install X /bin/false` for every module of a probe
    /// list, so these can no longer be loaded.
    public func dependants(of blacklisted: Set<String>) -> Set<String> {
        Set(dependencies.filter { !blacklisted.contains($0.key) && $0.value.contains(where: blacklisted.contains) }.keys)
    }

    /// The index of modules.dep that libkmod's lookups read (depmod writes both).
    static let dependencyIndex = "modules.dep.bin"

    /// `kernel/net/netfilter/nf_nat.ko.xz` → `nf_nat`.
    ///
    /// Called once per path in modules.dep (millions of lines in a hostile
    /// tree), so it looks only at the last component and copies once.
    static func moduleName(fromPath path: some StringProtocol) -> String {
        var base = Substring(path)
        if let slash = base.utf8.lastIndex(of: UInt8(ascii: "/")) { base = base[base.utf8.index(after: slash)...] }
        for suffix in [".xz", ".zst", ".gz"] where base.hasSuffix(suffix) { base = base.dropLast(suffix.count) }
        if base.hasSuffix(".ko") { base = base.dropLast(3) }
        return base.utf8.contains(UInt8(ascii: "-")) ? ModuleFamily.normalized(base) : String(base)
    }
}
