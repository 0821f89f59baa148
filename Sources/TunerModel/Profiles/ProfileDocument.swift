import TunerCore

typealias Node = YAMLNode

/// One profile file as written: every key optional, checked for type and
/// range, unknown keys rejected. `ProfileCatalog` merges a chain of these
/// (`extends:`) into a `LoadProfile`.
struct ProfileDocument: Equatable {
    var extends: String?
    var summary: String?
    /// The numbers the file sets (`ProfileField` defines each key and its limits).
    var numbers: [ProfileField: Double] = [:]
    var timeouts: [ConntrackSetting: Int] = [:]
    var timeoutFloors: [ConntrackSetting: Int] = [:]
    var stateful: Bool?
    /// `classes:` as written; `nil` when the file has none (the parent's apply).
    var classes: [ClassDocument]?

    /// Limits of the timeout tables: the kernel keeps timeouts in jiffies (u32).
    enum Limits {
        static let timeoutSeconds = 1...2_000_000
    }

    /// Parses and checks one profile.
    ///
    /// - Parameter file: named in every error, with the line and key path.
    static func parse(yaml: String, file: String) throws -> ProfileDocument {
        let reader = NodeReader(file: file)
        try refuseAliases(yaml, reader: reader)
        let root: Node
        do {
            guard let composed = try YAMLNode.compose(yaml) else {
                return ProfileDocument()  // an empty file inherits everything
            }
            root = composed
        } catch let error as YAMLError {
            throw reader.syntaxError(error)
        }
        var document = ProfileDocument()
        let top = try reader.mapping(root, at: "")
        try reader.allowOnly(
            ["extends", "description", "load"] + ProfileField.fields(in: "").map(\.key) + [
                "timeouts", "timeout_floors", "stateful", "classes",
            ],
            in: top, at: "")
        document.extends = try top["extends"].map { try reader.string($0, at: "extends") }
        document.summary = try top["description"].map { try reader.string($0, at: "description") }
        // Checked in the order the file reads (load first), so the first error reported is the first in the schema.
        if let load = try top["load"].map({ try reader.mapping($0, at: "load") }) {
            try reader.allowOnly(["tcp", "udp"] + ProfileField.fields(in: "load").map(\.key), in: load, at: "load")
            for protocolSection in ["tcp", "udp"] {
                let section = "load." + protocolSection
                guard let mapping = try load[protocolSection].map({ try reader.mapping($0, at: section) }) else { continue }
                try reader.allowOnly(ProfileField.fields(in: section).map(\.key), in: mapping, at: section)
                try document.readNumbers(in: mapping, section: section, reader: reader)
            }
            try document.readNumbers(in: load, section: "load", reader: reader)
        }
        try document.readNumbers(in: top, section: "", reader: reader)
        document.timeouts = try reader.timeoutTable(top["timeouts"], at: "timeouts")
        document.timeoutFloors = try reader.timeoutTable(top["timeout_floors"], at: "timeout_floors")
        document.stateful = try top["stateful"].map { try reader.bool($0, at: "stateful") }
        document.classes = try top["classes"].map { try ClassDocument.list($0, reader: reader) }
        return document
    }

    /// The schema's numbers of one mapping, each checked against its limits.
    private mutating func readNumbers(in mapping: Node.Mapping, section: String, reader: NodeReader) throws {
        try reader.readNumbers(in: mapping, section: section, fields: ProfileField.fields(in: section), into: &numbers)
    }
}

extension NodeReader {
    /// The schema's `fields` of one mapping, each checked against its limits.
    /// - Parameter section: the mapping's path in the file (`load.tcp`, `classes[1].load.udp`).
    func readNumbers(in mapping: Node.Mapping, section: String, fields: [ProfileField], into numbers: inout [ProfileField: Double]) throws {
        let reader = self
        for field in fields {
            let limits = field.limits
            let value =
                field.isWhole
                ? try reader.integer(mapping, field.key, at: section, in: Int(limits.lowerBound)...Int(limits.upperBound)).map(Double.init)
                : try reader.number(mapping, field.key, at: section, in: limits)
            if let value { numbers[field] = value }
        }
    }
}

extension ProfileDocument {
    /// The most YAML tokens a profile may hold: a full profile has about a
    /// hundred, and the cap bounds the work of composing any document.
    static let maximumTokens = 10_000

    /// Refuses aliases (`*name`) and documents of more than `maximumTokens`
    /// tokens before they are composed: composing expands each alias into a
    /// copy of its anchor's node, so a few nested aliases (a "billion laughs"
    /// document, or an alias used as a mapping key, compared in full to find
    /// duplicates) take exponential time and memory. A profile has no use for them.
    static func refuseAliases(_ yaml: String, reader: NodeReader) throws {
        switch YAMLNode.scanTokens(yaml, limit: maximumTokens) {
        case .fine:
            return
        case .alias(let line):
            throw TunerError.invalidProfile(
                file: reader.file, line: line, field: "",
                problem: "YAML aliases (*name) are not allowed in a profile — write the value out where it is used")
        case .tooManyTokens(let line):
            throw TunerError.invalidProfile(
                file: reader.file, line: line, field: "",
                problem: """
                    more than \(maximumTokens) YAML tokens — a profile holds a few dozen keys; check that this is a \
                    profile
                    """)
        }
    }
}

