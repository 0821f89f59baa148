import FoundationEssentials

/// Sizes as the command line takes them: bytes, or a number with K, M, G or
/// T (powers of 1024); `KiB`, `MB`-style suffixes are accepted as the same.
public enum ByteSize {
    public static func parse(_ text: String) throws -> Int {
        let trimmed = text.trimming(.whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        var unit = trimmed.dropFirst(digits.count).uppercased().trimming(.whitespaces)
        for suffix in ["IB", "B"] where unit.hasSuffix(suffix) && unit.count > suffix.count - 1 {
            unit = String(unit.dropLast(suffix.count))
            break
        }
        let shifts = ["": 0, "K": 10, "M": 20, "G": 30, "T": 40]
        guard let number = Double(digits), let shift = shifts[unit] else { throw TunerError.invalidSize(text: text) }
        let bytes = number * Double(1 << shift)
        guard bytes >= 1, bytes < Double(1 << 60) else { throw TunerError.invalidSize(text: text) }
        return Int(bytes.rounded())
    }
}
