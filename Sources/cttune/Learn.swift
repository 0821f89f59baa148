import ArgumentParser
import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Learn: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "learn",
            abstract: "Measure the load from this host's own conntrack events and write it as a profile for plan.",
            discussion: """
                Prints the profile (text) or the raw measurements (json); --output also writes the profile to a file. \
                Exit codes: 0 measured, 1 error or refused (nf_conntrack_events is 0), 64 usage error.
                """)

        @Option(help: ArgumentHelp("How long to listen (the busiest minute needs 300 s or more).", valueName: "seconds"))
        var seconds: Int = 300
        @Option(
            help: ArgumentHelp(
                "Measure this network namespace: a name under /run/netns, an absolute path to a netns file, or pid:N.",
                valueName: "id"))
        var namespace: String?
        @Option(help: ArgumentHelp("Write the learned profile to this file (atomically).", valueName: "path")) var output: String?
        @Option(help: "How to print the result: the profile (text) or the raw measurements (json).") var format: OutputFormat = .text
        @Option(
            help: ArgumentHelp(
                """
                Also measure the N flow classes holding the most entry-seconds one by one (the profile's classes:); \
                0 measures the traffic as one.
                """, valueName: "n"))
        var top: Int = LearnRequest.defaultTopClasses

        func validate() throws {
            if !(1...86400).contains(seconds) { throw ValidationError("--seconds must be between 1 and 86400, got \(seconds)") }
            if !(0...1000).contains(top) { throw ValidationError("--top must be between 0 and 1000 classes, got \(top)") }
            if let output {
                // Checked before the window, not after minutes of measuring.
                let directory = FilePath(output).removingLastComponent().string
                var isDirectory = false
                let exists = FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory)
                if !exists || !isDirectory {
                    throw ValidationError("--output \(output): no directory \(directory) to write it in — create it first")
                }
            }
            if let namespace {
                do { _ = try NamespaceIdentifier.parse(CommandLinePath.namespace(namespace)) } catch {
                    throw ValidationError("--namespace: \(error)")
                }
            }
        }

        /// The progress line on a terminal's stderr, rewritten in place.
        @Sendable static func showProgress(secondsLeft: Double, flows: Int) {
            StandardError.write("\rlearning: \(Int(secondsLeft.rounded(.up))) s left, \(flows) flows followed   ")
        }

        func run() throws {
            try reportingErrors("learn", format: format) {
                StopRequest.install()
                var request = LearnRequest(
                    seconds: Double(seconds), namespace: try namespace.map { try NamespaceIdentifier.parse(CommandLinePath.namespace($0)) })
                request.topClasses = top
                let onTerminal = isatty(STDERR_FILENO) == 1
                let progress: (@Sendable (Double, Int) -> Void)? = onTerminal ? Self.showProgress : nil
                let report = try LoadLearning.learn(request, progress: progress, shouldStop: { StopRequest.isRequested })
                if onTerminal { StandardError.write("\r\u{1B}[K") }
                if let output {
                    let file = FilePath(CommandLinePath.absolute(output))
                    try AtomicFile.write(report.profileYAML(), to: file, createDirectories: false)
                }
                for warning in report.warnings { Diagnostics.warning(warning) }
                try emit(LearnOutput(report, profileFile: output), format: format)
                return .success
            }
        }
    }
}
