import CYaml

/// A YAML document composed into a tree by LibYAML's parser: scalars keep
/// their text, style and tag as written, every node its line and column.
/// Aliases are replaced by the node their anchor names, as YAML composes.
public enum YAMLNode: Sendable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(List)

    /// Where a node starts: line and column, both counted from 1.
    public struct Mark: Equatable, Sendable {
        public let line: Int
        public let column: Int
    }

    /// Text as written, with how it was written.
    public struct Scalar: Sendable {
        public enum Style: Sendable { case any, plain, singleQuoted, doubleQuoted, literal, folded }
        public let string: String
        /// The tag written on it (`!!int 5`), `str` for a quoted or block
        /// scalar, `nil` for a plain one: `resolvedTag` then decides.
        public let tag: String?
        public let style: Style
        public let mark: Mark
    }

    /// Key-value pairs in the order written.
    public struct Mapping: RandomAccessCollection, Sendable {
        public let pairs: [(key: YAMLNode, value: YAMLNode)]
        public let mark: Mark
        public var startIndex: Int { pairs.startIndex }
        public var endIndex: Int { pairs.endIndex }
        public subscript(position: Int) -> (key: YAMLNode, value: YAMLNode) { pairs[position] }
        public var keys: [YAMLNode] { pairs.map { $0.key } }

        /// The value of the last key that is this text as a plain YAML scalar
        /// would be (a quoted or tagged key matches when it resolves alike).
        public subscript(key: String) -> YAMLNode? {
            pairs.last { pair in
                guard case .scalar(let scalar) = pair.key, scalar.string == key else { return false }
                return scalar.tag == nil || scalar.tag == YAMLNode.resolvedTag(of: key)
            }?.value
        }
    }

    /// Items in the order written.
    public struct List: Sendable {
        public let items: [YAMLNode]
        public let mark: Mark
    }

    public var mark: Mark {
        switch self {
        case .scalar(let scalar): return scalar.mark
        case .mapping(let mapping): return mapping.mark
        case .sequence(let list): return list.mark
        }
    }

    /// A scalar's text; `nil` for a mapping or a list.
    public var string: String? {
        guard case .scalar(let scalar) = self else { return nil }
        return scalar.string
    }
}

/// Why a text is not one YAML document, with LibYAML's own words.
public enum YAMLError: Error, Equatable, CustomStringConvertible {
    /// The scanner, the parser or the composer stopped at this line and column (from 1).
    case syntax(problem: String, line: Int, column: Int)
    /// The reader refused a character (a control character, bad UTF-8); the
    /// position counts from 1 when the offset falls inside the text.
    case reader(problem: String, line: Int?, column: Int?, offset: Int, value: Int32)
    /// A mapping holds these keys more than once (sorted).
    case duplicatedKeys([String])
    case memory

    public var description: String {
        switch self {
        case let .syntax(problem, line, column): return "\(line):\(column): error: \(problem)"
        case let .reader(problem, line?, column?, _, _): return "\(line):\(column): error: reader: \(problem):"
        case let .reader(problem, _, _, offset, value): return "\(problem) at offset: \(offset), value: \(value)"
        case .duplicatedKeys(let keys): return "duplicated key(s): \(keys.joined(separator: ", "))"
        case .memory: return "Memory error"
        }
    }
}

extension YAMLNode {
    public static let strTag = "tag:yaml.org,2002:str"
    public static let nullTag = "tag:yaml.org,2002:null"

