import TunerCore
import TunerModel
import TunerSystem

/// Unified diffs of small configuration files, for `cttune apply --diff`.
public enum TextDiff {
    /// The whole file as one hunk: unchanged lines with a space, removed with
    /// `-`, added with `+` (a longest-common-subsequence alignment). `nil`
    /// content is an absent file (/dev/null).
    public static func unified(old: String?, new: String?, path: String) -> String {
        let before = lines(old), after = lines(new)
        // lengths[i][j]: longest common subsequence of before[i...] and after[j...].
        var lengths = Array(repeating: Array(repeating: 0, count: after.count + 1), count: before.count + 1)
        for i in stride(from: before.count - 1, through: 0, by: -1) {
            for j in stride(from: after.count - 1, through: 0, by: -1) {
                lengths[i][j] = before[i] == after[j] ? lengths[i + 1][j + 1] + 1 : max(lengths[i + 1][j], lengths[i][j + 1])
            }
        }
        var body: [String] = []
        var i = 0, j = 0
        while i < before.count || j < after.count {
            if i < before.count, j < after.count, before[i] == after[j] {
                body.append(" " + before[i])
                i += 1
                j += 1
            } else if i < before.count, j == after.count || lengths[i + 1][j] >= lengths[i][j + 1] {
                body.append("-" + before[i])
                i += 1  // removals before additions, as diff -u prints them
            } else {
                body.append("+" + after[j])
                j += 1
            }
        }
        let header = [
            "--- " + (old == nil ? "/dev/null" : path),
            "+++ " + (new == nil ? "/dev/null" : path),
            "@@ -\(range(before.count)) +\(range(after.count)) @@",
        ]
        return (header + body).joined(separator: "\n") + "\n"
    }

    static func lines(_ text: String?) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    static func range(_ count: Int) -> String {
        count == 0 ? "0,0" : "1,\(count)"
    }
}
