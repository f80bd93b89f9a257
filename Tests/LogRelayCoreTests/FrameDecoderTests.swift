// Tests for FrameDecoder: the daemon's FIFO framing and LogEntry protobuf (protocol doc §4.1, §4.2).
import XCTest
@testable import LogRelayCore

/// An owned copy of a LogEntryView, for comparing after the callback returns.
struct DecodedLogEntry: Equatable, CustomStringConvertible {
    var source: [UInt8] = []
    var timeNano: Int64 = 0
    var line: [UInt8] = []
    var partial = false
    var hasPartialMetadata = false
    var partialLast = false
    var partialID: [UInt8] = []
    var partialOrdinal: Int32 = 0

    init(source: String = "", timeNano: Int64 = 0, line: [UInt8] = [], partial: Bool = false,
         metadata: (id: String, ordinal: Int32, last: Bool)? = nil) {
        self.source = Array(source.utf8)
        self.timeNano = timeNano
        self.line = line
        self.partial = partial
        if let m = metadata {
            hasPartialMetadata = true
            partialID = Array(m.id.utf8)
            partialOrdinal = m.ordinal
            partialLast = m.last
        }
    }

    init(_ v: LogEntryView) {
        source = Array(v.source)
        timeNano = v.timeNano
        line = Array(v.line)
        partial = v.partial
        hasPartialMetadata = v.hasPartialMetadata
        partialLast = v.partialLast
        partialID = Array(v.partialID)
        partialOrdinal = v.partialOrdinal
    }

    var description: String {
        "Entry(\(String(decoding: source, as: UTF8.self)), t=\(timeNano), line=\(line.count)B, partial=\(partial), meta=\(hasPartialMetadata) last=\(partialLast) ord=\(partialOrdinal))"
    }
}

/// A tiny protobuf writer for building test frames.
enum ProtoWriter {
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }
    static func tag(_ field: UInt64, _ wireType: UInt64) -> [UInt8] { varint(field << 3 | wireType) }
    static func len(_ field: UInt64, _ bytes: [UInt8]) -> [UInt8] { tag(field, 2) + varint(UInt64(bytes.count)) + bytes }
    static func int(_ field: UInt64, _ v: UInt64) -> [UInt8] { tag(field, 0) + varint(v) }

    /// A LogEntry encoded the way gogo does: fields in order, defaults omitted.
    static func entry(source: String = "stdout", time: Int64 = 1_700_000_000_123_456_789, line: [UInt8] = [],
                      partial: Bool = false, metadata: (id: String, ordinal: Int32, last: Bool)? = nil) -> [UInt8] {
        var out: [UInt8] = []
        if !source.isEmpty { out += len(1, Array(source.utf8)) }
        if time != 0 { out += int(2, UInt64(bitPattern: time)) }
        if !line.isEmpty { out += len(3, line) }
        if partial { out += int(4, 1) }
        if let m = metadata {
            var meta: [UInt8] = []
            if m.last { meta += int(1, 1) }
            if !m.id.isEmpty { meta += len(2, Array(m.id.utf8)) }
            if m.ordinal != 0 { meta += int(3, UInt64(bitPattern: Int64(m.ordinal))) }
            out += len(5, meta)
        }
        return out
    }

    static func frame(_ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
    }
}

func bytesFromHex(_ s: String) -> [UInt8] {
    let digits = Array(s.utf8).filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") }
    var out: [UInt8] = []
    var i = 0
    while i + 1 < digits.count {
        out.append(UInt8(String(decoding: digits[i...i + 1], as: UTF8.self), radix: 16)!)
        i += 2
    }
    return out
}

