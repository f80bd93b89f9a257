// The event encoder: exact JSON bytes, framing, escaping of any input bytes, cutting
// at maxEventBytes, the raw-line format and hand-made RFC 3339 timestamps.
import FoundationEssentials
import XCTest
@testable import LogRelayCore

final class EventEncoderTests: XCTestCase {
    static let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    static let imageID = "sha256:" + String(repeating: "b", count: 64)
    static let info = ContainerInfo(containerID: id, containerName: "/web", containerImageID: imageID,
                                    containerImageName: "alpine")

    struct Event: Decodable, Equatable {
        var time: String
        var source: String
        var log: String
        var tag: String
        var container_id: String
        var container_name: String
        var image_id: String
        var image_name: String
        var attrs: [String: String]?
        var partial: Bool?
    }

    func encoder(attrs: [(key: String, value: String)] = [], format: EventFormat = .json) -> EventEncoder {
        EventEncoder(info: Self.info, tag: "0123456789ab", attrs: attrs, format: format)
    }

    /// Encodes one line and returns the raw records (length prefixes checked and stripped).
    func records(_ enc: EventEncoder, _ line: [UInt8], source: String = "stdout", time: Int64 = 1_700_000_000_123_456_789,
                 partial: Bool = false, max: Int = 1 << 20, file: StaticString = #filePath, line l: UInt = #line) -> [[UInt8]] {
        var out: [UInt8] = []
        let n = line.withUnsafeBytes { lb in
            Array(source.utf8).withUnsafeBytes { sb in
                enc.append(line: lb, source: sb, timeNano: time, partial: partial, maxEventBytes: max, to: &out)
            }
        }
        let recs = split(out)
        XCTAssertEqual(recs.count, n, "returned count", file: file, line: l)
        return recs
    }

