import Foundation

/// prometheus_client's text-format parser, run from the venv that
/// scripts/test-python.sh creates (`make test` does), through
/// scripts/parse-prometheus.py.
enum PrometheusParser {
    static let python = TestPaths.package.appendingPathComponent(".cache/python-venv/bin/python").path
    static let script = TestPaths.package.appendingPathComponent("scripts/parse-prometheus.py").path

    /// For `.enabled(if:)`: the venv with prometheus_client exists.
    static let isAvailable = (try? Shell.run([python, "-c", "import prometheus_client"]).status) == 0

    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct Family: Decodable {
        var type: String
        var help: String
        var samples: [Sample]
    }

    /// The families of a textfile, as the real parser sees them; throws with
    /// the parser's message when the file is not valid exposition format.
    static func parse(_ path: String) throws -> [String: Family] {
        let output = try Shell.check([python, script, path])
        return try JSONDecoder().decode([String: Family].self, from: Data(output.utf8))
    }

    /// The value of the one sample of `family` whose labels include `labels`.
    static func value(_ families: [String: Family], _ family: String, _ labels: [String: String] = [:]) -> Double? {
        families[family]?.samples.first { sample in labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }
}

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

    var exitStatus: Int32 { process.terminationStatus }
}
