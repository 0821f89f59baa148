import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

@Suite("Planner and profile parser properties")
struct PlannerPropertyTests {
    static func randomProfile(_ random: inout SplitMix64) -> LoadProfile {
        var profile = LoadProfile(name: "random")
        profile.tcp.newPerSecond = Double.random(in: 0...50_000, using: &random)
        profile.tcp.establishedSeconds = Double.random(in: 0...7200, using: &random)
        profile.tcp.rstCloseRatio = Double.random(in: 0...1, using: &random)
        profile.tcp.orphanRatio = Double.random(in: 0...0.05, using: &random)
        profile.tcp.halfOpenRatio = Double.random(in: 0...0.5, using: &random)
        profile.udp.newPerSecond = Double.random(in: 0...20_000, using: &random)
        profile.udp.streamRatio = Double.random(in: 0...1, using: &random)
        profile.otherPerSecond = Double.random(in: 0...1000, using: &random)
        profile.burstFactor = Double.random(in: 1...10, using: &random)
        profile.headroom = Double.random(in: 1...3, using: &random)
        profile.memoryBudgetPercent = Double.random(in: 0.5...30, using: &random)
        profile.chainLength = Int.random(in: 1...8, using: &random)
        if Bool.random(using: &random) { profile.gcLatencySeconds = Double.random(in: 0...60, using: &random) }
        if Bool.random(using: &random) { profile.pinnedTimeouts[.tcpTimeoutTimeWait] = Int.random(in: 1...300, using: &random) }
        return profile
    }

    static func randomHost(_ random: inout SplitMix64) -> HostFacts {
        FixtureFacts.host(
            memory: Int.random(in: (128 << 20)...(256 << 30), using: &random),
            cpus: Int.random(in: 1...128, using: &random),
            entryBytes: [256, 320, 384].randomElement(using: &random)!,
            count: Int.random(in: 0...100_000, using: &random))
    }

    @Test("any profile on any host: positive sizes, hash a multiple of 512, max covers peak x headroom when it fits")
    func invariants() {
        var random = SplitMix64(state: 20_261_126)
        for round in 0..<2000 {
            let facts = Self.randomHost(&random), profile = Self.randomProfile(&random)
            let plan = Planner.plan(for: facts, profile: profile)
            let max = plan.planned(.max)!, buckets = plan.planned(.hashsize)!
            #expect(max >= Planner.minimumConntrackMax, "round \(round)")
            #expect(buckets >= Planner.minimumBuckets && buckets % 512 == 0, "round \(round)")
            #expect(plan.settings.allSatisfy { $0.planned > 0 }, "round \(round)")
            // Live values never change the plan: another count and other current timeouts plan the same.
            var other = facts
            other.count = 0
            for setting in ConntrackSetting.timeouts { other.current[setting] = Int.random(in: 1...500_000, using: &random) }
            #expect(Planner.plan(for: other, profile: profile).settings.map(\.planned) == plan.settings.map(\.planned), "round \(round)")
            for (setting, seconds) in profile.pinnedTimeouts { #expect(plan.planned(setting) == seconds) }
            if plan.fitsBudget {
                #expect(Double(max) >= Double(plan.estimate.peakEntries) * profile.headroom, "round \(round)")
                #expect(plan.estimate.memoryBytes <= plan.estimate.budgetBytes, "round \(round)")
            } else {
                #expect(
                    plan.advice.first.map { $0.contains("does not fit") || $0.contains("cannot be planned") } == true, "round \(round)")
            }
        }
    }

    /// One to four disjoint classes (each its own port), with random loads and cures.
    static func randomClasses(_ random: inout SplitMix64) -> [ProfileClass] {
        (0..<Int.random(in: 1...4, using: &random)).map { index in
            let tcp = Bool.random(using: &random)
            var declared = ProfileClass(
                name: "class \(index)",
                match: ClassMatch(
                    direction: FlowClass.Direction.allCases.randomElement(using: &random), protocolNumber: tcp ? 6 : 17,
                    ports: [UInt16(1000 + index)...UInt16(1000 + index)]),
                burstFactor: Double.random(in: 1...10, using: &random))
            declared.tcp.newPerSecond = tcp ? Double.random(in: 0...20_000, using: &random) : 0
            declared.tcp.establishedSeconds = Double.random(in: 0...7200, using: &random)
            declared.tcp.orphanRatio = Double.random(in: 0...0.05, using: &random)
            declared.udp.newPerSecond = tcp ? 0 : Double.random(in: 0...20_000, using: &random)
            declared.udp.streamRatio = Double.random(in: 0...1, using: &random)
            declared.cures = Bool.random(using: &random) ? [.timeouts] : []
            return declared
        }
    }

