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
        guard case .object(let top) = document, case .array(let items)? = top.first(where: { $0.0 == "nftables" })?.1 else {
            return []
        }
        return items.compactMap { item in
            guard case .object(let members) = item, case .object(let object)? = members.first(where: { $0.0 == "ct timeout" })?.1 else {
                return nil
            }
            func string(_ key: String) -> String? {
                if case .string(let value)? = object.first(where: { $0.0 == key })?.1 { return value }
                return nil
            }
            var policy: [Timeout] = []
            if case .object(let states)? = object.first(where: { $0.0 == "policy" })?.1 {
                for (state, value) in states {
                    if case .int(let seconds) = value { policy.append(Timeout(state: state, seconds: seconds)) }
                }
            }
            return CureInForce(
                className: string("comment") ?? string("name") ?? "?", protocolName: string("protocol") ?? "?", policy: policy)
        }
    }
}
