import FoundationEssentials
import Glibc
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
    /// Reading `path` failed with `errno` (EACCES, ELOOP for a link loop or a link out of the root, …).
    case fileReadFailed(path: String, errno: Errno)
    /// Writing `path` failed with `errno`.
    case fileWriteFailed(path: String, errno: Errno)
    /// A system call on a kernel interface failed (a ctnetlink socket, a dump, an event group).
    case systemCallFailed(call: String, errno: Errno)
    /// An error of a kind cttune did not expect, described as it came.
    case unexpected(String)
    /// nft (through libnftables) refused a change to cttune's own table; nothing of it was applied.
    case nftRejected(message: String)
    /// A kernel or system file has unexpected content.
    case malformed(path: String, detail: String)
    /// Where a regular file is read, something else is there (a FIFO, a device).
    case notARegularFile(path: String, kind: String)
    /// A file is larger than any file of its purpose can be.
    case fileTooLarge(path: String, limitBytes: Int)
    /// A fact the planner cannot do without is missing.
    case missingFact(fact: String, path: String, fix: String)
    /// No profile of this name in the search path.
    case profileNotFound(name: String, searched: [String], extendedBy: String?)
    /// A profile given as a path (`--profile ./web.yaml`, `extends: ../base.yaml`) that does not exist.
    case profileFileNotFound(path: String, extendedBy: String?)
    /// A profile file breaks the schema; `field` is a dotted key path, `line` 1-based.
    case invalidProfile(file: String, line: Int?, field: String, problem: String)
    /// `extends:` loops back on itself.
    case profileCycle(chain: [String])
    /// A size such as `--memory 4G` that does not parse.
    case invalidSize(text: String)
    /// Writing a setting was refused for lack of rights (EACCES, EPERM).
    case settingPermissionDenied(key: String, path: String)
    /// The file system holding a setting is mounted read-only (EROFS), as
    /// containers often mount /sys.
    case settingOnReadOnlyFileSystem(key: String, path: String)
    /// The kernel does not allow this setting to change from here
    /// (EOPNOTSUPP: the hash size outside the initial network namespace).
    case settingNotSupportedHere(key: String, path: String)
    /// The kernel rejected the value (EINVAL, ERANGE).
    case settingValueRejected(key: String, path: String, value: Int)
    /// The write returned success but the file reads back another value.
    case settingReadBackMismatch(key: String, path: String, written: Int, readBack: Int?)
    /// Any other failure writing a kernel setting or a configuration file.
    case writeFailed(path: String, reason: String)
    /// Another apply or rollback holds the lock.
    case lockBusy(path: String, waitedSeconds: Double)
    /// A step of a transaction failed; what was already changed was restored
    /// unless `restoreFailures` names what could not be.
    case transactionFailed(step: String, cause: String, restoreFailures: [String])
    /// The plan needs more memory than the profile allows: apply refuses.
    case planDoesNotFit(neededBytes: Int, budgetBytes: Int, profile: String)
    /// `cttune rollback` found nothing to roll back, or not the named entry.
    case journalEntryNotFound(id: String?, directory: String)
    /// Settings were skipped because they cannot be applied from here, and
    /// `--allow-partial` was not given.
    case partialApply(keys: [String], check: Bool)
    /// There is no conntrack table to report on in this network namespace.
    case conntrackNotLoaded(path: String)
    /// nf_conntrack_events is 0: the kernel sends no conntrack events, so `learn` has nothing to measure.
    case conntrackEventsDisabled(path: String, namespace: String)
    /// A file cttune was asked to write (such as `--textfile`) cannot be written.
    case cannotWrite(path: String, reason: String, fix: String)
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
    /// An external program (nft, iptables-save, ip) failed or could not start.
    case toolFailed(command: String, reason: String)
    /// A ruleset cannot be read; `location` is `FILE:LINE`, `FILE:LINE:COLUMN`
    /// or `FILE: nftables[N]`, so the user can find the bad line or element.
    case invalidRuleset(location: String, problem: String, fix: String)
    /// Reading the live ruleset or loading nft text needs a tool that is missing.
    case rulesetToolMissing(tool: String, purpose: String)
    /// Loading nft text needs a private network namespace, which needs root.
    case rulesetNeedsRoot(source: String)
    /// The stateless profile was asked for, but the firewall depends on connection state.
    case statelessRefused(ruleCount: Int)
    /// Nat-type chains or iptables nat tables exist (live or in a boot-time
    /// ruleset file): they cannot load without nf_nat and nf_conntrack.
    case natChainsPresent(chains: [String], purpose: String)
    /// A module tree has modules.dep but not the binary index libkmod and modprobe read.
    case missingModuleIndex(directory: String, index: String)
    /// Loaded modules outside the conntrack family hold family modules
    /// (module → the family modules it holds); cttune never unloads them.
    case outsideFamilyHolders([String: [String]])
    /// The blacklist would make modules outside the family unloadable while
    /// they are in use (loaded, in modules-load.d, used by a ruleset).
    case blacklistBreaksModules(conflicts: [String])
    /// `--on-conflict refuse`: other files decide planned keys at boot (`file:line` sentences).
    case overriddenAtBoot(overrides: [String])
    /// The profile describes more entries than nf_conntrack_max can hold.
    case loadTooLarge(profile: String, detail: String)
    /// A network namespace given by name, path or pid:N that cannot be read (the namespace already escaped).
    case namespaceUnreadable(namespace: String, reason: String)

    public var description: String {
        switch self {
        case let .pathEscapesRoot(path, root):
            return "\(path) leads outside the root \(root) — refusing to follow it; remove the link or pick another --root"
        case let .rootNotADirectory(root):
            return "--root \(root) is not a directory — give the directory that stands for / (for example an image tree)"
        case let .fileReadFailed(path, errno) where errno == .tooManySymbolicLinkLevels:
            return "cannot read \(path): \(Self.linkLoop) — \(Self.linkLoopFix)"
        case let .fileReadFailed(path, errno):
            return "cannot read \(path): \(errnoText(errno)) — run as root, or point --root at a readable copy"
        case let .fileWriteFailed(path, errno) where errno == .tooManySymbolicLinkLevels:
            return "cannot write \(path): \(Self.linkLoop) — \(Self.linkLoopFix)"
        case let .fileWriteFailed(path, errno) where errno == .permissionDenied || errno == .notPermitted:
            return
                """
                cannot write \(path): \(errnoText(errno)) — run as root (or as the owner of that directory), or preview with \
                `--check` / `--dry-run`
                """
        case let .fileWriteFailed(path, errno):
            return """
                cannot write \(path): \(errnoText(errno)) — fix the path (a directory or file in the way, permissions, a full disk) and \
                run again
                """
        case let .systemCallFailed(call, errno):
            let fix =
                errno == .notPermitted || errno == .permissionDenied
                ? "run as root (ctnetlink needs CAP_NET_ADMIN)" : "run again; if it persists, report it with the kernel version"
            return "\(call) failed: \(errnoText(errno)) — \(fix)"
        case let .nftRejected(message):
            return "nft refused the change, and applied none of it: \(message) — report it with `nft --version` and the kernel version"
        case let .unexpected(description):
            return "\(description) — this is not an error cttune knows how to explain; please report it"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason) — run as root, or point --root at a readable copy"
        case let .malformed(path, detail):
            // A kernel file with content cttune cannot use is most often a hand-made
            // or truncated copy under --root; callers whose detail carries its own fix keep it.
            let fix =
                detail.contains(" — ") || !path.hasPrefix("/")
                ? "" : " — the kernel writes this file: under --root, copy it again from a running system"
            return "unexpected content in \(path): \(detail)\(fix)"
        case let .notARegularFile(path, kind):
            return
                """
                \(path) is \(kind), not a regular file — cttune reads only regular files there (a pipe or device would \
                block or never end); put the file itself in its place
                """
        case let .fileTooLarge(path, limitBytes):
            return "\(path) is larger than \(limitBytes / 1024) KiB, more than any such file holds — check that it is the right file"
        case let .missingFact(fact, path, fix):
            return "cannot find \(fact) (\(path) is absent) — \(fix)"
        case let .profileFileNotFound(path, extendedBy):
            return (extendedBy.map { "\($0): extends: " } ?? "")
                + """
                no profile file \(path) — check the path, or give a profile name (the built-in ones are listed by `cttune \
                plan --help`)
                """
        case let .profileNotFound(name, searched, extendedBy):
            let parent = extendedBy.map { "\($0): extends: " } ?? ""
            return parent
                + """
                no profile named \"\(name)\" (looked in: \(searched.joined(separator: ", "))) — run `cttune plan --profile \
                PATH.yaml`, or pick one of the built-in profiles listed by `cttune plan --help`
                """
        case let .invalidProfile(file, line, field, problem):
            let location = line.map { "\(file):\($0)" } ?? file
            return field.isEmpty ? "\(location): \(problem)" : "\(location): \(field): \(problem)"
        case let .profileCycle(chain):
            return "profiles extend each other in a loop: \(chain.joined(separator: " -> ")) — remove one of these `extends:` lines"
        case let .invalidSize(text):
            return
                "\(Echo.quoted(text)) is not a size — give bytes or a number with K, M, G or T (powers of 1024), for example 4G or 512MiB"
        case let .settingPermissionDenied(key, path):
            return
                """
                cannot write \(key) (\(path)): permission denied — run as root (a global setting is also read-only outside \
                the initial network namespace: apply it on the host), or preview with `cttune apply --check`
                """
        case let .settingOnReadOnlyFileSystem(key, path):
            return
                """
                cannot write \(key) (\(path)): the file system is mounted read-only (a container's /sys?) — run apply on \
                the host, or pass --allow-partial to set what can be set
                """
        case let .settingNotSupportedHere(key, path):
            return
                """
                cannot write \(key) (\(path)): the kernel allows it only in the initial network namespace — run apply on \
                the host, or pass --allow-partial to set only the timeouts
                """
        case let .settingValueRejected(key, path, value):
            return
                """
                the kernel rejected \(value) for \(key) (\(path)): invalid argument — check the profile's value for this \
                key (`cttune plan --explain`)
                """
        case let .settingReadBackMismatch(key, path, written, readBack):
            return
                """
                \(key) (\(path)) reads back \(readBack.map(String.init) ?? "nothing") after writing \(written) — the \
                kernel did not take the value; nothing was left half-applied
                """
        case let .writeFailed(path, reason):
            return """
                cannot write \(path): \(reason) — fix the path (a directory or file in the way, permissions, a full disk) and \
                run again
                """
        case let .lockBusy(path, waitedSeconds):
            return
                """
                another cttune apply or rollback holds \(path) (waited \(Int(waitedSeconds.rounded())) s) — let it finish, \
                then run again
                """
        case let .transactionFailed(step, cause, restoreFailures):
            let restored =
                restoreFailures.isEmpty
                ? "everything already changed was restored"
                : "could NOT restore: \(restoreFailures.joined(separator: "; ")) — fix these by hand"
            return "\(step) failed: \(cause); \(restored)"
        case let .planDoesNotFit(neededBytes, budgetBytes, profile):
            return
                """
                refusing to apply: the plan for profile \(profile) needs \(neededBytes / 1_048_576) MiB but the budget is \
                \(budgetBytes / 1_048_576) MiB — see `cttune plan --explain`, then raise memory_budget_percent or lower \
                the load
                """
        case let .journalEntryNotFound(id, directory):
            if let id {
                return "no journal entry \(id) in \(directory) — list them with `cttune rollback --list`"
            }
            return "nothing to roll back: no apply recorded in \(directory) — `cttune apply` records one each time it changes something"
        case let .partialApply(keys, check):
            let rest = check ? "the rest would be applied" : "the rest is in effect"
            return
                """
                not applied here: \(keys.joined(separator: ", ")) (reasons above) — \(rest); apply these on the host, or \
                pass --allow-partial to accept a partial apply
                """
        case let .conntrackNotLoaded(path):
            return
                """
                nf_conntrack is not loaded here (\(path) is absent) — nothing is tracked in this network namespace; status \
                has nothing to judge
                """
        case let .conntrackEventsDisabled(path, namespace):
            return
                """
                conntrack events are off in \(namespace) (\(path) is 0) — learn needs them: set it to 2 (the default: on while a \
                listener is subscribed) with `sysctl -w net.netfilter.nf_conntrack_events=2`, then rerun
                """
        case let .cannotWrite(path, reason, fix):
            return "cannot write \(path): \(reason) — \(fix)"
        case let .ambiguousKernel(directory, releases):
            return "\(directory) holds several kernels (\(releases.joined(separator: ", "))) — pick one with --kernel VERSION"
        case let .kmodCallFailed(call, subject, reason):
            return """
                libkmod \(call) failed for \(subject): \(reason) — check that the module tree was indexed with `depmod -b ROOT \
                VERSION`
                """
        case let .noModuleSupport(builtIn):
            return
                """
                this kernel has no loadable module support (no /proc/modules): \(summarizedModules(builtIn)) built in and \
                cannot be unloaded — add a notrack rule (nft `notrack`, iptables `-t raw -j CT --notrack`) so traffic \
                bypasses conntrack
                """
        case let .moduleBuiltIn(module):
            return
                """
                \(module) is built into the kernel and cannot be unloaded — add a notrack rule (nft `notrack`, iptables \
                `-t raw -j CT --notrack`) so traffic bypasses conntrack, or boot a kernel that builds it as a module
                """
        case let .rulesNeedConntrack(rules):
            let shown = rules.prefix(5).joined(separator: "; ") + (rules.count > 5 ? "; and \(rules.count - 5) more" : "")
            return
                """
                refusing to unload: live firewall rules need connection tracking (\(shown)) — remove or rewrite them first \
                (`cttune rules` explains each)
                """
        case let .moduleInUse(module, users):
            return
                """
                refusing to unload: \(module) is in use (\(users) reference\(users == 1 ? "" : "s") besides its holder \
                modules: rules, sockets or other kernel users) — remove what uses it, then retry
                """
        case let .moduleBusy(module, holders, users):
            var held: [String] = []
            if !holders.isEmpty { held.append("held by \(holders.joined(separator: ", "))") }
            if let users, users > 0 { held.append("in use \(users) time\(users == 1 ? "" : "s") besides its holders") }
            let detail = held.isEmpty ? "" : " (" + held.joined(separator: "; ") + ")"
            return
                """
                cannot unload \(module): the kernel says it is busy\(detail) — stop what uses it (rules, sockets), then \
                run `cttune unload` again
                """
        case let .unloadUnsupported(module):
            return
                """
                cannot unload \(module): this kernel does not implement module unloading (delete_module is not implemented) \
                — loaded modules stay until reboot; blacklist them (`cttune blacklist`) and add a notrack rule meanwhile
                """
        case let .unloadNotPermitted(module):
            return
                """
                cannot unload \(module): operation not permitted — run as root (CAP_SYS_MODULE); if already root, module \
                unloading is disabled (kernel.modules_disabled=1 or lockdown)
                """
        case let .unloadFailed(module, reason):
            return "cannot unload \(module): \(reason)"
        case let .loadFailed(module, reason):
            return
                """
                cannot load \(module) back: \(reason) — check `cttune modules` and load it with `modprobe \(module)` once \
                the cause is fixed
                """
        case let .nothingToBlacklist(directory, builtIn):
            let note =
                builtIn.isEmpty ? "" : " (\(summarizedModules(builtIn)) built in: a blacklist cannot keep those off — use a notrack rule)"
            return "no loadable conntrack/NAT module under \(directory)\(note) — nothing to blacklist; pass --root DIR for an image tree"
        case let .toolFailed(command, reason):
            return "`\(command)` failed: \(reason)"
        case let .invalidRuleset(location, problem, fix):
            // Locations and problems quote file, table and chain names and
            // text from the ruleset: escaped, so the error stays one line.
            return "\(location.escapingControlCharacters): \(problem.escapingControlCharacters) — \(fix)"
        case let .rulesetToolMissing(tool, purpose):
            return
                """
                \(tool) is not installed, and it is needed to \(purpose) — install it (Debian: apt-get install \
                \(tool == "nft" ? "nftables" : tool == "ip" ? "iproute2" : "iptables"))
                """
        case let .rulesetNeedsRoot(source):
            return
                """
                \(source) is nft text: cttune loads it into a private network namespace to read it back as JSON, which needs \
                root — run as root, or give the JSON of `nft -j list ruleset` instead
                """
        case let .natChainsPresent(chains, purpose):
            let shown = chains.prefix(5).joined(separator: "; ") + (chains.count > 5 ? "; and \(chains.count - 5) more" : "")
            return
                """
                refusing to \(purpose): \(chains.count) nat chain\(chains.count == 1 ? "" : "s") or nat \
                table\(chains.count == 1 ? "" : "s") would fail to load without nf_nat and nf_conntrack, and nft -f / \
                iptables-restore would then load no firewall at all (\(shown)) — remove them first (`cttune rules` lists \
                them)
                """
        case let .statelessRefused(ruleCount):
            return
                """
                refusing the stateless profile: \(ruleCount) rule\(ruleCount == 1 ? "" : "s") of this firewall need \
                connection tracking (listed above) — change or remove them first, or keep a stateful profile
                """
        case let .missingModuleIndex(directory, index):
            return
                """
                \(directory) has modules.dep but no \(index), the index libkmod and modprobe read — regenerate it with \
                `depmod -b ROOT VERSION` (ROOT is the directory holding lib/modules)
                """
        case let .outsideFamilyHolders(holders):
            // Bounded: one line, however many modules a hostile /proc/modules lists.
            var named = holders.sorted { $0.key < $1.key }.prefix(10).map {
                "\($0.key) (holds \($0.value.sorted().prefix(10).joined(separator: ", "))\($0.value.count > 10 ? ", …" : ""))"
            }
            if holders.count > 10 { named.append("and \(holders.count - 10) more") }
            return
                """
                refusing to unload: \(named.joined(separator: ", ")) \(holders.count == 1 ? "is" : "are") outside the \
                conntrack/NAT family and cttune never unloads \(holders.count == 1 ? "it" : "them") — stop what uses \
                \(holders.count == 1 ? "it" : "them") (IPVS services, OVS bridges, tc ct actions, flow tables) and remove \
                \(holders.count == 1 ? "it" : "them") with `modprobe -r`, or keep conntrack and add a notrack rule
                """
        case let .blacklistBreaksModules(conflicts):
            return
                """
                refusing to blacklist: modules outside the conntrack/NAT family need it and are in use: \
                \(conflicts.joined(separator: "; ")) — they would not load again after a reboot; stop using them, or pass \
                --force to blacklist anyway
                """
        case let .overriddenAtBoot(overrides):
            return
                """
                refusing to apply (--on-conflict refuse): another file decides \(overrides.joined(separator: "; ")) — \
                change or remove those lines, or pass --on-conflict override so cttune's file is read after them
                """
        case let .namespaceUnreadable(namespace, reason):
            return
                """
                cannot read network namespace \(namespace): \(reason) — give a name from `ip netns list`, the path of a netns \
                file or pid:N of a running process, as root
                """
        case let .loadTooLarge(profile, detail):
            return
                """
                refusing to apply: profile \(profile) describes more entries than nf_conntrack_max can hold \
                (\(ConntrackSetting.largestTableSize)): \(detail) — check those values in the profile
                """
        }
    }
}

