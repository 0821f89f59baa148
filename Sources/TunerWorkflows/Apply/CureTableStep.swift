import TunerCore
import TunerModel

/// cttune's nft table in an apply: the table the plan's cures need,
/// compared with the one in the running kernel.
public struct CureTableStep: Equatable, Sendable {
    /// As `nft list table inet cttune` printed it; `nil`: none.
    public var old: String?
    /// As planned; `nil`: no class is cured (the table goes).
    public var new: String?
    public var result: SettingResult
    /// Unified diff from the old table to the new; empty when unchanged.
    public var diff: String

    /// The change, when there is one.
    var action: JournalAction? { old == new ? nil : .nftTable(.init(oldContent: old, newContent: new)) }

    /// What happens to the table: created, updated, removed or unchanged.
    public var change: FileAction {
        switch (old, new) {
        case (nil, _?): return .created
        case (_?, nil): return .removed
        case let (old?, new?) where old != new: return .updated
        default: return .unchanged
        }
    }

    /// The step for `plan`, or `nil` when there is nothing to compare: kernel
    /// settings are not written (`--persist-only`, or a `--root` tree, which
    /// gets the boot-time file only), or no cure is planned and the live
    /// table cannot be read (nothing of cttune's is known to be there).
    /// - Throws: the ruleset cannot be read while a cure is planned.
    static func make(_ plan: TuningPlan, request: ApplyRequest, under root: SystemRoot) throws -> CureTableStep? {
        guard request.runtime, root.isLive else { return nil }
        let new = CureTable.ruleset(for: plan.cures, classes: plan.profile.classes)
        let old: String?
        do {
            old = try CureTableLive.read()
        } catch  where new == nil {
            return nil
        }
        guard old != nil || new != nil else { return nil }
        return CureTableStep(
            old: old, new: new, result: old == new ? .unchanged : .pending,
            diff: old == new ? "" : TextDiff.unified(old: old, new: new, path: "table \(CureTable.qualifiedName)"))
    }
}
