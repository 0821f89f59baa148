import SystemPackage

/// What reloading unloaded modules did (rolling back an unload).
public struct ReloadOutcome: Equatable, Sendable {
    /// Loaded again, in load order.
    public var loaded: [String]
    /// Modules that could not be loaded, with why; the others were still tried.
    public var failures: [String: TunerError]

    public var succeeded: Bool { failures.isEmpty }
}

extension ModuleHost {
    /// Loads `unloadOrder` back, last unloaded first (dependencies before
    /// the modules that need them). Best effort: a failure is recorded and
    /// the rest are still loaded, since a rollback should restore all it can.
    /// Remove the blacklist file first: its `install … /bin/false` lines
    /// would stop every load.
    ///
    /// - Parameter load: loads one module (the seam tests replace);
    ///   defaults to libkmod's probe.
    public func reload(_ unloadOrder: [String], load: ((String) throws -> Errno?)? = nil) throws -> ReloadOutcome {
        let loadOne = load ?? ModuleOperations.libkmod(root: root).load
        var outcome = ReloadOutcome(loaded: [], failures: [:])
        for module in unloadOrder.reversed() {
            do {
                if let errno = try loadOne(module) {
                    outcome.failures[module] = .loadFailed(module: module, reason: errnoText(errno))
                } else {
                    outcome.loaded.append(module)
                }
            } catch let error as TunerError {
                outcome.failures[module] = error
            }
        }
        return outcome
    }

    /// Removes cttune's /etc/modules-load.d/cttune.conf and
    /// /etc/modprobe.d/cttune.conf (hashsize options): with the family
    /// blacklisted by `install … /bin/false`, their boot-time load would fail.
    public func removeConntrackLoadFiles() throws -> [(path: String, action: FileAction)] {
        try [KernelPaths.modulesLoadConf, KernelPaths.modprobeConf].map { file in
            (try AtomicFile.checkedPath(file, under: root).string, try AtomicFile.remove(file, under: root))
        }
    }
}