    @Test("classes: more classes never plan a smaller table, a timeouts cure never a larger one, the rows add up")
    func classesProperties() {
        var random = SplitMix64(state: 20_261_205)
        for round in 0..<500 {
            var profile = Self.randomProfile(&random)
            profile.memoryBudgetPercent = 90
            let facts = FixtureFacts.host(memory: 256 << 30)
            let base = Planner.plan(for: facts, profile: profile)
            var classified = profile
            classified.classes = Self.randomClasses(&random)
            let plan = Planner.plan(for: facts, profile: classified)
            var untreated = classified
            for index in untreated.classes.indices { untreated.classes[index].cures = [] }
            let plain = Planner.plan(for: facts, profile: untreated)
            let shortened = [base, plan, plain].contains { $0.settings.contains { $0.reason.hasPrefix("shortened") } }
            if base.fitsBudget && plain.fitsBudget && plan.fitsBudget && !shortened {
                #expect(plain.planned(.max)! >= base.planned(.max)!, "round \(round)")
                #expect(plan.planned(.max)! <= plain.planned(.max)!, "round \(round)")
            }
            #expect(plan.estimate.classes.count == classified.classes.count + 1, "round \(round)")
            #expect(abs(plan.estimate.classes.map(\.share).reduce(0, +) - 1) < 1e-6 || plan.estimate.peakEntries == 0, "round \(round)")
            for (index, decision) in plan.cures.enumerated() {
                #expect(decision.applied == (classified.classes[index].cures.isEmpty || decision.policy == nil ? .none : .timeouts))
                for (setting, seconds) in decision.policy?.timeouts ?? [:] {
                    #expect(
                        seconds >= Planner.floor(setting, classified) && seconds < Planner.startingTimeouts(profile: classified)[setting]!)
                }
            }
        }
    }

    @Test("more load never plans a smaller table, more RAM never plans a smaller table (when nothing is shortened)")
    func monotonic() {
        var random = SplitMix64(state: 7)
        for round in 0..<500 {
            var profile = Self.randomProfile(&random)
            profile.memoryBudgetPercent = 90  // so the comparison is not about shortening
            let facts = FixtureFacts.host(memory: 256 << 30)
            let base = Planner.plan(for: facts, profile: profile)
            var busier = profile
            busier.tcp.newPerSecond *= Double.random(in: 1...4, using: &random)
            busier.udp.newPerSecond += Double.random(in: 0...1000, using: &random)
            let busy = Planner.plan(for: facts, profile: busier)
            if base.fitsBudget && busy.fitsBudget && !busy.settings.contains(where: { $0.reason.hasPrefix("shortened") }) {
                #expect(busy.planned(.max)! >= base.planned(.max)!, "round \(round)")
                #expect(busy.estimate.peakEntries >= base.estimate.peakEntries, "round \(round)")
            }
            let smaller = FixtureFacts.host(memory: 1 << 30), larger = FixtureFacts.host(memory: 64 << 30)
            let small = Planner.plan(for: smaller, profile: profile), large = Planner.plan(for: larger, profile: profile)
            #expect(large.planned(.max)! >= small.planned(.max)!, "round \(round)")
            #expect(large.estimate.budgetBytes >= small.estimate.budgetBytes)
        }
    }

    @Test("mutated profile text never crashes the parser: it loads or fails with a profile error")
    func parserFuzz() throws {
        var random = SplitMix64(state: 42)
        let texts = ProfileCatalog.builtinNames.map { BuiltinProfiles.yamlByName[$0]! }
        let alphabet = Array(":- \n\t#{}[]\"'&*!|>%@`0123456789.eE+abcxyz_")
        var loaded = 0, rejected = 0
        for _ in 0..<3000 {
            var characters = Array(texts.randomElement(using: &random)!)
            for _ in 0..<Int.random(in: 1...4, using: &random) where !characters.isEmpty {
                let index = Int.random(in: 0..<characters.count, using: &random)
                switch Int.random(in: 0...3, using: &random) {
                case 0: characters.remove(at: index)
                case 1: characters.insert(alphabet.randomElement(using: &random)!, at: index)
                case 2: characters[index] = alphabet.randomElement(using: &random)!
                default: characters = Array(characters.prefix(index))  // truncated file
                }
            }
            do {
                let document = try ProfileDocument.parse(yaml: String(characters), file: "fuzz.yaml")
                _ = try ProfileCatalog.resolve(name: "fuzz", chain: [document], sources: ["fuzz.yaml"])
                loaded += 1
            } catch let error as TunerError {
                #expect(error.description.hasPrefix("fuzz.yaml"), "\(error)")
                rejected += 1
            }
        }
        #expect(loaded > 0 && rejected > 0, "the mutations exercise both outcomes")
    }
}
