import ArgumentParser
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan",
            abstract: "Show current and planned conntrack settings for a load profile, with the reason. Writes nothing.",
            discussion: "Built-in profiles: \(ProfileCatalog.builtinNames.joined(separator: ", ")).")

        @OptionGroup var options: ProfileOptions
        @Option(help: "How to print the plan.") var format: OutputFormat = .text
        @Flag(help: "Show the model's arithmetic behind every planned value.") var explain = false
        @Flag(help: "Exit 2 when the plan would change something, 0 when nothing changes.") var detailedExitcode = false

        func run() throws {
            try reportingErrors("plan", format: format) {
                let preview = try PlanPreview.make(try options.planInputs(), under: try options.root.systemRoot())
                try emit(PlanOutput(preview, explain: explain), format: format)
                if !preview.plan.fitsBudget { return .failure }
                return detailedExitcode && preview.plan.changed ? .changes : .success
            }
        }
    }
}
