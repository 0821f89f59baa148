import FoundationEssentials
import SystemPackage

/// Another program that writes conntrack settings after boot and so undoes
/// cttune's values: kube-proxy on every start, a tuned profile with
/// conntrack keys in its `[sysctl]` section whenever tuned applies it.
public struct ConntrackWriter: Equatable, Sendable {
    /// One value the writer sets.
    public struct Write: Equatable, Sendable {
        public var key: String
        public var value: Int
        /// How it writes: "when different", "only when larger".
        public var when: String
    }

    /// `kube-proxy` or `tuned profile NAME`.
    public var name: String
    /// Where cttune saw it: a command line (`/proc/PID/cmdline`) or a file.
    public var source: String
    public var writes: [Write]
    /// How to make it leave conntrack to cttune.
    public var fix: String
}

/// Finds the conntrack writers visible on a host or in a tree.
///
/// kube-proxy (sources read: kubernetes `cmd/kube-proxy/app/conntrack.go`
/// at 03c60748bb30, before the code moved, and `pkg/proxy/conntrack/sysctls.go`
/// at 008b3652959c): on every start it writes the `KubeProxyConntrack.max`
/// of its configuration to `nf_conntrack_max`, then raises the hashsize
/// parameter to max/4 when it is smaller; it writes
/// `nf_conntrack_tcp_timeout_established` (default 24h) and `…_close_wait`
/// (default 1h) when they are > 0, and in the newer file also
/// `nf_conntrack_udp_timeout`, `…_udp_timeout_stream` (default 0: not
/// written) and `nf_conntrack_tcp_be_liberal`. The older code wrote a value
/// only when the current one was smaller; the newer writes whenever it
/// differs, lowering cttune's values too. Setting each to 0 (`maxPerCore: 0`,
/// `tcpEstablishedTimeout: 0s`, `tcpCloseWaitTimeout: 0s`) leaves it alone.
public enum ConntrackWriters {
    /// Where kubeadm and common installers put kube-proxy's configuration on the node.
    public static let kubeProxyConfigPaths: [FilePath] = [
        "/var/lib/kube-proxy/config.conf", "/etc/kubernetes/kube-proxy-config.yaml", "/etc/kubernetes/kube-proxy.yaml",
    ]
    /// tuned's profile directories, highest priority first.
    public static let tunedDirectories: [FilePath] = ["/etc/tuned", "/usr/lib/tuned"]
    public static let tunedActiveProfile: FilePath = "/etc/tuned/active_profile"

    /// The kube-proxy command-line flags for conntrack and their config-file names.
    static let kubeProxyFlags: [(flag: String, field: String)] = [
        ("--conntrack-max-per-core", "maxPerCore"), ("--conntrack-min", "min"),
        ("--conntrack-tcp-timeout-established", "tcpEstablishedTimeout"),
        ("--conntrack-tcp-timeout-close-wait", "tcpCloseWaitTimeout"),
        ("--conntrack-udp-timeout", "udpTimeout"), ("--conntrack-udp-timeout-stream", "udpStreamTimeout"),
    ]

    static let kubeProxyFix =
        """
        set conntrack.maxPerCore: 0, conntrack.tcpEstablishedTimeout: 0s and conntrack.tcpCloseWaitTimeout: 0s (and leave \
        udpTimeout, udpStreamTimeout at 0s) in kube-proxy's configuration, or pass --conntrack-max-per-core=0 \
        --conntrack-tcp-timeout-established=0s --conntrack-tcp-timeout-close-wait=0s
        """

    /// Every writer found under `root`, for a host with `cpus` CPUs.
    public static func find(under root: SystemRoot, cpus: Int) -> [ConntrackWriter] {
        // A writer configured to leave conntrack alone is not one.
        (kubeProxies(under: root, cpus: cpus) + tunedProfiles(under: root)).filter { !$0.writes.isEmpty }
    }

    // MARK: kube-proxy

