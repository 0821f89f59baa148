import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// Renders the module commands' results as the contract's JSON or as text.
public enum ModuleReports {
    public static func json(_ inventory: ModuleInventory) -> [(String, JSONValue)] {
        [
            ("command", .string("modules")),
            ("kernel", inventory.release.json),
            ("module_support", .string(inventory.support.rawValue)),
            ("module_directory", inventory.treeDirectory.json),
            ("note", inventory.noModuleSupportNote.json),
            (
                "modules",
                .array(
                    inventory.modules.map { module in
                        .object([
                            ("name", .string(module.name)),
                            ("state", .string(module.state.rawValue)),
                            ("refcount", module.refcount.json),
                            ("holders", strings(module.holders)),
                            ("dependencies", strings(module.dependencies)),
                            ("softdeps", .object([("pre", strings(module.softdepsBefore)), ("post", strings(module.softdepsAfter))])),
                            ("blacklisted", .bool(module.blacklisted)),
                            ("install_command", module.installCommand.json),
                        ])
                    })
            ),
        ]
    }

    public static func text(_ inventory: ModuleInventory) -> String {
        var lines: [String] = []
        if let note = inventory.noModuleSupportNote { lines.append(note) }
        let tree = inventory.treeDirectory.map { "modules from \($0)" } ?? "no module tree under /lib/modules"
        lines.append("kernel \(inventory.release ?? "unknown"): \(tree)")
        let rows =
            [["MODULE", "STATE", "REFS", "HOLDERS", "DEPENDS ON", "CONFIG"]]
            + inventory.modules.map { module in
                var config: [String] = []
                if module.blacklisted { config.append("blacklisted") }
                if let command = module.installCommand { config.append("install \(command)") }
                let softdeps = (module.softdepsBefore.map { "pre:\($0)" } + module.softdepsAfter.map { "post:\($0)" })
                return [
                    module.name, module.state.rawValue, module.refcount.map(String.init) ?? "-",
                    listed(module.holders), listed(module.dependencies + softdeps), listed(config),
                ]
            }
        lines += table(rows)
        return lines.joined(separator: "\n")
    }

    public static func json(_ outcome: UnloadOutcome) -> [(String, JSONValue)] {
        let plan = outcome.plan
        let failedModule = outcome.failure.flatMap(failedModuleName)
        return [
            ("command", .string("unload")),
            ("dry_run", .bool(outcome.dryRun)),
            ("changed", .bool(!outcome.dryRun && !outcome.unloaded.isEmpty)),
            ("module_support", .string(plan.support.rawValue)),
            (
                "order",
                .array(
                    plan.steps.map { step in
                        .object([
                            ("module", .string(step.module)), ("reason", .string(step.reason)),
                            ("result", .string(result(of: step.module, in: outcome, failedModule: failedModule))),
                        ])
                    })
            ),
            ("built_in", strings(plan.builtIn)),
            (
                "in_use",
                .array(plan.inUse.sorted { $0.key < $1.key }.map { .object([("module", .string($0.key)), ("users", .int($0.value))]) })
            ),
            (
                "outside_family_holders",
                .array(
                    plan.outsideHolders.sorted { $0.key < $1.key }.map {
                        .object([("module", .string($0.key)), ("holds", strings($0.value.sorted()))])
                    })
            ),
            ("blocking_rules", strings(plan.blockingRules)),
            ("unloaded", strings(outcome.unloaded)),
            ("conntrack_users", consumersJSON(outcome.consumers)),
            ("error", .failure(outcome.failure)),
        ]
    }

    public static func text(_ outcome: UnloadOutcome) -> String {
        // The failure itself goes to stderr (the command prints it).
        var lines: [String] = []
        if outcome.plan.steps.isEmpty && outcome.failure == nil {
            lines.append("no conntrack/NAT module is loaded: nothing to unload")
        } else if outcome.dryRun, !outcome.plan.steps.isEmpty {
            lines.append(outcome.plan.refusal == nil ? "would unload, in this order:" : "once that is resolved, the unload order would be:")
            for (number, step) in outcome.plan.steps.enumerated() { lines.append("  \(number + 1). \(step.module)  (\(step.reason))") }
        } else if !outcome.dryRun {
            if !outcome.unloaded.isEmpty { lines.append("unloaded: \(outcome.unloaded.joined(separator: ", "))") }
            if !outcome.alreadyGone.isEmpty { lines.append("already unloaded: \(outcome.alreadyGone.joined(separator: ", "))") }
        }
        // A refusal with nothing to show keeps stdout empty (its reason is on stderr).
        if !lines.isEmpty { lines += consumerLines(outcome.consumers) }
        return lines.joined(separator: "\n")
    }

