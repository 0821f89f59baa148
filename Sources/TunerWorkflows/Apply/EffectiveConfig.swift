import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// A line in another tool's file that decides a value cttune plans, so the
/// boot uses that value instead of cttune's.
public struct ConfigOverride: Equatable, Sendable {
    public enum Source: String, Sendable {
        /// A sysctl.d assignment, applied by systemd-sysctl.
        case sysctl = "sysctl.d"
        /// An `options nf_conntrack hashsize=` line, applied by modprobe at load.
        case modprobe = "modprobe.d"
    }

    /// The contract's setting.
    public var setting: ConntrackSetting
    public var source: Source
    /// The file as found in its configuration directory (under the root), not
    /// the target of a link: what `systemd-analyze cat-config` prints.
    public var path: String
    /// 1-based.
    public var line: Int
    /// The value it sets; `nil` for a sysctl.d `-key` line, which cancels
    /// every earlier assignment of the key (the kernel keeps its own value).
    public var value: String?
    /// What cttune's file sets.
    public var planned: Int

    /// `file:line`.
    public var location: String { "\(path):\(line)" }

    /// One sentence for the text output and the Ansible warning.
    public var sentence: String {
        let what = value.map { "sets \($0)" } ?? "cancels it (\"-key\" line)"
        return "\(setting.key): \(location) \(what) after cttune's \(planned), and wins at boot"
    }
}

/// One assignment as systemd-sysctl parses it.
public struct SysctlAssignment: Equatable, Sendable {
    /// The key as systemd normalises it: slashes between components, no leading slash.
    public var normalizedKey: String
    /// `nil` for a `-key` line without `=`.
    public var value: String?
    /// The file as found in its configuration directory (under the root).
    public var path: String
    public var fileName: String
    public var line: Int
    public var isGlob: Bool { normalizedKey.contains(where: { "*?[".contains($0) }) }
}

/// The sysctl.d files systemd-sysctl reads at boot and what they set, read
/// with systemd-sysctl's rules so cttune can tell when another file decides a
/// key it plans.
///
/// Rules (systemd 252, src/sysctl/sysctl.c and src/basic/conf-files.c):
/// - the `.conf` files of `/etc/sysctl.d`, `/run/sysctl.d`,
///   `/usr/local/lib/sysctl.d`, `/usr/lib/sysctl.d` (and `/lib/sysctl.d` where
///   systemd is built for a split /usr, as Debian 12's is) are merged by file
///   name: for one name the first directory wins, so a file in /etc replaces
///   (masks) one of the same name further down; an empty file or a link to
///   /dev/null masks the name and contributes nothing;
/// - the merged files are read in file-name order; for a key the last
///   assignment with a different value wins ("Overwriting earlier assignment");
/// - `net.netfilter.x` and `net/netfilter/x` name the same key
///   (`sysctl_normalize`); a `-` before the key ignores a failed write;
///   `-key` without `=` cancels earlier assignments of that key;
/// - a glob key never overrides an explicit one ("Not setting %s (explicit
///   setting exists)"), so globs cannot undo cttune's explicit lines;
/// - `/etc/sysctl.conf` is not read itself: Debian links it in as
///   `/etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf`.
/// Links are followed as the booted image will follow them: an absolute
/// target starts at the root and `..` stops there, so nothing outside the
/// root is ever read.
public enum EffectiveSysctl {
    /// The configuration files in the order systemd-sysctl reads them: the
    /// path in its directory (system path) and the resolved file (real path).
    public static func files(under root: SystemRoot) -> [(path: FilePath, resolved: FilePath)] {
        RootedConfigFiles.list(directories: KernelPaths.sysctlConfigDirectories, under: root, maskEmpty: true)
    }

    /// Every assignment of every file, in the order systemd-sysctl reads them.
    ///
    /// - Throws: `TunerError.fileTooLarge`, `.unreadable` and the like for a
    ///   file that is listed but cannot be read: its assignments are unknown,
    ///   and unknown is not "none" (an override check would miss them).
    public static func assignments(under root: SystemRoot) throws -> [SysctlAssignment] {
        var result: [SysctlAssignment] = []
        for file in files(under: root) {
            guard let text = try root.contents(of: file.path, limit: ReadLimit.configuration) else { continue }
            let shown = (try? root.path(file.path).string) ?? file.path.string
            result += parse(text, path: shown, fileName: file.path.lastComponent?.string ?? "")
        }
        return result
    }

