import Foundation
import Testing

@testable import TunerCore
@testable import TunerModel

/// A process started in the background (a load generator, a namespace
/// holder), waited for later with a bound.
///
/// Started through `ExternalTool` (posix_spawn, see `Shell`); its stdout goes
/// to a temporary file rather than a pipe, so no other process that
/// inherited an end can keep the test waiting for end of file. A process
/// still running when the object goes away is killed and reaped.
package final class BackgroundProcess {
    private let processID: pid_t
    private let outputFile: String
    /// The exit code, or 128 + the signal that ended it, once reaped.
    private var exitCode: Int32?

    /// The most a test waits for a background process by default.
    package static let defaultLimit: Double = 900

    package init(_ arguments: [String]) throws {
        outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("cttune-background-\(UUID().uuidString)").path
        let output = open(outputFile, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(output)
            close(null)
        }
        guard output >= 0, null >= 0 else {
            throw Shell.Failure(command: arguments.joined(separator: " "), result: .init(status: errno, stdout: "", stderr: "open failed"))
        }
        processID = try ExternalTool(name: "env", path: "/usr/bin/env").start(arguments, stdin: null, stdout: output, stderr: null)
    }

    deinit {
        if exitCode == nil {
            kill(processID, SIGKILL)
            _ = ExternalTool.wait(processID)
        }
        unlink(outputFile)
    }

    /// Whether it has exited (and is reaped), without blocking.
    private func reapIfExited() -> Bool {
        if exitCode != nil { return true }
        var status: Int32 = 0
        let reaped = waitpid(processID, &status, WNOHANG)
        if reaped == processID || (reaped < 0 && errno == ECHILD) {
            exitCode = reaped == processID ? ExternalTool.exitStatus(status) : 0
            return true
        }
        return false
    }

    /// Waits until its stdout so far contains `text` (a "ready" line), at
    /// most `seconds`; `false` when it never came or the process ended first.
    package func waitForOutput(containing text: String, atMost seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let output = try? String(contentsOfFile: outputFile, encoding: .utf8), output.contains(text) { return true }
            if reapIfExited() { return false }
            usleep(20_000)
        }
        return false
    }

    /// Waits for the exit and returns stdout; a process still running after
    /// `defaultLimit` seconds is killed and the test fails.
    package func wait() -> String {
        let (output, endedInTime) = wait(atMost: Self.defaultLimit)
        if !endedInTime { Issue.record("a background process (pid \(processID)) still ran after \(Int(Self.defaultLimit)) s: killed") }
        return output
    }

    /// Waits at most `seconds`; kills the process (SIGKILL) if it is still
    /// running then, so a test never hangs. Returns stdout and whether it ended by itself.
    package func wait(atMost seconds: Double) -> (output: String, endedInTime: Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while !reapIfExited() && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let endedInTime = reapIfExited()
        if !endedInTime {
            kill(processID, SIGKILL)
            exitCode = ExternalTool.wait(processID)
        }
        let output = (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? ""
        return (output, endedInTime)
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    package func interrupt() { kill(processID, SIGINT) }

    /// The process id while it runs (the tool's own: /usr/bin/env execs it in place).
    package var pid: Int32? { reapIfExited() ? nil : processID }

    /// The exit code, or 128 + the signal that ended it; -1 while it runs.
    package var exitStatus: Int32 { exitCode ?? -1 }
}
