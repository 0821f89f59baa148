import TunerCore

/// One entry of a profile's `classes:` list as written, checked like the
/// rest of a profile: every error names the file, the line and the key path
/// (`classes[1].match.ports`).
///
/// ```yaml
/// classes:
///   - name: dns                 # optional; default: the match, as `inbound udp/53`
///     match:
///       direction: inbound      # inbound | outbound | forwarded | local; absent: any
///       family: ipv4            # ipv4 | ipv6; absent: both
///       protocol: udp           # tcp, udp, sctp, dccp, udplite, icmp, icmpv6, … or a number
///       ports: [53, 5300-5310]  # port protocols: a port, a range, or a list of both; absent: every port
///       types: [echo-request]   # icmp, icmpv6: types by name or number; absent: every type
///     load:
///       udp: {new_per_second: 400, stream_ratio: 0}
///     burst_factor: 2           # absent: the profile's
/// ```
struct ClassDocument: Equatable {
    var name: String?
    var match: ClassMatch
    /// The class's load numbers, keyed by the same `ProfileField`s as the top level.
    var numbers: [ProfileField: Double]
    /// `cure:` (pinned, one) or `cures:` (allowed, the planner picks).
    var cures: [Cure] = []
    var curePinned = false

    /// A profile declares a handful of classes; the cap bounds the pairwise overlap check.
    static let maximumClasses = 256

    static func list(_ node: Node, reader: NodeReader) throws -> [ClassDocument] {
        guard case .sequence(let list) = node else {
            throw reader.fail(node, "classes", "must be a list of classes (each item starts with `- match:`), found \(reader.kind(node))")
        }
        guard list.items.count <= maximumClasses else {
            throw reader.fail(
                node, "classes", "\(list.items.count) classes, more than \(maximumClasses) — declare the few that fill the table")
        }
        var classes: [(document: ClassDocument, field: String)] = []
        for (index, item) in list.items.enumerated() {
            let field = "classes[\(index)]"
            let document = try parse(item, at: field, reader: reader)
            // A packet two classes match would be sized twice and cured by whichever rule comes first.
            if let earlier = classes.first(where: { $0.document.match.overlaps(document.match) }) {
                throw reader.fail(
                    item, field,
                    """
                    \(Echo.quoted(document.label)) overlaps \(earlier.field) (\(Echo.quoted(earlier.document.label))): a \
                    packet of \(Echo.quoted(document.match.description)) can match both — make their directions, families, \
                    ports or types disjoint
                    """)
            }
            if let earlier = classes.first(where: { $0.document.label == document.label }) {
                throw reader.fail(
                    item, reader.join(field, "name"),
                    "\(Echo.quoted(document.label)) is also \(earlier.field)'s name — each class needs its own")
            }
            classes.append((document, field))
        }
        return classes.map(\.document)
    }

    /// How errors and the plan name it.
    var label: String { name ?? match.description }