    func split(_ out: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> [[UInt8]] {
        var recs: [[UInt8]] = []
        var off = 0
        while off < out.count {
            guard off + 4 <= out.count else { XCTFail("truncated length prefix", file: file, line: line); break }
            let len = Int(out[off]) << 24 | Int(out[off + 1]) << 16 | Int(out[off + 2]) << 8 | Int(out[off + 3])
            guard off + 4 + len <= out.count else { XCTFail("record overruns buffer", file: file, line: line); break }
            recs.append(Array(out[(off + 4)..<(off + 4 + len)]))
            off += 4 + len
        }
        return recs
    }

    func decode(_ rec: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Event? {
        XCTAssertNotNil(String(validating: rec, as: UTF8.self), "record is not valid UTF-8", file: file, line: line)
        do {
            return try JSONDecoder().decode(Event.self, from: Data(rec))
        } catch {
            XCTFail("not valid JSON: \(error) in \(String(decoding: rec, as: UTF8.self))", file: file, line: line)
            return nil
        }
    }

    func text(_ rec: [UInt8]) -> String { String(decoding: rec, as: UTF8.self) }

    // MARK: shape

    func testSampleEventHasExactBytesAndKeyOrder() {
        let recs = records(encoder(attrs: [(key: "team", value: "core")]), Array("hello".utf8))
        XCTAssertEqual(recs.count, 1)
        XCTAssertEqual(text(recs[0]),
            #"{"time":"2023-11-14T22:13:20.123456789Z","source":"stdout","log":"hello","tag":"0123456789ab","container_id":"\#(Self.id)","container_name":"/web","image_id":"\#(Self.imageID)","image_name":"alpine","attrs":{"team":"core"}}"#)
    }

    func testRecordIsPrefixedWithBigEndianLength() {
        var out: [UInt8] = [9, 9]
        let line = Array(String(repeating: "x", count: 300).utf8)
        line.withUnsafeBytes { lb in
            Array("stderr".utf8).withUnsafeBytes { sb in
                _ = encoder().append(line: lb, source: sb, timeNano: 0, partial: false, maxEventBytes: 1 << 20, to: &out)
            }
        }
        XCTAssertEqual(Array(out[0..<2]), [9, 9], "existing bytes are kept")
        let len = Int(out[2]) << 24 | Int(out[3]) << 16 | Int(out[4]) << 8 | Int(out[5])
        XCTAssertEqual(len, out.count - 6)
        XCTAssertGreaterThan(len, 255, "needs two length bytes")
    }

    func testAppendsSeveralLinesToOneBuffer() {
        var out: [UInt8] = []
        let enc = encoder()
        for word in ["one", "two", "three"] {
            Array(word.utf8).withUnsafeBytes { lb in
                Array("stdout".utf8).withUnsafeBytes { sb in
                    _ = enc.append(line: lb, source: sb, timeNano: 1, partial: false, maxEventBytes: 4096, to: &out)
                }
            }
        }
        XCTAssertEqual(split(out).compactMap { decode($0)?.log }, ["one", "two", "three"])
    }

    func testPartialFlagIsLastKeyOnlyWhenPartial() {
        let partial = records(encoder(), Array("pa".utf8), partial: true)
        XCTAssertTrue(text(partial[0]).hasSuffix(#""image_name":"alpine","partial":true}"#))
        XCTAssertEqual(decode(partial[0])?.partial, true)
        let whole = records(encoder(), Array("pa".utf8))
        XCTAssertFalse(text(whole[0]).contains("partial"))
        XCTAssertTrue(text(whole[0]).hasSuffix(#""image_name":"alpine"}"#))
    }

    func testAttrsOmittedWhenEmpty() {
        let rec = records(encoder(), Array("x".utf8))[0]
        XCTAssertFalse(text(rec).contains("attrs"))
        XCTAssertNil(decode(rec)?.attrs)
    }

    func testAttrsKeepGivenOrderAndAreEscaped() {
        let rec = records(encoder(attrs: [(key: "a\"b", value: "1\n"), (key: "z", value: "é")]), Array("x".utf8))[0]
        XCTAssertTrue(text(rec).hasSuffix(#","attrs":{"a\"b":"1\n","z":"é"}}"#))
        XCTAssertEqual(decode(rec)?.attrs, ["a\"b": "1\n", "z": "é"])
    }

    func testMetadataIsEscaped() {
        let info = ContainerInfo(containerID: "id", containerName: "/we\"b\\", containerImageID: "i\u{1}",
                                 containerImageName: "tab\there")
        let enc = EventEncoder(info: info, tag: "t\"ag", attrs: [])
        let e = decode(records(enc, Array("x".utf8), source: "std\"out")[0])
        XCTAssertEqual(e?.container_name, "/we\"b\\")
        XCTAssertEqual(e?.image_id, "i\u{1}")
        XCTAssertEqual(e?.image_name, "tab\there")
        XCTAssertEqual(e?.tag, "t\"ag")
        XCTAssertEqual(e?.source, "std\"out")
    }

    func testEmptyLineGivesOneEventWithEmptyLog() {
        let recs = records(encoder(), [])
        XCTAssertEqual(recs.count, 1)
        XCTAssertEqual(decode(recs[0])?.log, "")
        XCTAssertNil(decode(recs[0])?.partial)
    }

    // MARK: escaping

    func testControlCharactersQuoteAndBackslashRoundTrip() {
        var line: [UInt8] = Array(0...0x1F)
        line += [0x22, 0x5C, 0x7F, 0x2F, 0x41]
        let rec = records(encoder(), line)[0]
        XCTAssertEqual(decode(rec)?.log, String(decoding: line, as: UTF8.self))
        let t = text(rec)
        for short in [#"\b"#, #"\t"#, #"\n"#, #"\f"#, #"\r"#, #"\""#, #"\\"#, #"\u0000"#, #"\u001f"#, #"\u000b"#] {
            XCTAssertTrue(t.contains(short), "uses \(short)")
        }
        XCTAssertTrue(rec.contains(0x7F), "DEL stays as is")
    }

    func testInvalidUTF8BecomesReplacementCharacter() {
        let cases: [([UInt8], String)] = [
            ([0x80], "\u{FFFD}"),                                  // lone continuation
            ([0xFF, 0x41], "\u{FFFD}A"),                           // never-valid byte
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),                    // overlong "/"
            ([0xE0, 0x80, 0xAF], "\u{FFFD}\u{FFFD}\u{FFFD}"),      // overlong 3-byte
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),      // surrogate D800
            ([0xF4, 0x90, 0x80, 0x80], String(repeating: "\u{FFFD}", count: 4)), // > U+10FFFF
            ([0xF5, 0x80], "\u{FFFD}\u{FFFD}"),
            ([0x41, 0xE2, 0x82], "A\u{FFFD}"),                     // truncated at end
            ([0xE2, 0x82, 0x41], "\u{FFFD}A"),                     // truncated inside
            ([0xF0, 0x9F, 0x98], "\u{FFFD}"),                      // truncated 4-byte
            ([0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80], "€😀"),     // valid multi-byte kept
            ([0xEF, 0xBF, 0xBF, 0xF4, 0x8F, 0xBF, 0xBF], "\u{FFFF}\u{10FFFF}"),
        ]
        for (bytes, expected) in cases {
            let rec = records(encoder(), bytes)[0]
            XCTAssertEqual(decode(rec)?.log, expected, "input \(bytes)")
            XCTAssertEqual(decode(rec)?.log, String(decoding: bytes, as: UTF8.self), "same as Swift's decoder for \(bytes)")
        }
    }

    func testRandomBytesAlwaysGiveValidJSONAndSurviveCutting() {
        var rng = RNG(seed: 42)
        let enc = encoder(attrs: [(key: "k", value: "v")])
        let alphabet: [UInt8] = [0x00, 0x0A, 0x0D, 0x1F, 0x22, 0x5C, 0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xC0, 0xE0, 0xED,
                                 0xA0, 0xF0, 0xF4, 0x90, 0x8F, 0xFF, 0xE2, 0x82, 0xAC]
        for round in 0..<600 {
            let n = Int(rng.next() % (round % 3 == 0 ? 3000 : 300))
            let line: [UInt8] = (0..<n).map { _ in
                rng.next() % 3 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }
            let max = round % 2 == 0 ? 1 << 20 : 400 + Int(rng.next() % 1600)
            let recs = records(enc, line, partial: round % 5 == 0, max: max)
            var joined = ""
            for r in recs {
                XCTAssertLessThanOrEqual(r.count, max)
                guard let e = decode(r) else { return }
                joined += e.log
                if recs.count > 1 { XCTAssertEqual(e.partial, true) }
            }
            XCTAssertEqual(joined, String(decoding: line, as: UTF8.self), "round \(round)")
        }
    }

    func testLargeMixedLinesRoundTripWithoutLimit() {
        var rng = RNG(seed: 7)
        let pieces: [[UInt8]] = [Array(String(repeating: "plain ascii ", count: 20).utf8), Array("\"q\"\\".utf8),
                                 [0x01, 0x1F, 0x0A, 0x0D], Array("é日😀".utf8), [0xFF, 0xE2, 0x82], [0x0D, 0x0A]]
        for format in [EventFormat.json, .rawLine] {
            var line: [UInt8] = []
            while line.count < 100_000 { line += pieces[Int(rng.next() % UInt64(pieces.count))] }
            let recs = records(encoder(format: format), line)
            XCTAssertEqual(recs.count, 1)
            let expected = String(decoding: line, as: UTF8.self)
            if format == .json {
                XCTAssertEqual(decode(recs[0])?.log, expected)
            } else {
                XCTAssertEqual(text(recs[0]), expected.replacing("\r\n", with: "\u{2028}")
                    .replacing("\r", with: "\u{2028}").replacing("\n", with: "\u{2028}"))
            }
        }
    }

    func testSinkRewindAcrossAFlush() {
        var out: [UInt8] = [1, 2, 3]
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: EventEncoder.Sink.capacity) { tmp in
            var sink = EventEncoder.Sink(base: tmp.baseAddress!)
            sink.put("abcd", &out)
            let mark = sink.position(out)
            sink.put("efgh", &out)
            sink.flush(&out)
            sink.put("ijkl", &out)
            sink.rewind(to: mark, &out)
            sink.put("X", &out)
            sink.flush(&out)
            let inBuffer = sink.position(out)
            sink.put("yz", &out)
            sink.rewind(to: inBuffer + 1, &out)
            sink.flush(&out)
        }
        XCTAssertEqual(out, [1, 2, 3] + Array("abcdXy".utf8))
    }

    // MARK: cutting

    func testLongLineIsCutIntoPartialEventsWithinLimit() {
        let line = Array(String(repeating: "abcdefghij", count: 10_000).utf8)
        let max = 1000
        let recs = records(encoder(attrs: [(key: "team", value: "core")]), line, max: max)
        XCTAssertGreaterThan(recs.count, 100)
        var joined = ""
        for r in recs {
            XCTAssertLessThanOrEqual(r.count, max)
            let e = decode(r)
            XCTAssertEqual(e?.partial, true)
            XCTAssertEqual(e?.attrs, ["team": "core"])
            joined += e?.log ?? ""
        }
        XCTAssertEqual(joined, String(decoding: line, as: UTF8.self))
        XCTAssertGreaterThan(recs[0].count, max - 10, "pieces are filled")
    }

    func testCutsOnlyAtCharacterBoundariesAndNeverInsideEscapes() {
        let s = String(repeating: "é日😀\n\"\u{1}x", count: 500)
        let line = Array(s.utf8)
        for max in [400, 401, 402, 403, 404, 405, 406, 407] {
            let recs = records(encoder(), line, max: max)
            var joined = ""
            for r in recs {
                XCTAssertLessThanOrEqual(r.count, max)
                joined += decode(r)?.log ?? ""
            }
            XCTAssertEqual(joined, s, "max \(max)")
        }
    }

    func testLineThatFitsOnlyWithoutPartialMarkerIsNotCut() {
        let enc = encoder()
        let probe = records(enc, Array("x".utf8))[0].count   // overhead + 1
        let line = Array(String(repeating: "y", count: 50).utf8)
        let exact = probe - 1 + 50
        let one = records(enc, line, max: exact)
        XCTAssertEqual(one.count, 1, "fits exactly")
        XCTAssertEqual(one[0].count, exact)
        XCTAssertNil(decode(one[0])?.partial)
        let cut = records(enc, line, max: exact - 1)
        XCTAssertEqual(cut.count, 2)
        XCTAssertEqual(cut.compactMap { decode($0)?.log }.joined(), String(repeating: "y", count: 50))
        XCTAssertTrue(cut.allSatisfy { decode($0)?.partial == true })
    }

    func testPartialInputFillsWholeRoomOfPartialEvent() {
        let enc = encoder()
        let probe = records(enc, Array("x".utf8), partial: true)[0].count
        let line = Array(String(repeating: "y", count: 50).utf8)
        let recs = records(enc, line, partial: true, max: probe - 1 + 50)
        XCTAssertEqual(recs.count, 1)
        XCTAssertEqual(decode(recs[0])?.partial, true)
    }

    func testLimitBelowOverheadStillMakesProgress() {
        let line = Array("aé\u{1}😀".utf8)
        for max in [Int.min, -5, 0, 1, 50, 200] {
            let recs = records(encoder(), line, max: max)
            XCTAssertEqual(recs.count, 4, "one character per piece at max \(max)")
            XCTAssertEqual(recs.compactMap { decode($0)?.log }, ["a", "é", "\u{1}", "😀"])
        }
        XCTAssertEqual(records(encoder(), Array("abc".utf8), max: 0).count, 3)
        XCTAssertEqual(records(encoder(format: .rawLine), Array("a\r\nb".utf8), max: Int.min).map(text), ["a", "\u{2028}", "b"])
        XCTAssertEqual(records(encoder(format: .rawLine), Array("abc".utf8), max: 0).count, 3)
    }

    // MARK: raw line

    func testRawLineReplacesNewlinesWithLineSeparator() {
        let recs = records(encoder(format: .rawLine), Array("a\nb\r\nc\rd\t\u{1}".utf8))
        XCTAssertEqual(recs.count, 1)
        XCTAssertEqual(text(recs[0]), "a\u{2028}b\u{2028}c\u{2028}d\t\u{1}")
    }

    func testRawLineReplacesInvalidUTF8() {
        let recs = records(encoder(format: .rawLine), [0x41, 0xFF, 0xE2, 0x82, 0x0A, 0xC3, 0xA9])
        XCTAssertEqual(text(recs[0]), "A\u{FFFD}\u{FFFD}\u{2028}é")
        XCTAssertNotNil(String(validating: recs[0], as: UTF8.self))
    }

    func testRawLineIsCutWithinLimitAtBoundaries() {
        let s = String(repeating: "é日😀\r\nx", count: 300)
        let expected = s.replacing("\r\n", with: "\u{2028}")
        for max in [10, 11, 12, 13, 100] {
            let recs = records(encoder(format: .rawLine), Array(s.utf8), max: max)
            XCTAssertTrue(recs.allSatisfy { $0.count <= max })
            XCTAssertTrue(recs.allSatisfy { String(validating: $0, as: UTF8.self) != nil })
            XCTAssertEqual(recs.map(text).joined(), expected, "max \(max)")
        }
    }

    func testRawLineEmptyLineGivesOneEmptyRecord() {
        let recs = records(encoder(format: .rawLine), [])
        XCTAssertEqual(recs, [[]])
    }

    // MARK: time

    func testTimeFormatting() {
        let cases: [(Int64, String)] = [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (1_709_164_800_000_000_000, "2024-02-29T00:00:00.000000000Z"),
            (1_709_251_199_999_999_999, "2024-02-29T23:59:59.999999999Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            (4_107_456_000_000_000_000, "2100-02-28T00:00:00.000000000Z"),
            (4_107_542_400_000_000_000, "2100-03-01T00:00:00.000000000Z"),
            (1_767_225_599_999_999_999, "2025-12-31T23:59:59.999999999Z"),
            (1_798_761_600_000_000_000, "2027-01-01T00:00:00.000000000Z"),
            (Int64.max, "2262-04-11T23:47:16.854775807Z"),
            (Int64.min, "1677-09-21T00:12:43.145224192Z"),
        ]
        for (nanos, expected) in cases {
            XCTAssertEqual(EventEncoder.formatTime(nanos), expected, "\(nanos)")
        }
        XCTAssertEqual(decode(records(encoder(), [], time: 0)[0])?.time, "1970-01-01T00:00:00.000000000Z")
    }

    func testDecimalDigitsForwardAndBackwardMatchSwift() {
        var values: [UInt64] = [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1_700_000_000_123_456_789, UInt64.max, UInt64.max - 1]
        var p: UInt64 = 1
        while true {
            values += [p - 1, p, p + 1]
            let (next, overflow) = p.multipliedReportingOverflow(by: 10)
            if overflow { break }
            p = next
        }
        var rng = RNG(seed: 7)
        values += (0..<1000).map { _ in rng.next() >> (rng.next() % 64) }
        for v in values {
            var buf = [UInt8](repeating: 0x2E, count: 24)
            let n = buf.withUnsafeMutableBufferPointer { DecimalDigits.write(v, at: $0.baseAddress! + 1) }
            XCTAssertEqual(String(decoding: buf[1..<(1 + n)], as: UTF8.self), String(v))
            XCTAssertEqual(buf[0], 0x2E, "wrote before its start")
            XCTAssertEqual(buf[1 + n], 0x2E, "wrote past its end")
            var back = [UInt8](repeating: 0x2E, count: 24)
            let m = back.withUnsafeMutableBufferPointer { DecimalDigits.writeBackwards(v, endingAt: $0.baseAddress! + 22) }
            XCTAssertEqual(String(decoding: back[(22 - m)..<22], as: UTF8.self), String(v))
            XCTAssertEqual(back[21 - m], 0x2E, "wrote before its start")
            XCTAssertEqual(back[22], 0x2E, "wrote past its end")
        }
    }

    /// Deterministic generator (SplitMix64) so failures reproduce.
    struct RNG {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
