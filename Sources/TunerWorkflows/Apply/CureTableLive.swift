import TunerCore
import TunerModel
import TunerSystem

/// cttune's table of cures in the running kernel, in the network namespace
/// of the calling thread, read and replaced through libnftables.
public enum CureTableLive {
    /// The table as `nft list table inet cttune` prints it; `nil` when there is none.
    /// - Throws: `TunerError.nftRejected` when the ruleset cannot be read (no CAP_NET_ADMIN).
    public static func read() throws -> String? { try listing(json: false) }

    /// `nft [-j] list table inet cttune`; `nil` when there is no such table.
    /// - Throws: `TunerError.unreadable` naming what it takes (CAP_NET_ADMIN), or nft's error.
    static func listing(json: Bool) throws -> String? {
        do {
            return try NftContext(json: json).run("list table \(CureTable.qualifiedName)")
        } catch TunerError.nftRejected(let message) where message.contains("No such file or directory") {
            return nil
        } catch TunerError.nftRejected(let message) where message.contains("Operation not permitted") {
            throw TunerError.unreadable(
                path: "nft table \(CureTable.qualifiedName)", reason: "reading the ruleset needs CAP_NET_ADMIN in this network namespace")
        }
    }

    /// Replaces the table whole with `content` (nft script text), or removes
    /// it (`nil`), in one transaction: all of it takes effect, or nothing.
    public static func replace(with content: String?) throws {
        try NftContext().run(CureTable.replacement(with: content))
    }
}
