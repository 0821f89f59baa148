import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// Renders `cttune apply` and `cttune rollback` results: the plan's JSON with
/// a `result` per setting, `files` and `journal_id`, or tables for people.
public enum ApplyReport {
    public static func json(_ outcome: ApplyOutcome, diff: Bool = false) -> [(String, JSONValue)] {
        let members = PlanReport.json(outcome.plan, command: "apply") { setting in
            let result = outcome.results[setting.setting] ?? .unchanged
            return [
                ("result", result.jsonName.json), ("error_message", result.error.json),
                ConfigOverride.json(outcome.overrides, for: setting.setting),
            ]
        }
        let files = JSONValue.array(
            outcome.files.map { file in
                .object(
                    [("path", .string(file.path)), ("action", .string(file.action.rawValue))]
                        + (diff ? [("diff", .string(file.diff))] : []))
            })
        var result: [(String, JSONValue)] = members.map { key, value in key == "changed" ? (key, .bool(outcome.changed)) : (key, value) }
        result += [
            ("dry_run", .bool(outcome.check)),
            ("files", files),
            ("journal_id", outcome.journalID.json),
            ("reasserted", .bool(outcome.reasserted)),
            ("notes", .array(outcome.notes.map(JSONValue.string))),
            (
                "cure_table",
                outcome.cureTable.map { step in
                    .object(
                        [
                            ("table", .string(CureTable.qualifiedName)), ("action", .string(step.change.rawValue)),
                            ("result", step.result.jsonName.json), ("error_message", step.result.error.json),
                        ] + (diff ? [("diff", .string(step.diff))] : []))
                } ?? .null
            ),
        ]
        if let review = outcome.stateless {
            let modules: JSONValue = outcome.modules.map { json($0, diff: diff) } ?? .null
            result += [("modules", modules), ("stateless", StatelessReport.json(review, modules: nil))]
        }
        return result + [("error", .failure(outcome.error))]
    }

    /// The `modules` member of a stateless apply.
    static func json(_ step: StatelessModuleStep, diff: Bool) -> JSONValue {
        .object([
            ("result", step.result.jsonName.json),
            ("error_message", step.result.error.json),
            ("unload_order", .array(step.unloads.map { .string($0.module) })),
            (
                "unload",
                .array(
                    step.unloads.map { unload in
                        let result = step.results[unload.module] ?? .unchanged
                        return .object([
                            ("module", .string(unload.module)), ("reason", .string(unload.reason)),
                            ("result", result.jsonName.json), ("error_message", result.error.json),
                        ])
                    })
            ),
            ("note", step.note.json),
            ("conntrack_users", ModuleReports.consumersJSON(step.consumers)),
            ("outside_family_unloadable", .array((step.impact?.unloadable ?? []).map(JSONValue.string))),
            ("outside_family_in_use", .array((step.impact?.conflicts ?? []).map(JSONValue.string))),
            (
                "blacklist_file",
                step.blacklist.map { file in
                    .object(
                        [("path", .string(file.path)), ("action", .string(file.action.rawValue))]
                            + (diff ? [("diff", .string(file.diff))] : []))
                } ?? .null
            ),
        ])
    }

    /// The module step's lines: one when skipped, else the unload table and the blacklist file.
    static func text(_ step: StatelessModuleStep) -> [String] {
        if let skipped = step.skipped { return ["modules: skipped: \(skipped)"] + ModuleReports.consumerLines(step.consumers) }
        var lines = ["modules: " + (step.unloads.isEmpty ? "none of the family is loaded" : "unload in this order")]
        if let note = step.note { lines.append("modules: \(note)") }
        if !step.unloads.isEmpty {
            lines += Table.render(
                header: ["  MODULE", "REASON", "RESULT"],
                rows: step.unloads.map { unload in
                    let result = step.results[unload.module] ?? .unchanged
                    let shown = result.jsonName ?? "would unload"
                    return ["  " + unload.module, unload.reason, result.error.map { "\(shown): \($0)" } ?? shown]
                })
        }
        lines.append(
            step.blacklist.map { "blacklist: \($0.action.rawValue) \($0.path)" }
                ?? "blacklist: no loadable conntrack module in any module tree: nothing to keep off at boot")
        lines += ModuleReports.impactLines(step.impact)
        lines += ModuleReports.consumerLines(step.consumers)
        return lines
    }

