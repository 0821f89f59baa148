import Foundation
import Testing

@testable import Tuner

/// cttune's own JSON reader (used for nft listings, because it is faster
/// than JSONSerialization) reads what Foundation reads, and rejects broken
/// JSON at the byte where it breaks (strictly: no trailing commas, which nft
/// never writes).
@Suite("the nft JSON reader agrees with JSONSerialization")
struct JSONReaderTests {
    static func canonical(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    @Test(
        "documents read the same, escapes and numbers included",
        arguments: [
            #"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}"#,
            #"{"a": "caf\u00e9 \ud83d\ude00 \"quoted\" back\\slash \/ tab\t", "n": [0, -12, 3.5, 1e3, -2.5E-2], "b": [true, false, null], "e": {}, "l": []}"#,
            "  \n{\"nested\": [[[{\"deep\": [1]}]]]}\n",
        ])
    func agrees(document: String) throws {
        let ours = try JSONReader.parse(document)
        let foundation = try JSONSerialization.jsonObject(with: Data(document.utf8))
        #expect(try Self.canonical(ours) == Self.canonical(foundation))
    }

    @Test("the real listing of a stateful ruleset reads the same", .enabled(if: Host.realKernel, "needs root, a network namespace and nft"))
    func realListing() throws {
        let listing = RulesetErrorMessageTests.Listings.shared.nftJSON
        #expect(try Self.canonical(JSONReader.parse(listing)) == Self.canonical(JSONSerialization.jsonObject(with: Data(listing.utf8))))
    }

    @Test(
        "broken documents are rejected at the right byte",
        arguments: [
            ("{\"a\": 1,}", 8), ("[1 2]", 3), ("{\"a\" 1}", 5), ("\"open", 5), ("[tru]", 1), ("{\"a\": 01x}", 8), ("[1] 2", 4), ("", 0),
        ])
    func rejects(document: String, offset: Int) throws {
        do {
            _ = try JSONReader.parse(document)
            Issue.record("accepted \(document)")
        } catch let error as JSONReader.SyntaxError {
            #expect(error.offset == offset)
        }
    }
}
