import TunerCore
import TunerWorkflows

/// One metric family of cttune's textfile, defined once: the single-namespace
/// and the host-wide (`--all-namespaces`) writers both take it from
/// `MetricCatalogue`, so a name never comes with two help texts, types or
/// label sets.
public struct MetricFamily: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case gauge, counter }

    /// What the value measures. Base units only (Prometheus naming): the name
    /// ends with the unit, a counter's with `_total` after it.
    public enum Unit: String, Sendable, CaseIterable {
        /// A count of things (entries, namespaces, log lines) or a code.
        case count = ""
        case seconds
        case bytes
        /// A share from 0 to 1.
        case ratio
    }

    public var name: String
    public var kind: Kind
    public var unit: Unit
    /// Label names; each one's values are bounded (see `MetricCatalogue.labelBounds`).
    public var labels: [String]
    public var help: String
    /// Reserved for a feature that has not landed: the rules refer to it, no writer emits it yet.
    public var reserved = false
}

/// Every family cttune's textfile may hold (docs/status.md lists them and
/// says which node_exporter figures they do not repeat).
public enum MetricCatalogue {
    /// What bounds each label's values, so the number of series stays bounded.
    public static let labelBounds: [String: String] = [
        "netns": "the \(HostStatusReport.labelledNamespaces) fullest namespaces (their identifier); the rest only in the totals",
        "kind": "initial, non-initial or unknown",
        "timeout": "the \(ConntrackSetting.timeouts.count) conntrack timeout sysctls",
        "protocol": "layer-4 protocol names (tcp, udp, icmp, icmpv6, sctp, …: at most 256)",
        "state": "the conntrack TCP states (at most 11)",
        "setting": "the \(ConntrackSetting.allCases.count) settings cttune plans",
        "writer": "the programs cttune recognises as conntrack writers: kube-proxy and the active tuned profile",
        "class": "the top N flow classes and `other`; the profile's notracked classes (cttune_class_notrack_rule_conflicts)",
    ]

    private static func family(
        _ name: String, _ kind: MetricFamily.Kind = .gauge, _ unit: MetricFamily.Unit = .count, labels: [String] = [],
        help: String, reserved: Bool = false
    ) -> MetricFamily {
        MetricFamily(name: name, kind: kind, unit: unit, labels: labels, help: help, reserved: reserved)
    }

    // MARK: the run

    public static let status = family(
        "cttune_status",
        help: "Verdict of the cttune status run, the worst of the namespaces it read: 0 ok, 1 warning, 2 critical, 3 unknown.")
    public static let statusPartial = family(
        "cttune_status_partial",
        help: "1 when a namespace or a reading (the census) failed or may be incomplete; the verdict stands on what was read.")
    public static let statusTimestamp = family(
        "cttune_status_timestamp_seconds", .gauge, .seconds, help: "When cttune status wrote these metrics (Unix time).")

    // MARK: per namespace

    public static let namespaceStatus = family(
        "cttune_namespace_status", labels: ["netns"],
        help: "Verdict of cttune status for the namespace: 0 ok, 1 warning, 2 critical, 3 unknown.")
    public static let netnsInfo = family(
        "cttune_netns_info", labels: ["netns", "kind"], help: "The network namespaces described (kind: initial or non-initial); always 1.")
    public static let entries = family(
        "cttune_conntrack_entries", labels: ["netns"], help: "Live conntrack entries in the namespace (nf_conntrack_count).")
    public static let fillRatio = family(
        "cttune_conntrack_fill_ratio", .gauge, .ratio, labels: ["netns"],
        help: "The namespace's entries divided by nf_conntrack_max; cttune status warns from 0.75 and is critical from 0.9.")
    /// `cttune_conntrack_{found,…}_total`, one per column of /proc/net/stat/nf_conntrack that status reports.
    public static let namespaceCounters: [MetricFamily] = ConntrackSample.reportedCounters.map { counter in
        family(
            "cttune_conntrack_\(counter)_total", .counter, labels: ["netns"],
            help: "Per-CPU \(counter) column of /proc/net/stat/nf_conntrack, summed, since the namespace was created.")
    }
    public static let timeoutSeconds = family(
        "cttune_conntrack_timeout_seconds", .gauge, .seconds, labels: ["netns", "timeout"],
        help: "Conntrack timeouts in force in the namespace.")
    public static let protocolEntries = family(
        "cttune_conntrack_protocol_entries", labels: ["netns", "protocol"], help: "Live entries by layer-4 protocol (the census).")
    public static let tcpStateEntries = family(
        "cttune_conntrack_tcp_state_entries", labels: ["netns", "state"], help: "Live TCP entries by conntrack TCP state (the census).")
    public static let censusSampleRatio = family(
        "cttune_conntrack_census_sample_ratio", .gauge, .ratio, labels: ["netns"],
        help: "Share of the entries the census read: 1 for a full dump, less with --census-sample (counts scaled up).")
    public static let classEntries = family(
        "cttune_conntrack_class_entries", labels: ["netns", "class"],
        help: "Live entries by flow class (direction protocol/service; the top N classes and other, from the census).")
    public static let orphanEntries = family(
        "cttune_conntrack_orphan_entries", labels: ["netns"],
        help: "ESTABLISHED entries idle at least \(EntryCensus.orphanIdleSeconds) s: flows never seen closing (the census).")
    public static let tableFullLogLines = family(
        "cttune_conntrack_table_full_log_lines", labels: ["netns"],
        help: "Kernel log lines 'nf_conntrack: table full' about the namespace still in the ring buffer.")
    /// One series per class cttune's table exempts with notrack (the class's name), read with the census.
    public static let classNotrackRuleConflicts = family(
        "cttune_class_notrack_rule_conflicts", labels: ["netns", "class"],
        help: "Rules that need conntrack state for traffic of a flow class cttune exempts with notrack (0 when none).")

