import TunerCore

/// The planner's classes: the cures judged for each declared class, what
/// each saves, and each class's part of the peak.
extension Planner {
    /// Judges the cures for one class: `timeouts` when a policy shortens
    /// something, `notrack` when the ruleset was judged and no rule needs
    /// state for the class; applies the profile's pinned cure when safe, else
    /// the cheapest safe one it allows. Savings are filled in once sized.
    static func decide(_ declared: ProfileClass, policy: CurePolicy?, rules: ClassRuleFacts) -> CureDecision {
        let timeouts: CureDecision.Option
        if let policy {
            let shortened = policy.ordered.map { "\(CurePolicy.nftState($0.setting)!) \($0.seconds) s" }.joined(separator: ", ")
            timeouts = .init(
                cure: .timeouts, safe: true, savesEntries: 0,
                reason: "state is still tracked; \(shortened), each at or above its floor"
                    + (policy.timeouts[.tcpTimeoutEstablished] != nil
                        ? " and established at least \(whole(CurePolicy.establishedMargin)) x the class's established_seconds" : ""))
        } else {
            timeouts = .init(
                cure: .timeouts, safe: false, savesEntries: 0,
                reason: !CurePolicy.hasPolicy(declared.match.protocolNumber)
                    ? "\(declared.match.protocolName) has no timeout policy (tcp and udp classes do)"
                    : "every timeout the class passes through is at its floor already")
        }
        let notrack: CureDecision.Option
        if !rules.judged.contains(declared.name) {
            notrack = .init(
                cure: .notrack, safe: false, savesEntries: 0,
                reason: "the ruleset was not judged (\(rules.source.isEmpty ? "no ruleset was read" : rules.source)): "
                    + "conntrack is kept, the safe side")
        } else if let rule = rules.needsState[declared.name] {
            notrack = .init(cure: .notrack, safe: false, savesEntries: 0, reason: "\(rule), and needs state for them")
        } else {
            notrack = .init(
                cure: .notrack, safe: true, savesEntries: 0,
                reason: "no rule these packets can reach needs state (\(rules.source.isEmpty ? "the ruleset" : rules.source))")
        }
        let options = [timeouts, notrack]
        let applied: Cure, reason: String
        if declared.cures.isEmpty {
            applied = .none
            reason = declared.curePinned ? "cure: none in the profile" : "the profile allows no cure for this class (cure: or cures:)"
        } else if let chosen = declared.cures.compactMap({ cure in options.first { $0.cure == cure && $0.safe } }).first {
            applied = chosen.cure
            reason = declared.curePinned ? "cure: \(chosen.cure.rawValue) in the profile" : "the cheapest safe cure the profile allows"
        } else {
            applied = .none
            let refused = declared.cures.compactMap { cure in options.first { $0.cure == cure } }
            reason = "refused: " + refused.map { "\($0.cure.rawValue): \($0.reason)" }.joined(separator: "; ")
        }
        return CureDecision(
            className: declared.name, applied: applied, options: options, policy: applied == .timeouts ? policy : nil, reason: reason)
    }

    /// What each cure would take off its class's worst-phase peak, at the
    /// final timeouts: the class's flows with no cure, and under its policy.
    static func withSavings(
        _ decisions: [CureDecision], policies: [String: CurePolicy], timeouts: [ConntrackSetting: Int], facts: HostFacts,
        profile: LoadProfile, gc: GCModel
    ) -> [CureDecision] {
        func peaks(_ cures: [String: CureDecision]) -> [String: Double] {
            size(timeouts: timeouts, facts: facts, profile: profile, gc: gc, cures: cures).flowClasses
                .reduce(into: [:]) { peaks, flow in if let name = flow.profileClass { peaks[name, default: 0] += flow.worstPeakEntries } }
        }
        let untreated = peaks([:])
        let underPolicy = peaks(
            Dictionary(
                uniqueKeysWithValues: policies.map {
                    ($0.key, CureDecision(className: $0.key, applied: .timeouts, options: [], policy: $0.value, reason: ""))
                }))
        return decisions.map { decision in
            var decision = decision
            let before = untreated[decision.className] ?? 0
            for index in decision.options.indices {
                let after = decision.options[index].cure == .timeouts ? underPolicy[decision.className] ?? before : 0
                decision.options[index].savesEntries = saturatingInt(wholeEntries(Swift.max(0, before - after)))
            }
            return decision
        }
    }

    /// Each declared class's peaks and share of the worst-phase peak, then
    /// one `other` row for the profile's own load; empty without `classes:`.
    static func classEstimates(
        profile: LoadProfile, flows: [TuningPlan.FlowClass], cures: [String: CureDecision]
    ) -> [TuningPlan.ClassEstimate] {
        guard !profile.classes.isEmpty else { return [] }
        let total = flows.reduce(0) { $0 + $1.worstPeakEntries }
        func rate(_ load: LoadProfile) -> Double { load.tcp.newPerSecond + load.udp.newPerSecond + load.otherPerSecond }
        func row(_ name: String, match: String?, rate: Double) -> TuningPlan.ClassEstimate {
            let members = flows.filter { $0.profileClass == (match == nil ? nil : name) }
            let worst = members.reduce(0) { $0 + $1.worstPeakEntries }
            return TuningPlan.ClassEstimate(
                name: name, match: match, cure: cures[name]?.applied ?? .none, flowsPerSecond: rate,
                steadyPeakEntries: saturatingInt(wholeEntries(members.reduce(0) { $0 + $1.steadyPeakEntries })),
                peakEntries: saturatingInt(wholeEntries(worst)), share: total > 0 ? worst / total : 0)
        }
        return profile.classes.map { row($0.name, match: $0.match.description, rate: rate($0.asLoad)) }
            + [row(TuningPlan.ClassEstimate.otherName, match: nil, rate: rate(profile))]
    }
}