    /// The root of the single document in `text`; `nil` for an empty stream.
    /// A second document, an alias to no anchor and a key written twice in
    /// one mapping are errors.
    public static func compose(_ text: String) throws -> YAMLNode? {
        let bytes = Array(text.utf8)
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { throw YAMLError.memory }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        return try bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
            var composer = Composer(parser: parser, text: text)
            _ = try composer.next()  // stream start
            guard try composer.next().type != YAML_STREAM_END_EVENT else { return nil }
            let root = try composer.node(from: composer.next())
            _ = try composer.next()  // document end
            let after = try composer.next()
            guard after.type == YAML_STREAM_END_EVENT else {
                throw YAMLError.syntax(problem: "but found another document", line: after.mark.line, column: after.mark.column)
            }
            return root
        }
    }

    /// What `scanTokens` found first.
    public enum TokenScan: Equatable, Sendable {
        case fine
        /// An alias (`*name`) on this line.
        case alias(line: Int)
        /// Token number `limit + 1`, on this line.
        case tooManyTokens(line: Int)
    }

    /// Scans `text`'s tokens, without composing, for the first alias or the
    /// token past `limit`: composing expands each alias into a copy of its
    /// anchor's node, so a reader that has no use for aliases refuses them
    /// (and long documents) first. A syntax error ends the scan as `fine`:
    /// `compose` reports it with its line and column.
    public static func scanTokens(_ text: String, limit: Int) -> TokenScan {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { return .fine }
        defer { yaml_parser_delete(parser) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
            var count = 0
            while true {
                var token = yaml_token_t()
                guard yaml_parser_scan(parser, &token) == 1 else { return .fine }
                defer { yaml_token_delete(&token) }
                let line = Int(token.start_mark.line) + 1
                switch token.type {
                case YAML_STREAM_END_TOKEN: return .fine
                case YAML_ALIAS_TOKEN: return .alias(line: line)
                default: break
                }
                count += 1
                if count > limit { return .tooManyTokens(line: line) }
            }
        }
    }

    /// The tag YAML 1.1's core schema gives a plain scalar with this text:
    /// null, bool, int, float, merge, timestamp, value, else str (the
    /// patterns are the ones Yams and PyYAML use).
    public static func resolvedTag(of plain: String) -> String {
        for (tag, pattern) in resolverRules where (try? pattern.wholeMatch(in: plain)) != nil {
            return "tag:yaml.org,2002:" + tag
        }
        return strTag
    }

    nonisolated(unsafe) private static let resolverRules: [(String, Regex<AnyRegexOutput>)] = resolverPatterns.map { tag, alternatives in
        (tag, try! Regex("(?:" + alternatives.joined(separator: "|") + ")"))
    }

    /// Each tag's pattern, as alternatives.
    private static let resolverPatterns: [(String, [String])] = [
        ("bool", ["yes|Yes|YES|no|No|NO", "true|True|TRUE|false|False|FALSE", "on|On|ON|off|Off|OFF"]),
        (
            "int",
            ["[-+]?0b[0-1_]+", "[-+]?0o?[0-7_]+", "[-+]?(?:0|[1-9][0-9_]*)", "[-+]?0x[0-9a-fA-F_]+", "[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"]
        ),
        (
            "float",
            [
                #"[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"#, #"\.[0-9_]+(?:[eE][-+][0-9]+)?"#,
                #"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*"#, #"[-+]?\.(?:inf|Inf|INF)"#, #"\.(?:nan|NaN|NAN)"#,
            ]
        ),
        ("merge", ["<<"]),
        ("null", ["~", "null|Null|NULL", ""]),
        (
            "timestamp",
            [
                "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
                #"[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?"#
                    + #"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?"#,
            ]
        ),
        ("value", ["="]),
    ]
}

extension YAMLNode.Scalar {
    /// The written tag, or the one the text resolves to when plain.
    public var resolvedTag: String { tag ?? YAMLNode.resolvedTag(of: string) }

    /// The value of an int-tagged scalar (`0x1F`, `0o17`, `1_000`, `-5`),
    /// as YAML 1.1 reads it; `nil` for any other scalar or one out of range.
    public var integer: Int? {
        guard resolvedTag == "tag:yaml.org,2002:int", style == .any || style == .plain else { return nil }
        var digits = Substring(string.filter { $0 != "_" })
        let negative = digits.first == "-"
        if digits.first == "-" || digits.first == "+" { digits = digits.dropFirst() }
        var radix = 10
        for (prefix, base) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where digits.count > prefix.count && digits.hasPrefix(prefix) {
            radix = base
            digits = digits.dropFirst(prefix.count)
            break
        }
        guard let magnitude = Int(digits, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }
}

extension YAMLNode {
    /// Equal as mapping keys are: scalars by text and resolved tag,
    /// collections item by item; styles and positions do not count.
    func isSameKey(as other: YAMLNode) -> Bool {
        switch (self, other) {
        case let (.scalar(left), .scalar(right)):
            guard left.string == right.string else { return false }
            return (left.tag == nil && right.tag == nil) || left.resolvedTag == right.resolvedTag
        case let (.mapping(left), .mapping(right)):
            return left.count == right.count
                && zip(left.pairs, right.pairs).allSatisfy { $0.key.isSameKey(as: $1.key) && $0.value.isSameKey(as: $1.value) }
        case let (.sequence(left), .sequence(right)):
            return left.items.count == right.items.count && zip(left.items, right.items).allSatisfy { $0.isSameKey(as: $1) }
        default:
            return false
        }
    }
}

/// Builds the tree from LibYAML's events, as Yams's composer did.
private struct Composer {
    struct Event {
        var type: yaml_event_type_t
        var mark: YAMLNode.Mark
        var anchor: String?
        var tag: String?
        var value = ""
        var style: YAMLNode.Scalar.Style = .any
    }

    let parser: UnsafeMutablePointer<yaml_parser_t>
    let text: String
    var anchors: [String: YAMLNode] = [:]

