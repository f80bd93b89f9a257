// Shared by every libFuzzer target in Tests/Fuzz (compiled into each one; see build.sh).

/// Splits an input into the pieces a socket or pipe might deliver, deterministically from
/// a seed, so the same input always reproduces the same split.
struct FuzzSplitter {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    /// xorshift64*
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Piece lengths covering `count` bytes: mostly tiny pieces (1–8 bytes, to cut every
    /// header and varint), sometimes larger ones.
    mutating func pieces(_ count: Int) -> [Int] {
        var out: [Int] = []
        var left = count
        while left > 0 {
            let r = next()
            let n = r & 3 == 0 ? Int((r >> 8) % 4096) + 1 : Int((r >> 8) % 8) + 1
            out.append(min(n, left))
            left -= out[out.count - 1]
        }
        return out
    }
}

/// A seed for the splitter, from the whole input (FNV-1a).
func seed(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Fails the run (libFuzzer reports it as a crash and saves the input) with a message.
@inline(never)
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fatalError("fuzz invariant violated: \(message())")
    }
}

/// Strict JSON (RFC 8259) over bytes, for the encoder targets: one value, whitespace around
/// it, strings of valid UTF-8 with every control character escaped. Recursion is bounded by
/// what the encoders produce (an object of strings, one level of attrs).
struct JSONValidator {
    let b: [UInt8]
    var i = 0

    static func isValid(_ bytes: [UInt8]) -> Bool {
        guard String(validating: bytes, as: UTF8.self) != nil else { return false }
        var v = JSONValidator(b: bytes)
        v.ws()
        guard v.value(depth: 0) else { return false }
        v.ws()
        return v.i == bytes.count
    }

    mutating func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 } }

    mutating func lit(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard i + u.count <= b.count, Array(b[i..<(i + u.count)]) == u else { return false }
        i += u.count
        return true
    }

    mutating func value(depth: Int) -> Bool {
        guard depth < 32, i < b.count else { return false }
        switch b[i] {
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "{"):
            i += 1; ws()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return true }
            while true {
                ws()
                guard i < b.count, b[i] == UInt8(ascii: "\""), string() else { return false }
                ws()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
                i += 1; ws()
                guard value(depth: depth + 1) else { return false }
                ws()
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return true }
                return false
            }
        case UInt8(ascii: "["):
            i += 1; ws()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return true }
            while true {
                ws()
                guard value(depth: depth + 1) else { return false }
                ws()
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return true }
                return false
            }
        case UInt8(ascii: "t"): return lit("true")
        case UInt8(ascii: "f"): return lit("false")
        case UInt8(ascii: "n"): return lit("null")
        default:
            let start = i
            if b[i] == UInt8(ascii: "-") { i += 1 }
            while i < b.count, (b[i] >= 0x30 && b[i] <= 0x39) || b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e")
                    || b[i] == UInt8(ascii: "E") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            return i > start
        }
    }

    mutating func string() -> Bool {
        i += 1
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return true }
            if c < 0x20 { return false }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { return false }
                switch b[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    guard i + 4 < b.count, b[(i + 1)...(i + 4)].allSatisfy({ HexDigit.isHex($0) }) else { return false }
                    i += 5
                default: return false
                }
                continue
            }
            i += 1
        }
        return false
    }
}

enum HexDigit {
    static func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }
}

/// Reads input bytes as a sequence of fields split at 0x00 (the fuzz targets' common layout).
func fields(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
    bytes.split(separator: 0, omittingEmptySubsequences: false)
}