/// Deterministic PRNG so failures reproduce.
struct ParserTestRandom: RandomNumberGenerator {
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

final class FrameDecoderTests: XCTestCase {
    static let id64 = String(repeating: "0123456789abcdef", count: 4)
    static let helloFrame = bytesFromHex("00000019 0a06 7374646f7574 10 959a97ece39fe7cb17 1a05 68656c6c6f")
    static let partialFrame = bytesFromHex("00000061 0a06 737464657272 10 959a97ece39fe7cb17 1a03 616263 2001 2a46 0801 1240")
        + Array(id64.utf8) + bytesFromHex("1802")
    static let hello = DecodedLogEntry(source: "stdout", timeNano: 1_700_000_000_123_456_789, line: Array("hello".utf8))
    static let abc = DecodedLogEntry(source: "stderr", timeNano: 1_700_000_000_123_456_789, line: Array("abc".utf8),
                                  partial: true, metadata: (id64, 2, true))

    /// Feeds `stream` cut at `cuts` (ascending offsets) and returns what came out.
    func decode(_ stream: [UInt8], cuts: [Int] = [], decoder: inout FrameDecoder) -> [DecodedLogEntry] {
        var out: [DecodedLogEntry] = []
        var from = 0
        for cut in cuts + [stream.count] {
            stream[from..<cut].withUnsafeBytes { chunk in
                decoder.feed(chunk) { out.append(DecodedLogEntry($0)) }
            }
            from = cut
        }
        return out
    }

    func decode(_ stream: [UInt8], cuts: [Int] = [], maxFrameSize: Int = 1 << 20) -> [DecodedLogEntry] {
        var d = FrameDecoder(maxFrameSize: maxFrameSize)
        return decode(stream, cuts: cuts, decoder: &d)
    }

    // MARK: - The daemon's own bytes

    func testDecodesVerifiedStdoutFrame() {
        XCTAssertEqual(Self.helloFrame.count, 4 + 0x19)
        XCTAssertEqual(decode(Self.helloFrame), [Self.hello])
    }

    func testDecodesVerifiedPartialFrameWithMetadata() {
        XCTAssertEqual(Self.partialFrame.count, 4 + 0x61)
        XCTAssertEqual(decode(Self.partialFrame), [Self.abc])
    }

    func testTestEncoderMatchesDaemonBytes() {
        XCTAssertEqual(ProtoWriter.frame(ProtoWriter.entry(line: Array("hello".utf8))), Self.helloFrame)
        XCTAssertEqual(ProtoWriter.frame(ProtoWriter.entry(source: "stderr", line: Array("abc".utf8), partial: true,
                                         metadata: (Self.id64, 2, true))), Self.partialFrame)
    }

    // MARK: - Splitting

    func testSameEntriesWhateverTheSplitPoint() {
        let stream = Self.helloFrame + Self.partialFrame + ProtoWriter.frame([]) + Self.helloFrame
        let expected = [Self.hello, Self.abc, DecodedLogEntry(), Self.hello]
        for cut in 0...stream.count {
            var d = FrameDecoder()
            XCTAssertEqual(decode(stream, cuts: [cut], decoder: &d), expected, "cut at \(cut)")
            XCTAssertEqual(d.bufferedBytes, 0)
            XCTAssertEqual(d.corruptFrames, 0)
        }
    }

    func testSameEntriesForEveryPairOfSplitPoints() {
        let stream = Self.helloFrame + Self.partialFrame
        for a in 0...stream.count {
            for b in a...stream.count {
                XCTAssertEqual(decode(stream, cuts: [a, b]), [Self.hello, Self.abc], "cuts \(a), \(b)")
            }
        }
    }

    func testOneByteAtATime() {
        let stream = Self.helloFrame + Self.partialFrame + Self.helloFrame
        var d = FrameDecoder()
        let out = decode(stream, cuts: Array(1..<stream.count), decoder: &d)
        XCTAssertEqual(out, [Self.hello, Self.abc, Self.hello])
        XCTAssertEqual(d.bufferedBytes, 0)
    }

    func testKeepsIncompleteTailBuffered() {
        var d = FrameDecoder()
        let stream = Self.helloFrame + Self.partialFrame
        let out = decode(Array(stream[0..<(Self.helloFrame.count + 10)]), decoder: &d)
        XCTAssertEqual(out, [Self.hello])
        XCTAssertEqual(d.bufferedBytes, 10)
        XCTAssertEqual(decode(Array(stream[(Self.helloFrame.count + 10)...]), decoder: &d), [Self.abc])
        XCTAssertEqual(d.bufferedBytes, 0)
    }