    static func parse(_ node: Node, at field: String, reader: NodeReader) throws -> ClassDocument {
        let mapping = try reader.mapping(node, at: field)
        try reader.allowOnly(["name", "match", "load", "burst_factor", "cure", "cures"], in: mapping, at: field)
        let name = try mapping["name"].map { try reader.string($0, at: reader.join(field, "name")) }
        if name == TuningPlan.ClassEstimate.otherName {
            throw reader.fail(
                mapping["name"], reader.join(field, "name"), "\"other\" names what no class matches in the plan — choose another name")
        }
        if let name, name.isEmpty || name.count > 100 || name.contains(where: { $0.isNewline || $0.asciiValue.map { $0 < 32 } == true }) {
            throw reader.fail(mapping["name"], reader.join(field, "name"), "must be 1–100 printable characters on one line")
        }
        guard let matchNode = mapping["match"] else {
            throw reader.fail(node, reader.join(field, "match"), "missing — every class needs a match (at least its protocol)")
        }
        let match = try parseMatch(matchNode, at: reader.join(field, "match"), reader: reader)
        var numbers: [ProfileField: Double] = [:]
        let allowed = ProfileClass.fields(for: match.loadKind)
        let loadField = reader.join(field, "load")
        if let load = try mapping["load"].map({ try reader.mapping($0, at: loadField) }) {
            switch match.loadKind {
            case .tcp, .udp:
                let kind = match.loadKind.rawValue
                try reader.allowOnly(
                    [kind], in: load, at: loadField, why: "a \(match.protocolName) class declares its load under load.\(kind)")
                if let section = try load[kind].map({ try reader.mapping($0, at: reader.join(loadField, kind)) }) {
                    let fields = allowed.filter { $0.section == "load." + kind }
                    try reader.allowOnly(fields.map(\.key), in: section, at: reader.join(loadField, kind))
                    try reader.readNumbers(in: section, section: reader.join(loadField, kind), fields: fields, into: &numbers)
                }
            case .other:
                try reader.allowOnly(
                    [ProfileField.otherPerSecond.key], in: load, at: loadField,
                    why: "a \(match.protocolName) class declares its new flows per second as load.other_per_second")
                try reader.readNumbers(in: load, section: loadField, fields: [.otherPerSecond], into: &numbers)
            }
        }
        try reader.readNumbers(in: mapping, section: field, fields: [.burstFactor], into: &numbers)
        if let orphans = numbers[.tcpOrphanRatio], let halfOpen = numbers[.tcpHalfOpenRatio], orphans + halfOpen > 1 {
            throw reader.fail(
                mapping["load"], reader.join(loadField, "tcp"),
                "orphan_ratio + half_open_ratio is \(orphans + halfOpen), more than all flows — they must add up to at most 1")
        }
        var document = ClassDocument(name: name, match: match, numbers: numbers)
        try document.readCures(mapping, at: field, reader: reader)
        return document
    }

    /// `cure: timeouts` pins one; `cures: [timeouts, notrack]` allows several.
    mutating func readCures(_ mapping: Node.Mapping, at field: String, reader: NodeReader) throws {
        let names = Cure.allCases.map(\.rawValue).joined(separator: ", ")
        func cure(_ node: Node, at path: String) throws -> Cure {
            let text = try reader.string(node, at: path)
            guard let cure = Cure(rawValue: text) else {
                throw reader.fail(node, path, "unknown cure \(Echo.quoted(text)) — use \(names)")
            }
            return cure
        }
        if let pinned = mapping["cure"] {
            if mapping["cures"] != nil {
                throw reader.fail(
                    pinned, reader.join(field, "cure"), "cure pins one and cures allows several — write one of them, not both")
            }
            cures = [try cure(pinned, at: reader.join(field, "cure"))]
            curePinned = true
        } else if let allowed = mapping["cures"] {
            let path = reader.join(field, "cures")
            guard case .sequence(let list) = allowed else {
                throw reader.fail(allowed, path, "must be a list, e.g. [timeouts, notrack], found \(reader.kind(allowed))")
            }
            let chosen = try list.items.enumerated().map { try cure($1, at: "\(path)[\($0)]") }
            guard !chosen.contains(.none) || chosen.count == 1 else {
                throw reader.fail(allowed, path, "none allows nothing: leave it out of a list of cures")
            }
            cures = Array(Set(chosen)).sorted()
        }
        if cures.contains(.timeouts) && !CurePolicy.hasPolicy(match.protocolNumber) {
            throw reader.fail(
                mapping["cure"] ?? mapping["cures"], reader.join(field, mapping["cure"] != nil ? "cure" : "cures"),
                "a \(match.protocolName) class has no timeout policy (only tcp and udp classes do) — use notrack or none")
        }
    }

