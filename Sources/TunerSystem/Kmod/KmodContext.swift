import CKmod
import Glibc
import SystemPackage
import TunerCore

/// The one owner of a libkmod context (`struct kmod_ctx`); the only file that
/// imports CKmod.
///
/// Reads the module indexes (modules.dep.bin, modules.alias.bin, …) of one
/// kernel's module directory under a `SystemRoot`, with modprobe.d config
/// taken from that root too, never the host's. Live state (/proc/modules,
/// /sys/module) is not read here: libkmod reads it at fixed host paths, so
/// `LiveModules` reads it through the root instead. Not thread-safe (libkmod
/// contexts are not): use it from one task.
public final class KmodContext {
    private let context: OpaquePointer
    /// The directory holding modules.dep.bin, e.g. ROOT/lib/modules/6.1.0-1-cloud-amd64.
    public let modulesDirectory: FilePath

    /// Creates a context for kernel `release` under `root`.
    ///
    /// libkmod's own log lines are silenced: failures come back as return
    /// codes and become `TunerError`s with a fix.
    ///
    /// The corresponding libkmod call is `kmod_new`.
    public init(root: SystemRoot, release: String) throws {
        modulesDirectory = try root.path(KernelPaths.libModules.appending(release))
        // libkmod opens paths itself: hand it the directories as the root
        // resolves them (links read inside it), and leave out a config
        // directory that names nothing inside the root.
        let resolved = try root.resolvedDirectory(KernelPaths.libModules.appending(release)) ?? modulesDirectory
        // On the live host libkmod reads its own compiled-in list (it differs
        // between kmod releases, see KernelPaths.modprobeConfigDirectories).
        let configPaths = root.isLive ? nil : try Self.configDirectories.compactMap { try root.resolvedDirectory($0)?.string }
        for file in Self.indexFiles { try root.checkForPlainOpen(KernelPaths.libModules.appending(release).appending(file)) }
        for directory in Self.configDirectories {
            for name in root.entries(of: directory) where name.hasSuffix(".conf") { try root.checkForPlainOpen(directory.appending(name)) }
        }
        // kmod_new parses modprobe.d and logs its complaints ("libkmod: ERROR
        // … ignoring bad line") on stderr before a log function can be set:
        // stderr points at /dev/null for that call only.
        let made: OpaquePointer? = resolved.string.withCString { directory in
            guard let configPaths else { return Self.withStderrSilenced { kmod_new(directory, nil) } }
            return withCStringArray(configPaths) { paths in Self.withStderrSilenced { kmod_new(directory, paths) } }
        }
        guard let made else {
            throw TunerError.unreadable(path: modulesDirectory.string, reason: "libkmod could not create a context")
        }
        context = made
        kmod_set_log_priority(context, LOG_EMERG)
        cttune_kmod_silence(context)
    }

    deinit { kmod_unref(context) }

    /// What libkmod opens in a module directory (plain open(2), no O_NONBLOCK).
    static let indexFiles = [
        "modules.dep.bin", "modules.alias.bin", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin",
        "modules.builtin.modinfo", "modules.softdep", "modules.weakdep", "modules.devname",
    ]

    /// Runs `body` with file descriptor 2 on /dev/null.
    private static func withStderrSilenced<T>(_ body: () -> T) -> T {
        let saved = dup(2)
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard saved >= 0, null >= 0 else {
            if saved >= 0 { close(saved) }
            if null >= 0 { close(null) }
            return body()
        }
        dup2(null, 2)
        close(null)
        defer {
            dup2(saved, 2)
            close(saved)
        }
        return body()
    }

    /// Where modprobe reads configuration, mapped under the root so a tree's
    /// own config is used (libkmod's NULL default would read the host's).
    static let configDirectories: [FilePath] = KernelPaths.modprobeConfigDirectories

    /// The directory libkmod resolved (it may differ from the one given when
    /// it follows links); proves the context is live.
    ///
    /// The corresponding libkmod call is `kmod_get_dirname`.
    public var resolvedDirectory: String {
        kmod_get_dirname(context).map { String(cString: $0) } ?? ""
    }