    public static func text(_ outcome: ApplyOutcome, diff: Bool = false) -> String {
        let plan = outcome.plan
        var lines = PlanReport.header(plan)
        lines.append("")
        let rows = plan.settings.map { setting -> [String] in
            let result = outcome.results[setting.setting] ?? .unchanged
            let shown = result.jsonName ?? "would change"
            return [
                setting.key, setting.current.map(String.init) ?? "-", String(setting.planned),
                result.error.map { "\(shown): \($0)" } ?? shown,
            ]
        }
        lines += Table.render(header: ["KEY", "CURRENT", "PLANNED", "RESULT"], rows: rows)
        if !outcome.files.isEmpty {
            lines.append("")
            lines.append(outcome.check ? "files (would be):" : "files:")
            lines += Table.render(header: ["", ""], rows: outcome.files.map { ["  " + $0.action.rawValue, $0.path] }).dropFirst()
        }
        lines += ConfigOverride.text(outcome.overrides)
        if let step = outcome.cureTable {
            lines.append("")
            let shown = step.result.jsonName ?? "would change"
            lines.append(
                "table \(CureTable.qualifiedName) (the cures): \(step.change.rawValue), "
                    + (step.result.error.map { "\(shown): \($0)" } ?? shown))
        }
        if let modules = outcome.modules {
            lines.append("")
            lines += text(modules)
        }
        if let review = outcome.stateless, review.refused {
            lines.append(StatelessReport.text(review, modules: nil))
        }
        if diff {
            for file in outcome.files where !file.diff.isEmpty {
                lines.append("")
                lines.append(file.diff.trimming(.newlines))
            }
            if let step = outcome.cureTable, !step.diff.isEmpty {
                lines.append("")
                lines.append(step.diff.trimming(.newlines))
            }
        }
        if !outcome.notes.isEmpty {
            lines.append("")
            lines += outcome.notes
        }
        lines.append("")
        if let id = outcome.journalID, outcome.error == nil {
            lines.append("changed; journal \(id) — undo with `cttune rollback \(id)`")
        } else if outcome.reasserted && outcome.error == nil {
            lines.append("changed: re-asserted the values of cttune's boot-time file; not journaled (the file is the record)")
        } else if outcome.check {
            lines.append(outcome.changed ? "check: changes pending, nothing written" : "check: nothing to change")
        } else if outcome.error == nil {
            lines.append(nothingChangedLine(outcome))
        }
        return lines.joined(separator: "\n")
    }

    /// The last line of an apply that changed nothing: "nothing to change"
    /// only when every setting and file matches; otherwise what was skipped and why.
    static func nothingChangedLine(_ outcome: ApplyOutcome) -> String {
        if !outcome.runtime {
            return "nothing to change: the boot-time files already match the plan (--persist-only: kernel settings not written)"
        }
        var reasons: [String] = []
        var skipped: [String] = []
        for setting in outcome.plan.settings where setting.changes {
            guard case .skipped(let reason)? = outcome.results[setting.setting] else { continue }
            skipped.append(setting.setting.shortName)
            if !reasons.contains(reason) { reasons.append(reason) }
        }
        guard !skipped.isEmpty else { return "nothing to change: every setting and file already matches the plan" }
        let files =
            !outcome.files.isEmpty && outcome.files.allSatisfy { $0.action == .unchanged }
            ? "the boot-time files already match the plan; " : ""
        return
            """
            nothing changed: \(files)\(skipped.count) setting\(skipped.count == 1 ? "" : "s") that differ from the plan \
            \(skipped.count == 1 ? "was" : "were") skipped (\(skipped.joined(separator: ", "))): \
            \(reasons[0])\(reasons.count > 1 ? " (each reason above)" : "")
            """
    }

