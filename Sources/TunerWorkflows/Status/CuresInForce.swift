import TunerCore
import TunerModel

/// One class's cure as the kernel holds it in cttune's table: its timeout
/// policy (`ct timeout` object), named by the class it was planned for.
public struct CureInForce: Sendable, Equatable {
    public struct Timeout: Sendable, Equatable {
        /// nft's name of the state (`unreplied`, `established`, …).
        public var state: String
        public var seconds: Int
    }

    /// The class's name (the object's comment).
    public var className: String
    /// `tcp` or `udp`.
    public var protocolName: String
    /// In the order nft lists them.
    public var policy: [Timeout]

    /// The cures in cttune's table in the calling thread's namespace; `nil`
    /// when there is no such table.
    /// - Throws: `TunerError.nftRejected` when the ruleset cannot be read.
    public static func read() throws -> [CureInForce]? {
        try CureTableLive.listing(json: true).map(parse)
    }

    /// The `ct timeout` objects of `nft -j list table` output.
    static func parse(_ json: String) throws -> [CureInForce] {
        let document: JSONValue
        do {
            document = try JSONReader.parse(json)
        } catch {
            throw TunerError.malformed(path: "nft -j list table \(CureTable.qualifiedName)", detail: "\(error)")
        }
        return (document["nftables"]?.array ?? []).compactMap { item in
            guard let object = item["ct timeout"] else { return nil }
            let policy = (object["policy"]?.members ?? []).compactMap { state, value in
                value.int.map { Timeout(state: state, seconds: $0) }
            }
            return CureInForce(
                className: object["comment"]?.string ?? object["name"]?.string ?? "?", protocolName: object["protocol"]?.string ?? "?",
                policy: policy)
        }
    }
}