    func testManyFramesInOneChunk() {
        var stream: [UInt8] = []
        var expected: [DecodedLogEntry] = []
        for i in 0..<2000 {
            let line = Array("line \(i)".utf8)
            stream += ProtoWriter.frame(ProtoWriter.entry(source: i % 2 == 0 ? "stdout" : "stderr", time: Int64(i), line: line))
            expected.append(DecodedLogEntry(source: i % 2 == 0 ? "stdout" : "stderr", timeNano: Int64(i), line: line))
        }
        var d = FrameDecoder()
        XCTAssertEqual(decode(stream, decoder: &d), expected)
        XCTAssertEqual(d.bufferedBytes, 0)
        // The same stream as a FIFO delivers it: 4 KiB reads.
        XCTAssertEqual(decode(stream, cuts: Array(stride(from: 4096, to: stream.count, by: 4096))), expected)
    }

    func testFramesInsideTheChunkAreDecodedInPlace() {
        let stream = Self.helloFrame + Self.helloFrame
        var d = FrameDecoder()
        var entries = 0
        stream.withUnsafeBytes { chunk in
            let range = UInt(bitPattern: chunk.baseAddress!)..<UInt(bitPattern: chunk.baseAddress! + chunk.count)
            d.feed(chunk) { entry in
                entries += 1
                XCTAssertTrue(range.contains(UInt(bitPattern: entry.line.baseAddress!)), "line must point into the chunk")
                XCTAssertTrue(range.contains(UInt(bitPattern: entry.source.baseAddress!)))
            }
        }
        XCTAssertEqual(entries, 2)
    }

    // MARK: - Sizes

    /// A frame whose payload is exactly `n` bytes, carrying one line.
    func frameOfSize(_ n: Int) -> (frame: [UInt8], line: [UInt8]) {
        var lineLength = n - 30
        while true {
            let payload = ProtoWriter.entry(line: [UInt8](repeating: UInt8(ascii: "x"), count: lineLength))
            if payload.count == n { return (ProtoWriter.frame(payload), [UInt8](repeating: UInt8(ascii: "x"), count: lineLength)) }
            lineLength += n - payload.count
        }
    }

    func testFramesAtTheSizeLimit() {
        let max = 1 << 20
        for n in [16_478, max - 1, max] {
            let (frame, line) = frameOfSize(n)
            let expected = [DecodedLogEntry(source: "stdout", timeNano: 1_700_000_000_123_456_789, line: line), Self.hello]
            var d = FrameDecoder(maxFrameSize: max)
            // 64 KiB reads, as from an enlarged pipe, then all at once.
            let stream = frame + Self.helloFrame
            XCTAssertEqual(decode(stream, cuts: Array(stride(from: 65_536, to: stream.count, by: 65_536)), decoder: &d), expected)
            XCTAssertEqual(d.corruptFrames, 0)
            XCTAssertEqual(d.bufferedBytes, 0)
            XCTAssertEqual(decode(stream, maxFrameSize: max), expected)
        }
    }

    func testFrameOverTheLimitIsCorruptionAndTheStreamResynchronises() {
        let max = 1 << 20
        let (big, _) = frameOfSize(max + 1)
        let stream = Self.helloFrame + big + Self.helloFrame + Self.partialFrame
        for cuts in [[], Array(stride(from: 4096, to: stream.count, by: 4096)), [Self.helloFrame.count + 2]] {
            var d = FrameDecoder(maxFrameSize: max)
            XCTAssertEqual(decode(stream, cuts: cuts, decoder: &d), [Self.hello, Self.hello, Self.abc])
            XCTAssertEqual(d.corruptFrames, 1)
            // The big frame's own header and source look like a frame start only at offset 0, which is refused.
            XCTAssertEqual(d.discardedBytes, big.count)
            XCTAssertEqual(d.bufferedBytes, 0)
        }
    }

