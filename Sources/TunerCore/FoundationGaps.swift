import FoundationEssentials
import Glibc

// What cttune used from full Foundation and FoundationEssentials leaves out
// (Foundation links ICU and its data: most of the binary's size and start-up
// time). Each does what the Foundation call did on the text cttune handles;
// the names differ so a file that imports Foundation too (the tests) sees no
// ambiguity.

/// A set of Unicode scalars to trim, like Foundation's `CharacterSet`.
public struct ScalarSet: Sendable {
    private let test: @Sendable (Unicode.Scalar) -> Bool

    public init(_ test: @escaping @Sendable (Unicode.Scalar) -> Bool) { self.test = test }

    /// The scalars of `characters`.
    public init(charactersIn characters: String) {
        let scalars = Set(characters.unicodeScalars)
        self.init { scalars.contains($0) }
    }

    public func contains(_ scalar: Unicode.Scalar) -> Bool { test(scalar) }

    public func union(_ other: ScalarSet) -> ScalarSet { ScalarSet { self.test($0) || other.test($0) } }

    /// Spaces (Unicode category Zs) and tab, as `CharacterSet.whitespaces`.
    public static let whitespaces = ScalarSet { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator }
    /// Line breaks: U+000A–U+000D, U+0085, U+2028, U+2029, as `CharacterSet.newlines`.
    public static let newlines = ScalarSet { (0x0A...0x0D).contains($0.value) || [0x85, 0x2028, 0x2029].contains($0.value) }
    /// Category Z* and U+000A–U+000D, U+0085, as `CharacterSet.whitespacesAndNewlines`.
    public static let whitespacesAndNewlines = ScalarSet {
        switch $0.properties.generalCategory {
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return true
        default: return $0 == "\t" || (0x0A...0x0D).contains($0.value) || $0.value == 0x85
        }
    }
    /// Letters, marks and numbers (categories L*, M*, N*), as `CharacterSet.alphanumerics`.
    public static let alphanumerics = ScalarSet {
        switch $0.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .nonspacingMark,
            .spacingMark, .enclosingMark, .decimalNumber, .letterNumber, .otherNumber:
            return true
        default: return false
        }
    }
}

extension StringProtocol {
    /// Without the leading and trailing scalars in `set`, as Foundation's
    /// `trimmingCharacters(in:)`.
    public func trimming(_ set: ScalarSet) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !set.contains($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !set.contains($0) })!
        var trimmed = ""
        trimmed.unicodeScalars.append(contentsOf: scalars[first...last])
        return trimmed
    }

    /// Padded with spaces to at least `length` characters. Unlike Foundation's
    /// `padding(toLength:withPad:startingAt:)` a longer text is kept whole:
    /// every caller aligns a column, and a cut name or number misleads.
    public func padded(toLength length: Int) -> String {
        count >= length ? String(self) : String(self) + String(repeating: " ", count: length - count)
    }
}

extension String {
    /// A printf-style format (`%.1f`, `%+.1f`, `%ld`, `%04x`) filled by the C
    /// library, as Foundation's `String(format:)` fills those conversions.
    public init(cFormat format: String, _ arguments: any CVarArg...) {
        let length = withVaList(arguments) { vsnprintf(nil, 0, format, $0) }
        guard length > 0 else {
            self = ""
            return
        }
        var buffer = [CChar](repeating: 0, count: Int(length) + 1)
        _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        self = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Lines for standard error, written at once (unbuffered, as `FileHandle.standardError`).
public enum StandardError {
    public static func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

extension DecodingError {
    /// What Foundation's `localizedDescription` says for a decoding error.
    public var summary: String {
        switch self {
        case .keyNotFound, .valueNotFound: return "The operation could not be completed. The data is missing."
        default: return "The operation could not be completed. The data isn’t in the correct format."
        }
    }
}

/// A mutual-exclusion lock over a pthread mutex, as Foundation's `NSLock`.
final class PthreadLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }

    func unlock() { pthread_mutex_unlock(mutex) }
}
