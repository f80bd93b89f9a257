// Pattern text → syntax tree, with RE2/Go `regexp/syntax` rules (Perl flags): the same
// patterns are accepted and mean the same, and what RE2 rejects (backreferences,
// lookaround, possessive and stacked quantifiers, bad escapes) fails with a reason and
// the byte offset where it went wrong. Recursive descent; nesting is capped so that no
// pattern can exhaust the stack.

indirect enum RegexNode: Sendable {
    case empty
    case rune(UInt32)
    case charClass(CharClass)
    /// `.`; `newline`: (?s) is on, so it matches "\n" too.
    case any(newline: Bool)
    case assertion(RegexAssertion)
    case concat([RegexNode])
    case alternate([RegexNode])
    /// `max` -1: unbounded. `counted`: written as {n,m}, which RE2 limits (see `repeatIsValid`).
    case repetition(RegexNode, min: Int, max: Int, counted: Bool)

    /// RE2's rule: nested counted repetitions may multiply to at most `n` (1000), so that
    /// (a{1000}){1000} is an error rather than a million copies.
    func repeatIsValid(_ n: Int) -> Bool {
        switch self {
        case .repetition(let sub, let min, let max, let counted):
            var n = n
            if counted {
                if max == 0 { return true }
                let m = max < 0 ? min : max
                if m > n { return false }
                if m > 0 { n /= m }
            }
            return sub.repeatIsValid(n)
        case .concat(let subs), .alternate(let subs):
            return subs.allSatisfy { $0.repeatIsValid(n) }
        default:
            return true
        }
    }
}

/// Zero-width assertions, as bits of the matcher's per-position context.
enum RegexAssertion: UInt8, Sendable {
    case beginText = 1, endText = 2, beginLine = 4, endLine = 8, wordBoundary = 16, notWordBoundary = 32
}

struct RegexParser {
    static let maxRepeat = 1000
    /// Group nesting allowed (RE2 allows 1000; Docker patterns nest a few levels, and
    /// every level costs stack in the parser and compiler).
    static let maxDepth = 250

    private struct Flags {
        var fold = false, dotNL = false, multiLine = false
    }

    private let p: [UInt8]
    private var i = 0
    private var flags = Flags()
    private var depth = 0

    private init(_ pattern: [UInt8]) { p = pattern }

    static func parse(_ pattern: [UInt8]) throws(RegexSyntaxError) -> RegexNode {
        var parser = RegexParser(pattern)
        let tree = try parser.parseAlternation()
        if parser.i < parser.p.count {
            throw RegexSyntaxError("unexpected )", at: parser.i)
        }
        return tree
    }

    // MARK: structure

    private mutating func parseAlternation() throws(RegexSyntaxError) -> RegexNode {
        var alternatives = [try parseConcat()]
        while at(i) == c("|") {
            i += 1
            alternatives.append(try parseConcat())
        }
        return alternatives.count == 1 ? alternatives[0] : .alternate(alternatives)
    }

    private mutating func parseConcat() throws(RegexSyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        // Where the previous token started if it was a repetition operator: RE2 rejects a**.
        var lastRepeat: Int?
        while i < p.count, p[i] != c("|"), p[i] != c(")") {
            let start = i
            if let (min, max, counted) = try repetitionOperator() {
                if i < p.count, p[i] == c("?") { i += 1 }  // lazy: the same verdict
                if let last = lastRepeat {
                    let text = quoted(last..<i)
                    if p[start] == c("+") && i == start + 1 {
                        throw RegexSyntaxError("possessive quantifier \(text) is not supported", at: last)
                    }
                    throw RegexSyntaxError("invalid nested repetition operator \(text)", at: last)
                }
                guard let sub = items.popLast() else {
                    throw RegexSyntaxError("missing argument to repetition operator \(quoted(start..<i))", at: start)
                }
                let node = RegexNode.repetition(sub, min: min, max: max, counted: counted)
                if counted && (min >= 2 || max >= 2) && !node.repeatIsValid(Self.maxRepeat) {
                    throw RegexSyntaxError("invalid repeat count \(quoted(start..<i)): nested counts multiply beyond \(Self.maxRepeat)", at: start)
                }
                items.append(node)
                lastRepeat = start
                continue
            }
            lastRepeat = nil
            switch p[i] {
            case c("("):
                if let group = try parseGroup() { items.append(group) }
            case c("["):
                items.append(.charClass(try parseClass()))
            case c("."):
                i += 1
                items.append(.any(newline: flags.dotNL))
            case c("^"):
                i += 1
                items.append(.assertion(flags.multiLine ? .beginLine : .beginText))
            case c("$"):
                i += 1
                items.append(.assertion(flags.multiLine ? .endLine : .endText))
            case c("\\"):
                try parseEscape(into: &items)
            default:
                items.append(literal(nextRune()))
            }
        }
        switch items.count {
        case 0: return .empty
        case 1: return items[0]
        default: return .concat(items)
        }
    }

