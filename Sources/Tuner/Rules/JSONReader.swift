import Foundation

/// A JSON reader for large `nft -j` listings: parses UTF-8 bytes straight
/// into native Swift values (`[String: Any]`, `[Any]`, `String`, `Int`,
/// `Double`, `Bool`, `NSNull`) and reports errors by byte offset, which the
/// caller turns into line and column.
///
/// JSONSerialization builds Foundation containers and was slower than nft
/// producing the listing; this keeps analysis cheaper than listing.
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
    static func parse(_ text: String) throws -> Any {
        var text = text
        return try text.withUTF8 { buffer in
            var reader = JSONReader(bytes: buffer)
            let value = try reader.value(depth: 0)
            reader.skipWhitespace()
            guard reader.index == buffer.count else { throw reader.failure("unexpected text after the JSON document") }
            return value
        }
    }

    private mutating func value(depth: Int) throws -> Any {
        skipWhitespace()
        guard index < bytes.count else { throw failure("unexpected end of input") }
        let byte = bytes[index]
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"):
            try literal("true")
            return true
        case UInt8(ascii: "f"):
            try literal("false")
            return false
        case UInt8(ascii: "n"):
            try literal("null")
            return NSNull()
        default:
            if byte == UInt8(ascii: "-") || Self.isDigit(byte) { return try number() }
            throw failure("unexpected character \(describe(byte))")
        }
    }

    private mutating func object(depth: Int) throws -> [String: Any] {
        guard depth <= Self.maximumDepth else { throw failure("nested more than \(Self.maximumDepth) levels deep") }
        index += 1
        var members: [String: Any] = [:]
        skipWhitespace()
        if try peek() == UInt8(ascii: "}") {
            index += 1
            return members
        }
        while true {
            skipWhitespace()
            guard try peek() == UInt8(ascii: "\"") else { throw failure("expected a member name in double quotes") }
            let key = try string()
            skipWhitespace()
            guard try peek() == UInt8(ascii: ":") else { throw failure("expected ':' after member \"\(key)\"") }
            index += 1
            members[key] = try value(depth: depth)
            if try closes(UInt8(ascii: "}"), after: "member \"\(key)\"") { return members }
        }
    }

    private mutating func array(depth: Int) throws -> [Any] {
        guard depth <= Self.maximumDepth else { throw failure("nested more than \(Self.maximumDepth) levels deep") }
        index += 1
        var items: [Any] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "]") {
            index += 1
            return items
        }
        while true {
            items.append(try value(depth: depth))
            if try closes(UInt8(ascii: "]"), after: "an array item") { return items }
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
            index += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: utf8, as: UTF8.self) }
            if byte < 0x20 {
                index -= 1
                throw failure("control character in a string")
            }
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                continue
            }
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code: UInt32 = try hex4()
                let highSurrogates: ClosedRange<UInt32> = 0xD800...0xDBFF
                if highSurrogates.contains(code), index + 1 < bytes.count,
                    bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                {
                    index += 2
                    let low: UInt32 = try hex4()
                    let high: UInt32 = code - 0xD800
                    code = 0x10000 + (high << 10) + (low &- 0xDC00)
                }
                let scalar: Unicode.Scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                utf8.append(contentsOf: Array(String(scalar).utf8))
            default:
                index -= 1
                throw failure("invalid escape \(describe(escape))")
            }
        }
        throw failure("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count,
            let code = UInt32(String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<(index + 4)]), as: UTF8.self), radix: 16)
        else { throw failure("\\u needs four hex digits") }
        index += 4
        return code
    }

    private mutating func number() throws -> Any {
        let start = index
        var integral = true
        while index < bytes.count, Self.isNumberByte(bytes[index]) {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { integral = false }
            index += 1
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral, let value = Int(text) { return value }
        if let value = Double(text) { return value }
        index = start
        throw failure("invalid number \"\(text)\"")
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        if isDigit(byte) { return true }
        switch byte {
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): return true
        default: return false
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private mutating func literal(_ word: String) throws {
        let expected = Array(word.utf8)
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
        return String(format: "0x%02x", byte)
    }
}