    /// What the indexes and the modprobe.d config say about one module.
    ///
    /// - Returns: an entry whose `path` is `nil` when the tree has no .ko for
    ///   the name (absent, or built in).
    /// - Throws: `TunerError.kmodCallFailed` when libkmod cannot make a handle.
    ///
    /// The corresponding libkmod calls are `kmod_module_new_from_name`,
    /// `kmod_module_get_path`, `kmod_module_get_dependencies`,
    /// `kmod_module_get_softdeps` and `kmod_module_get_install_commands`.
    public func module(named name: String) throws -> ModuleIndexEntry {
        try withModule(named: name) { module in
            let path = kmod_module_get_path(module).map { String(cString: $0) }
            // modules.dep has no line for a name without a .ko.
            let dependencies = path == nil ? [] : takingList(kmod_module_get_dependencies(module), moduleNames)
            var pre: OpaquePointer?, post: OpaquePointer?
            let softdepCode = kmod_module_get_softdeps(module, &pre, &post)
            let preNames = takingList(pre, moduleNames), postNames = takingList(post, moduleNames)
            if softdepCode < 0 {
                throw TunerError.kmodCallFailed(
                    call: "kmod_module_get_softdeps", subject: name, reason: errnoText(Errno(rawValue: -softdepCode)))
            }
            return ModuleIndexEntry(
                name: name, path: path,
                dependenciesInLoadOrder: dependencies,
                softdepsBefore: preNames, softdepsAfter: postNames,
                installCommand: kmod_module_get_install_commands(module).map { String(cString: $0) })
        }
    }

    /// Module names that a `blacklist NAME` line in the root's modprobe.d names.
    ///
    /// The corresponding libkmod call is `kmod_config_get_blacklists`.
    public func blacklistedNames() -> Set<String> {
        // kmod 30 crashes in kmod_config_iter_free_iter(NULL): free only a real iterator.
        guard let iterator = kmod_config_get_blacklists(context) else { return [] }
        defer { kmod_config_iter_free_iter(iterator) }
        var names = Set<String>()
        while kmod_config_iter_next(iterator) {
            if let key = kmod_config_iter_get_key(iterator) { names.insert(String(cString: key)) }
        }
        return names
    }

    /// Unloads one module without waiting for its users to go away.
    ///
    /// - Returns: `nil` on success, else the errno the kernel gave
    ///   (`EBUSY` in use, `ENOENT` not loaded, `ENOSYS` no module support,
    ///   `EPERM` not allowed).
    ///
    /// The corresponding libkmod call is `kmod_module_remove_module` (the
    /// `delete_module` syscall with `O_NONBLOCK`).
    public func remove(moduleNamed name: String) throws -> Errno? {
        try withModule(named: name) { module in
            let code = kmod_module_remove_module(module, 0)
            return code < 0 ? Errno(rawValue: -code) : nil
        }
    }

    /// Loads one module and its dependencies, running modprobe.d `install`
    /// commands as modprobe does; a module already in the kernel is left alone.
    ///
    /// - Returns: `nil` on success, else the errno (`ENOSYS` no module
    ///   support, `ENOEXEC` built for another kernel, `ENOENT` not in the tree).
    ///
    /// The corresponding libkmod call is `kmod_module_probe_insert_module`
    /// (the `finit_module` syscall).
    public func load(moduleNamed name: String) throws -> Errno? {
        try withModule(named: name) { module in
            let code = kmod_module_probe_insert_module(module, 0, nil, nil, nil, nil)
            return code < 0 ? Errno(rawValue: -code) : nil
        }
    }

    /// Runs `body` with a module handle that is unref'd when it returns; the
    /// handle never escapes.
    private func withModule<T>(named name: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        var module: OpaquePointer?
        let code = kmod_module_new_from_name(context, name, &module)
        guard code >= 0, let module else {
            throw TunerError.kmodCallFailed(call: "kmod_module_new_from_name", subject: name, reason: errnoText(Errno(rawValue: -code)))
        }
        defer { kmod_module_unref(module) }
        return try body(module)
    }
}

/// Reads a list of module handles and frees it (`kmod_module_unref_list`),
/// walking it with `kmod_list_next` since `kmod_list_foreach` is a macro.
private func takingList(_ list: OpaquePointer?, _ read: (OpaquePointer) -> [String]) -> [String] {
    guard let list else { return [] }
    defer { kmod_module_unref_list(list) }
    return read(list)
}

/// The names of the modules in a libkmod list, in list order.
private func moduleNames(_ list: OpaquePointer) -> [String] {
    var names: [String] = []
    var entry: OpaquePointer? = list
    while let current = entry {
        if let module = kmod_module_get_module(current) {
            names.append(String(cString: kmod_module_get_name(module)))
            kmod_module_unref(module)
        }
        entry = kmod_list_next(list, current)
    }
    return names
}

/// Passes `strings` as a NULL-terminated `const char *[]` for the call's duration.
private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = duplicates.map { $0.map { UnsafePointer($0) } } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
