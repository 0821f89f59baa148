import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

extension LearnedLoad {
    /// The profile fields learn measures, in the schema's order, with how to print each value.
    /// `name` is the JSON member (and the text row).
    var profileNumbers: [(field: ProfileField, name: String, number: LearnedNumber, decimals: Int)] {
        [
            (.tcpNewPerSecond, "tcp_new_per_second", tcpNewPerSecond, 2),
            (.tcpEstablishedSeconds, "tcp_established_seconds", establishedSeconds, 2),
            (.tcpRstCloseRatio, "tcp_rst_close_ratio", rstCloseRatio, 4),
            (.tcpOrphanRatio, "tcp_orphan_ratio", orphanRatio, 5),
            (.tcpHalfOpenRatio, "tcp_half_open_ratio", halfOpenRatio, 4),
            (.udpNewPerSecond, "udp_new_per_second", udpNewPerSecond, 2),
            (.udpStreamRatio, "udp_stream_ratio", udpStreamRatio, 4),
            (.otherPerSecond, "other_per_second", otherPerSecond, 2),
            (.burstFactor, "burst_factor", burstFactor, 2),
        ]
    }
}

extension LearnReport {
    /// "complete" when no event is known lost, else "lossy".
    public var confidence: String { load.counters.isComplete ? "complete" : "lossy" }

    /// Where it was measured, for messages.
    public var place: String { namespace.map { "namespace \($0)" } ?? "this network namespace" }

    /// One stderr line each: lost events, estimates, a window cut short.
    public var warnings: [String] {
        var lines: [String] = []
        let counters = load.counters
        if !counters.isComplete {
            var lost: [String] = []
            if counters.overflows > 0 { lost.append("\(counters.overflows) socket overflows (ENOBUFS)") }
            if counters.socketDrops > 0 { lost.append("\(counters.socketDrops) messages dropped") }
            if counters.missedStart > 0 { lost.append("\(counters.missedStart) flows without NEW") }
            if counters.missedDestroy > 0 { lost.append("\(counters.missedDestroy) without DESTROY") }
            if counters.untracked > 0 { lost.append("\(counters.untracked) flows over the follow limit") }
            lines.append(
                "events were lost (\(lost.joined(separator: ", "))): the numbers are approximate, not exact — rerun in a quieter period")
        }
        let estimates = load.profileNumbers.filter { $0.number.value != nil && $0.number.isEstimate && $0.field != .tcpOrphanRatio }
        if !estimates.isEmpty {
            let longest = estimates.map(\.number.minimumWindowSeconds).max() ?? 0
            lines.append(
                """
                \(estimates.map(\.name).joined(separator: ", ")): the window is too short to measure, marked as estimates \
                (--seconds \(Int(longest)) measures them)
                """)
        }
        if load.windowSeconds + 1 < requestedSeconds {
            lines.append("stopped after \(Int(load.windowSeconds)) of \(Int(requestedSeconds)) s")
        }
        return lines
    }

