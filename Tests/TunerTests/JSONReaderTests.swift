import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// cttune's own JSON reader (used for nft listings, because it is faster
/// than JSONSerialization) reads what Foundation reads, rejects broken JSON
/// at the byte where it breaks (strictly: no trailing commas, which nft
/// never writes), and no input makes it trap.
@Suite("the nft JSON reader agrees with JSONSerialization")
struct JSONReaderTests {
    /// The typed value as the Foundation objects JSONSerialization returns.
    static func foundation(_ value: JSONValue) -> Any {
        switch value {
        case .null: return NSNull()
        case .bool(let value): return value
        case .int(let value): return value
        case .double(let value): return value
        case .string(let value): return value
        case .array(let items): return items.map(foundation)
        case .object(let members): return Dictionary(members.map { ($0.0, foundation($0.1)) }) { _, last in last }
        }
    }

    static func canonical(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    @Test(
        "documents read the same, escapes and numbers included",
        arguments: [
            #"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}"#,
            #"{"a": "caf\u00e9 \ud83d\ude00 \"quoted\" back\\slash \/ tab\t", "n": [0, -12, 3.5, 1e3, -2.5E-2], "b": [true, false, null], "e": {}, "l": []}"#,
            "  \n{\"nested\": [[[{\"deep\": [1]}]]]}\n",
            #"{"big": [9223372036854775807, -9223372036854775808, 0.5e-3, 1E+2]}"#,
        ])
    func agrees(document: String) throws {
        let ours = try JSONReader.parse(document)
        let theirs = try JSONSerialization.jsonObject(with: Data(document.utf8))
        #expect(try Self.canonical(Self.foundation(ours)) == Self.canonical(theirs))
    }

    @Test("members keep their document order and are read without casts")
    func typedAccess() throws {
        let value = try JSONReader.parse(#"{"rule": {"family": "inet", "handle": 4, "expr": [{"accept": null}]}}"#)
        let (kind, body) = try #require(value.single)
        #expect(kind == "rule")
        #expect(body.members?.map(\.0) == ["family", "handle", "expr"])
        #expect(body["family"]?.string == "inet" && body["handle"]?.int == 4)
        #expect(body["expr"]?.array?.first?.single?.body.isNull == true)
        #expect(body["handle"]?.string == nil && body["missing"] == nil)
    }

    @Test("integers beyond Int read as doubles, as Foundation reads them")
    func hugeNumbers() throws {
        #expect(try JSONReader.parse("99999999999999999999") == .double(1e20))
        #expect(try JSONReader.parse("-9223372036854775809") == .double(-9223372036854775809.0))
        #expect(try JSONReader.parse("1e999") == .double(.infinity))
    }

    @Test(
        "the real listing of a stateful ruleset reads the same",
        .enabled(if: TestHost.realKernel, "needs root, a network namespace and nft"))
    func realListing() throws {
        let listing = RulesetErrorMessageTests.Listings.shared.nftJSON
        #expect(
            try Self.canonical(Self.foundation(JSONReader.parse(listing)))
                == Self.canonical(JSONSerialization.jsonObject(with: Data(listing.utf8))))
    }

    @Test(
        "broken documents are rejected at the right byte",
        arguments: [
            ("{\"a\": 1,}", 8), ("[1 2]", 3), ("{\"a\" 1}", 5), ("\"open", 5), ("[tru]", 1), ("{\"a\": 01x}", 7), ("[1] 2", 4), ("", 0),
            ("[-]", 2), ("[1.]", 3), ("[1e]", 3), ("[+1]", 1), ("\"\\u12\"", 5), ("\"\\u+abc\"", 3), ("\"\\", 2), ("\"\\x\"", 2),
        ])
    func rejects(document: String, offset: Int) throws {
        do {
            _ = try JSONReader.parse(document)
            Issue.record("accepted \(document)")
        } catch let error as JSONReader.SyntaxError {
            #expect(error.offset == offset)
        }
    }

    @Test(
        "lone or mismatched UTF-16 surrogate escapes are errors, not traps",
        arguments: [#""\ud800\u0041""#, #""\ud800""#, #""\udc00""#, #""x\udbff\udbff""#, #""\ud800\n""#, #"{"name": "\ud800\u0041"}"#])
    func surrogates(document: String) throws {
        let error = #expect(throws: JSONReader.SyntaxError.self) { try JSONReader.parse(document) }
        #expect(error?.message.contains("surrogate") == true)
    }

    @Test("nesting a million levels deep is an error, not a stack overflow")
    func deepNesting() throws {
        for opener in ["[", "{\"a\":"] {
            let error = #expect(throws: JSONReader.SyntaxError.self) { try JSONReader.parse(String(repeating: opener, count: 1_000_000)) }
            #expect(error?.message.contains("nested more than") == true)
        }
    }

    /// Every prefix of a document full of escapes, and a fixed-seed set of
    /// byte mutations of it, either parses or throws a `SyntaxError`: the
    /// test process would die on a trap.
    @Test("no prefix or byte mutation of a document traps the reader")
    func noInputTraps() throws {
        let document = Array(
            #"{"nftables": [{"rule": {"family": "inet", "handle": -4, "expr": [{"match": {"left": {"ct": {"key": "state"}}, "right": ["established", "caf\u00e9 \ud83d\ude00 \\ \/ \b\f\n\r\t"], "n": [0, 1.5e-3, -2E+2, true, false, null]}}]}}]}"#
                .utf8)
        var generator = SplitMix64(state: 0x6374_7475_6e65)
        var parsed = 0, rejected = 0
        func attempt(_ bytes: [UInt8]) {
            do {
                _ = try JSONReader.parse(String(decoding: bytes, as: UTF8.self))
                parsed += 1
            } catch is JSONReader.SyntaxError {
                rejected += 1
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        for length in 0...document.count { attempt(Array(document.prefix(length))) }
        let alphabet = Array(#"{}[]":,\u0123456789abcdefABCDEF+-.eE ntrfl"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xFF]
        for _ in 0..<3000 {
            var bytes = document
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = alphabet.randomElement(using: &generator)!
            }
            attempt(bytes)
        }
        #expect(parsed >= 1 && rejected > 1000)
    }
}