    /// The assignments of one file's text.
    public static func parse(_ text: String, path: String, fileName: String) -> [SysctlAssignment] {
        var result: [SysctlAssignment] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.trimming(.whitespaces)
            guard let first = line.first, first != "#", first != ";" else { continue }
            var value: String?
            if let equals = line.firstIndex(of: "=") {
                value = line[line.index(after: equals)...].trimming(.whitespaces)
                line = String(line[..<equals])
                if line.hasPrefix("-") { line.removeFirst() }
            } else if line.hasPrefix("-") {
                line.removeFirst()
            } else {
                continue  // "Line is not an assignment, ignoring"
            }
            let key = normalize(line.trimming(.whitespaces))
            result.append(SysctlAssignment(normalizedKey: key, value: value, path: path, fileName: fileName, line: index + 1))
        }
        return result
    }

    /// systemd's `sysctl_normalize`: when the first separator is a dot, dots
    /// and slashes swap (`net.ipv4.conf.eth0/100.x` → `net/ipv4/conf/eth0.100/x`);
    /// repeated slashes collapse and the leading one goes.
    public static func normalize(_ key: String) -> String {
        var characters = Array(key)
        if let first = characters.firstIndex(where: { $0 == "." || $0 == "/" }), characters[first] == "." {
            for index in first..<characters.count {
                if characters[index] == "." {
                    characters[index] = "/"
                } else if characters[index] == "/" {
                    characters[index] = "."
                }
            }
        }
        return String(characters).split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }

    /// The assignments in files read after `fileName` that change a key
    /// `planned` sets (sysctl key → value): the last one per key, when its
    /// value is not cttune's.
    ///
    /// - Parameter fileName: cttune's file name in /etc/sysctl.d; it masks
    ///   any file of that name further down, so those are not read.
    public static func overrides(
        of planned: [String: Int], fileName: String, under root: SystemRoot
    ) throws -> [String: SysctlAssignment] {
        let wanted = Dictionary(uniqueKeysWithValues: planned.map { (normalize($0.key), $0.key) })
        var last: [String: SysctlAssignment] = [:]
        for assignment in try assignments(under: root) where assignment.fileName > fileName && !assignment.isGlob {
            if let key = wanted[assignment.normalizedKey] { last[key] = assignment }
        }
        return last.filter { key, assignment in
            guard let value = assignment.value else { return true }
            return Int(value) != planned[key]
        }
    }
}

/// `options nf_conntrack …` lines as modprobe (kmod 30) reads them: the
/// `.conf` files of /etc/modprobe.d, /run/modprobe.d,
/// /usr/local/lib/modprobe.d and /lib/modprobe.d merged by name (the first
/// directory wins, libkmod-config.c `conf_files_insert_sorted`), in name
/// order, the options of every line appended in order: the kernel takes the
/// last `hashsize=` (kernel/params.c parses left to right). When nf_conntrack
/// is built in, modprobe.d is not read for it at all: only the kernel command
/// line's `nf_conntrack.hashsize=` counts.
public enum EffectiveModprobe {
    /// One `NAME=VALUE` of an `options` line.
    public struct Option: Equatable, Sendable {
        public var name: String
        public var value: String
        public var path: String
        public var fileName: String
        public var line: Int
    }

    /// The options for `module` in modprobe's order.
    /// - Throws: as `EffectiveSysctl.assignments`, for a listed file that cannot be read.
    public static func options(for module: String, under root: SystemRoot) throws -> [Option] {
        var result: [Option] = []
        for file in RootedConfigFiles.list(directories: KernelPaths.modprobeConfigDirectories, under: root, maskEmpty: false) {
            guard let text = try root.contents(of: file.path, limit: ReadLimit.configuration) else { continue }
            let shown = (try? root.path(file.path).string) ?? file.path.string
            result += parse(text, module: module, path: shown, fileName: file.path.lastComponent?.string ?? "")
        }
        return result
    }

    /// The options for `module` in one file: `#` comments, `\` continues a line,
    /// `-` and `_` are the same in module names.
    public static func parse(_ text: String, module: String, path: String, fileName: String) -> [Option] {
        let wanted = module.replacing("-", with: "_")
        var result: [Option] = []
        var pending = ""
        var startLine = 0
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if pending.isEmpty { startLine = index + 1 }
            if raw.hasSuffix("\\") {
                pending += raw.dropLast() + " "
                continue
            }
            let line = pending + raw
            pending = ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count >= 3, !fields[0].hasPrefix("#"), fields[0] == "options",
                fields[1].replacing("-", with: "_") == wanted
            else { continue }
            for option in fields[2...] {
                guard !option.hasPrefix("#") else { break }
                let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
                result.append(
                    Option(name: parts[0], value: parts.count > 1 ? parts[1] : "", path: path, fileName: fileName, line: startLine))
            }
        }
        return result
    }

    /// The last `hashsize=` for nf_conntrack, when it is not in cttune's
    /// file and differs from cttune's value.
    public static func hashsizeOverride(planned: Int, fileName: String, under root: SystemRoot) throws -> Option? {
        guard let last = try options(for: HashSizeNames.module, under: root).last(where: { $0.name == HashSizeNames.parameter }),
            last.fileName > fileName, Int(last.value) != planned
        else { return nil }
        return last
    }
}

