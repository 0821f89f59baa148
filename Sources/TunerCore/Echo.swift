import FoundationEssentials

/// Echoes text from files and flags inside a one-line message.
public enum Echo {
    /// `text` in double quotes, control characters escaped (`\n`, `\u{1B}`),
    /// cut to `limit` characters: a value read from a file or a flag can hold
    /// anything, and an error stays one line.
    public static func quoted(_ text: some StringProtocol, limit: Int = 60) -> String {
        "\"" + escaped(text, limit: limit) + "\""
    }

    /// Control characters escaped, cut to `limit` characters (… marks a cut).
    public static func escaped(_ text: some StringProtocol, limit: Int = 60) -> String {
        var result = ""
        for (index, character) in text.enumerated() {
            if index == limit {
                result += "…"
                break
            }
            for scalar in character.unicodeScalars {
                switch scalar {
                case "\"": result += "\\\""
                case "\\": result += "\\\\"
                default: append(scalar, to: &result)
                }
            }
        }
        return result
    }

    /// A whole message made one line: line breaks and other control characters escaped.
    public static func oneLine(_ message: String) -> String {
        guard message.unicodeScalars.contains(where: isControl) else { return message }
        var result = ""
        for scalar in message.unicodeScalars {
            if scalar == "\t" { result += " " } else { append(scalar, to: &result) }
        }
        return result
    }

    /// The text with backslashes doubled and every control character written
    /// as an escape, uncut: for names read from a ruleset, which nft and the
    /// kernel accept with any bytes in them.
    public static func escapedName(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0 == "\\" || isControl($0) }) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            if scalar == "\\" { result += "\\\\" } else { append(scalar, to: &result) }
        }
        return result
    }

    /// What must not reach a terminal or a log line as is: C0 and C1
    /// controls, DEL, format characters (a bidirectional override can make a
    /// line read differently from what it says) and the Unicode line and
    /// paragraph separators.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        let category = scalar.properties.generalCategory
        return category == .control || category == .format || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// Appends `scalar`, as `\n`, `\r`, `\t` or `\u{…}` when it is a control character.
    private static func append(_ scalar: Unicode.Scalar, to result: inout String) {
        switch scalar {
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where isControl(scalar): result += "\\u{\(String(scalar.value, radix: 16))}"
        default: result.unicodeScalars.append(scalar)
        }
    }
}

extension String {
    /// The text with every control character written as an escape (`\n`,
    /// `\r`, `\t`, `\u{1b}`) and backslashes doubled, so a table, chain or
    /// file name read from a ruleset never breaks or rewrites a line cttune
    /// prints (nft and the kernel accept any bytes in names).
    public var escapingControlCharacters: String { Echo.escapedName(self) }
}
