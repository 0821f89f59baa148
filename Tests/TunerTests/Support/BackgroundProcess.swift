import Foundation

/// A process started in the background (a load generator), waited for later.
final class BackgroundProcess {
    private let process = Process()
    private let output = Pipe()
    private var collected = Data()
    private let reader = DispatchGroup()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        reader.enter()
        DispatchQueue.global().async { [self] in
            collected = output.fileHandleForReading.readDataToEndOfFile()
            reader.leave()
        }
    }

    /// Waits for the exit and returns stdout.
    func wait() -> String {
        reader.wait()
        process.waitUntilExit()
        return String(decoding: collected, as: UTF8.self)
    }

    /// Waits at most `seconds`; kills the process (SIGKILL) if it is still
    /// running then, so a test never hangs. Returns stdout and whether it ended by itself.
    func wait(atMost seconds: Double) -> (output: String, endedInTime: Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let endedInTime = !process.isRunning
        if !endedInTime { kill(process.processIdentifier, SIGKILL) }
        return (wait(), endedInTime)
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    func interrupt() { process.interrupt() }

    /// The process id (the tool's own: /usr/bin/env execs it in place).
    var pid: Int32? { process.isRunning ? process.processIdentifier : nil }

    var exitStatus: Int32 { process.terminationStatus }
}