    static func parseMatch(_ node: Node, at field: String, reader: NodeReader) throws -> ClassMatch {
        let mapping = try reader.mapping(node, at: field)
        try reader.allowOnly(["direction", "family", "protocol", "ports", "types"], in: mapping, at: field)
        guard let protocolNode = mapping["protocol"] else {
            throw reader.fail(node, reader.join(field, "protocol"), "missing — name the protocol (tcp, udp, icmp, …)")
        }
        let protocolText = try reader.string(protocolNode, at: reader.join(field, "protocol"))
        guard let protocolNumber = FlowClass.protocolNames.first(where: { $0.value == protocolText })?.key ?? UInt8(protocolText) else {
            throw reader.fail(
                protocolNode, reader.join(field, "protocol"),
                """
                unknown protocol \(Echo.quoted(protocolText)) — use a name \
                (\(FlowClass.protocolNames.values.sorted().joined(separator: ", "))) or a number 0–255
                """)
        }
        var match = ClassMatch(protocolNumber: protocolNumber)
        if let directionNode = mapping["direction"] {
            let text = try reader.string(directionNode, at: reader.join(field, "direction"))
            guard let direction = FlowClass.Direction(rawValue: text) else {
                throw reader.fail(
                    directionNode, reader.join(field, "direction"),
                    "unknown direction \(Echo.quoted(text)) — use "
                        + FlowClass.Direction.allCases.map(\.rawValue).joined(separator: ", "))
            }
            match.direction = direction
        }
        if let familyNode = mapping["family"] {
            let text = try reader.string(familyNode, at: reader.join(field, "family"))
            switch text {
            case "ipv4": match.isIPv6 = false
            case "ipv6": match.isIPv6 = true
            default:
                throw reader.fail(familyNode, reader.join(field, "family"), "unknown family \(Echo.quoted(text)) — use ipv4 or ipv6")
            }
        }
        if protocolNumber == FlowClass.icmpv6 {
            if match.isIPv6 == false {
                throw reader.fail(
                    mapping["family"], reader.join(field, "family"), "icmpv6 is IPv6 only — use family ipv6 or leave it out")
            }
            match.isIPv6 = true
        }
        if let portsNode = mapping["ports"] {
            guard FlowClass.portProtocols.contains(protocolNumber) else {
                throw reader.fail(
                    portsNode, reader.join(field, "ports"),
                    "\(match.protocolName) has no ports — only tcp, udp, sctp, dccp and udplite do; leave ports out")
            }
            match.ports = try portRanges(portsNode, at: reader.join(field, "ports"), reader: reader)
        }
        if let typesNode = mapping["types"] {
            guard protocolNumber == FlowClass.icmp || protocolNumber == FlowClass.icmpv6 else {
                throw reader.fail(typesNode, reader.join(field, "types"), "only icmp and icmpv6 have types; leave types out")
            }
            match.icmpTypes = try icmpTypes(typesNode, protocolNumber: protocolNumber, at: reader.join(field, "types"), reader: reader)
        }
        return match
    }

    /// `53`, `"5300-5310"`, or a list of both; sorted, each range checked.
    static func portRanges(_ node: Node, at field: String, reader: NodeReader) throws -> [ClosedRange<UInt16>] {
        let items: [Node]
        if case .sequence(let list) = node { items = list.items } else { items = [node] }
        guard !items.isEmpty else { throw reader.fail(node, field, "an empty list matches nothing — name a port or leave ports out") }
        return try items.enumerated().map { index, item in
            let itemField =
                items.count > 1 || { if case .sequence = node { return true } else { return false } }() ? "\(field)[\(index)]" : field
            let text = try reader.scalarText(item, at: itemField, expecting: "a port (1–65535) or a range like 30000-32767")
            func port(_ part: Substring) throws -> UInt16 {
                guard let value = Int(part.trimming(.whitespaces)), (1...65535).contains(value) else {
                    throw reader.fail(item, itemField, "port \(Echo.quoted(String(part))) is outside 1–65535")
                }
                return UInt16(value)
            }
            let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            let low = try port(parts[0])
            let high = parts.count == 2 ? try port(parts[1]) : low
            guard low <= high else {
                throw reader.fail(item, itemField, "range \(Echo.quoted(text)) is written backwards — write \(high)-\(low)")
            }
            return low...high
        }.sorted { $0.lowerBound < $1.lowerBound }
    }

    static func icmpTypes(_ node: Node, protocolNumber: UInt8, at field: String, reader: NodeReader) throws -> [UInt8] {
        let names = protocolNumber == FlowClass.icmpv6 ? FlowClass.icmpv6TypeNames : FlowClass.icmpTypeNames
        let items: [Node]
        if case .sequence(let list) = node { items = list.items } else { items = [node] }
        guard !items.isEmpty else { throw reader.fail(node, field, "an empty list matches nothing — name a type or leave types out") }
        return try items.map { item in
            let text = try reader.scalarText(item, at: field, expecting: "an ICMP type name or number")
            guard let type = names.first(where: { $0.value == text })?.key ?? UInt8(text) else {
                throw reader.fail(
                    item, field,
                    "unknown type \(Echo.quoted(text)) — use a number 0–255 or a name ("
                        + names.values.sorted().joined(separator: ", ") + ")")
            }
            return type
        }
    }
}