/// "nf_conntrack is", "nf_conntrack and 9 more modules are": the first
/// name of a list, so a one-line message stays one line.
func summarizedModules(_ names: [String]) -> String {
    guard let first = names.first else { return "nf_conntrack is" }
    return names.count == 1 ? "\(first) is" : "\(first) and \(names.count - 1) more module\(names.count == 2 ? "" : "s") are"
}

extension TunerError {
    /// How a link that loops or leaves the root is described (openat2 and the walk both give ELOOP).
    static let linkLoop = "a symbolic link loop, or a link out of the root (links are read as if the root were /)"
    static let linkLoopFix = "replace the link with the file itself, or with a link that stays inside --root"

    /// Any error as a `TunerError`: the one seam every command's errors pass
    /// through, so each gets its one stderr line and, under `--format json`,
    /// the JSON error object.
    public init(_ error: any Error) {
        switch error {
        case let error as TunerError: self = error
        case let error as TunerErrorConvertible: self = error.tunerError
        case let errno as Errno: self = .systemCallFailed(call: "a system call", errno: errno)
        default: self = .unexpected(String(describing: error))
        }
    }
}

/// An error of a lower layer that knows which `TunerError` it is.
public protocol TunerErrorConvertible: Error {
    var tunerError: TunerError { get }
}

/// Text for an errno value, without the number: "permission denied".
package func errnoText(_ code: Errno) -> String {
    String(cString: strerror(code.rawValue)).lowercased()
}
