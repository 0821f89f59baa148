import ArgumentParser
import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

/// How to print a result.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// The options that choose the host and the load: shared by plan and apply.
struct ProfileOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Load profile: a built-in name, a name in $CTTUNE_PROFILE_PATH, /etc/cttune/profiles or \
            PREFIX/share/cttune/profiles, or a path to a .yaml file.
            """,
            valueName: "name|path"))
    var profile: String = "default"

    // `.unconditional`: `--memory -1` is a bad size, not a missing value.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Plan for this much RAM instead of this host's (bytes, or K, M, G, T).", valueName: "size"))
    var memory: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Plan for this many CPUs instead of this host's online CPUs.", valueName: "n"))
    var cpus: Int?

    @Option(
        help: ArgumentHelp(
            "Kernel memory per conntrack entry (the nf_conntrack slab's object size) instead of the table of known kernels or BTF.",
            valueName: "bytes"))
    var entrySize: Int?

    @Option(
        help: ArgumentHelp(
            "Network namespaces that each carry the load with their own conntrack entries (default: the profile's namespaces, else 1).",
            valueName: "n"))
    var namespaces: Int?

    @OptionGroup var root: RootOption

    @Option(
        help: ArgumentHelp(
            """
            Judge the classes' notrack cures against this saved ruleset (nft JSON, nft text or iptables-save; - for stdin) \
            instead of the live one: the firewall a --root tree boots with, for instance.
            """,
            valueName: "file"))
    var ruleset: String?

    @Option(
        help: ArgumentHelp(
            """
            Plan for this kernel release (a directory under /lib/modules): default the running kernel, or under --root a \
            tree's only kernel.
            """,
            valueName: "version"))
    var kernel: String?

    func validate() throws {
        try validateKernelRelease(kernel)
        if let cpus, cpus < 1 || cpus > 65536 { throw ValidationError("--cpus must be between 1 and 65536, got \(cpus)") }
        if let memory { _ = try parsedMemory(memory) }
        if let entrySize, !EntrySize.validBytes.contains(entrySize) {
            throw ValidationError(
                """
                --entry-size must be between \(EntrySize.validBytes.lowerBound) and \(EntrySize.validBytes.upperBound) \
                bytes, got \(entrySize)
                """
            )
        }
        if let namespaces, namespaces < 1 || namespaces > 100_000 {
            throw ValidationError("--namespaces must be between 1 and 100000, got \(namespaces)")
        }
    }

    func parsedMemory(_ text: String) throws -> Int {
        do { return try ByteSize.parse(text) } catch { throw ValidationError("--memory: \(error)") }
    }

    /// `--profile`, `--memory`, `--cpus`, `--kernel`, `--entry-size` and `--namespaces`.
    func planInputs() throws -> PlanInputs {
        PlanInputs(
            profile: profile, memoryBytes: try memory.map(parsedMemory), cpus: cpus, kernel: kernel, entryBytes: entrySize,
            namespaces: namespaces, ruleset: ruleset)
    }
}

/// `--root DIR`: read and write a tree instead of the running system.
struct RootOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Treat this directory as / for /proc, /sys, /etc, /lib/modules, /var/lib and /run (image builds, fixtures).",
            valueName: "dir"))
    var root: String?

    func systemRoot() throws -> SystemRoot {
        guard let root = root.map(CommandLinePath.absolute) else { return .live }
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory else {
            throw TunerError.rootNotADirectory(root: root)
        }
        return SystemRoot(base: FilePath(root))
    }
}

/// Path arguments as a shell user means them: a relative path names a file
/// under the working directory, not under `/` (which `SystemRoot.live` and
/// `AtomicFile` map every path into). Every path flag goes through here.
enum CommandLinePath {
    /// `path` made absolute against the working directory, `.` and `..`
    /// resolved lexically (the way `cd` and the shell's completion read them);
    /// an absolute path is only normalised.
    ///
    /// Plain string work, linear in the length: FilePath's component parsing
    /// is quadratic in a component's length, and a flag can be any length.
    static func absolute(_ path: String) -> String {
        guard !path.isEmpty else { return path }
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var components: [Substring] = []
        for component in full.split(separator: "/", omittingEmptySubsequences: true) where component != "." {
            if component == ".." { _ = components.popLast() } else { components.append(component) }
        }
        return "/" + components.joined(separator: "/")
    }

    /// A `--namespace` value: a relative path to a netns file (it holds a `/`)
    /// made absolute; names and `pid:N` stay as given.
    static func namespace(_ value: String) -> String {
        value.contains("/") && !value.hasPrefix("/") ? absolute(value) : value
    }
}

/// `--lock-timeout`: a finite number of seconds, at most a day.
func validateLockTimeout(_ seconds: Double) throws {
    guard seconds.isFinite, seconds >= 0, seconds <= ApplyLock.longestWaitSeconds else {
        throw ValidationError("--lock-timeout must be between 0 and \(Int(ApplyLock.longestWaitSeconds)) seconds, got \(seconds)")
    }
}

/// Runs a command body: any error prints one line on stderr and, with
/// `--format json`, one object `{"schema", "command", "error": {"message", "exit_code"}}`
/// on stdout (never an empty stdout), then exits 1.
///
/// A body that already printed its report with the error in it throws
/// `ReportedFailure`, so only the stderr line is left to print.
func reportingErrors(_ command: String, format: OutputFormat, _ body: () throws -> ExitCode) throws {
    try reporting(command, format: format, failureCode: .failure, body)
}

/// `reportingErrors` for status: a failure to read the state is the
/// monitoring-plugin UNKNOWN (exit 3), with the reason on stdout as plugins print it.
func reportingUnknown(format: OutputFormat, _ body: () throws -> ExitCode) throws {
    try reporting(
        "status", format: format, failureCode: .unknown,
        members: { message in
            [("verdict", .string("unknown")), ("exit_code", .int(3)), ("summary", .string("UNKNOWN: \(message)"))]
        },
        text: { message in "UNKNOWN: \(message)" }, body)
}

/// The one error path of every command (see `reportingErrors`): every error
/// a body throws, of any layer, becomes a `TunerError` here.
///
/// - Parameters:
///   - members: the command's own members of the error object, besides `schema`, `command` and `error`.
///   - text: the stdout line of a failure in text format (`nil`: stdout stays empty, the stderr line says it).
private func reporting(
    _ command: String, format: OutputFormat, failureCode: ExitCode,
    members: (String) -> [(String, JSONValue)] = { _ in [] }, text: ((String) -> String)? = nil,
    _ body: () throws -> ExitCode
) throws {
    let code: ExitCode
    do {
        code = try body()
    } catch let reported as ReportedFailure {
        Diagnostics.error(reported.error)
        throw reported.exitCode
    } catch let exit as ExitCode {
        throw exit
    } catch {
        let error = TunerError(error)
        Diagnostics.error(error)
        let message = Echo.oneLine("\(error)")
        switch format {
        case .json:
            printJSON(
                [("command", .string(command))] + members(message) + [("error", .failure(error, exitCode: failureCode.rawValue))])
        case .text: if let text { print(text(message)) }
        }
        throw failureCode
    }
    if code != .success { throw code }
}

/// A failure whose report, with the error in it, is already on stdout.
struct ReportedFailure: Error {
    let error: TunerError
    var exitCode: ExitCode = .failure
}

/// Prints a command's output in the chosen format: the one emit of every
/// command. A failure the output shows is then raised for the error path.
func emit(_ output: some CommandOutput, format: OutputFormat) throws {
    switch format {
    case .json: printJSON(output.json())
    case .text:
        let text = output.text()
        if !text.isEmpty { print(text) }
    }
    if let failure = output.failure { throw ReportedFailure(error: failure) }
}

/// Prints a JSON object on stdout, `"schema"` first: the only thing `--format json` prints there.
func printJSON(_ members: [(String, JSONValue)], pretty: Bool = true) {
    print(JSONValue.document(members).rendered(pretty: pretty))
}

/// `--root DIR --kernel VERSION`: which module tree the module commands read.
struct ModuleTreeOptions: ParsableArguments {
    @OptionGroup var root: RootOption

    @Option(help: ArgumentHelp("Use the module tree of this kernel release instead of the running one's.", valueName: "version"))
    var kernel: String?

    func validate() throws { try validateKernelRelease(kernel) }

    /// Live module state, the module tree and its modprobe.d config under the root.
    func host() throws -> ModuleHost {
        try ModuleHost(root: try root.systemRoot(), release: kernel)
    }
}

/// `--kernel` names one directory under /lib/modules: a value with a `/` or
/// a `..` would read another directory of the root.
func validateKernelRelease(_ release: String?) throws {
    guard let release else { return }
    if !PathName.isOneComponent(release) {
        throw ValidationError(
            """
            --kernel takes a kernel release such as \"6.1.0-28-cloud-amd64\" (a directory name under /lib/modules), got \
            \(Echo.quoted(release))
            """
        )
    }
}

/// `--include-defrag` and `--force`: how far the blacklist (and the stateless apply) reaches.
struct BlacklistScopeOptions: ParsableArguments {
    @Flag(
        help:
            """
            Also blacklist nf_defrag_ipv4/6 (and unload them when nothing uses them); this breaks xt_socket, xt_TPROXY and \
            nft_tproxy (transparent proxies).
            """
    )
    var includeDefrag = false
    @Flag(help: "Blacklist even when modules outside the conntrack family that it makes unloadable are in use.") var force = false
}
