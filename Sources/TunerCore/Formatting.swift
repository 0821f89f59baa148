import FoundationEssentials

/// Numbers as cttune writes them for people: in the planner's reasons and
/// advice and in every text report. Below both, so the model never calls a
/// renderer to word its reasons.
public enum Formatting {
    /// A whole number without a fraction (`3`, not `3.0`), anything else to
    /// three significant digits (`0.125`, `1.5e+20`).
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return String(describing: value) }
        return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(cFormat: "%.3g", value)
    }

    /// Bytes in MiB to one decimal, without the unit (`17.5`).
    public static func mebibytes(_ bytes: Int) -> String {
        String(cFormat: "%.1f", Double(bytes) / 1_048_576)
    }

    /// A share as a percentage to one decimal (`42.5 %`).
    public static func percent(_ ratio: Double) -> String { String(cFormat: "%.1f %%", ratio * 100) }

    /// Bytes in GiB from 1 GiB up, else in MiB, to one decimal (`3.0 GiB`, `17.5 MiB`).
    public static func size(_ bytes: Int) -> String {
        bytes >= 1 << 30
            ? String(cFormat: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(cFormat: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}

/// Left-aligned columns separated by two spaces.
public enum Table {
    public static func render(header: [String], rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                column == row.count - 1 ? row[column] : row[column].padded(toLength: widths[column])
            }.joined(separator: "  ")
        }
    }
}
