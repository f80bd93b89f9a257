// A character class ([a-z], \d, \p{Lu}, [^[:alpha:]], and the orbit of a (?i) literal) as
// the matcher tests it: a bitmap answers ASCII at once, the rest is looked up.

struct CharClass: Sendable {
    /// A part that is negated or a Unicode category. Each such part is case-folded before
    /// it is negated, as RE2 does: (?i)[^k] excludes k, K and the Kelvin sign alike.
    struct Part: Sendable {
        enum Members: Sendable {
            case ranges([UInt32])
            case categories(UInt32)
        }
        var members: Members
        var negated: Bool

        func contains(_ r: UInt32, fold: Bool) -> Bool {
            let hit: Bool
            switch members {
            case .ranges(let ranges):
                hit = CharClass.inRanges(ranges, r) || (fold && CaseOrbit.anyOther(r) { CharClass.inRanges(ranges, $0) })
            case .categories(let mask):
                hit = UnicodeCategory.bit(r) & mask != 0 || (fold && CaseOrbit.anyOther(r) { UnicodeCategory.bit($0) & mask != 0 })
            }
            return hit != negated
        }
    }

    /// The plain positive part: sorted, merged inclusive ranges, flattened [lo, hi, lo, hi, ...].
    private(set) var ranges: [UInt32] = []
    private(set) var parts: [Part] = []
    var negated = false
    let fold: Bool
    /// Membership of U+0000...U+007F, bit r of (low, high): filled by `finish()`.
    private(set) var ascii: (low: UInt64, high: UInt64) = (0, 0)

    init(fold: Bool) { self.fold = fold }

    init(runes: [UInt32]) {
        fold = false
        for r in runes { addRange(r, r) }
        finish()
    }

    mutating func addRange(_ lo: UInt32, _ hi: UInt32) {
        ranges.append(lo)
        ranges.append(hi)
    }

    /// Adds `set` (flattened ranges), or everything outside it.
    mutating func add(_ set: [UInt32], negated: Bool) {
        if negated {
            parts.append(Part(members: .ranges(Self.normalized(set)), negated: true))
        } else {
            ranges += set
        }
    }

    mutating func addCategories(_ mask: UInt32, negated: Bool) {
        parts.append(Part(members: .categories(mask), negated: negated))
    }

    mutating func finish() {
        ranges = Self.normalized(ranges)
        var low: UInt64 = 0, high: UInt64 = 0
        for r in UInt32(0)..<128 where slowContains(r) {
            if r < 64 { low |= 1 << UInt64(r) } else { high |= 1 << UInt64(r - 64) }
        }
        ascii = (low, high)
    }

    /// Whether the class can match anything at or above U+0080 (for the start-byte filter;
    /// a cheap over-estimate is fine).
    var mayMatchNonASCII: Bool {
        negated || fold || !parts.isEmpty || (ranges.last.map { $0 >= 0x80 } ?? false)
    }

    @inline(__always)
    func contains(_ r: UInt32) -> Bool {
        if r < 64 { return ascii.low >> UInt64(r) & 1 != 0 }
        if r < 128 { return ascii.high >> UInt64(r - 64) & 1 != 0 }
        return slowContains(r)
    }

    func slowContains(_ r: UInt32) -> Bool {
        var hit = Self.inRanges(ranges, r) || (fold && CaseOrbit.anyOther(r) { Self.inRanges(ranges, $0) })
        if !hit {
            for p in parts where p.contains(r, fold: fold) {
                hit = true
                break
            }
        }
        return hit != negated
    }

    static func inRanges(_ ranges: [UInt32], _ r: UInt32) -> Bool {
        // Binary search over pairs: the first pair whose hi >= r.
        var lo = 0, hi = ranges.count / 2
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[2 * mid + 1] < r { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count / 2 && ranges[2 * lo] <= r
    }

    static func normalized(_ flat: [UInt32]) -> [UInt32] {
        var pairs: [(UInt32, UInt32)] = []
        pairs.reserveCapacity(flat.count / 2)
        var k = 0
        while k + 1 < flat.count {
            pairs.append((flat[k], flat[k + 1]))
            k += 2
        }
        pairs.sort { $0.0 < $1.0 }
        var out: [UInt32] = []
        for (lo, hi) in pairs {
            if let last = out.last, lo <= last &+ 1, last != UInt32.max {
                out[out.count - 1] = max(last, hi)
            } else {
                out.append(lo)
                out.append(hi)
            }
        }
        return out
    }

    // Go's Perl and POSIX groups, as flattened ranges.
    static let digit: [UInt32] = [0x30, 0x39]
    static let space: [UInt32] = [0x09, 0x0A, 0x0C, 0x0D, 0x20, 0x20]
    static let word: [UInt32] = [0x30, 0x39, 0x41, 0x5A, 0x5F, 0x5F, 0x61, 0x7A]
    static let any: [UInt32] = [0, 0x10FFFF]

    static func posix(_ name: String) -> [UInt32]? {
        switch name {
        case "alnum": return [0x30, 0x39, 0x41, 0x5A, 0x61, 0x7A]
        case "alpha": return [0x41, 0x5A, 0x61, 0x7A]
        case "ascii": return [0x00, 0x7F]
        case "blank": return [0x09, 0x09, 0x20, 0x20]
        case "cntrl": return [0x00, 0x1F, 0x7F, 0x7F]
        case "digit": return digit
        case "graph": return [0x21, 0x7E]
        case "lower": return [0x61, 0x7A]
        case "print": return [0x20, 0x7E]
        case "punct": return [0x21, 0x2F, 0x3A, 0x40, 0x5B, 0x60, 0x7B, 0x7E]
        case "space": return [0x09, 0x0D, 0x20, 0x20]
        case "upper": return [0x41, 0x5A]
        case "word": return word
        case "xdigit": return [0x30, 0x39, 0x41, 0x46, 0x61, 0x66]
        default: return nil
        }
    }
}
