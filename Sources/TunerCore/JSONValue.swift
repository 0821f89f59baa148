import FoundationEssentials

/// A JSON document with keys in the order written, `null` kept, integers kept
/// integral: what the interface contract promises scripts.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool { lhs.rendered() == rhs.rendered() }

    /// Compact by default; `pretty` indents two spaces.
    public func rendered(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        let newline = pretty ? "\n" + String(repeating: "  ", count: indent + 1) : ""
        let closing = pretty ? "\n" + String(repeating: "  ", count: indent) : ""
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += value.isFinite ? String(value) : "null"
        case .string(let value): out += Self.quoted(value)
        case .array(let items):
            guard !items.isEmpty else {
                out += "[]"
                return
            }
            out += "["
            for (index, item) in items.enumerated() {
                out += (index > 0 ? "," : "") + newline
                item.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            out += closing + "]"
        case .object(let members):
            guard !members.isEmpty else {
                out += "{}"
                return
            }
            out += "{"
            for (index, (key, value)) in members.enumerated() {
                out += (index > 0 ? "," : "") + newline + Self.quoted(key) + (pretty ? ": " : ":")
                value.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            out += closing + "}"
        }
    }

    package static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(cFormat: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension Optional where Wrapped == Int {
    package var json: JSONValue { map(JSONValue.int) ?? .null }
}

extension Optional where Wrapped == String {
    package var json: JSONValue { map(JSONValue.string) ?? .null }
}

extension JSONValue {
    /// The version of the JSON documents `--format json` prints (docs/json.md);
    /// it changes only when a member is removed or changes meaning.
    public static let schemaVersion = 1

    /// A document as a command prints it: `"schema"` first, then `members`.
    public static func document(_ members: [(String, JSONValue)]) -> JSONValue {
        .object([("schema", .int(schemaVersion))] + members.filter { $0.0 != "schema" })
    }

    /// The contract's `error` member, one shape in every command:
    /// `{"message": …, "exit_code": …}`, or `null` when there is no error.
    public static func failure(_ error: TunerError?, exitCode: Int32 = 1) -> JSONValue {
        error.map { failure(message: $0.description, exitCode: exitCode) } ?? .null
    }

    /// `failure(_:exitCode:)` for a message from elsewhere (the argument parser's usage errors).
    public static func failure(message: String, exitCode: Int32) -> JSONValue {
        .object([("message", .string(Echo.oneLine(message))), ("exit_code", .int(Int(exitCode)))])
    }
}