    /// A profile that `cttune plan --profile FILE` accepts as is: `extends:
    /// default`, and each measured number with what it rests on. A number
    /// with nothing behind it is left out, so the parent's value applies.
    public func profileYAML() -> String {
        let window = Int(load.windowSeconds.rounded())
        let stamp = Date.ISO8601FormatStyle().format(startedAt)
        var lines = [
            "# Learned by `cttune learn` from \(window) s of traffic in \(place), started \(stamp).",
            "# Events: \(confidence) (\(load.counters.events) events, \(load.counters.overflows) overflows, "
                + "\(load.counters.socketDrops) drops); \(load.counters.preexisting) entries older than the window followed by dumps only.",
            "# Regenerate with: cttune learn --seconds \(Int(requestedSeconds))"
                + (namespace.map { " --namespace \($0)" } ?? "") + " --output FILE",
            "extends: default",
            "description: Learned from \(window) s of traffic in \(place)",
        ]
        // With classes, the top level holds what no class does.
        let topLevel = load.rest ?? load
        if !load.classes.isEmpty {
            lines.append("# load: below is the traffic no class of classes: holds; each class's own numbers are under it.")
        }
        lines += Self.numberLines(topLevel.profileNumbers, window: window, indent: "", missing: "the parent's value applies")
        if !load.classes.isEmpty {
            lines.append("classes:                       # the \(load.classes.count) classes holding the most entry-seconds")
            for learned in load.classes {
                let share = Self.plain(learned.share * 100, decimals: 1)
                lines.append(
                    "  - name: \(learned.flowClass)".padded(toLength: 32)
                        + " # \(share) % of the entry-seconds (entries x seconds in the table): \(Int(learned.entrySeconds.rounded()))")
                lines.append("    match:")
                lines += Self.matchLines(learned.flowClass, ephemeralPorts: ephemeralPorts).map { "      " + $0 }
                let kind = ClassMatch(protocolNumber: learned.flowClass.protocolNumber).loadKind
                let fields = Set(ProfileClass.fields(for: kind))
                let numbers = learned.load.profileNumbers.filter { fields.contains($0.field) }
                lines += Self.numberLines(numbers, window: window, indent: "    ", missing: "counts as 0 in a class")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A learned class's match as the profile reader takes it back.
    static func matchLines(_ flowClass: FlowClass, ephemeralPorts: ClosedRange<UInt16>?) -> [String] {
        var lines = [
            "direction: \(flowClass.direction.rawValue)", "family: \(flowClass.isIPv6 ? "ipv6" : "ipv4")",
            "protocol: \(flowClass.protocolName)",
        ]
        switch flowClass.service {
        case .port(let port): lines.append("ports: [\(port)]")
        case .ephemeral:
            let range = ephemeralPorts ?? FlowClassifier.defaultEphemeralPorts
            lines.append("ports: [\"\(range.lowerBound)-\(range.upperBound)\"]   # the namespace's ephemeral ports")
        case .icmpType: lines.append("types: [\(flowClass.serviceText ?? "")]")
        case .any: break
        }
        return lines
    }

    /// The profile lines of `fields`, each with what it rests on; a number
    /// with nothing behind it is a comment. Each section opens once, indented
    /// from `base` (a class's `load:` sits under its list item).
    static func numberLines(
        _ fields: [(field: ProfileField, name: String, number: LearnedNumber, decimals: Int)], window: Int, indent base: String,
        missing: String
    ) -> [String] {
        var lines: [String] = []
        var openSections: Set<String> = []
        for (field, _, number, decimals) in fields {
            let (section, key) = (field.section, field.key)
            let depth = section.isEmpty ? 0 : section.split(separator: ".").count
            let indent = base + String(repeating: "  ", count: depth)
            let inWindow = number.basis.hasSuffix(" in \(window) s") ? "" : ", in \(window) s"
            let comment = number.basis + inWindow + estimateNote(field, number)
            guard let measured = number.value else {
                lines.append("\(indent)# \(key): not measured (\(comment)), \(missing)")
                continue
            }
            // Inside the schema's limits, so `cttune plan --profile FILE` takes what was written.
            let value = field.clamped(measured)
            // Open each parent mapping once, only when a value goes under it.
            var path = ""
            for (level, part) in section.split(separator: ".").enumerated() {
                path += (path.isEmpty ? "" : ".") + part
                if openSections.insert(path).inserted { lines.append(base + String(repeating: "  ", count: level) + "\(part):") }
            }
            let text = "\(indent)\(key): \(plain(value, decimals: decimals))"
            lines.append(text.padded(toLength: 30) + " # \(comment)")
        }
        return lines
    }

    /// Why a number is an estimate, or nothing.
    static func estimateNote(_ field: ProfileField, _ number: LearnedNumber) -> String {
        guard number.isEstimate else { return "" }
        if field == .tcpOrphanRatio { return "; estimate: inferred from idle ESTABLISHED entries" }
        return "; estimate: needs a window of \(Int(number.minimumWindowSeconds)) s"
    }

    /// A number without exponent or trailing zeros.
    static func plain(_ value: Double, decimals: Int) -> String {
        var text = String(cFormat: "%.\(decimals)f", value)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    /// The raw measurements (`--format json`), without the `schema`/`command` head.
    public func json(profileFile: String?) -> [(String, JSONValue)] {
        func member(_ number: LearnedNumber) -> JSONValue {
            .object([
                ("value", number.value.map(JSONValue.double) ?? .null),
                ("sample", .int(number.sample)),
                ("minimum_window_seconds", .int(Int(number.minimumWindowSeconds))),
                ("estimate", .bool(number.isEstimate)),
                ("basis", .string(number.basis)),
            ])
        }
        let counters = load.counters
        return [
            ("command", .string("learn")),
            ("namespace", namespace.map { .string($0.description) } ?? .null),
            ("window_seconds", .int(Int(load.windowSeconds.rounded()))),
            ("nf_conntrack_events", .int(eventsSetting)),
            (
                "measurements",
                .object(load.profileNumbers.map { ($0.name, member($0.number)) })
            ),
            (
                "classes",
                .array(
                    load.classes.map { learned in
                        .object([
                            ("class", .string(learned.flowClass.description)),
                            ("entry_seconds", .double(learned.entrySeconds)),
                            ("share", .double(learned.share)),
                            (
                                "match",
                                .object([
                                    ("direction", .string(learned.flowClass.direction.rawValue)),
                                    ("family", .string(learned.flowClass.isIPv6 ? "ipv6" : "ipv4")),
                                    ("protocol", .string(learned.flowClass.protocolName)),
                                    ("service", learned.flowClass.serviceText.json),
                                ])
                            ),
                            ("measurements", .object(learned.load.profileNumbers.map { ($0.name, member($0.number)) })),
                        ])
                    })
            ),
            (
                "rest",
                load.rest.map { rest in .object([("measurements", .object(rest.profileNumbers.map { ($0.name, member($0.number)) }))]) }
                    ?? .null
            ),
            ("busiest_interval_seconds", .int(load.busiestIntervalSeconds)),
            ("orphan_idle_seconds", .int(Int(load.orphanIdleSeconds.rounded(.up)))),
            (
                "standing_orphans",
                .object([
                    ("entries", .int(load.standingOrphans.entries)),
                    ("oldest_idle_seconds", .int(Int(load.standingOrphans.oldestIdleSeconds))),
                    ("ratio", load.standingOrphans.ratio.map(JSONValue.double) ?? .null),
                ])
            ),
            (
                "timeouts",
                .object([
                    ("tcp_established", .int(timeouts.tcpEstablishedSeconds)), ("syn_sent", .int(timeouts.synSentSeconds)),
                    ("udp", .int(timeouts.udpSeconds)),
                ])
            ),
            (
                "events",
                .object([
                    ("received", .int(counters.events)), ("overflows", .int(counters.overflows)),
                    ("socket_drops", .int(counters.socketDrops)), ("missed_new", .int(counters.missedStart)),
                    ("missed_destroy", .int(counters.missedDestroy)), ("untracked", .int(counters.untracked)),
                    ("interrupted_dumps", .int(counters.interruptedDumps)), ("preexisting", .int(counters.preexisting)),
                    ("preexisting_closed", .int(counters.preexistingClosed)), ("still_open", .int(counters.stillOpen)),
                    ("confidence", .string(confidence)),
                ])
            ),
            ("profile_file", profileFile.map(JSONValue.string) ?? .null),
        ]
    }

    /// A short summary for a terminal, when the profile went to a file.
    public func text(profileFile: String) -> String {
        var lines = [
            "Learned from \(Int(load.windowSeconds.rounded())) s in \(place) (events \(confidence)); profile written to \(profileFile)"
        ]
        for (field, name, number, decimals) in load.profileNumbers {
            let value = number.value.map { Self.plain($0, decimals: decimals) } ?? "-"
            let note = number.value == nil ? "" : Self.estimateNote(field, number)
            lines.append(
                "  " + name.padded(toLength: 24) + " "
                    + value.padded(toLength: 8) + " " + number.basis + note)
        }
        if !load.classes.isEmpty {
            lines.append("classes, by entry-seconds (each measured like the whole; the profile's load: holds the rest):")
            lines += Table.render(
                header: ["  CLASS", "SHARE", "NEW/S", "BURST"],
                rows: load.classes.map { learned in
                    let rates = [learned.load.tcpNewPerSecond, learned.load.udpNewPerSecond, learned.load.otherPerSecond]
                    return [
                        "  \(learned.flowClass)", Formatting.percent(learned.share),
                        Self.plain(rates.compactMap(\.value).reduce(0, +), decimals: 2),
                        learned.load.burstFactor.value.map { Self.plain($0, decimals: 2) } ?? "-",
                    ]
                })
        }
        return lines.joined(separator: "\n")
    }
}