    public static func json(_ outcome: RollbackOutcome, check: Bool = false) -> [(String, JSONValue)] {
        [
            ("command", .string("rollback")),
            ("dry_run", .bool(check)),
            ("rolls_back", .string(outcome.target.id)),
            ("profile", outcome.target.profile.json),
            ("journal_id", outcome.journalID.json),
            (
                "restored",
                .array(
                    outcome.items.map { item in
                        .object([
                            ("type", .string(item.kind.rawValue)),
                            ("target", .string(item.target)),
                            ("before", item.before.json),
                            ("after", item.after.json),
                            ("result", .string(item.result)),
                            ("error_message", item.error.json),
                        ])
                    })
            ),
            ("changed", .bool(outcome.changed)),
            ("error", .failure(outcome.error)),
        ]
    }

    public static func text(_ outcome: RollbackOutcome, check: Bool = false) -> String {
        let what =
            outcome.target.id == Rollback.allTarget
            ? "rolling back every change cttune made (the state before its first apply)"
            : "rolling back \(outcome.target.command) \(outcome.target.id) (profile \(outcome.target.profile ?? "none"))"
        var lines = [what, ""]
        lines += Table.render(
            header: ["TARGET", "BEFORE", "AFTER", "RESULT"],
            rows: outcome.items.map { item in
                [item.target, item.before.description, item.after.description, item.error.map { "\(item.result): \($0)" } ?? item.result]
            })
        lines.append("")
        if let id = outcome.journalID, outcome.error == nil {
            lines.append("restored; journal \(id)")
        } else if check {
            lines.append(
                outcome.changed ? "check: would restore the items marked rolled-back, nothing written" : "check: nothing to restore")
        } else if outcome.items.isEmpty && outcome.target.id == Rollback.allTarget {
            lines.append("nothing to restore: the journal records no change by cttune")
        } else if outcome.error == nil {
            lines.append("nothing to restore: every value and file already matches the journal entry")
        }
        return lines.joined(separator: "\n")
    }

    public static func json(_ entries: [JournalEntry]) -> [(String, JSONValue)] {
        [
            ("command", .string("rollback")),
            (
                "journal",
                .array(
                    entries.map { entry in
                        .object([
                            ("id", .string(entry.id)),
                            ("command", .string(entry.command)),
                            ("created", .string(entry.created)),
                            ("profile", entry.profile.json),
                            ("status", .string(entry.status.rawValue)),
                            ("rolls_back", entry.rollsBack.json),
                            ("actions", .int(entry.actions.count)),
                            ("failure", entry.failure.json),
                        ])
                    })
            ),
        ]
    }

    /// The journal at 80 columns: the time is in the identifier, and what a
    /// rollback undid and a failure's text are in the detail view (`--list ID`).
    public static func text(_ entries: [JournalEntry]) -> String {
        guard !entries.isEmpty else { return "no journal entries" }
        let rows = entries.map { entry in
            [entry.id, entry.command, entry.status.rawValue, String(entry.actions.count), entry.profile ?? "-"]
        }
        var lines = Table.render(header: ["ID", "COMMAND", "STATUS", "CHANGES", "PROFILE"], rows: rows)
        lines = lines.map { $0.count > 80 ? String($0.prefix(79)) + "…" : $0 }
        if entries.contains(where: { $0.failure != nil || $0.rollsBack != nil }) {
            lines.append("details, failures and what a rollback undid: cttune rollback --list ID")
        }
        return lines.joined(separator: "\n")
    }