    func testOversizeLengthFollowedByFramesOneByteAtATime() {
        let stream = Self.helloFrame + [0xff, 0xff, 0xff, 0xff, 1, 2, 3] + Self.partialFrame + Self.helloFrame
        var d = FrameDecoder()
        XCTAssertEqual(decode(stream, cuts: Array(1..<stream.count), decoder: &d), [Self.hello, Self.abc, Self.hello])
        XCTAssertEqual(d.corruptFrames, 1)
        XCTAssertEqual(d.discardedBytes, 7)
    }

    func testZeroLengthFramesAreEmptyEntries() {
        let stream = ProtoWriter.frame([]) + ProtoWriter.frame([]) + Self.helloFrame + ProtoWriter.frame([])
        var d = FrameDecoder()
        XCTAssertEqual(decode(stream, cuts: Array(1..<stream.count), decoder: &d), [DecodedLogEntry(), DecodedLogEntry(), Self.hello, DecodedLogEntry()])
        XCTAssertEqual(d.corruptFrames, 0)
        let out = decode(ProtoWriter.frame([]))
        XCTAssertEqual(out.first?.line.count, 0)
        XCTAssertEqual(out.first?.source.count, 0)
    }

    func testEmptyLineHasNoField3() {
        let payload = ProtoWriter.entry(line: [])
        XCTAssertFalse(payload.contains(0x1a))
        XCTAssertEqual(decode(ProtoWriter.frame(payload)), [DecodedLogEntry(source: "stdout", timeNano: 1_700_000_000_123_456_789)])
    }

    // MARK: - Protobuf

    func testNegativeAndExtremeTimes() {
        for t: Int64 in [-1, -1_700_000_000_123_456_789, .min, .max, 1] {
            let payload = ProtoWriter.entry(time: t, line: [1])
            if t < 0 { XCTAssertEqual(payload.count, 8 + 1 + 10 + 3, "negative int64 is a 10-byte varint") }
            XCTAssertEqual(decode(ProtoWriter.frame(payload)).first?.timeNano, t)
        }
    }

    func testLineIsArbitraryBytes() {
        let line: [UInt8] = [0x00, 0xff, 0xfe, 0x0a, 0x0d, 0x80, 0xc3]
        XCTAssertEqual(decode(ProtoWriter.frame(ProtoWriter.entry(line: line))).first?.line, line)
    }

    func testFieldsInAnyOrder() {
        let payload = ProtoWriter.len(5, ProtoWriter.int(3, 7) + ProtoWriter.len(2, Array("id".utf8)) + ProtoWriter.int(1, 1)) + ProtoWriter.int(4, 1)
            + ProtoWriter.len(3, Array("abc".utf8)) + ProtoWriter.int(2, 42) + ProtoWriter.len(1, Array("stderr".utf8))
        XCTAssertEqual(decode(ProtoWriter.frame(payload)),
                       [DecodedLogEntry(source: "stderr", timeNano: 42, line: Array("abc".utf8), partial: true, metadata: ("id", 7, true))])
    }

    func testRepeatedScalarsLastWinsAndMetadataMerges() {
        let payload = ProtoWriter.len(1, Array("stdout".utf8)) + ProtoWriter.int(2, 1) + ProtoWriter.len(3, Array("first".utf8))
            + ProtoWriter.len(5, ProtoWriter.len(2, Array("id".utf8)) + ProtoWriter.int(3, 1))
            + ProtoWriter.int(4, 1) + ProtoWriter.int(4, 0)
            + ProtoWriter.len(1, Array("stderr".utf8)) + ProtoWriter.int(2, 2) + ProtoWriter.len(3, Array("second".utf8))
            + ProtoWriter.len(5, ProtoWriter.int(1, 1) + ProtoWriter.int(3, 5))
        XCTAssertEqual(decode(ProtoWriter.frame(payload)),
                       [DecodedLogEntry(source: "stderr", timeNano: 2, line: Array("second".utf8), partial: false, metadata: ("id", 5, true))])
    }

    func testEmptyMetadataStillCountsAsPresent() {
        let out = decode(ProtoWriter.frame(ProtoWriter.entry(line: [1], partial: true) + ProtoWriter.len(5, [])))
        XCTAssertEqual(out.first?.hasPartialMetadata, true)
        XCTAssertEqual(out.first?.partialOrdinal, 0)
    }