    static func kubeProxies(under root: SystemRoot, cpus: Int) -> [ConntrackWriter] {
        var found: [ConntrackWriter] = []
        var configsSeen: Set<String> = []
        for pid in root.entries(of: KernelPaths.proc) where pid.allSatisfy(\.isNumber) {
            let cmdlinePath = KernelPaths.proc.appending(pid).appending("cmdline")
            guard let text = try? root.contents(of: cmdlinePath) else { continue }
            let arguments = text.split(separator: "\0").map(String.init)
            guard let program = arguments.first, program.split(separator: "/").last == "kube-proxy" else { continue }
            var fields: [String: String] = [:]
            var configPath: String?
            var index = 1
            while index < arguments.count {
                let argument = arguments[index]
                let (flag, inline) = argument.split(separator: "=", maxSplits: 1).map(String.init).splitPair
                let value = inline ?? (index + 1 < arguments.count ? arguments[index + 1] : nil)
                if flag == "--config" {
                    configPath = value
                } else if let field = kubeProxyFlags.first(where: { $0.flag == flag })?.field {
                    fields[field] = value
                }
                if inline == nil && (flag == "--config" || kubeProxyFlags.contains { $0.flag == flag }) { index += 1 }
                index += 1
            }
            // Flags override the file, as kube-proxy merges them.
            if let configPath, let file = kubeProxyConfig(at: FilePath(configPath), under: root) {
                configsSeen.insert(configPath)
                fields = file.merging(fields) { _, flag in flag }
            }
            let source = ((try? root.path(cmdlinePath).string) ?? cmdlinePath.string) + (configPath.map { " (--config \($0))" } ?? "")
            found.append(kubeProxy(fields: fields, source: source, cpus: cpus))
        }
        for path in kubeProxyConfigPaths where !configsSeen.contains(path.string) {
            guard let fields = kubeProxyConfig(at: path, under: root) else { continue }
            found.append(kubeProxy(fields: fields, source: (try? root.path(path).string) ?? path.string, cpus: cpus))
        }
        return found
    }

    /// The `conntrack:` fields of a KubeProxyConfiguration file; `nil` when
    /// there is no such file or it is not one.
    static func kubeProxyConfig(at path: FilePath, under root: SystemRoot) -> [String: String]? {
        guard let text = try? root.contents(of: path), case .mapping(let document)? = try? YAMLNode.compose(text),
            case .scalar(let kind)? = document["kind"], kind.resolvedTag == YAMLNode.strTag, kind.string == "KubeProxyConfiguration"
        else { return nil }
        var fields: [String: String] = [:]
        guard case .mapping(let conntrack)? = document["conntrack"] else { return fields }
        // Values as YAML 1.1 reads them: nulls left out, integers in decimal (0x10 is 16).
        for (key, value) in conntrack {
            guard let key = key.string, case .scalar(let scalar) = value, scalar.resolvedTag != YAMLNode.nullTag else { continue }
            fields[key] = scalar.integer.map(String.init) ?? scalar.string
        }
        return fields
    }

    /// What kube-proxy writes with these settings (defaults for the missing ones).
    static func kubeProxy(fields: [String: String], source: String, cpus: Int) -> ConntrackWriter {
        var writes: [ConntrackWriter.Write] = []
        let when = "on every start, when different"
        let perCore = fields["maxPerCore"].flatMap { Int($0) } ?? KubeProxyConntrack.defaultMaxPerCore
        let floor = fields["min"].flatMap { Int($0) } ?? KubeProxyConntrack.defaultMin
        if let max = KubeProxyConntrack.max(maxPerCore: perCore, min: floor, cpus: cpus) {
            writes.append(.init(key: ConntrackSetting.max.key, value: max, when: when))
            writes.append(
                .init(
                    key: ConntrackSetting.hashsize.key, value: KubeProxyConntrack.hashsize(forMax: max),
                    when: "on every start, when smaller"))
        }
        let timeouts: [(String, ConntrackSetting, Int)] = [
            ("tcpEstablishedTimeout", .tcpTimeoutEstablished, KubeProxyConntrack.establishedTimeoutSeconds),
            ("tcpCloseWaitTimeout", .tcpTimeoutCloseWait, KubeProxyConntrack.closeWaitTimeoutSeconds),
            ("udpTimeout", .udpTimeout, 0), ("udpStreamTimeout", .udpTimeoutStream, 0),
        ]
        for (field, setting, defaultSeconds) in timeouts {
            let seconds = fields[field].flatMap(goDurationSeconds) ?? defaultSeconds
            if seconds > 0 { writes.append(.init(key: setting.key, value: seconds, when: when)) }
        }
        return ConntrackWriter(name: "kube-proxy", source: source, writes: writes, fix: kubeProxyFix)
    }

