import Foundation
import Yams

/// One profile file as written: every key optional, checked for type and
/// range, unknown keys rejected. `ProfileCatalog` merges a chain of these
/// (`extends:`) into a `LoadProfile`.
struct ProfileDocument: Equatable {
    var extends: String?
    var summary: String?
    var tcpNewPerSecond: Double?
    var tcpEstablishedSeconds: Double?
    var tcpRstCloseRatio: Double?
    var tcpOrphanRatio: Double?
    var tcpHalfOpenRatio: Double?
    var udpNewPerSecond: Double?
    var udpStreamRatio: Double?
    var otherPerSecond: Double?
    var burstFactor: Double?
    var headroom: Double?
    var memoryBudgetPercent: Double?
    var chainLength: Int?
    var gcLatencySeconds: Double?
    var namespaces: Int?
    var timeouts: [ConntrackSetting: Int] = [:]
    var timeoutFloors: [ConntrackSetting: Int] = [:]
    var stateful: Bool?

    /// Limits that catch typos (a rate of 1e9, a ratio of 5) before they
    /// become a plan. Rates: a few million new flows/s is beyond any single
    /// host's conntrack. Timeouts: the kernel keeps them in jiffies (u32).
    enum Limits {
        static let rate = 0.0...5_000_000
        static let ratio = 0.0...1
        static let seconds = 0.0...31_536_000
        static let burstFactor = 1.0...100
        static let headroom = 1.0...10
        static let memoryBudgetPercent = 0.01...90
        static let chainLength = 1...16
        static let gcLatencySeconds = 0.0...600
        /// Network namespaces carrying the load: thousands of pods on one
        /// host is the most anyone runs.
        static let namespaces = 1...100_000
        static let timeoutSeconds = 1...2_000_000
    }

    /// Parses and checks one profile.
    ///
    /// - Parameter file: named in every error, with the line and key path.
    static func parse(yaml: String, file: String) throws -> ProfileDocument {
        let reader = NodeReader(file: file)
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                return ProfileDocument()  // an empty file inherits everything
            }
            root = composed
        } catch let error as YamlError {
            throw reader.syntaxError(error)
        }
        var document = ProfileDocument()
        let top = try reader.mapping(root, at: "")
        try reader.allowOnly(
            [
                "extends", "description", "load", "burst_factor", "headroom", "memory_budget_percent",
                "chain_length", "gc_latency_seconds", "namespaces", "timeouts", "timeout_floors", "stateful",
            ], in: top, at: "")
        document.extends = try top["extends"].map { try reader.string($0, at: "extends") }
        document.summary = try top["description"].map { try reader.string($0, at: "description") }
        if let load = try top["load"].map({ try reader.mapping($0, at: "load") }) {
            try reader.allowOnly(["tcp", "udp", "other_per_second"], in: load, at: "load")
            if let tcp = try load["tcp"].map({ try reader.mapping($0, at: "load.tcp") }) {
                try reader.allowOnly(
                    ["new_per_second", "established_seconds", "rst_close_ratio", "orphan_ratio", "half_open_ratio"],
                    in: tcp, at: "load.tcp")
                document.tcpNewPerSecond = try reader.number(tcp, "new_per_second", at: "load.tcp", in: Limits.rate)
                document.tcpEstablishedSeconds = try reader.number(tcp, "established_seconds", at: "load.tcp", in: Limits.seconds)
                document.tcpRstCloseRatio = try reader.number(tcp, "rst_close_ratio", at: "load.tcp", in: Limits.ratio)
                document.tcpOrphanRatio = try reader.number(tcp, "orphan_ratio", at: "load.tcp", in: Limits.ratio)
                document.tcpHalfOpenRatio = try reader.number(tcp, "half_open_ratio", at: "load.tcp", in: Limits.ratio)
            }
            if let udp = try load["udp"].map({ try reader.mapping($0, at: "load.udp") }) {
                try reader.allowOnly(["new_per_second", "stream_ratio"], in: udp, at: "load.udp")
                document.udpNewPerSecond = try reader.number(udp, "new_per_second", at: "load.udp", in: Limits.rate)
                document.udpStreamRatio = try reader.number(udp, "stream_ratio", at: "load.udp", in: Limits.ratio)
            }
            document.otherPerSecond = try reader.number(load, "other_per_second", at: "load", in: Limits.rate)
        }
        document.burstFactor = try reader.number(top, "burst_factor", at: "", in: Limits.burstFactor)
        document.headroom = try reader.number(top, "headroom", at: "", in: Limits.headroom)
        document.memoryBudgetPercent = try reader.number(top, "memory_budget_percent", at: "", in: Limits.memoryBudgetPercent)
        document.chainLength = try reader.integer(top, "chain_length", at: "", in: Limits.chainLength)
        document.gcLatencySeconds = try reader.number(top, "gc_latency_seconds", at: "", in: Limits.gcLatencySeconds)
        document.namespaces = try reader.integer(top, "namespaces", at: "", in: Limits.namespaces)
        document.timeouts = try reader.timeoutTable(top["timeouts"], at: "timeouts")
        document.timeoutFloors = try reader.timeoutTable(top["timeout_floors"], at: "timeout_floors")
        document.stateful = try top["stateful"].map { try reader.bool($0, at: "stateful") }
        return document
    }
}

