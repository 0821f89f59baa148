import FoundationEssentials
import SystemPackage
import TunerCore

/// Finds profiles by name or path and resolves `extends:` chains.
///
/// Lookup order for a name: each directory of `$CTTUNE_PROFILE_PATH`
/// (colon-separated), then /etc/cttune/profiles under the root, then the
/// profiles installed beside the binary (`PREFIX/share/cttune/profiles`),
/// then the profiles built into the binary. A value with a `/` or ending in `.yaml`
/// is a file path.
public struct ProfileCatalog: Sendable {
    public var searchDirectories: [String]
    public var builtins: [String: String]
    /// The root whose /etc/cttune/profiles is one of `searchDirectories`:
    /// that directory is read through it, links resolved inside the root.
    public var root: SystemRoot = .live

    public init(searchDirectories: [String], builtins: [String: String]? = nil) {
        self.searchDirectories = searchDirectories
        self.builtins = builtins ?? BuiltinProfiles.yamlByName
    }

    /// The catalog a command uses: the environment's search path, then /etc
    /// under `root`, then the installed profiles, then the built-in profiles.
    ///
    /// The installed directory is cttune's own data, found beside its binary,
    /// not part of the tree `--root` tunes.
    public static func standard(
        root: SystemRoot, environment: [String: String] = ProcessInfo.processInfo.environment,
        installedDirectory: String? = installedProfilesDirectory
    ) -> ProfileCatalog {
        var directories = (environment["CTTUNE_PROFILE_PATH"] ?? "").split(separator: ":").map(String.init)
        if let etc = try? root.path(KernelPaths.profilesDirectory) { directories.append(etc.string) }
        if let installedDirectory { directories.append(installedDirectory) }
        var catalog = ProfileCatalog(searchDirectories: directories)
        catalog.root = root
        return catalog
    }

