import Foundation

@testable import TunerCore
@testable import TunerModel

/// Runs external tools (ip, nft, modprobe, the cttune binary) from tests.
///
/// Through `ExternalTool` (posix_spawn, poll and waitpid), never Foundation's
/// Process: Process can miss the exit of a child that leaves daemonized
/// grandchildren, and waits through a run-loop socket that a thread inside a
/// network namespace cannot rely on; either way a test would wait forever.
/// Every run is bounded: a tool that prints nothing and does not exit for
/// `silence` seconds is killed and the test fails naming it.
package enum Shell {
    package struct Result {
        package var status: Int32
        package var stdout: String
        package var stderr: String

        package init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Long enough for the slowest tool a test runs (a load generator's
    /// window, a package install); short enough that a hang fails the test
    /// long before CI's limit.
    package static let defaultSilence: Int32 = 600

    /// A tool that exits before reading all its input must make the write
    /// fail (EPIPE), not kill the test process: the test process decides
    /// this for itself, as a program does (cttune's library leaves SIGPIPE alone).
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Runs `arguments[0]` (looked up in PATH by env) and waits for it.
    /// - Parameter environment: variables added to the test's own.
    @discardableResult
    package static func run(
        _ arguments: [String], input: String? = nil, environment: [String: String]? = nil, silence: Int32 = defaultSilence
    ) throws -> Result {
        _ = ignoreSIGPIPE
        let merged = environment.map { ProcessInfo.processInfo.environment.merging($0) { _, new in new } }
        let output = try ExternalTool(name: "env", path: "/usr/bin/env")
            .run(arguments, input: input, environment: merged, silenceTimeoutSeconds: silence)
        return Result(status: output.status, stdout: output.stdout, stderr: output.stderr)
    }

    /// Runs and throws with the tool's stderr when it fails.
    @discardableResult
    package static func check(_ arguments: [String], input: String? = nil) throws -> String {
        let result = try run(arguments, input: input)
        guard result.status == 0 else { throw Failure(command: arguments.joined(separator: " "), result: result) }
        return result.stdout
    }

    package struct Failure: Error, CustomStringConvertible {
        package var command: String
        package var result: Result

        package init(command: String, result: Result) {
            self.command = command
            self.result = result
        }

        package var description: String { "`\(command)` exited \(result.status): \(result.stderr)" }
    }
}

/// Where the package, its fixtures and its built products are.
package enum TestPaths {
    package static let package = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    package static let fixtures = package.appendingPathComponent("Tests/TunerTests/Fixtures")
    package static let profiles = package.appendingPathComponent("profiles")

    /// The build products directory: the test runner lives there.
    package static let products: URL = {
        if let override = ProcessInfo.processInfo.environment["CTTUNE_PRODUCTS"] { return URL(fileURLWithPath: override) }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("cttune").path) {
            url.deleteLastPathComponent()
        }
        return url
    }()

    package static var cttune: String { products.appendingPathComponent("cttune").path }
    package static var loadgen: String { products.appendingPathComponent("ct-loadgen").path }

    /// A fresh empty directory, removed by the caller.
    package static func temporaryDirectory(_ label: String = "cttune-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
