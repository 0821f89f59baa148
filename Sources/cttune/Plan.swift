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
                let (plan, review, modules) = (preview.plan, preview.review, preview.modules)
                let (overrides, writers, refusal) = (preview.overrides, preview.writers, review?.refusal)
                switch format {
                case .json:
                    printJSON(
                        PlanReport.json(plan, explain: explain) { [ConfigOverride.json(overrides, for: $0.setting)] }
                            + [("writers", .array(writers.map { $0.json(plan: plan) }))]
                            + (review.map { [("stateless", StatelessReport.json($0, modules: modules))] } ?? [])
                            + [("error", .failure(refusal))])
                case .text:
                    print(
                        PlanReport.text(plan, explain: explain)
                            + (ConfigOverride.text(overrides) + ConntrackWriter.text(writers, plan: plan)).joined(separator: "\n")
                            + (review.map { StatelessReport.text($0, modules: modules) } ?? ""))
                }
                if let refusal { throw ReportedFailure(error: refusal) }
                if !plan.fitsBudget { return .failure }
                return detailedExitcode && plan.changed ? .changes : .success
            }
        }
    }
}