    func testBoolIsAnyNonZeroVarintAndOrdinalTakesLow32Bits() {
        let payload = ProtoWriter.len(1, Array("stdout".utf8)) + ProtoWriter.int(4, 300)
            + ProtoWriter.len(5, ProtoWriter.int(1, 0x1_0000_0000) + ProtoWriter.int(3, UInt64(bitPattern: -2)))
        let out = decode(ProtoWriter.frame(payload))
        XCTAssertEqual(out.first?.partial, true)
        XCTAssertEqual(out.first?.partialLast, true)
        XCTAssertEqual(out.first?.partialOrdinal, -2)
        let wide = decode(ProtoWriter.frame(ProtoWriter.len(5, ProtoWriter.int(3, 0x1_0000_0003))))
        XCTAssertEqual(wide.first?.partialOrdinal, 3)
    }

    func testUnknownFieldsOfEveryWireTypeAreSkipped() {
        let group = ProtoWriter.tag(10, 3) + ProtoWriter.int(1, 5) + ProtoWriter.tag(2, 3) + ProtoWriter.len(3, [1, 2]) + ProtoWriter.tag(2, 4) + ProtoWriter.tag(10, 4)
        let unknown = ProtoWriter.int(6, 12345) + ProtoWriter.tag(7, 1) + [UInt8](repeating: 0xee, count: 8)
            + ProtoWriter.len(8, Array("attr".utf8)) + ProtoWriter.tag(9, 5) + [0xee, 0xee, 0xee, 0xee] + group
            + ProtoWriter.len(536_870_911, [9, 9, 9]) + ProtoWriter.len(6, ProtoWriter.len(1, Array("k".utf8)) + ProtoWriter.len(2, Array("v".utf8)))
        let metadata = ProtoWriter.int(1, 1) + ProtoWriter.int(9, 1) + ProtoWriter.len(2, Array(Self.id64.utf8)) + ProtoWriter.tag(4, 1) + [UInt8](repeating: 0, count: 8) + ProtoWriter.int(3, 2)
        let payload = unknown + ProtoWriter.len(1, Array("stderr".utf8)) + unknown + ProtoWriter.int(2, 1_700_000_000_123_456_789)
            + ProtoWriter.len(3, Array("abc".utf8)) + unknown + ProtoWriter.int(4, 1) + ProtoWriter.len(5, metadata) + unknown
        var d = FrameDecoder()
        XCTAssertEqual(decode(ProtoWriter.frame(payload), decoder: &d), [Self.abc])
        XCTAssertEqual(d.corruptFrames, 0)
    }

