import ArgumentParser
import Tuner

extension Cttune {
    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show current and planned conntrack settings for a load profile, with the reason. Writes nothing.",
            discussion: "Built-in profiles: \(ProfileCatalog.builtinNames.joined(separator: ", ")).")

        @OptionGroup var options: ProfileOptions
        @Option(help: "How to print the plan.") var format: OutputFormat = .text
        @Flag(help: "Show the model's arithmetic behind every planned value.") var explain = false
        @Flag(help: "Exit 2 when the plan would change something, 0 when nothing changes.") var detailedExitcode = false

        func run() throws {
            try reportingErrors("plan", format: format) {
                let (facts, profile) = try options.load()
                var plan = Planner.plan(for: facts, profile: profile)
                let root = try options.root.systemRoot()
                let review = profile.stateful ? nil : try StatelessReview.review(plan, root: root)
                let modules = review.map { StatelessModulePlan.preview(root: root, blockingRules: $0.rules?.blockingRules ?? []) }
                plan = review?.plan ?? plan
                let overrides = PersistentConfig.overrides(for: plan, under: root)
                let writers = ConntrackWriters.find(under: root, cpus: plan.facts.cpus)
                let refusal = review?.refusal
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
                if !plan.fitsBudget { return 1 }
                return detailedExitcode && plan.changed ? 2 : 0
            }
        }
    }
}