    /// One entry in full (`cttune rollback --list ID`).
    public static func text(detail entry: JournalEntry) -> String {
        var lines = [
            "id:       \(entry.id)", "command:  \(entry.command)", "created:  \(entry.created)", "profile:  \(entry.profile ?? "-")",
            "status:   \(entry.status.rawValue)",
        ]
        if let target = entry.rollsBack {
            lines.append("undoes:   " + (target == Rollback.allTarget ? "every change cttune made (rollback --all)" : target))
        }
        if let failure = entry.failure { lines.append("failure:  \(failure)") }
        lines.append("changes:")
        for action in entry.actions {
            switch action {
            case .sysctl(let change): lines.append("  \(change.key): \(change.old) -> \(change.new)")
            case .file(let change):
                lines.append("  \(change.path.string): \(Rollback.state(change.oldContent)) -> \(Rollback.state(change.newContent))")
            case .module(let change): lines.append("  module \(change.name): \(change.loaded ? "loaded" : "unloaded")")
            case .nftTable(let change):
                lines.append(
                    "  table \(CureTable.qualifiedName): \(Rollback.state(change.oldContent)) -> \(Rollback.state(change.newContent))")
            }
        }
        return lines.joined(separator: "\n")
    }

    public static func json(detail entry: JournalEntry) -> [(String, JSONValue)] {
        guard case .array(let listed) = json([entry])[1].1, case .object(let members)? = listed.first else { return [] }
        return [("command", .string("rollback"))] + [
            (
                "entry",
                .object(
                    members + [
                        (
                            "changes",
                            .array(
                                entry.actions.map { action in
                                    switch action {
                                    case .sysctl(let change):
                                        return .object([
                                            ("type", .string("sysctl")), ("target", .string(change.key)), ("old", .int(change.old)),
                                            ("new", .int(change.new)),
                                        ])
                                    case .file(let change):
                                        return .object([
                                            ("type", .string("file")), ("target", .string(change.path.string)),
                                            ("old", RestoredItem.State(fileContent: change.oldContent).json),
                                            ("new", RestoredItem.State(fileContent: change.newContent).json),
                                        ])
                                    case .module(let change):
                                        return .object([
                                            ("type", .string("module")), ("target", .string(change.name)),
                                            ("old", .string(Rollback.moduleState(!change.loaded))),
                                            ("new", .string(Rollback.moduleState(change.loaded))),
                                        ])
                                    case .nftTable(let change):
                                        return .object([
                                            ("type", .string("nft-table")), ("target", .string("table " + CureTable.qualifiedName)),
                                            ("old", RestoredItem.State(fileContent: change.oldContent).json),
                                            ("new", RestoredItem.State(fileContent: change.newContent).json),
                                        ])
                                    }
                                })
                        )
                    ])
            )
        ]
    }

    public static func json(pruned: [String]) -> [(String, JSONValue)] {
        [("command", .string("rollback")), ("pruned", .array(pruned.map(JSONValue.string))), ("changed", .bool(!pruned.isEmpty))]
    }

    public static func text(pruned: [String]) -> String {
        pruned.isEmpty
            ? "nothing to prune"
            : "removed \(pruned.count) journal entr\(pruned.count == 1 ? "y" : "ies"): \(pruned.joined(separator: ", "))"
    }
}

extension SettingResult {
    /// The contract's `result`; `nil` for `--check`'s pending changes (nothing was applied).
    var jsonName: String? {
        switch self {
        case .applied: return "applied"
        case .unchanged: return "unchanged"
        case .skipped: return "skipped"
        case .failed: return "failed"
        case .rolledBack: return "rolled-back"
        case .pending: return nil
        }
    }

    var error: String? {
        switch self {
        case .skipped(let reason), .failed(let reason): return reason
        default: return nil
        }
    }
}

extension RestoredItem.State {
    /// A value or a file's size in bytes as a number, a module's state as
    /// `loaded`/`unloaded`, and `null` for absent or not read.
    var json: JSONValue {
        switch self {
        case .value(let value), .fileBytes(let value): return .int(value)
        case .module(let loaded): return .string(Rollback.moduleState(loaded))
        case .absent, .notRead: return .null
        }
    }
}
