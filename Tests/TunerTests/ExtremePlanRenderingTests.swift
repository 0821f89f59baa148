import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerWorkflows

/// The renderers on the plans the model makes at its documented limits
/// (GCModelTests checks the plans themselves).
@Suite("renderers at the model's limits")
struct ExtremePlanRenderingTests {
    @Test("plans far past the budget render as text and JSON")
    func limitsRender() throws {
        var profile = LoadProfile(name: "limits")
        profile.tcp.newPerSecond = 1_000_000
        profile.udp.newPerSecond = 5_000_000
        profile.namespaces = 100_000
        for facts in [
            FixtureFacts.host(memory: Int.max, cpus: Int.max, entryBytes: Int.max), FixtureFacts.host(memory: 0, cpus: 1, entryBytes: 1),
        ] {
            let plan = Planner.plan(for: facts, profile: profile)
            #expect(!plan.fitsBudget)
            let text = PlanReport.text(plan, explain: true)
            #expect(text.contains("DOES NOT FIT"))
            let json = JSONValue.object(PlanReport.json(plan, explain: true)).rendered(pretty: false)
            #expect(try JSONReader.parse(json)["fits_budget"] == .bool(false))
        }
    }
}
