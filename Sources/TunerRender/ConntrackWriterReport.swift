import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

extension ConntrackWriter {
    public func json(plan: TuningPlan?) -> JSONValue {
        let undone = plan.map { conflicts(with: $0).map(\.write.key) } ?? []
        return .object([
            ("name", .string(name)), ("source", .string(source)),
            (
                "writes",
                .array(
                    writes.map { write in
                        .object([
                            ("key", .string(write.key)), ("value", .int(write.value)), ("when", .string(write.when)),
                            ("undoes_plan", .bool(undone.contains(write.key))),
                        ])
                    })
            ),
            ("fix", .string(fix)),
        ])
    }

    /// Text lines for plan and status.
    public static func text(_ writers: [ConntrackWriter], plan: TuningPlan?) -> [String] {
        guard !writers.isEmpty else { return [] }
        var lines = ["", "other conntrack writers (they run after boot and undo cttune's values):"]
        for writer in writers {
            lines.append("  \(writer.name): \(writer.source)")
            let conflicts = plan.map { writer.conflicts(with: $0) }
            for write in writer.writes {
                let planned = conflicts?.first { $0.write == write }.map { " (cttune plans \($0.planned))" } ?? ""
                lines.append("    sets \(write.key) = \(write.value) \(write.when)\(planned)")
            }
            lines.append("    fix: \(writer.fix)")
        }
        return lines
    }
}
