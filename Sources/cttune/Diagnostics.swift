import ArgumentParser
import FoundationEssentials
import TunerCore
import TunerWorkflows

/// The exit codes of the contract (docs and DESIGN.md "Exit codes"), by name.
extension ExitCode {
    /// With `--detailed-exitcode`: success, and changes are pending (plan, `--check`) or were made.
    static let changes = ExitCode(2)
    /// status: the monitoring-plugin WARNING.
    static let warning = ExitCode(1)
    /// status: the monitoring-plugin CRITICAL.
    static let critical = ExitCode(2)
    /// status: the monitoring-plugin UNKNOWN (the state could not be read).
    static let unknown = ExitCode(3)
}

/// Every line cttune writes on stderr besides progress: `cttune: error: …`,
/// `cttune: warning: …`, `cttune: partial: …`, each one line, whatever the
/// message holds.
enum Diagnostics {
    enum Kind: String {
        case error, warning, partial
    }

    static func print(_ kind: Kind, _ message: String) {
        StandardError.write("cttune: \(kind.rawValue): \(Echo.oneLine(message))\n")
    }

    static func error(_ error: TunerError) { print(.error, error.description) }
    static func warning(_ message: String) { print(.warning, message) }
    static func partial(_ message: String) { print(.partial, message) }
}

extension Verdict {
    /// The monitoring-plugin exit code of this verdict.
    var exitCode: ExitCode {
        switch self {
        case .ok: return .success
        case .warning: return .warning
        case .critical: return .critical
        case .unknown: return .unknown
        }
    }
}
