import ArgumentParser
import FoundationEssentials
import Glibc
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

@main
struct Cttune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cttune",
        abstract: "Size Linux connection tracking for the load a host carries, so a full table never drops connections.",
        discussion: """
            Exit codes: 0 success (with --detailed-exitcode: nothing to change), 1 error or refused, \
            2 changes pending or made (--detailed-exitcode only), 64 usage error. \
            `status` follows the monitoring-plugin convention: 0 ok, 1 warning, 2 critical, 3 unknown.
            """,
        version: "0.1.0",
        subcommands: [
            Plan.self, Apply.self, Rollback.self, Status.self, Rules.self, Modules.self, Unload.self, Blacklist.self, Learn.self,
        ]
    )

    /// The parser's `main`, except that a usage error echoing a flag value
    /// with a line break in it (`--cpus $'1\n2'`) still prints one error line.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let message = message(for: error)
            let full = fullMessage(for: error)
            if exitCode(for: error) == .validationFailure, let command = jsonCommand(CommandLine.arguments.dropFirst()) {
                printJSON([
                    ("command", .string(command)),
                    ("error", .failure(message: message, exitCode: ExitCode.validationFailure.rawValue)),
                ])
            }
            guard exitCode(for: error) == .validationFailure, message.contains(where: \.isNewline), full.hasPrefix("Error: " + message)
            else { exit(withError: error) }
            let rest = full.dropFirst("Error: ".count + message.count)
            StandardError.write("Error: " + Echo.oneLine(message) + rest + "\n")
            Glibc.exit(exitCode(for: error).rawValue)
        }
    }

    /// The subcommand of a command line that asks for `--format json`: a usage
    /// error then also prints the JSON error object. `nil` when the format is
    /// not json or does not parse (a usage error about `--format` itself stays text only).
    static func jsonCommand(_ arguments: ArraySlice<String>) -> String? {
        let names = configuration.subcommands.map { $0._commandName }
        guard let command = arguments.first(where: names.contains) else { return nil }
        let asksJSON = zip(arguments, arguments.dropFirst()).contains { $0 == "--format" && $1 == "json" }
        return asksJSON || arguments.contains("--format=json") ? command : nil
    }
}
