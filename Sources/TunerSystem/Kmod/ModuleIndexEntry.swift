import TunerCore

/// What libkmod's indexes and the modprobe.d config say about one module.
public struct ModuleIndexEntry: Equatable, Sendable {
    public var name: String
    /// The .ko file, absolute; `nil` when the tree has none (absent or built in).
    public var path: String?
    /// Every module that must be loaded first (modules.dep's transitive
    /// list), first to load first, as `modprobe --show-depends` prints them.
    public var dependenciesInLoadOrder: [String]
    /// `softdep NAME pre: …`: loaded before it.
    public var softdepsBefore: [String]
    /// `softdep NAME post: …`: loaded after it.
    public var softdepsAfter: [String]
    /// `install NAME COMMAND` from modprobe.d, run instead of loading it.
    public var installCommand: String?

    public init(
        name: String, path: String?, dependenciesInLoadOrder: [String] = [], softdepsBefore: [String] = [],
        softdepsAfter: [String] = [], installCommand: String? = nil
    ) {
        self.name = name
        self.path = path
        self.dependenciesInLoadOrder = dependenciesInLoadOrder
        self.softdepsBefore = softdepsBefore
        self.softdepsAfter = softdepsAfter
        self.installCommand = installCommand
    }
}
