import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// A JSON reader for large `nft -j` listings: parses UTF-8 bytes straight
/// into a typed `JSONValue` (members kept in document order) and reports
/// errors by byte offset, which the caller turns into line and column.
///
/// Measured 2026-11-30 on the shared 2-CPU VM (load average 13, so only the
/// ratios count), `swiftc -O`, the 30.1 MiB listing of a 100 000-rule
/// ruleset (`scripts/bench-rules.sh`'s), best of 3 parses: this reader
/// 2.50 s; `JSONSerialization.jsonObject` 11.90 s (and untyped `Any`);
/// `JSONDecoder` into the same `JSONValue` 32.94 s. The reader stays: with
/// Foundation, `cttune rules` would be slower than nft listing the ruleset.
///
/// No input can make it trap: nesting is bounded, numbers that do not fit
/// an `Int` become `Double`, and a `\u` escape of a lone UTF-16 surrogate is
/// a syntax error (as jansson, nft's JSON library, rejects it).
struct JSONReader {
    struct SyntaxError: Error {
        var offset: Int
        var message: String
    }

    /// Nesting deeper than this is an error, not a stack overflow.
    static let maximumDepth = 512

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Parses one JSON document that fills `text` (whitespace around it allowed).
    static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { buffer in
            var reader = JSONReader(bytes: buffer)
            let value = try reader.value(depth: 0)
            reader.skipWhitespace()
            guard reader.index == buffer.count else { throw reader.failure("unexpected text after the JSON document") }
            return value
        }
    }

    private mutating func value(depth: Int) throws -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw failure("unexpected end of input") }
        let byte = bytes[index]
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            if byte == UInt8(ascii: "-") || Self.isDigit(byte) { return try number() }
            throw failure("unexpected character \(describe(byte))")
        }
    }

    private mutating func object(depth: Int) throws -> JSONValue {
        guard depth <= Self.maximumDepth else { throw failure("nested more than \(Self.maximumDepth) levels deep") }
        index += 1
        var members: [(String, JSONValue)] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        // A member named twice is refused (RFC 8259 leaves it undefined; nft
        // never writes one): `{"nftables": [], "nftables": 5}` read either way
        // would be a guess, and a malformed ruleset is no evidence for anything.
        var names = Set<String>()  // filled once an object has 8 members: small ones are scanned
        while true {
            skipWhitespace()
            guard try peek() == UInt8(ascii: "\"") else { throw failure("expected a member name in double quotes") }
            let keyOffset = index
            let key = try string()
            let repeated: Bool
            if members.count >= 8 {
                if names.isEmpty { names = Set(members.map(\.0)) }
                repeated = !names.insert(key).inserted
            } else {
                repeated = members.contains { $0.0 == key }
            }
            guard !repeated else {
                throw SyntaxError(offset: keyOffset, message: "member \(JSONValue.quoted(key)) appears twice in one object")
            }
            skipWhitespace()
            guard try peek() == UInt8(ascii: ":") else { throw failure("expected ':' after member \(JSONValue.quoted(key))") }
            index += 1
            members.append((key, try value(depth: depth)))
            if try closes(UInt8(ascii: "}"), after: "member \(JSONValue.quoted(key))") { return .object(members) }
        }
    }

    private mutating func array(depth: Int) throws -> JSONValue {
        guard depth <= Self.maximumDepth else { throw failure("nested more than \(Self.maximumDepth) levels deep") }
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            items.append(try value(depth: depth))
            if try closes(UInt8(ascii: "]"), after: "an array item") { return .array(items) }
        }
    }

    /// Consumes the `,` or the `closing` bracket after a member or item;
    /// true when the container ends.
    private mutating func closes(_ closing: UInt8, after what: String) throws -> Bool {
        skipWhitespace()
        let next = try peek()
        guard next == closing || next == UInt8(ascii: ",") else {
            throw failure("expected ',' or '\(Character(Unicode.Scalar(closing)))' after \(what)")
        }
        index += 1
        return next == closing
    }

    private mutating func string() throws -> String {
        index += 1
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { return try escapedString(from: start) }
            if byte < 0x20 { throw failure("control character in a string") }
            index += 1
        }
        throw failure("unterminated string")
    }

    /// The slow path, for strings with backslash escapes.
    private mutating func escapedString(from start: Int) throws -> String {
        var utf8 = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            }
            if byte < 0x20 { throw failure("control character in a string") }
            index += 1
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                continue
            }
            guard index < bytes.count else { break }
            let escape = bytes[index]
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                index += 1
                utf8.append(contentsOf: String(try unicodeEscape()).utf8)
                continue
            default:
                throw failure("invalid escape \(describe(escape))")
            }
            index += 1
        }
        throw failure("unterminated string")
    }

    /// The scalar of `XXXX` after `\u` (index is at the first hex digit),
    /// joining a UTF-16 surrogate pair written as two escapes.
    private mutating func unicodeEscape() throws -> Unicode.Scalar {
        let escapeStart = index - 2
        let code = try hex4()
        switch code {
        case 0xD800...0xDBFF:
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                throw SyntaxError(offset: escapeStart, message: "\\u escape of a lone UTF-16 high surrogate")
            }
            index += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else {
                throw SyntaxError(offset: escapeStart, message: "\\u escape of a UTF-16 high surrogate not followed by a low one")
            }
            // Both halves are in range, so the scalar is in 0x10000...0x10FFFF.
            let scalar = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            guard let value = Unicode.Scalar(scalar) else { throw SyntaxError(offset: escapeStart, message: "invalid \\u escape") }
            return value
        case 0xDC00...0xDFFF:
            throw SyntaxError(offset: escapeStart, message: "\\u escape of a lone UTF-16 low surrogate")
        default:
            guard let value = Unicode.Scalar(code) else { throw SyntaxError(offset: escapeStart, message: "invalid \\u escape") }
            return value
        }
    }

    private mutating func hex4() throws -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = Self.hexDigit(bytes[index]) else { throw failure("\\u needs four hex digits") }
            code = code << 4 | digit
            index += 1
        }
        return code
    }

    private static func hexDigit(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// RFC 8259's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    /// An integer that does not fit in `Int` is read as a `Double`.
    private mutating func number() throws -> JSONValue {
        let start = index
        var integral = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("a number needs a digit here") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("a number needs a digit after '.'") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("a number needs a digit in its exponent") }
            skipDigits()
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral, let value = Int(text) { return .int(value) }
        if let value = Double(text) { return .double(value) }
        index = start
        throw failure("invalid number \"\(text)\"")
    }

    private mutating func skipDigits() {
        while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private mutating func literal(_ word: StaticString) throws {
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard index + expected.count <= bytes.count, bytes[index..<(index + expected.count)].elementsEqual(expected) else {
            throw failure("expected \(word)")
        }
        index += expected.count
    }

    private func peek() throws -> UInt8 {
        guard index < bytes.count else { throw failure("unexpected end of input") }
        return bytes[index]
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, Self.isWhitespace(bytes[index]) { index += 1 }
    }

    private func failure(_ message: String) -> SyntaxError {
        SyntaxError(offset: index, message: message)
    }

    private func describe(_ byte: UInt8) -> String {
        if byte > 0x20 && byte < 0x7F { return "'" + String(Character(Unicode.Scalar(byte))) + "'" }
        return String(cFormat: "0x%02x", byte)
    }
}

/// Reading a parsed document: what nft's schema needs, with no casts at the
/// call site.
extension JSONValue {
    /// The first member named `key` of an object; `nil` for other values.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var int: Int? {
        if case .int(let value) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    var array: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    var members: [(String, JSONValue)]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// `(kind, body)` of an object with exactly one member, the shape of
    /// every nft statement, expression and listing element.
    var single: (kind: String, body: JSONValue)? {
        guard case .object(let members) = self, members.count == 1 else { return nil }
        return (members[0].0, members[0].1)
    }

    var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