    func testMalformedFramesAreDroppedAndDecodingContinues() {
        let bad: [(String, [UInt8])] = [
            ("truncated varint", ProtoWriter.len(1, Array("stdout".utf8)) + [0x10, 0x95, 0x9a]),
            ("varint too long", ProtoWriter.len(1, Array("stdout".utf8)) + [0x10] + [UInt8](repeating: 0xff, count: 10) + [0x01]),
            ("LEN beyond frame", [0x0a, 0x20] + Array("stdout".utf8)),
            ("huge LEN", [0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            ("wire type 6", ProtoWriter.len(1, Array("stdout".utf8)) + ProtoWriter.tag(9, 6) + [1]),
            ("wire type 7", ProtoWriter.tag(9, 7)),
            ("field number 0", [0x00, 0x01]),
            ("field 0 LEN", [0x02, 0x00]),
            ("end group without start", ProtoWriter.tag(9, 4)),
            ("group never ends", ProtoWriter.tag(9, 3) + ProtoWriter.int(1, 1)),
            ("group ends with another number", ProtoWriter.tag(9, 3) + ProtoWriter.tag(8, 4)),
            ("fixed64 truncated", ProtoWriter.tag(9, 1) + [1, 2, 3]),
            ("fixed32 truncated", ProtoWriter.tag(9, 5) + [1, 2, 3]),
            ("known field, wrong wire type", ProtoWriter.int(1, 5)),
            ("line as varint", ProtoWriter.int(3, 5)),
            ("bad metadata", ProtoWriter.len(5, [0x08])),
            ("metadata id as varint", ProtoWriter.len(5, ProtoWriter.int(2, 1))),
            ("too deep groups", Array((0..<40).map { _ in ProtoWriter.tag(9, 3) }.joined())),
        ]
        for (name, payload) in bad {
            let stream = Self.helloFrame + ProtoWriter.frame(payload) + Self.partialFrame
            for cuts in [[], Array(1..<stream.count)] {
                var d = FrameDecoder()
                XCTAssertEqual(decode(stream, cuts: cuts, decoder: &d), [Self.hello, Self.abc], name)
                XCTAssertEqual(d.corruptFrames, 1, name)
                XCTAssertEqual(d.discardedBytes, 4 + payload.count, name)
                XCTAssertEqual(d.bufferedBytes, 0, name)
            }
        }
    }

    func testDeepButBoundedGroupsAreSkipped() {
        let depth = 20
        let open = Array((1...depth).map { ProtoWriter.tag(UInt64(100 + $0), 3) }.joined())
        let close = Array((1...depth).reversed().map { ProtoWriter.tag(UInt64(100 + $0), 4) }.joined())
        let payload = ProtoWriter.entry(line: Array("hello".utf8)) + open + close
        XCTAssertEqual(decode(ProtoWriter.frame(payload)), [Self.hello])
    }

    // MARK: - Resynchronisation

    func testResynchronizeSkipsGarbageBeforeTheFirstFrame() {
        var rng = ParserTestRandom(seed: 7)
        // Garbage that cannot contain a frame start: no 0x0a byte at all.
        let garbage = (0..<5000).map { _ in UInt8.random(in: 0x0b...0xff, using: &rng) }
        let stream = garbage + Self.helloFrame + Self.partialFrame
        for cuts in [[], [1], [garbage.count - 3], [garbage.count + 5], Array(stride(from: 7, to: stream.count, by: 7))] {
            var d = FrameDecoder()
            d.resynchronize()
            XCTAssertEqual(decode(stream, cuts: cuts, decoder: &d), [Self.hello, Self.abc], "cuts \(cuts.prefix(3))")
            XCTAssertEqual(d.discardedBytes, garbage.count)
            XCTAssertEqual(d.corruptFrames, 0)
        }
    }

    func testNearMissesAreNotTakenForFrameStarts() {
        let nearMisses: [[UInt8]] = [
            [0, 0, 0, 0x19, 0x0a, 0x06] + Array("stdoux".utf8),    // wrong source
            [0, 0x20, 0, 0x19, 0x0a, 0x06] + Array("stdout".utf8),  // N over the limit
            [0, 0, 0, 3, 0x0a, 0x06] + Array("stderr".utf8),        // N too small to hold the source
            [0, 0, 0, 0x19, 0x0a, 0x07] + Array("stdout".utf8),     // wrong length
            Array("\n\n\n\n\n\n".utf8), [0x0a, 0x06, 0x0a, 0x06],
        ]
        let garbage = Array(nearMisses.joined()) + Array(nearMisses.reversed().joined())
        let stream = garbage + Self.partialFrame + Self.helloFrame
        for cuts in [[], Array(1..<stream.count), Array(stride(from: 5, to: stream.count, by: 5))] {
            var d = FrameDecoder(maxFrameSize: 0x1f_ffff)
            d.resynchronize()
            XCTAssertEqual(decode(stream, cuts: cuts, decoder: &d), [Self.abc, Self.hello])
            XCTAssertEqual(d.discardedBytes, garbage.count)
        }
    }

    func testResynchronizeMidFrameFindsTheNextFrame() {
        let first = ProtoWriter.frame(ProtoWriter.entry(line: Array(repeating: UInt8(ascii: "a"), count: 100)))
        let stream = first + Self.partialFrame + Self.helloFrame
        for start in 1..<first.count {
            let tail = Array(stream[start...])
            for cuts in [[], Array(1..<tail.count)] {
                var d = FrameDecoder()
                d.resynchronize()
                XCTAssertEqual(decode(tail, cuts: cuts, decoder: &d), [Self.abc, Self.hello], "start \(start)")
                XCTAssertEqual(d.discardedBytes, first.count - start)
            }
        }
    }

    func testResynchronizeAtAFrameBoundaryLosesNothing() {
        var d = FrameDecoder()
        d.resynchronize()
        XCTAssertEqual(decode(Self.helloFrame + Self.helloFrame, decoder: &d), [Self.hello, Self.hello])
        XCTAssertEqual(d.discardedBytes, 0)
    }

    func testResynchronizeWithABufferedPartialFrame() {
        var d = FrameDecoder()
        let stream = Self.helloFrame + Self.partialFrame
        XCTAssertEqual(decode(Array(stream[0..<10]), decoder: &d), [])
        d.resynchronize()
        // The buffered start of the hello frame is still a plausible start: nothing is lost.
        XCTAssertEqual(decode(Array(stream[10...]), decoder: &d), [Self.hello, Self.abc])
        XCTAssertEqual(d.discardedBytes, 0)
    }

    func testGarbageIsDrainedWithBoundedMemory() {
        var d = FrameDecoder(maxFrameSize: 1 << 16)
        d.resynchronize()
        let garbage = [UInt8](repeating: 0xff, count: 1 << 20)
        for _ in 0..<8 {
            garbage.withUnsafeBytes { d.feed($0) { _ in XCTFail("no entry expected") } }
            XCTAssertLessThan(d.bufferedBytes, 12)
        }
        XCTAssertEqual(d.discardedBytes, 8 << 20)
    }

    func testRandomInputNeverCrashesOrHoldsTooMuch() {
        var rng = ParserTestRandom(seed: 42)
        let max = 4096
        let valid = Self.helloFrame + Self.partialFrame + ProtoWriter.frame([]) + Self.helloFrame
        for round in 0..<300 {
            var stream: [UInt8] = []
            for _ in 0..<20 {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: stream += valid
                case 1: stream += (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                default:
                    var mutated = valid
                    for _ in 0..<3 { mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                    stream += mutated
                }
            }
            var d = FrameDecoder(maxFrameSize: max)
            if round % 2 == 0 { d.resynchronize() }
            var from = 0
            while from < stream.count {
                let to = min(stream.count, from + Int.random(in: 0...300, using: &rng))
                stream[from..<to].withUnsafeBytes { chunk in
                    d.feed(chunk) { entry in
                        XCTAssertLessThanOrEqual(entry.line.count, max)
                    }
                }
                XCTAssertLessThanOrEqual(d.bufferedBytes, max + 4)
                from = to
            }
        }
    }

    // MARK: - Throwing callbacks

    struct Stop: Error {}

    func testAThrowingCallbackKeepsTheRestForTheNextFeed() throws {
        let stream = Self.helloFrame + Self.partialFrame + Self.helloFrame + Array(Self.partialFrame[0..<9])
        for cut in [0, 10, Self.helloFrame.count + 5] {
            var d = FrameDecoder()
            var seen: [DecodedLogEntry] = []
            var calls = 0
            let feed = { (bytes: ArraySlice<UInt8>, d: inout FrameDecoder) throws in
                try bytes.withUnsafeBytes { chunk in
                    try d.feed(chunk) { entry in
                        calls += 1
                        if calls == 2 { throw Stop() }
                        seen.append(DecodedLogEntry(entry))
                    }
                }
            }
            try feed(stream[0..<cut], &d)
            XCTAssertThrowsError(try feed(stream[cut...], &d))
            XCTAssertEqual(seen, [Self.hello])
            try feed([], &d)  // resumes with what the throw left behind
            XCTAssertEqual(seen, [Self.hello, Self.hello])
            XCTAssertEqual(d.bufferedBytes, 9)
            try feed(Self.partialFrame[9...], &d)
            XCTAssertEqual(seen, [Self.hello, Self.hello, Self.abc])
            XCTAssertEqual(d.bufferedBytes, 0)
        }
    }
}