/// Typed access to a composed YAML tree, every error naming file, line and key path.
struct NodeReader {
    let file: String

    func fail(_ node: Node?, _ field: String, _ problem: String) -> TunerError {
        .invalidProfile(file: file, line: node?.mark.line, field: field, problem: problem)
    }

    func syntaxError(_ error: YAMLError) -> TunerError {
        switch error {
        case let .syntax(problem, line, column):
            return .invalidProfile(
                file: file, line: line, field: "",
                problem:
                    """
                    not valid YAML: \(Echo.escaped(problem, limit: 200)) (column \(column)) — check the indentation \
                    and quoting on that line and the one before
                    """
            )
        case let .duplicatedKeys(duplicates):
            return .invalidProfile(
                file: file, line: nil, field: "",
                problem: "key \(duplicates.map { Echo.escaped($0) }.joined(separator: ", ")) appears twice — keep one")
        default:
            // The reader's description: position, "error: reader:", the problem.
            var first = Substring("\(error)".split(whereSeparator: \.isNewline).first ?? "unreadable")
            while first.first == ":" || first.first == " " { first = first.dropFirst() }
            while first.last == ":" || first.last == " " { first = first.dropLast() }
            return .invalidProfile(file: file, line: nil, field: "", problem: "not valid YAML: \(Echo.escaped(first, limit: 200))")
        }
    }

    func join(_ parent: String, _ key: String) -> String { parent.isEmpty ? key : parent + "." + key }

    func mapping(_ node: Node, at field: String) throws -> Node.Mapping {
        guard case let .mapping(mapping) = node else {
            throw fail(node, field.isEmpty ? "(top level)" : field, "must be a mapping of keys to values, found \(kind(node))")
        }
        return mapping
    }

    /// - Parameter why: said instead of the list of allowed keys.
    func allowOnly(_ keys: [String], in mapping: Node.Mapping, at field: String, why: String? = nil) throws {
        for key in mapping.keys {
            guard let name = key.string, keys.contains(name) else {
                let shown = keyName(key)
                throw fail(key, join(field, shown), "unknown key — " + (why ?? "allowed here: \(keys.joined(separator: ", "))"))
            }
        }
    }

    func scalarText(_ node: Node, at field: String, expecting: String) throws -> String {
        guard case let .scalar(scalar) = node else { throw fail(node, field, "must be \(expecting), found \(kind(node))") }
        return scalar.string
    }

    func string(_ node: Node, at field: String) throws -> String {
        try scalarText(node, at: field, expecting: "a string")
    }

    func bool(_ node: Node, at field: String) throws -> Bool {
        let text = try scalarText(node, at: field, expecting: "true or false")
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, field, "must be true or false, found \(Echo.quoted(text))")
        }
    }

    func number(_ mapping: Node.Mapping, _ key: String, at parent: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let node = mapping[key] else { return nil }
        let field = join(parent, key)
        let text = try scalarText(node, at: field, expecting: "a number")
        if case let .scalar(scalar) = node, scalar.style != .plain && scalar.style != .any {
            throw fail(node, field, "must be a number, found the quoted string \(Echo.quoted(text)) — remove the quotes")
        }
        guard let value = Double(text.filter { $0 != "_" }), value.isFinite else {
            throw fail(node, field, "must be a number, found \(Echo.quoted(text))")
        }
        guard range.contains(value) else {
            throw fail(node, field, "must be between \(plain(range.lowerBound)) and \(plain(range.upperBound)), found \(plain(value))")
        }
        return value
    }

    func integer(_ mapping: Node.Mapping, _ key: String, at parent: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let node = mapping[key] else { return nil }
        return try integer(node, at: join(parent, key), in: range)
    }

    func integer(_ node: Node, at field: String, in range: ClosedRange<Int>) throws -> Int {
        let text = try scalarText(node, at: field, expecting: "a whole number")
        guard let value = Int(text.filter { $0 != "_" }) else {
            throw fail(node, field, "must be a whole number, found \(Echo.quoted(text))")
        }
        guard range.contains(value) else {
            throw fail(node, field, "must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
        }
        return value
    }

    /// `timeouts:` and `timeout_floors:` — sysctl last component → seconds.
    func timeoutTable(_ node: Node?, at field: String) throws -> [ConntrackSetting: Int] {
        guard let node else { return [:] }
        var table: [ConntrackSetting: Int] = [:]
        for (key, value) in try mapping(node, at: field) {
            let name = keyName(key)
            guard let setting = key.string.flatMap(ConntrackSetting.init(shortName:)) else {
                throw fail(
                    key, join(field, name),
                    "unknown timeout — allowed: \(ConntrackSetting.timeouts.map(\.shortName).joined(separator: ", "))")
            }
            table[setting] = try integer(value, at: join(field, name), in: ProfileDocument.Limits.timeoutSeconds)
        }
        return table
    }

    /// A key as an error shows it: escaped, or what it is when it is not text.
    func keyName(_ key: Node) -> String {
        guard case .scalar(let scalar) = key else { return "(\(kind(key)) used as a key)" }
        return Echo.escaped(scalar.string)
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return Echo.quoted(scalar.string)
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    func plain(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