    /// `* + ? {n} {n,} {n,m}` at `i`, consumed; nil (nothing consumed) for anything else,
    /// including a `{` that does not form a count, which RE2 reads as a literal.
    private mutating func repetitionOperator() throws(RegexSyntaxError) -> (Int, Int, Bool)? {
        switch p[i] {
        case c("*"): i += 1; return (0, -1, false)
        case c("+"): i += 1; return (1, -1, false)
        case c("?"): i += 1; return (0, 1, false)
        case c("{"): break
        default: return nil
        }
        let start = i
        var k = i + 1
        guard let min = integer(&k) else { return nil }
        var max = min
        if at(k) == c(",") {
            k += 1
            if at(k) == c("}") {
                max = -1
            } else {
                guard let m = integer(&k) else { return nil }
                max = m
            }
        }
        guard at(k) == c("}") else { return nil }
        i = k + 1
        if min > Self.maxRepeat || max > Self.maxRepeat || (max >= 0 && min > max) {
            throw RegexSyntaxError("invalid repeat count \(quoted(start..<i)) (counts go up to \(Self.maxRepeat), and min <= max)", at: start)
        }
        return (min, max, true)
    }

    /// Decimal digits without a leading zero (RE2: {01} is literal text); values past 10^8
    /// become an out-of-range count rather than overflowing.
    private func integer(_ k: inout Int) -> Int? {
        guard let d = at(k), isDigit(d) else { return nil }
        if d == c("0"), let d1 = at(k + 1), isDigit(d1) { return nil }
        var n = 0
        while let d = at(k), isDigit(d) {
            if n < 100_000_000 { n = n * 10 + Int(d - c("0")) }
            k += 1
        }
        return n
    }

    /// A group at `i` ("("), or nil for a flags-only group such as (?i), which changes the
    /// flags for the rest of the enclosing group.
    private mutating func parseGroup() throws(RegexSyntaxError) -> RegexNode? {
        let start = i
        i += 1
        guard at(i) == c("?") else { return try groupBody(from: start, flags: flags) }
        let c1 = at(i + 1), c2 = at(i + 2)
        if c1 == c("=") || c1 == c("!") {
            throw RegexSyntaxError("lookahead \(quoted(start..<i + 2)) is not supported", at: start)
        }
        if c1 == c("<") && (c2 == c("=") || c2 == c("!")) {
            throw RegexSyntaxError("lookbehind \(quoted(start..<i + 3)) is not supported", at: start)
        }
        if c1 == c(">") {
            throw RegexSyntaxError("atomic group (?> is not supported", at: start)
        }
        if c1 == c("<") || (c1 == c("P") && c2 == c("<")) {
            let nameStart = c1 == c("<") ? i + 2 : i + 3
            guard let end = p[nameStart...].firstIndex(of: c(">")) else {
                throw RegexSyntaxError("invalid named capture \(quoted(start..<p.count)): no closing >", at: start)
            }
            let name = p[nameStart..<end]
            guard !name.isEmpty, name.allSatisfy(isWordByte) else {
                throw RegexSyntaxError("invalid named capture \(quoted(start..<end + 1)): a name is letters, digits and _", at: start)
            }
            i = end + 1
            return try groupBody(from: start, flags: flags)
        }
        // Flags: (?i) (?-s) (?im-sU) or scoped, (?i:...).
        i += 1
        var f = flags
        var negate = false, sawFlag = false
        flagLoop: while i < p.count {
            let ch = p[i]
            i += 1
            switch ch {
            case c("i"): f.fold = !negate
            case c("s"): f.dotNL = !negate
            case c("m"): f.multiLine = !negate
            case c("U"): break  // ungreedy: does not change whether a pattern matches
            case c("-"):
                if negate { break flagLoop }
                negate = true
                sawFlag = false
                continue
            case c(":"), c(")"):
                if negate && !sawFlag { break flagLoop }
                if ch == c(")") {
                    flags = f
                    return nil
                }
                return try groupBody(from: start, flags: f)
            default:
                break flagLoop
            }
            sawFlag = true
        }
        throw RegexSyntaxError("invalid or unsupported Perl syntax \(quoted(start..<i))", at: start)
    }

    private mutating func groupBody(from start: Int, flags inner: Flags) throws(RegexSyntaxError) -> RegexNode {
        depth += 1
        if depth > Self.maxDepth {
            throw RegexSyntaxError("groups nest deeper than \(Self.maxDepth)", at: start)
        }
        let outer = flags
        flags = inner
        let body = try parseAlternation()
        guard at(i) == c(")") else {
            throw RegexSyntaxError("missing closing ) for the group opened", at: start)
        }
        i += 1
        flags = outer
        depth -= 1
        return body
    }