    /// `PREFIX/share/cttune/profiles` for the binary at `PREFIX/bin/cttune`
    /// (`make install`, the Debian package), or `nil` when that directory does
    /// not exist (a build in the source tree). Follows the link in
    /// /proc/self/exe, so a symlinked binary finds its real prefix.
    public static let installedProfilesDirectory: String? = {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: KernelPaths.selfExecutable.string) else { return nil }
        let executable = URL(fileURLWithPath: target).resolvingSymlinksInPath()
        let directory = executable.deletingLastPathComponent()
            .appendingPathComponent(KernelPaths.installedProfilesRelativeToBinary).standardizedFileURL.path
        var isDirectory = false
        return FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory ? directory : nil
    }()

    /// Names of the built-in profiles, sorted.
    public static var builtinNames: [String] { BuiltinProfiles.yamlByName.keys.sorted() }

    /// Loads `nameOrPath` and every profile it extends, and resolves them.
    public func load(_ nameOrPath: String) throws -> LoadProfile {
        var chain: [(source: String, document: ProfileDocument)] = []
        var next: (reference: String, relativeTo: String?)? = (nameOrPath, nil)
        while let (reference, relativeTo) = next {
            let (source, text) = try locate(reference, relativeTo: relativeTo)
            if chain.contains(where: { $0.source == source }) {
                throw TunerError.profileCycle(chain: chain.map(\.source) + [source])
            }
            let document = try ProfileDocument.parse(yaml: text, file: source)
            chain.append((source, document))
            next = document.extends.map { ($0, source) }
        }
        let name =
            Self.isPath(nameOrPath)
            ? URL(fileURLWithPath: nameOrPath).deletingPathExtension().lastPathComponent : nameOrPath
        return try Self.resolve(name: name, chain: chain.map(\.document), sources: chain.map(\.source))
    }

    /// Whether a `--profile` value names a file rather than a profile name.
    public static func isPath(_ reference: String) -> Bool {
        reference.contains("/") || reference.hasSuffix(".yaml")
    }

    /// The source (path or `built-in:NAME`) and text of a profile.
    func locate(_ reference: String, relativeTo parentFile: String?) throws -> (String, String) {
        if Self.isPath(reference) {
            var path = reference
            if let parentFile, Self.isPath(parentFile), !reference.hasPrefix("/") {
                path = URL(fileURLWithPath: parentFile).deletingLastPathComponent().appendingPathComponent(reference).path
            }
            // One spelling per file, so a loop through relative paths is seen.
            path = URL(fileURLWithPath: path).standardizedFileURL.path
            switch FileIO.read(path, limit: ReadLimit.profile) {
            case .success(let text): return (path, text)
            case .failure(.errno(let errno)) where errno == .noSuchFileOrDirectory:
                throw TunerError.profileFileNotFound(path: path, extendedBy: parentFile)
            case .failure(let failure):
                throw FileIO.failure(failure, path: path)
            }
        }
        guard reference.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), !reference.isEmpty,
            reference.utf8.count <= SystemRoot.longestNameBytes - ".yaml".count
        else {
            throw TunerError.profileNotFound(
                name: Echo.escaped(reference, limit: 80), searched: ["profile names use letters, digits, - and _"], extendedBy: parentFile)
        }
        // A profile found by name that extends its own name (a local
        // default.yaml with `extends: default`) means the next one in the
        // search order, as a PATH lookup would: directories after its own,
        // then the built-in profiles.
        var directories = searchDirectories[...]
        if let parentFile, URL(fileURLWithPath: parentFile).lastPathComponent == reference + ".yaml",
            let parentIndex = searchDirectories.firstIndex(where: { ($0 + "/" + reference + ".yaml") == parentFile })
        {
            directories = searchDirectories[(parentIndex + 1)...]
        }
        let underRoot = try? root.path(KernelPaths.profilesDirectory).string
        for directory in directories {
            let path = directory + "/" + reference + ".yaml"
            if !root.isLive && directory == underRoot {
                let file = KernelPaths.profilesDirectory.appending(reference + ".yaml")
                if let text = try root.contents(of: file, limit: ReadLimit.profile) { return (path, text) }
                continue
            }
            switch FileIO.read(path, limit: ReadLimit.profile) {
            case .success(let text): return (path, text)
            case .failure(.errno(let errno)) where errno == .noSuchFileOrDirectory || errno == .notDirectory: continue
            case .failure(let failure): throw FileIO.failure(failure, path: path)
            }
        }
        if let text = builtins[reference] { return ("built-in:\(reference)", text) }
        throw TunerError.profileNotFound(
            name: reference, searched: searchDirectories + ["built-in (\(builtins.keys.sorted().joined(separator: ", ")))"],
            extendedBy: parentFile)
    }

    /// Applies a chain (child first) over the schema defaults and checks the
    /// constraints that span keys.
    static func resolve(name: String, chain: [ProfileDocument], sources: [String]) throws -> LoadProfile {
        var profile = LoadProfile(name: name)
        profile.sources = sources
        for document in chain.reversed() {  // the root ancestor first, the child last
            profile.summary = document.summary ?? profile.summary
            for (field, value) in document.numbers { field.set(value, in: &profile) }
            profile.pinnedTimeouts.merge(document.timeouts) { _, child in child }
            profile.timeoutFloors.merge(document.timeoutFloors) { _, child in child }
            profile.stateful = document.stateful ?? profile.stateful
        }
        // The nearest file that declares classes decides the whole list; a
        // class without its own burst factor takes the profile's.
        if let classes = chain.first(where: { $0.classes != nil })?.classes {
            profile.classes = classes.map { document in
                var resolved = ProfileClass(name: document.label, match: document.match, burstFactor: profile.burstFactor)
                for (field, value) in document.numbers { resolved.set(field, value) }
                resolved.cures = document.cures.filter { $0 != .none }
                resolved.curePinned = document.curePinned
                return resolved
            }
        }
        let shares = profile.tcp.orphanRatio + profile.tcp.halfOpenRatio
        if shares > 1 {
            throw TunerError.invalidProfile(
                file: sources[0], line: nil, field: "load.tcp",
                problem:
                    """
                    orphan_ratio + half_open_ratio is \(shares), more than all flows — they are shares of new flows and \
                    must add up to at most 1
                    """
            )
        }
        return profile
    }
}