    public static func json(_ result: BlacklistResult) -> [(String, JSONValue)] {
        [
            ("command", .string("blacklist")),
            ("dry_run", .bool(result.dryRun)),
            ("files", .array([.object([("path", .string(result.path)), ("action", .string(result.action.rawValue))])])),
            ("modules", strings(result.modules)),
            ("outside_family_unloadable", strings(result.impact.unloadable)),
            ("outside_family_in_use", strings(result.impact.conflicts)),
            ("refused", .bool(result.refusal != nil)),
            ("changed", .bool(!result.dryRun && result.refusal == nil && result.action != .unchanged)),
            ("conntrack_users", consumersJSON(result.consumers)),
            (
                "initramfs",
                .object([
                    ("rebuild_needed", result.initramfs.rebuildNeeded.map(JSONValue.bool) ?? .null),
                    ("reason", .string(result.initramfs.reason)),
                    ("command", result.initramfs.command.json),
                ])
            ),
            ("error", .failure(result.refusal)),
        ]
    }

    public static func text(_ result: BlacklistResult) -> String {
        var lines: [String] = []
        let verb =
            result.refusal != nil
            ? "refused, would be \(result.action.rawValue)" : result.dryRun ? "would be \(result.action.rawValue)" : result.action.rawValue
        if result.modules.isEmpty {
            lines.append("\(result.path): \(verb)")
        } else {
            lines.append("\(result.path): \(verb) (blacklist and install /bin/false for \(result.modules.count) modules)")
        }
        if result.dryRun, let contents = result.contents { lines.append(contents) }
        lines += impactLines(result.impact)
        lines += consumerLines(result.consumers)
        let advice = result.initramfs
        switch advice.rebuildNeeded {
        case true?: lines.append("initramfs: rebuild needed for early boot (\(advice.reason)): \(advice.command ?? "")")
        case false?: lines.append("initramfs: no rebuild needed (\(advice.reason))")
        case nil: lines.append("initramfs: \(advice.reason): \(advice.command ?? "")")
        }
        return lines.joined(separator: "\n")
    }

    /// `{"findings": […], "bridge_note": … | null}`.
    static func consumersJSON(_ consumers: ConntrackConsumers) -> JSONValue {
        .object([("findings", strings(consumers.findings)), ("bridge_note", consumers.bridgeNote.json)])
    }

    /// "also uses conntrack: …" lines, one per consumer, then the br_netfilter note.
    static func consumerLines(_ consumers: ConntrackConsumers) -> [String] {
        consumers.findings.map { "also uses conntrack: \($0)" } + (consumers.bridgeNote.map { ["note: \($0)"] } ?? [])
    }

    /// The modules outside the family a blacklist makes unloadable, and those in use.
    static func impactLines(_ impact: BlacklistImpact?) -> [String] {
        guard let impact, !impact.unloadable.isEmpty else { return [] }
        var lines = [
            "outside the conntrack/NAT family, these \(impact.unloadable.count) modules could no longer load: "
                + impact.unloadable.joined(separator: ", ")
        ]
        lines += impact.conflicts.map { "  in use: \($0)" }
        return lines
    }

    static func result(of module: String, in outcome: UnloadOutcome, failedModule: String?) -> String {
        if outcome.dryRun { return "planned" }
        if outcome.unloaded.contains(module) { return "unloaded" }
        if outcome.alreadyGone.contains(module) { return "already-gone" }
        if module == failedModule { return "failed" }
        return "not-attempted"
    }

    static func failedModuleName(_ error: TunerError) -> String? {
        switch error {
        case let .moduleBusy(module, _, _), let .unloadNotPermitted(module), let .unloadUnsupported(module), let .unloadFailed(module, _):
            return module
        default: return nil
        }
    }

    static func strings(_ values: [String]) -> JSONValue { .array(values.map(JSONValue.string)) }

    /// A table cell: at most `listedLimit` names, then how many more. Every
    /// row is padded to the widest cell, so an unbounded cell (10 000 holders
    /// of one module) would make the table's size quadratic; JSON lists them all.
    static func listed(_ values: [String]) -> String {
        guard values.count > listedLimit else { return values.isEmpty ? "-" : values.joined(separator: ",") }
        return values.prefix(listedLimit).joined(separator: ",") + ",+\(values.count - listedLimit) more"
    }

    static let listedLimit = 8

    static func table(_ rows: [[String]]) -> [String] {
        guard let columns = rows.first?.count else { return [] }
        let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == columns - 1 ? cell : cell.padded(toLength: widths[index] + 2)
            }
            .joined().trimming(.whitespaces)
        }
    }
}