    // MARK: escapes

    /// A backslash sequence outside a class.
    private mutating func parseEscape(into items: inout [RegexNode]) throws(RegexSyntaxError) {
        let start = i
        switch at(i + 1) {
        case c("A"): i += 2; items.append(.assertion(.beginText)); return
        case c("z"): i += 2; items.append(.assertion(.endText)); return
        case c("b"): i += 2; items.append(.assertion(.wordBoundary)); return
        case c("B"): i += 2; items.append(.assertion(.notWordBoundary)); return
        case c("Q"):
            // \Q...\E: literal text, to \E or the end.
            i += 2
            while i < p.count {
                if p[i] == c("\\") && at(i + 1) == c("E") {
                    i += 2
                    break
                }
                items.append(literal(nextRune()))
            }
            return
        case c("C"): throw RegexSyntaxError("\\C (any byte) is not supported", at: start)
        case c("Z"): throw RegexSyntaxError("\\Z is not supported (use \\z, or $ which is the same without (?m))", at: start)
        default: break
        }
        var cls = CharClass(fold: flags.fold)
        if try parseClassEscape(into: &cls) {
            cls.finish()
            items.append(.charClass(cls))
            return
        }
        items.append(literal(try escapedRune()))
    }

    /// A one-character escape at `i` ("\"): \n, \x41, \x{263a}, \101, \., ...
    private mutating func escapedRune() throws(RegexSyntaxError) -> UInt32 {
        let start = i
        i += 1
        guard i < p.count else { throw RegexSyntaxError("trailing backslash at end of pattern", at: start) }
        let ch = nextRune()
        switch ch {
        case 0x31...0x37 where at(i).map(isOctal) ?? false, 0x30:
            // Octal: up to three digits; \1 alone would be a backreference.
            var r = ch - 0x30
            for _ in 0..<2 {
                guard let d = at(i), isOctal(d) else { break }
                r = r * 8 + UInt32(d - c("0"))
                i += 1
            }
            return r
        case 0x31...0x39:
            throw RegexSyntaxError("backreference \(quoted(start..<i)) is not supported", at: start)
        case UInt32(c("x")):
            if at(i) == c("{") {
                var k = i + 1
                var r: UInt32 = 0
                var digits = 0
                while let d = at(k), let v = hexValue(d) {
                    r = r * 16 + v
                    digits += 1
                    k += 1
                    if r > 0x10FFFF { break }
                }
                guard digits > 0, r <= 0x10FFFF, at(k) == c("}") else {
                    throw RegexSyntaxError("invalid escape \(quoted(start..<min(k + 1, p.count))): \\x{...} takes hex digits up to 10FFFF", at: start)
                }
                i = k + 1
                return r
            }
            guard let h = at(i).flatMap(hexValue), let l = at(i + 1).flatMap(hexValue) else {
                throw RegexSyntaxError("invalid escape \(quoted(start..<min(i + 2, p.count))): \\x takes two hex digits or {hex}", at: start)
            }
            i += 2
            return h * 16 + l
        case UInt32(c("a")): return 0x07
        case UInt32(c("f")): return 0x0C
        case UInt32(c("n")): return 0x0A
        case UInt32(c("r")): return 0x0D
        case UInt32(c("t")): return 0x09
        case UInt32(c("v")): return 0x0B
        default:
            // Punctuation escapes itself; letters and digits are reserved.
            if ch < 0x80 && !isWordByte(UInt8(ch)) || ch == UInt32(c("_")) { return ch }
            throw RegexSyntaxError("invalid escape \(quoted(start..<i))", at: start)
        }
    }

    /// \d \D \s \S \w \W \pX \p{Name} \PX \P{^Name} at `i`, added to `cls`; false (nothing
    /// consumed) if `i` holds another escape.
    private mutating func parseClassEscape(into cls: inout CharClass) throws(RegexSyntaxError) -> Bool {
        guard at(i) == c("\\"), let kind = at(i + 1) else { return false }
        let start = i
        switch kind {
        case c("d"), c("D"): cls.add(CharClass.digit, negated: kind == c("D"))
        case c("s"), c("S"): cls.add(CharClass.space, negated: kind == c("S"))
        case c("w"), c("W"): cls.add(CharClass.word, negated: kind == c("W"))
        case c("p"), c("P"):
            var negated = kind == c("P")
            var name: String
            if at(i + 2) == c("{") {
                guard let end = p[(i + 2)...].firstIndex(of: c("}")) else {
                    throw RegexSyntaxError("invalid character class \(quoted(start..<p.count)): no closing }", at: start)
                }
                name = String(decoding: p[(i + 3)..<end], as: UTF8.self)
                i = end + 1
            } else {
                i += 2
                guard i < p.count else { throw RegexSyntaxError("invalid character class \\\(Unicode.Scalar(kind)) at end of pattern", at: start) }
                name = String(Character(Unicode.Scalar(nextRune()) ?? "\u{FFFD}"))
            }
            if name.hasPrefix("^") {
                negated.toggle()
                name.removeFirst()
            }
            if name == "Any" {
                cls.add(CharClass.any, negated: negated)
            } else if let mask = UnicodeCategory.mask(named: name) {
                cls.addCategories(mask, negated: negated)
            } else {
                throw RegexSyntaxError("unknown or unsupported character class \(quoted(start..<i)) (general categories such as \\p{L}, \\p{Lu}, \\pN are supported, Unicode scripts are not)", at: start)
            }
            return true
        default:
            return false
        }
        i += 2
        return true
    }

