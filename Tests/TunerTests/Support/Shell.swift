import Foundation

/// Runs external tools (ip, nft, modprobe, the cttune binary) from tests.
enum Shell {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// A tool that exits before reading all its input must make the write
    /// fail (EPIPE), not kill the test process: the test process decides
    /// this for itself, as a program does (cttune's library leaves SIGPIPE alone).
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Runs `arguments[0]` (looked up in PATH) and waits for it.
    @discardableResult
    static func run(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil) throws -> Result {
        _ = ignoreSIGPIPE
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        let output = Pipe(), errors = Pipe(), feed = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = feed
        try process.run()
        if let input { feed.fileHandleForWriting.write(Data(input.utf8)) }
        try feed.fileHandleForWriting.close()
        // Read both pipes before waiting so a chatty tool cannot block on a full pipe.
        final class Collected: @unchecked Sendable { var data = Data() }  // written before group.leave(), read after wait()
        let errData = Collected()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData.data = errors.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.data, as: UTF8.self))
    }

    /// Runs and throws with the tool's stderr when it fails.
    @discardableResult
    static func check(_ arguments: [String], input: String? = nil) throws -> String {
        let result = try run(arguments, input: input)
        guard result.status == 0 else { throw Failure(command: arguments.joined(separator: " "), result: result) }
        return result.stdout
    }

    struct Failure: Error, CustomStringConvertible {
        var command: String
        var result: Result
        var description: String { "`\(command)` exited \(result.status): \(result.stderr)" }
    }
}

/// Where the package, its fixtures and its built products are.
enum TestPaths {
    static let package = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = package.appendingPathComponent("Tests/TunerTests/Fixtures")
    static let profiles = package.appendingPathComponent("profiles")

    /// The build products directory: the test runner lives there.
    static let products: URL = {
        if let override = ProcessInfo.processInfo.environment["CTTUNE_PRODUCTS"] { return URL(fileURLWithPath: override) }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("cttune").path) {
            url.deleteLastPathComponent()
        }
        return url
    }()

    static var cttune: String { products.appendingPathComponent("cttune").path }
    static var loadgen: String { products.appendingPathComponent("ct-loadgen").path }

    /// A fresh empty directory, removed by the caller.
    static func temporaryDirectory(_ label: String = "cttune-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
