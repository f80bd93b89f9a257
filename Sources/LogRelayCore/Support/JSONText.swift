// String quoting for the control path (error bodies, CONNECT, the tag's `json` function,
// the plugin's own log lines, option errors). The hot path has its own byte-level encoder
// (Event/EventEncoder.swift).
public enum JSONText {
    /// `s` as a JSON string literal, escaped the way Go's encoding/json does (without HTML escaping).
    public static func quote(_ s: String) -> String { quoted(s, style: .json) }

    /// How `quoted` writes what is not printed as is.
    enum Style {
        /// Go's encoding/json: \b \f by name too; other C0 controls, U+2028 and U+2029 as \uXXXX.
        case json
        /// Only \" \\ \n \r \t and \uXXXX (what logfmt readers know), also for DEL, the C1
        /// controls and U+2028 / U+2029, so a value stays on its line wherever it is read.
        case oneLine
    }

    /// `s` in double quotes, escaped by `style`, cut (and marked "...") after `maxCharacters`.
    static func quoted<S: StringProtocol>(_ s: S, style: Style, maxCharacters: Int = .max) -> String {
        var out = "\""
        for (n, u) in s.unicodeScalars.enumerated() {
            if n == maxCharacters {
                out += "..."
                break
            }
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}" where style == .json: out += "\\b"
            case "\u{0C}" where style == .json: out += "\\f"
            default:
                let control = u.value < 0x20 || (style == .oneLine && (0x7F...0x9F).contains(u.value))
                if control || u.value == 0x2028 || u.value == 0x2029 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
