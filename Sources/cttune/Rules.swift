import ArgumentParser
import FoundationEssentials
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Rules: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rules",
            abstract: "Tell whether this host's firewall needs connection tracking, rule by rule.",
            discussion: """
                Reads the live ruleset of this network namespace (nft -j list ruleset, iptables-save, \
                ip6tables-save) or a saved one: nft JSON, nft text (loaded into a private network \
                namespace; needs root) or iptables-save output, detected automatically. \
                Verdict: needed, not-needed, or partially-avoidable. Changes nothing.
                """)

        @Option(help: ArgumentHelp("Analyse this saved ruleset instead of the live one; - reads stdin.", valueName: "file|-"))
        var ruleset: String?
        @Option(help: "How to print the analysis.") var format: OutputFormat = .text

        func run() throws {
            try reportingErrors("rules", format: format) {
                let analyzer = RulesetAnalyzer()
                try emit(
                    RulesOutput(
                        try ruleset.map { try analyzer.analyze(file: $0 == "-" ? $0 : CommandLinePath.absolute($0)) }
                            ?? analyzer.analyzeLive()), format: format)
                return .success
            }
        }
    }
}