/// Typed access to a composed YAML tree, every error naming file, line and key path.
private struct NodeReader {
    let file: String

    func fail(_ node: Node?, _ field: String, _ problem: String) -> TunerError {
        .invalidProfile(file: file, line: node?.mark?.line, field: field, problem: problem)
    }

    func syntaxError(_ error: YamlError) -> TunerError {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return .invalidProfile(
                file: file, line: mark.line, field: "",
                problem:
                    "not valid YAML: \(problem) (column \(mark.column)) — check the indentation and quoting on that line and the one before"
            )
        case let .duplicatedKeysInMapping(duplicates, _):
            return .invalidProfile(
                file: file, line: nil, field: "", problem: "key \(duplicates.joined(separator: ", ")) appears twice — keep one")
        default:
            return .invalidProfile(file: file, line: nil, field: "", problem: "not valid YAML: \(error)")
        }
    }

    func join(_ parent: String, _ key: String) -> String { parent.isEmpty ? key : parent + "." + key }

    func mapping(_ node: Node, at field: String) throws -> Node.Mapping {
        guard case let .mapping(mapping) = node else {
            throw fail(node, field.isEmpty ? "(top level)" : field, "must be a mapping of keys to values, found \(kind(node))")
        }
        return mapping
    }

    func allowOnly(_ keys: [String], in mapping: Node.Mapping, at field: String) throws {
        for key in mapping.keys {
            guard let name = key.string, keys.contains(name) else {
                let shown = key.string ?? "\(key)"
                throw fail(key, join(field, shown), "unknown key — allowed here: \(keys.joined(separator: ", "))")
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
        default: throw fail(node, field, "must be true or false, found \"\(text)\"")
        }
    }

    func number(_ mapping: Node.Mapping, _ key: String, at parent: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let node = mapping[key] else { return nil }
        let field = join(parent, key)
        let text = try scalarText(node, at: field, expecting: "a number")
        if case let .scalar(scalar) = node, scalar.style != .plain && scalar.style != .any {
            throw fail(node, field, "must be a number, found the quoted string \"\(text)\" — remove the quotes")
        }
        guard let value = Double(text.replacingOccurrences(of: "_", with: "")), value.isFinite else {
            throw fail(node, field, "must be a number, found \"\(text)\"")
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
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")) else {
            throw fail(node, field, "must be a whole number, found \"\(text)\"")
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
            let name = key.string ?? "\(key)"
            guard let setting = ConntrackSetting(shortName: name) else {
                throw fail(
                    key, join(field, name),
                    "unknown timeout — allowed: \(ConntrackSetting.timeouts.map(\.shortName).joined(separator: ", "))")
            }
            table[setting] = try integer(value, at: join(field, name), in: ProfileDocument.Limits.timeoutSeconds)
        }
        return table
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "\"\(scalar.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    func plain(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
