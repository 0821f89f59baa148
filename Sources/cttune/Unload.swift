import ArgumentParser
import Foundation
import Tuner

extension Cttune {
    struct Unload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unload the conntrack/NAT modules, holders first, like `modprobe -r --remove-holders`.",
            discussion: "Refused while firewall rules need connection tracking or while a module is in use. Exit 1 when refused or when a module could not be unloaded (those unloaded before are listed).")

        @OptionGroup var tree: ModuleTreeOptions
        @Flag(help: "Print the exact unload order and what would stop it; unload nothing.") var dryRun = false
        @Option(help: "How to print the result.") var format: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                let host = try tree.host()
                // Only the running system has live rules; an image tree has none.
                let blocking = host.root.isLive ? try RulesetAnalyzer().analyzeLive().blockingRules : []
                let outcome = try host.unload(blockingRules: blocking, dryRun: dryRun)
                switch format {
                case .json: printJSON(ModuleReports.json(outcome))
                case .text:
                    let report = ModuleReports.text(outcome)
                    if !report.isEmpty { print(report) }
                    if let failure = outcome.failure, outcome.plan.refusal != failure {
                        FileHandle.standardError.write(Data("cttune: error: \(failure)\n".utf8))
                    }
                }
                return outcome.succeeded ? 0 : 1
            }
        }
    }
}