    init(parser: UnsafeMutablePointer<yaml_parser_t>, text: String) {
        self.parser = parser
        self.text = text
    }

    mutating func next() throws -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw error() }
        defer { yaml_event_delete(&event) }
        var result = Event(
            type: event.type, mark: .init(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1))
        switch event.type {
        case YAML_ALIAS_EVENT:
            result.anchor = Self.string(event.data.alias.anchor)
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            result.anchor = Self.string(scalar.anchor)
            result.tag = scalar.quoted_implicit == 1 ? YAMLNode.strTag : Self.string(scalar.tag)
            result.value = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            let styles: [YAMLNode.Scalar.Style] = [.any, .plain, .singleQuoted, .doubleQuoted, .literal, .folded]
            result.style = styles.indices.contains(Int(scalar.style.rawValue)) ? styles[Int(scalar.style.rawValue)] : .any
        case YAML_SEQUENCE_START_EVENT:
            result.anchor = Self.string(event.data.sequence_start.anchor)
        case YAML_MAPPING_START_EVENT:
            result.anchor = Self.string(event.data.mapping_start.anchor)
        default:
            break
        }
        return result
    }

    mutating func node(from event: Event) throws -> YAMLNode {
        let node: YAMLNode
        switch event.type {
        case YAML_ALIAS_EVENT:
            guard let anchor = event.anchor, let target = anchors[anchor] else {
                throw YAMLError.syntax(problem: "found undefined alias", line: event.mark.line, column: event.mark.column)
            }
            return target
        case YAML_SCALAR_EVENT:
            node = .scalar(.init(string: event.value, tag: event.tag, style: event.style, mark: event.mark))
        case YAML_SEQUENCE_START_EVENT:
            var items: [YAMLNode] = []
            var item = try next()
            while item.type != YAML_SEQUENCE_END_EVENT {
                items.append(try self.node(from: item))
                item = try next()
            }
            node = .sequence(.init(items: items, mark: event.mark))
        default:  // mapping start
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var item = try next()
            while item.type != YAML_MAPPING_END_EVENT {
                let key = try self.node(from: item)
                let value = try self.node(from: next())
                pairs.append((key, value))
                item = try next()
            }
            try Self.refuseDuplicates(pairs.map { $0.key })
            node = .mapping(.init(pairs: pairs, mark: event.mark))
        }
        if let anchor = event.anchor { anchors[anchor] = node }
        return node
    }

    /// Keys written twice: grouped by text first, so a mapping costs one pass.
    static func refuseDuplicates(_ keys: [YAMLNode]) throws {
        var byText: [String: [YAMLNode]] = [:]
        for key in keys { byText[key.string ?? "", default: []].append(key) }
        var duplicates: [YAMLNode] = []
        for group in byText.values where group.count > 1 {
            for (index, key) in group.enumerated()
            where !duplicates.contains(where: { $0.isSameKey(as: key) })
                && group[(index + 1)...].contains(where: { $0.isSameKey(as: key) })
            {
                duplicates.append(key)
            }
        }
        guard duplicates.isEmpty else {
            let scalars = duplicates.compactMap(\.string).sorted()
            let others = Array(repeating: "<uncovertable>", count: duplicates.count - scalars.count)
            throw YAMLError.duplicatedKeys(scalars + others)
        }
    }

    func error() -> YAMLError {
        let state = parser.pointee
        let problem = state.problem.map { String(cString: $0) } ?? "unknown problem"
        let line = Int(state.problem_mark.line) + 1
        let column = Int(state.problem_mark.column) + 1
        switch state.error {
        case YAML_MEMORY_ERROR:
            return .memory
        case YAML_READER_ERROR:
            // Yams placed the reader's byte offset in the text's lines (columns in UTF-16 units).
            let offset = Int(state.problem_offset)
            guard offset < text.utf8.count else {
                return .reader(problem: problem, line: nil, column: nil, offset: offset, value: state.problem_value)
            }
            let before = text.utf8.prefix(offset)
            let lineStart = before.lastIndex(of: UInt8(ascii: "\n")).map { before.index(after: $0) } ?? before.startIndex
            let columnText = String(decoding: before[lineStart...], as: UTF8.self)
            return .reader(
                problem: problem, line: before.count(where: { $0 == UInt8(ascii: "\n") }) + 1, column: columnText.utf16.count + 1,
                offset: offset, value: state.problem_value)
        case YAML_SCANNER_ERROR, YAML_PARSER_ERROR, YAML_COMPOSER_ERROR:
            return .syntax(problem: problem, line: line, column: column)
        default:
            return .syntax(problem: problem, line: line, column: column)
        }
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
