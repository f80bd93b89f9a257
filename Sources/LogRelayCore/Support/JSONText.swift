// JSON string quoting for the control path (error bodies, CONNECT, the tag's `json`
// function). The hot path has its own byte-level encoder (Event/EventEncoder.swift).
public enum JSONText {
    /// `s` as a JSON string literal, escaped the way Go's encoding/json does (without HTML escaping).
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u00" + (hex.count < 2 ? "0" + hex : hex)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