    // MARK: the host

    public static let max = family(
        "cttune_conntrack_max", help: "Global table limit each namespace's count is checked against (nf_conntrack_max).")
    public static let buckets = family("cttune_conntrack_buckets", help: "Hash table buckets, global (nf_conntrack_buckets).")
    public static let maxFillRatio = family(
        "cttune_conntrack_max_fill_ratio", .gauge, .ratio, help: "The fullest namespace's entries divided by nf_conntrack_max.")
    public static let namespaces = family("cttune_conntrack_namespaces", help: "Network namespaces read.")
    public static let namespacesUnreadable = family(
        "cttune_conntrack_namespaces_unreadable", help: "Network namespaces that vanished or could not be entered during the scan.")
    public static let allNamespacesEntries = family(
        "cttune_conntrack_all_namespaces_entries", help: "Live conntrack entries summed over all namespaces read.")
    /// `cttune_conntrack_all_namespaces_{drop,insert_failed,early_drop}_total`.
    public static let allNamespacesCounters: [MetricFamily] = (ConntrackSample.packetLossCounters + ["early_drop"]).map { counter in
        family(
            "cttune_conntrack_all_namespaces_\(counter)_total", .counter,
            help: "Per-CPU \(counter) column summed over all namespaces read (a namespace that goes away takes its share: a reset).")
    }
    public static let slabBytes = family(
        "cttune_conntrack_slab_bytes", .gauge, .bytes,
        help: "Slab memory of all conntrack entries on the host, every namespace's (active objects x object size).")
    public static let planDrift = family(
        "cttune_plan_drift", labels: ["setting"],
        help: "1 when the running value differs from the one cttune's boot-time files set (the plan cttune apply persisted), else 0.")
    public static let writerUndoneSettings = family(
        "cttune_writer_undone_settings", labels: ["writer"],
        help: "Settings of cttune's persisted plan that another program (kube-proxy, a tuned profile) sets to another value.")

    /// Every family, in the order a textfile holds them.
    public static let all: [MetricFamily] =
        [status, statusPartial, namespaceStatus, netnsInfo, entries, max, fillRatio, maxFillRatio, buckets]
        + namespaceCounters
        + [namespaces, namespacesUnreadable, allNamespacesEntries] + allNamespacesCounters
        + [
            timeoutSeconds, protocolEntries, tcpStateEntries, classEntries, censusSampleRatio, orphanEntries, tableFullLogLines, slabBytes,
            planDrift,
            writerUndoneSettings, classNotrackRuleConflicts, statusTimestamp,
        ]

    /// The per-namespace counter named by its /proc/net/stat/nf_conntrack column.
    public static func namespaceCounter(_ column: String) -> MetricFamily {
        namespaceCounters.first { $0.name == "cttune_conntrack_\(column)_total" }!
    }

    /// The all-namespaces total of a column.
    public static func allNamespacesCounter(_ column: String) -> MetricFamily {
        allNamespacesCounters.first { $0.name == "cttune_conntrack_all_namespaces_\(column)_total" }!
    }
}
