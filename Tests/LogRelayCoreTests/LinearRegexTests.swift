// The regex engine (Sources/LogRelayCore/Regex): Go regexp's verdicts on the oracle corpus
// (Tests/regex-oracle, whose expected column check.sh regenerates with Go), every syntax
// feature, what is rejected and where, the compile limits, and patterns that are
// exponential for backtracking engines finishing at once on long inputs.
import Foundation
import XCTest
@testable import LogRelayCore

final class LinearRegexTests: XCTestCase {
    func check(_ pattern: String, _ cases: [String: Bool], file: StaticString = #filePath, line: UInt = #line) {
        do {
            let re = try LinearRegex(pattern)
            for (input, expected) in cases {
                XCTAssertEqual(re.matches(input), expected, "\(pattern.debugDescription) on \(input.debugDescription)", file: file, line: line)
            }
        } catch {
            XCTFail("\(pattern.debugDescription) rejected: \(error)", file: file, line: line)
        }
    }

    func rejects(_ pattern: String, _ reason: String, at offset: Int? = nil, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try LinearRegex(pattern)
            XCTFail("\(pattern.debugDescription) accepted", file: file, line: line)
        } catch {
            XCTAssertTrue(error.reason.contains(reason), "\(pattern.debugDescription): \(error)", file: file, line: line)
            if let offset { XCTAssertEqual(error.offset, offset, "\(pattern.debugDescription): \(error)", file: file, line: line) }
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        }
    }

    // MARK: Go as the oracle

    /// %XX is a byte in hex; everything else is literal (the format oracle.go reads).
    static func unescape(_ s: Substring) -> [UInt8] {
        let u = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let v = UInt8(String(decoding: u[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return out
    }

    func testAgreesWithGoOnTheOracleCorpus() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../regex-oracle/corpus.tsv").path
        let data = try XCTUnwrap(FileManager.default.contents(atPath: path), "cannot read \(path)")
        var pairs = 0, differences: [String] = []
        var scratch = RegexScratch()
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            XCTAssertEqual(f.count, 3, "corpus line \(line.debugDescription)")
            guard f.count == 3 else { continue }
            pairs += 1
            let verdict: String
            do {
                let re = try LinearRegex(String(decoding: Self.unescape(f[0]), as: UTF8.self))
                verdict = Self.unescape(f[1]).withUnsafeBytes { re.matches($0, using: &scratch) } ? "match" : "no"
            } catch {
                verdict = "error"
            }
            if verdict != f[2] { differences.append("\(f[0]) on \(f[1]): Go \(f[2]), here \(verdict)") }
        }
        XCTAssertGreaterThan(pairs, 1000)
        XCTAssertEqual(differences, [], "\(differences.count) of \(pairs) pairs differ from Go")
    }

    // MARK: features

    func testUnanchoredSearchLikeMatchString() {
        check("docker", ["com.docker.compose": true, "docke": false, "": false])
        check("", ["": true, "anything": true])
        check("^APP_", ["APP_NAME": true, "MY_APP_NAME": false])
        check("_URL$", ["DB_URL": true, "DB_URL_X": false])
    }

    func testLiteralsDotAndEscapes() {
        check(#"^a.c$"#, ["abc": true, "a\nc": false, "aéc": true, "ac": false])
        check(#"^\.\\\t\n\r\f\v\a$"#, [".\\\t\n\r\u{0C}\u{0B}\u{07}": true])
        check(#"^\x41\x{263a}\x{1F600}\101\0$"#, ["A☺😀A\u{0}": true])
        check(#"^\*\+\?\(\)\[\]\{\}\|\^\$\-\_\ $"#, ["*+?()[]{}|^$-_ ": true])
        check(#"^\Qa.b*\E+$"#, ["a.b**": true, "axb*": false])
        check(#"^a{,2}$"#, ["a{,2}": true, "aa": false])
    }

    func testPerlAndPOSIXClasses() {
        check(#"^\d\D\s\S\w\W$"#, ["1a b_!": true, "1a\tb_é": true, "11 b_!": false])
        check(#"^\s$"#, ["\u{0B}": false, "\u{A0}": false, "\u{0C}": true])
        check(#"^[\d_]+$"#, ["12_3": true, "12-3": false])
        check("^[[:alpha:]][[:digit:]][[:^space:]]$", ["a1x": true, "a1 ": false])
        check("^[[:alnum:][:punct:]]+$", ["a1!?": true, "a b": false])
    }

    func testBracketClasses() {
        check("^[abc]+$", ["abcab": true, "abd": false])
        check("^[^a-z]$", ["A": true, "m": false, "\n": true, "é": true])
        check("^[]a]$", ["]": true, "a": true])
        check("^[a-]$", ["-": true, "b": false])
        check(#"^[\x{e0}-\x{ff}]$"#, ["é": true, "e": false])
        check("^[☺-☻]$", ["☻": true, "☹": false])
    }

    func testUnicodeCategories() {
        check(#"^\pL+$"#, ["héllo": true, "h3": false])
        check(#"^\p{Lu}\p{Ll}$"#, ["Éa": true, "éa": false])
        check(#"^\PL$"#, ["1": true, "x": false])
        check(#"^\p{^L}$"#, ["1": true, "x": false])
        check(#"^\p{Nd}$"#, ["٣": true, "Ⅳ": false])
        check(#"^\p{Any}$"#, ["😀": true])
    }

    func testAnchorsAndLineFlags() {
        check("^b", ["a\nb": false, "b": true])
        check("(?m)^b$", ["a\nb\nc": true, "a\nbc": false])
        check("a$", ["a\n": false, "a": true])
        check("(?m)a$", ["a\n": true])
        check(#"\Aa\z"#, ["a": true, "a\n": false])
        check(#"(?m)\Ab"#, ["a\nb": false])
    }

    func testWordBoundaries() {
        check(#"\bfoo\b"#, ["a foo b": true, "foobar": false, "a_foo": false, "é foo": true])
        check(#"\Boo"#, ["foo": true, "oo": false])
        check(#"\bé"#, ["é": false])
    }

    func testGroupsAndAlternation() {
        check("^(a|ab)(c|bcd)$", ["abcd": true, "abc": true, "ac": true, "abd": false])
        check("^(?:ab|cd)+$", ["abcdab": true, "abc": false])
        check("^(?P<first>a)(?<second>b)$", ["ab": true])
        check("^(|a)b$", ["b": true, "ab": true])
        check("^(?P<n>x)|(?P<n>y)$", ["x": true, "y": true])
    }

    func testQuantifiersAndLazyFormsGiveTheSameVerdict() {
        for (greedy, lazy) in [("*", "*?"), ("+", "+?"), ("?", "??"), ("{2}", "{2}?"), ("{1,}", "{1,}?"), ("{1,3}", "{1,3}?")] {
            for input in ["", "a", "aa", "aaa", "aaaa", "ba"] {
                let g = try! LinearRegex("^a\(greedy)$"), l = try! LinearRegex("^a\(lazy)$")
                XCTAssertEqual(g.matches(input), l.matches(input), "\(greedy) vs \(lazy) on \(input)")
            }
        }
        check("^a{3}$", ["aaa": true, "aa": false, "aaaa": false])
        check("^a{2,}$", ["a": false, "aaaaa": true])
        check("^(ab){1,2}$", ["ab": true, "abab": true, "ababab": false])
        check("^a{0}$", ["": true, "a": false])
        check("^(?U)a+b$", ["aab": true])
        check("^a{1000}$", [String(repeating: "a", count: 1000): true, String(repeating: "a", count: 999): false])
    }

    func testFlagsScopedAndNot() {
        check("(?i)^log", ["LOG_LEVEL": true, "Logging": true, "my_log": false])
        check("a(?i)b", ["aB": true, "AB": false])
        check("(?i:a)b", ["Ab": true, "AB": false])
        check("(?i)a|b", ["B": true])
        check("((?i)a)b", ["Ab": true, "AB": false])
        check("(?i)a(?-i)b", ["Ab": true, "AB": false])
        check("(?s)^a.b$", ["a\nb": true])
        check("(?i-s:a.)", ["A\n": false, "Ax": true])
    }

    func testCaseFoldingIsUnicodeSimpleFolding() {
        check("(?i)k", ["K": true])
        check("(?i)k", ["\u{212A}": true])  // a separate literal: String equality would merge it with "K"
        check("(?i)s", ["ſ": true, "S": true])
        check("(?i)é", ["É": true])
        check("(?i)σ", ["Σ": true, "ς": true])
        check("(?i)ǅ", ["Ǆ": true, "ǆ": true])
        check("(?i)i", ["ı": false, "İ": false, "I": true])
        check("(?i)^[^k]$", ["\u{212A}": false, "x": true])
        check(#"(?i)^\W$"#, ["\u{212A}": false])
        check(#"(?i)^\p{Lu}$"#, ["é": true])
        check("(?i)straße", ["STRASSE": false, "STRAẞE": true])
    }

    func testInvalidUTF8IsOneReplacementCharacterPerByteAsInGo() {
        let cases: [([UInt8], String, Bool)] = [
            ([0xFF], "^.$", true), ([0xC3], "^.$", true), ([0xED, 0xA0, 0x80], "^...$", true),
            ([0xF4, 0x90, 0x80, 0x80], "^....$", true), ([0xC0, 0x80], "^.$", false),
            ([0xFF], #"^\x{FFFD}$"#, true), ([0x61, 0xFF, 0x63], "a.c", true), ([0x80], "^[^a]$", true),
        ]
        for (bytes, pattern, expected) in cases {
            let re = try! LinearRegex(pattern)
            XCTAssertEqual(bytes.withUnsafeBytes { re.matches($0) }, expected, "\(pattern) on \(bytes)")
        }
    }

    func testOneScratchServesManyRegexesOfAnySize() {
        var scratch = RegexScratch()
        let small = try! LinearRegex("^a"), big = try! LinearRegex("(?:x|y){500}z"), mid = try! LinearRegex(#"\d{3}"#)
        let input = Array((String(repeating: "xy", count: 300) + "z 123").utf8)
        for _ in 0..<3 {
            input.withUnsafeBytes { b in
                XCTAssertFalse(small.matches(b, using: &scratch))
                XCTAssertTrue(big.matches(b, using: &scratch))
                XCTAssertTrue(mid.matches(b, using: &scratch))
            }
        }
        XCTAssertFalse(small.matches(UnsafeRawBufferPointer(start: nil, count: 0)))
        XCTAssertTrue(try! LinearRegex("^$").matches(UnsafeRawBufferPointer(start: nil, count: 0)))
    }

    // MARK: rejected

    func testRejectsWhatRE2RejectsWithReasonAndOffset() {
        rejects("(abc", "missing closing )", at: 0)
        rejects("ab)", "unexpected )", at: 2)
        rejects("x[a-", "missing closing ]", at: 1)
        rejects("[z-a]", "invalid character class range `z-a`", at: 1)
        rejects("a**", "invalid nested repetition operator `**`", at: 1)
        rejects("a{2}{3}", "invalid nested repetition operator", at: 1)
        rejects("*a", "missing argument to repetition operator `*`", at: 0)
        rejects("a|+", "missing argument", at: 2)
        rejects("a{1001}", "invalid repeat count", at: 1)
        rejects("a{3,2}", "invalid repeat count", at: 1)
        rejects("(a{100}){100}", "nested counts multiply beyond 1000")
        rejects(#"x\"#, "trailing backslash", at: 1)
        rejects(#"\q"#, #"invalid escape `\q`"#, at: 0)
        rejects(#"\x{110000}"#, "invalid escape")
        rejects("[[:foo:]]", "invalid character class `[:foo:]`", at: 1)
        rejects("(?x)a", "invalid or unsupported Perl syntax `(?x`", at: 0)
        rejects("(?-)a", "invalid or unsupported Perl syntax")
        rejects("(?P<a-b>x)", "invalid named capture")
        rejects(#"[\b]"#, "invalid escape")
    }

    func testRejectsBacktrackingOnlyFeaturesByName() {
        rejects(#"(a)\1"#, #"backreference `\1` is not supported"#, at: 3)
        rejects("(?=a)", "lookahead `(?=` is not supported")
        rejects("(?!a)", "lookahead `(?!` is not supported")
        rejects("(?<=a)b", "lookbehind `(?<=` is not supported")
        rejects("(?<!a)b", "lookbehind `(?<!` is not supported")
        rejects("a*+", "possessive quantifier `*+` is not supported", at: 1)
        rejects("(?>a)", "atomic group")
        rejects(#"\C"#, "not supported")
        rejects(#"\Z"#, "not supported")
    }

    func testUnicodeScriptsAreNotSupported() {
        // Go accepts \p{Greek}; this engine knows general categories only and says so.
        rejects(#"\p{Greek}"#, "Unicode scripts are not")
        rejects(#"\pX"#, "unknown or unsupported character class")
    }

    func testMessagesStayOnOneLine() {
        rejects("(?x\n)", #"`(?x`"#)
        rejects("a\n**", #"`**`"#)
        rejects("[\u{1}-\u{0}]", #"`\x01-\x00`"#)
    }

    // MARK: limits

    func testCompileCostIsBounded() {
        rejects(String(repeating: "a", count: LinearRegex.maxPatternBytes + 1), "longer than the limit of 4096")
        XCTAssertNoThrow(try LinearRegex(String(repeating: "a", count: LinearRegex.maxPatternBytes)))
        rejects("(?:abcdefghij){1000}", "more than 10000 instructions")
        rejects("((((a{1000}){1000}){1000}){1000})", "invalid repeat count")
        rejects(String(repeating: "(", count: 300) + String(repeating: ")", count: 300), "groups nest deeper than 250")
        XCTAssertNoThrow(try LinearRegex(String(repeating: "(", count: 250) + "a" + String(repeating: ")", count: 250)))
        XCTAssertNoThrow(try LinearRegex(String(repeating: "(?i)", count: 1000)))
    }

    func testBacktrackingCatastrophesFinishAtOnce() {
        for size in [1024, 100 * 1024] {
            let a = String(repeating: "a", count: size), x = String(repeating: "x", count: size)
            check("^(a+)+$", [a + "X": false, a: true])
            check("(a|aa)*b", [a: false, a + "b": true])
            check("(a*)*b", [a: false])
            check("(x+x+)+y", [x: false, x + "y": true])
            check("(.*)*=", [x: false])
            check(#"^(\w+\s?)+$"#, [String(repeating: "word ", count: size / 5) + "!": false])
            check("(?i)(a|A)+b", [a: false])
        }
    }
}
