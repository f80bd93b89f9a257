// The Unicode knowledge the regex engine needs: UTF-8 decoding exactly as Go's
// utf8.DecodeRune does (so verdicts on invalid input agree with Docker's), simple case
// folding orbits for (?i), and general categories for \p{..}.

enum UTF8Decoding {
    static let replacement: UInt32 = 0xFFFD

    /// The code point at `i` and its length in bytes; (U+FFFD, 1) for a byte that does not
    /// start a valid, shortest-form, non-surrogate sequence.
    @inline(__always)
    static func decode(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (UInt32, Int) {
        let b0 = p[i]
        if b0 < 0x80 { return (UInt32(b0), 1) }
        return decodeMultiByte(p, i, n)
    }

    static func decodeMultiByte(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (UInt32, Int) {
        let b0 = p[i]
        let bad = (replacement, 1)
        if b0 < 0xC2 || b0 > 0xF4 { return bad }
        func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> UInt32? {
            guard i + k < n else { return nil }
            let b = p[i + k]
            return b >= lo && b <= hi ? UInt32(b & 0x3F) : nil
        }
        if b0 < 0xE0 {
            guard let c1 = cont(1) else { return bad }
            return (UInt32(b0 & 0x1F) << 6 | c1, 2)
        }
        if b0 < 0xF0 {
            let lo: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
            let hi: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard let c1 = cont(1, lo, hi), let c2 = cont(2) else { return bad }
            return (UInt32(b0 & 0x0F) << 12 | c1 << 6 | c2, 3)
        }
        let lo: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
        let hi: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
        guard let c1 = cont(1, lo, hi), let c2 = cont(2), let c3 = cont(3) else { return bad }
        return (UInt32(b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3, 4)
    }
}

/// Simple case folding as orbits, like Go's unicode.SimpleFold: (?i)k matches k, K and
/// U+212A KELVIN SIGN. Derived once from the standard library's case mappings: two scalars
/// share an orbit when lowercase(uppercase(x)) agree, using single-scalar mappings only,
/// which is what CaseFolding.txt's simple (C+S) foldings amount to, except for the Turkic
/// dotted and dotless i, which fold to nothing else there.
enum CaseOrbit {
    /// Scalars that have an orbit of two or more, sorted, and the next member of each one's orbit.
    private static let table: (scalars: [UInt32], next: [UInt32]) = build()

    private static func build() -> (scalars: [UInt32], next: [UInt32]) {
        func single(_ s: String) -> Unicode.Scalar? {
            var it = s.unicodeScalars.makeIterator()
            guard let a = it.next(), it.next() == nil else { return nil }
            return a
        }
        var groups: [UInt32: [UInt32]] = [:]
        // Every cased scalar is below U+20000.
        for v in UInt32(0)..<0x20000 {
            guard v != 0x130, v != 0x131, let s = Unicode.Scalar(v), s.properties.changesWhenCaseMapped else { continue }
            let upper = single(s.properties.uppercaseMapping) ?? s
            let key = single(upper.properties.lowercaseMapping) ?? upper
            groups[key.value, default: [key.value]].append(v)
        }
        var pairs: [(UInt32, UInt32)] = []
        for members in groups.values {
            let m = Array(Set(members)).sorted()
            guard m.count > 1 else { continue }
            for (k, s) in m.enumerated() { pairs.append((s, m[(k + 1) % m.count])) }
        }
        pairs.sort { $0.0 < $1.0 }
        return (pairs.map(\.0), pairs.map(\.1))
    }

    /// The next member of `r`'s orbit, or `r` itself when it folds to nothing else.
    static func next(_ r: UInt32) -> UInt32 {
        let t = table
        var lo = 0, hi = t.scalars.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if t.scalars[mid] < r { lo = mid + 1 } else { hi = mid }
        }
        return lo < t.scalars.count && t.scalars[lo] == r ? t.next[lo] : r
    }

    /// Whether any other member of `r`'s orbit satisfies `test`.
    static func anyOther(_ r: UInt32, _ test: (UInt32) -> Bool) -> Bool {
        var s = next(r)
        while s != r {
            if test(s) { return true }
            s = next(s)
        }
        return false
    }

    /// `r` and every other member of its orbit.
    static func orbit(_ r: UInt32) -> [UInt32] {
        var out = [r]
        var s = next(r)
        while s != r {
            out.append(s)
            s = next(s)
        }
        return out
    }
}

/// General categories as bit masks, for \p{L}, \p{Lu}, \PN and so on (Go's names).
enum UnicodeCategory {
    private static let names = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No",
                                "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So",
                                "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]

    /// The mask for a category name, nil if Go has no such category. Like Go's, "C" is
    /// Cc|Cf|Cs|Co (unassigned code points are in no category).
    static func mask(named name: String) -> UInt32? {
        if let k = names.firstIndex(of: name) { return 1 << UInt32(k) }
        guard name.utf8.count == 1 else { return nil }
        var m: UInt32 = 0
        for (k, n) in names.enumerated() where n.hasPrefix(name) { m |= 1 << UInt32(k) }
        return m == 0 ? nil : m
    }

    static func bit(_ r: UInt32) -> UInt32 {
        guard let s = Unicode.Scalar(r) else { return 0 }
        switch s.properties.generalCategory {
        case .uppercaseLetter: return 1 << 0
        case .lowercaseLetter: return 1 << 1
        case .titlecaseLetter: return 1 << 2
        case .modifierLetter: return 1 << 3
        case .otherLetter: return 1 << 4
        case .nonspacingMark: return 1 << 5
        case .spacingMark: return 1 << 6
        case .enclosingMark: return 1 << 7
        case .decimalNumber: return 1 << 8
        case .letterNumber: return 1 << 9
        case .otherNumber: return 1 << 10
        case .connectorPunctuation: return 1 << 11
        case .dashPunctuation: return 1 << 12
        case .openPunctuation: return 1 << 13
        case .closePunctuation: return 1 << 14
        case .initialPunctuation: return 1 << 15
        case .finalPunctuation: return 1 << 16
        case .otherPunctuation: return 1 << 17
        case .mathSymbol: return 1 << 18
        case .currencySymbol: return 1 << 19
        case .modifierSymbol: return 1 << 20
        case .otherSymbol: return 1 << 21
        case .spaceSeparator: return 1 << 22
        case .lineSeparator: return 1 << 23
        case .paragraphSeparator: return 1 << 24
        case .control: return 1 << 25
        case .format: return 1 << 26
        case .surrogate: return 1 << 27
        case .privateUse: return 1 << 28
        case .unassigned: return 0
        @unknown default: return 0
        }
    }
}
