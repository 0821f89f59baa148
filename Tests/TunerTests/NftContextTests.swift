import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerSystem

/// cttune's own table through libnftables, checked with the real `nft`: a
/// change is one transaction, so a rejected replacement leaves the table
/// that was there.
@Suite("libnftables: cttune's table in one transaction", .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
struct NftContextTests {
    static func table(port: String) -> String {
        """
        table inet cttune {
            chain prerouting {
                type filter hook prerouting priority raw; policy accept;
                udp dport \(port) notrack
            }
        }
        """
    }

    /// The same table replaced: created if absent, deleted, written, all in one transaction.
    static func replacement(port: String) -> String {
        "add table inet cttune\ndelete table inet cttune\n" + table(port: port)
    }

    /// `body` with a context made inside `namespace` (libnftables works in the calling thread's).
    static func inNamespace<T>(_ namespace: TestNamespace, json: Bool = false, _ body: @escaping (NftContext) throws -> T) throws -> T {
        let inode = try #require(NamespaceDirectory.inode(of: .named(namespace.name), under: .live))
        let entry = NamespaceDirectory.Entry(identifier: .named(namespace.name), inode: inode)
        // The body's own error comes back as it was thrown, not as the visitor's.
        let outcome = try NamespaceVisitor.visit([entry], under: .live) { _ in Result { try body(try NftContext(json: json)) } }[0].get()
        return try outcome.get()
    }

    @Test("a replacement takes effect whole; a rejected one leaves the previous table; a check changes nothing")
    func transactions() throws {
        let namespace = try TestNamespace("nft-ctx")
        defer { namespace.delete() }
        func listed() throws -> String { try namespace.exec(["nft", "list", "table", "inet", "cttune"]) }

        try Self.inNamespace(namespace) { try $0.run(Self.replacement(port: "53")) }
        #expect(try listed().contains("udp dport 53 notrack"))

        try Self.inNamespace(namespace) { try $0.run(Self.replacement(port: "5353")) }
        #expect(try listed().contains("udp dport 5353 notrack") && !(try listed().contains("dport 53 ")))

        // Port 99999 is out of range: nft refuses the whole buffer, the delete included.
        #expect(throws: TunerError.self) { try Self.inNamespace(namespace) { try $0.run(Self.replacement(port: "99999")) } }
        #expect(try listed().contains("udp dport 5353 notrack"))

        try Self.inNamespace(namespace) { try $0.run(Self.replacement(port: "123"), check: true) }
        #expect(try listed().contains("udp dport 5353 notrack"))

        let json = try Self.inNamespace(namespace, json: true) { try $0.run("list table inet cttune") }
        #expect(json.hasPrefix("{\"nftables\""))

        try Self.inNamespace(namespace) { try $0.run("delete table inet cttune") }
        #expect(try namespace.run(["nft", "list", "table", "inet", "cttune"]).status != 0)
    }

    @Test("nft's own error line comes back in the error")
    func rejectedMessage() throws {
        let namespace = try TestNamespace("nft-ctx")
        defer { namespace.delete() }
        do {
            try Self.inNamespace(namespace) { try $0.run("add rule inet missing chain accept") }
            Issue.record("a rule in a missing table was accepted")
        } catch let error as TunerError {
            guard case .nftRejected(let message) = error else { throw error }
            #expect(message.contains("Error:"), "\(message)")
        }
    }
}
