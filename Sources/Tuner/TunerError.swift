import Foundation
import SystemPackage

/// Every failure cttune reports. Each message names what failed, where
/// (path, key, file and field) and what to do next; no raw errno numbers.
public enum TunerError: Error, Equatable, CustomStringConvertible {
    /// A path given to a `SystemRoot` would leave it through `..` or a link.
    case pathEscapesRoot(path: String, root: String)
    /// `--root` names nothing usable.
    case rootNotADirectory(root: String)
    /// A file exists but cannot be read.
    case unreadable(path: String, reason: String)
    /// A kernel or system file has unexpected content.
    case malformed(path: String, detail: String)
    /// A fact the planner cannot do without is missing.
    case missingFact(fact: String, path: String, fix: String)
    /// No profile of this name in the search path.
    case profileNotFound(name: String, searched: [String])
    /// A profile file breaks the schema; `field` is a dotted key path, `line` 1-based.
    case invalidProfile(file: String, line: Int?, field: String, problem: String)
    /// `extends:` loops back on itself.
    case profileCycle(chain: [String])
    /// A size such as `--memory 4G` that does not parse.
    case invalidSize(text: String)
    /// Several kernels' module trees under --root and no `--kernel` to pick one.
    case ambiguousKernel(directory: String, releases: [String])
    /// A libkmod call failed; `subject` is the module or directory.
    case kmodCallFailed(call: String, subject: String, reason: String)
    /// The kernel cannot load or unload modules; `builtIn` are the family members known to be built in.
    case noModuleSupport(builtIn: [String])
    /// The conntrack core is part of the kernel image.
    case moduleBuiltIn(module: String)
    /// Live firewall rules need connection tracking.
    case rulesNeedConntrack(rules: [String])
    /// A module keeps users other than modules once its holders are gone.
    case moduleInUse(module: String, users: Int)
    /// `delete_module` answered EBUSY; `users` is the refcount beyond the holders, when known.
    case moduleBusy(module: String, holders: [String], users: Int?)
    /// `delete_module` answered ENOSYS: the kernel cannot unload modules.
    case unloadUnsupported(module: String)
    /// `delete_module` answered EPERM.
    case unloadNotPermitted(module: String)
    /// `delete_module` failed otherwise.
    case unloadFailed(module: String, reason: String)
    /// Loading a module back (rollback) failed.
    case loadFailed(module: String, reason: String)
    /// No loadable family module exists in any tree under this directory.
    case nothingToBlacklist(directory: String, builtIn: [String])
    /// A file cttune writes could not be written or removed.
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .pathEscapesRoot(path, root):
            return "\(path) leads outside the root \(root) — refusing to follow it; remove the link or pick another --root"
        case let .rootNotADirectory(root):
            return "--root \(root) is not a directory — give the directory that stands for / (for example an image tree)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason) — run as root, or point --root at a readable copy"
        case let .malformed(path, detail):
            return "unexpected content in \(path): \(detail)"
        case let .missingFact(fact, path, fix):
            return "cannot find \(fact) (\(path) is absent) — \(fix)"
        case let .profileNotFound(name, searched):
            return "no profile named \"\(name)\" (looked in: \(searched.joined(separator: ", "))) — run `cttune plan --profile PATH.yaml`, or pick one of the built-in profiles listed by `cttune plan --help`"
        case let .invalidProfile(file, line, field, problem):
            let location = line.map { "\(file):\($0)" } ?? file
            return field.isEmpty ? "\(location): \(problem)" : "\(location): \(field): \(problem)"
        case let .profileCycle(chain):
            return "profiles extend each other in a loop: \(chain.joined(separator: " -> ")) — remove one of these `extends:` lines"
        case let .invalidSize(text):
            return "\"\(text)\" is not a size — give bytes or a number with K, M, G or T (powers of 1024), for example 4G or 512MiB"
        case let .ambiguousKernel(directory, releases):
            return "\(directory) holds several kernels (\(releases.joined(separator: ", "))) — pick one with --kernel VERSION"
        case let .kmodCallFailed(call, subject, reason):
            return "libkmod \(call) failed for \(subject): \(reason) — check that the module tree was indexed with `depmod -b ROOT VERSION`"
        case let .noModuleSupport(builtIn):
            return "this kernel has no loadable module support (no /proc/modules): \(summarizedModules(builtIn)) built in and cannot be unloaded — add a notrack rule (nft `notrack`, iptables `-t raw -j CT --notrack`) so traffic bypasses conntrack"
        case let .moduleBuiltIn(module):
            return "\(module) is built into the kernel and cannot be unloaded — add a notrack rule (nft `notrack`, iptables `-t raw -j CT --notrack`) so traffic bypasses conntrack, or boot a kernel that builds it as a module"
        case let .rulesNeedConntrack(rules):
            let shown = rules.prefix(5).joined(separator: "; ") + (rules.count > 5 ? "; and \(rules.count - 5) more" : "")
            return "refusing to unload: live firewall rules need connection tracking (\(shown)) — remove or rewrite them first (`cttune rules` explains each)"
        case let .moduleInUse(module, users):
            return "refusing to unload: \(module) is in use (\(users) reference\(users == 1 ? "" : "s") besides its holder modules: rules, sockets or other kernel users) — remove what uses it, then retry"
        case let .moduleBusy(module, holders, users):
            var held: [String] = []
            if !holders.isEmpty { held.append("held by \(holders.joined(separator: ", "))") }
            if let users, users > 0 { held.append("in use \(users) time\(users == 1 ? "" : "s") besides its holders") }
            let detail = held.isEmpty ? "" : " (" + held.joined(separator: "; ") + ")"
            return "cannot unload \(module): the kernel says it is busy\(detail) — stop what uses it (rules, sockets), then run `cttune unload` again"
        case let .unloadUnsupported(module):
            return "cannot unload \(module): this kernel does not implement module unloading (delete_module is not implemented) — loaded modules stay until reboot; blacklist them (`cttune blacklist`) and add a notrack rule meanwhile"
        case let .unloadNotPermitted(module):
            return "cannot unload \(module): operation not permitted — run as root (CAP_SYS_MODULE); if already root, module unloading is disabled (kernel.modules_disabled=1 or lockdown)"
        case let .unloadFailed(module, reason):
            return "cannot unload \(module): \(reason)"
        case let .loadFailed(module, reason):
            return "cannot load \(module) back: \(reason) — check `cttune modules` and load it with `modprobe \(module)` once the cause is fixed"
        case let .nothingToBlacklist(directory, builtIn):
            let note = builtIn.isEmpty ? "" : " (\(summarizedModules(builtIn)) built in: a blacklist cannot keep those off — use a notrack rule)"
            return "no loadable conntrack/NAT module under \(directory)\(note) — nothing to blacklist; pass --root DIR for an image tree"
        case let .unwritable(path, reason):
            return "cannot write \(path): \(reason) — run as root, or use --output FILE / --root DIR"
        }
    }
}

/// "nf_conntrack is", "nf_conntrack and 9 more modules are": the first
/// name of a list, so a one-line message stays one line.
func summarizedModules(_ names: [String]) -> String {
    guard let first = names.first else { return "nf_conntrack is" }
    return names.count == 1 ? "\(first) is" : "\(first) and \(names.count - 1) more module\(names.count == 2 ? "" : "s") are"
}

/// Text for an errno value, without the number: "permission denied".
func errnoText(_ code: Errno) -> String {
    String(cString: strerror(code.rawValue)).lowercased()
}
