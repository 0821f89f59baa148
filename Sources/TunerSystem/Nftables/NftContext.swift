import CNftables
import FoundationEssentials
import TunerCore

/// One libnftables context: runs nft commands in the calling thread's
/// network namespace, as one transaction per call, and returns what nft
/// would print. The only code that touches libnftables.
///
/// Not `Sendable`: a context belongs to the thread (and so the network
/// namespace) it was made in.
public final class NftContext {
    private let context: OpaquePointer

    /// - Parameter json: print listings as JSON (`nft -j`).
    /// - Throws: `TunerError.systemCallFailed` when libnftables cannot make a context.
    ///
    /// The corresponding libnftables call is `nft_ctx_new`.
    public init(json: Bool = false) throws {
        guard let made = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw TunerError.systemCallFailed(call: "nft_ctx_new", errno: .noMemory)
        }
        context = made
        // Output and errors to buffers, never to the process's stdout and stderr.
        nft_ctx_buffer_output(context)
        nft_ctx_buffer_error(context)
        if json { nft_ctx_output_set_flags(context, nft_ctx_output_get_flags(context) | UInt32(NFT_CTX_OUTPUT_JSON)) }
    }

    deinit { nft_ctx_free(context) }

    /// Runs `commands` (nft's script syntax, several lines) as one
    /// transaction: every change in it takes effect, or none does.
    ///
    /// - Parameter check: only check them (`nft -c`): parse, resolve and
    ///   validate against the kernel without changing the ruleset.
    /// - Returns: what nft prints (a listing).
    /// - Throws: `TunerError.nftRejected` with nft's own first error line.
    ///
    /// The corresponding libnftables call is `nft_run_cmd_from_buffer`.
    @discardableResult
    public func run(_ commands: String, check: Bool = false) throws -> String {
        nft_ctx_set_dry_run(context, check)
        defer { nft_ctx_set_dry_run(context, false) }
        let status = nft_run_cmd_from_buffer(context, commands)
        let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
        let errors = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        guard status == 0 else {
            let first = errors.split(separator: "\n").first { $0.contains("Error:") } ?? errors.split(separator: "\n").first
            throw TunerError.nftRejected(message: first.map(String.init) ?? "nft failed (status \(status))")
        }
        return output
    }
}