/// Lists configuration files the way systemd's `conf_files_list_strv` and
/// kmod's `conf_files_list` do: `.conf` names (not hidden) of several
/// directories, the first directory holding a name winning, sorted by name.
enum RootedConfigFiles {
    static func list(directories: [FilePath], under root: SystemRoot, maskEmpty: Bool) -> [(path: FilePath, resolved: FilePath)] {
        var chosen: [String: (path: FilePath, resolved: FilePath)?] = [:]
        for directory in directories {
            guard let real = RootedPath.resolve(directory, under: root) else { continue }
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: real.string)) ?? []).sorted()
            for name in names where name.hasSuffix(".conf") && !name.hasPrefix(".") && chosen[name] == nil {
                let path = directory.appending(name)
                guard let resolved = RootedPath.resolve(path, under: root) else { continue }  // a link loop
                var info = stat()
                guard stat(resolved.string, &info) == 0 else { continue }
                let kind = info.st_mode & S_IFMT
                if maskEmpty && (kind == S_IFCHR || (kind == S_IFREG && info.st_size == 0)) {
                    chosen[name] = .some(nil)  // masked: hides the name in later directories
                    continue
                }
                guard kind == S_IFREG else { continue }
                chosen[name] = .some((path, resolved))
            }
        }
        return chosen.keys.sorted().compactMap { chosen[$0] ?? nil }
    }
}

/// Resolves a system path inside a root, following links the way a process
/// chrooted there (the booted image) would: an absolute target starts again
/// at the root and `..` at the root stays there, so the result never leaves
/// it. Returns `nil` after 40 links (a loop). A link to `/dev/null` (a masked
/// file) resolves to /dev/null, which image trees usually lack.
enum RootedPath {
    static func resolve(_ absolute: FilePath, under root: SystemRoot) -> FilePath? {
        let base = root.base.lexicallyNormalized()
        var pending = absolute.components.map(\.string)
        var resolved: [String] = []
        var links = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                _ = resolved.popLast()
                continue
            }
            let candidate = resolved + [component]
            let real = candidate.reduce(base) { $0.appending($1) }
            var info = stat()
            guard lstat(real.string, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else {
                resolved = candidate
                continue
            }
            links += 1
            guard links <= 40, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: real.string) else { return nil }
            if target == "/dev/null" { return FilePath("/dev/null") }
            let targetPath = FilePath(target)
            if targetPath.isAbsolute { resolved = [] }
            pending = targetPath.components.map(\.string) + pending
        }
        return resolved.reduce(base) { $0.appending($1) }
    }
}

extension ConfigOverride {
    /// One member of a setting's `overridden_by` array.
    public var json: JSONValue {
        .object([
            ("source", .string(source.rawValue)),
            ("path", .string(path)),
            ("line", .int(line)),
            ("value", value.map { Int($0).map(JSONValue.int) ?? .string($0) } ?? .null),
        ])
    }

    /// `overridden_by` for one setting: every line that decides it instead of cttune's.
    public static func json(_ overrides: [ConfigOverride], for setting: ConntrackSetting) -> (String, JSONValue) {
        ("overridden_by", .array(overrides.filter { $0.setting == setting }.map(\.json)))
    }

    /// `overridden_by` for status: every override of cttune's files on disk, each naming its setting.
    public static func json(_ overrides: [ConfigOverride]) -> JSONValue {
        .array(
            overrides.map { override in
                guard case .object(let members) = override.json else { return override.json }
                return .object([("key", .string(override.setting.key)), ("planned", .int(override.planned))] + members)
            })
    }

    /// The text lines under a plan, apply or status table; empty when nothing is overridden.
    public static func text(_ overrides: [ConfigOverride]) -> [String] {
        guard !overrides.isEmpty else { return [] }
        return ["", "overridden at boot by other files (cttune never edits them):"] + overrides.map { "  " + $0.sentence }
            + [
                """
                  fix: change or remove those lines, or apply with --on-conflict override (cttune's file becomes \
                99-zz-cttune.conf, read after them)
                """
            ]
    }
}

extension PersistentConfig {
    /// What other files override of the files this plan would write, under
    /// cttune's current sysctl.d file name (for `plan`).
    public static func overrides(for plan: TuningPlan, under root: SystemRoot) throws -> [ConfigOverride] {
        let config = make(
            for: plan, regenerateCommand: "", bucketsSysctlWritable: plan.facts.bucketsSysctlWritable,
            sysctlFile: currentSysctlFile(under: root), conntrackBlacklisted: conntrackBlacklisted(under: root))
        return try overrides(of: config.files, under: root)
    }
}