    // MARK: classes

    private mutating func parseClass() throws(RegexSyntaxError) -> CharClass {
        let start = i
        i += 1
        var cls = CharClass(fold: flags.fold)
        if at(i) == c("^") {
            cls.negated = true
            i += 1
        }
        var first = true  // "]" first is a literal
        while first || at(i) != c("]") {
            guard i < p.count else { throw RegexSyntaxError("missing closing ] for the class opened", at: start) }
            first = false
            if try parsePOSIXClass(into: &cls) { continue }
            if try parseClassEscape(into: &cls) { continue }
            let rangeStart = i
            let lo = try classRune(start)
            var hi = lo
            if at(i) == c("-"), let next = at(i + 1), next != c("]") {
                i += 1
                hi = try classRune(start)
                if hi < lo {
                    throw RegexSyntaxError("invalid character class range \(quoted(rangeStart..<i))", at: rangeStart)
                }
            }
            cls.addRange(lo, hi)
        }
        i += 1
        cls.finish()
        return cls
    }

    private mutating func classRune(_ classStart: Int) throws(RegexSyntaxError) -> UInt32 {
        guard i < p.count else { throw RegexSyntaxError("missing closing ] for the class opened", at: classStart) }
        return p[i] == c("\\") ? try escapedRune() : nextRune()
    }

    /// [:alpha:] or [:^alpha:] at `i`. As in RE2, "[:" without a later ":]" is literal text.
    private mutating func parsePOSIXClass(into cls: inout CharClass) throws(RegexSyntaxError) -> Bool {
        guard at(i) == c("["), at(i + 1) == c(":") else { return false }
        var k = i + 2
        while k + 1 < p.count, !(p[k] == c(":") && p[k + 1] == c("]")) { k += 1 }
        guard k + 1 < p.count else { return false }
        var name = String(decoding: p[(i + 2)..<k], as: UTF8.self)
        let negated = name.hasPrefix("^")
        if negated { name.removeFirst() }
        guard let set = CharClass.posix(name) else {
            throw RegexSyntaxError("invalid character class \(quoted(i..<k + 2))", at: i)
        }
        cls.add(set, negated: negated)
        i = k + 2
        return true
    }

    // MARK: helpers

    private func literal(_ r: UInt32) -> RegexNode {
        guard flags.fold else { return .rune(r) }
        let orbit = CaseOrbit.orbit(r)
        return orbit.count == 1 ? .rune(r) : .charClass(CharClass(runes: orbit))
    }

    private mutating func nextRune() -> UInt32 {
        p.withUnsafeBufferPointer { b in
            let (r, n) = UTF8Decoding.decode(b.baseAddress!, i, b.count)
            i += n
            return r
        }
    }

    private func at(_ k: Int) -> UInt8? { k < p.count ? p[k] : nil }

    /// Part of the pattern for a message: one line (control characters as \xHH), cut at 40.
    private func quoted(_ r: Range<Int>) -> String {
        let end = min(r.upperBound, p.count)
        var out = "`"
        for (n, u) in String(decoding: p[min(r.lowerBound, end)..<end], as: UTF8.self).unicodeScalars.enumerated() {
            if n == 40 {
                out += "..."
                break
            }
            if u.value < 0x20 || u.value == 0x7F {
                out += "\\x" + String(u.value >> 4, radix: 16) + String(u.value & 15, radix: 16)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out + "`"
    }

}

private func c(_ s: Unicode.Scalar) -> UInt8 { UInt8(ascii: s) }
private func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
private func isOctal(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x37 }
private func isWordByte(_ b: UInt8) -> Bool {
    isDigit(b) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
}
private func hexValue(_ b: UInt8) -> UInt32? {
    switch b {
    case 0x30...0x39: return UInt32(b - 0x30)
    case 0x41...0x46: return UInt32(b - 0x41 + 10)
    case 0x61...0x66: return UInt32(b - 0x61 + 10)
    default: return nil
    }
}