    /// Seconds of a Go duration such as `24h0m0s`, `90s` or `0s`.
    static func goDurationSeconds(_ text: String) -> Int? {
        var total = 0.0
        var number = ""
        var unit = ""
        func flush() -> Bool {
            guard let value = Double(number) else { return number.isEmpty && unit.isEmpty }
            let scale: Double? = ["h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001, "µs": 0.000001, "ns": 1e-9][unit]
            guard let scale else { return false }
            total += value * scale
            number = ""
            unit = ""
            return true
        }
        for character in text.trimming(.whitespaces) {
            if character.isNumber || character == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(character)
            } else {
                unit.append(character)
            }
        }
        guard flush() else { return nil }
        return Int(total)
    }

    // MARK: tuned

    static func tunedProfiles(under root: SystemRoot) -> [ConntrackWriter] {
        let active = Set(
            ((try? root.contents(of: tunedActiveProfile)) ?? nil)?.split(whereSeparator: \.isWhitespace).map(String.init) ?? [])
        var seen: Set<String> = []
        var found: [ConntrackWriter] = []
        for directory in tunedDirectories {
            for name in root.entries(of: directory) where !seen.contains(name) {
                let path = directory.appending(name).appending("tuned.conf")
                guard let text = try? root.contents(of: path) else { continue }
                seen.insert(name)
                let writes = tunedConntrackKeys(text)
                guard !writes.isEmpty else { continue }
                found.append(
                    ConntrackWriter(
                        name: "tuned profile \(name)" + (active.contains(name) ? " (active)" : ""),
                        source: (try? root.path(path).string) ?? path.string, writes: writes,
                        fix:
                            """
                            remove the conntrack keys from the [sysctl] section of \(path.string), or make a child profile \
                            (include=\(name)) whose [sysctl] repeats cttune's planned values
                            """
                    ))
            }
        }
        return found
    }

    /// The conntrack keys of a tuned.conf's `[sysctl]` section.
    static func tunedConntrackKeys(_ text: String) -> [ConntrackWriter.Write] {
        var section = ""
        var writes: [ConntrackWriter.Write] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimming(.whitespaces)
            if line.hasPrefix("[") {
                section = line.trimming(ScalarSet(charactersIn: "[]"))
                continue
            }
            guard section == "sysctl", !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimming(.whitespaces).replacing("/", with: ".")
            let value = line[line.index(after: equals)...].trimming(.whitespaces)
            let contractKey = key == HashSizeNames.sysctl ? ConntrackSetting.hashsize.key : key
            guard ConntrackSetting(rawValue: contractKey) != nil || key == "net.nf_conntrack_max", let number = Int(value) else { continue }
            writes.append(
                .init(
                    key: key == "net.nf_conntrack_max" ? ConntrackSetting.max.key : contractKey, value: number,
                    when: "whenever tuned applies the profile"))
        }
        return writes
    }
}

extension Array where Element == String {
    /// `["--flag", "value"]` → ("--flag", "value"); `["--flag"]` → ("--flag", nil).
    fileprivate var splitPair: (String, String?) { (self.first ?? "", count > 1 ? self[1] : nil) }
}
