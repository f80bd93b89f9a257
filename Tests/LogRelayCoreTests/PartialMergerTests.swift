// Tests for PartialMerger: rejoining lines the daemon split at 16 KiB (protocol doc §4.3).
import XCTest
@testable import LogRelayCore

final class PartialMergerTests: XCTestCase {
    struct Emitted: Equatable {
        var line: [UInt8]
        var source: String
        var timeNano: Int64
        var partial: Bool
    }

    /// Collects what a merger emits.
    final class Sink {
        var out: [Emitted] = []
        func emit(_ line: UnsafeRawBufferPointer, _ source: UnsafeRawBufferPointer, _ time: Int64, _ partial: Bool) {
            out.append(Emitted(line: Array(line), source: String(decoding: source, as: UTF8.self), timeNano: time, partial: partial))
        }
    }

    static let idA = String(repeating: "a", count: 64)
    static let idB = String(repeating: "b", count: 64)

    /// Calls `body` with a view over owned copies of the given fields.
    func withEntry(source: String = "stdout", time: Int64 = 1, line: [UInt8], partial: Bool = false,
                   metadata: (id: String, ordinal: Int32, last: Bool)? = nil, _ body: (LogEntryView) -> Void) {
        let src = Array(source.utf8)
        let id = Array((metadata?.id ?? "").utf8)
        src.withUnsafeBytes { s in
            line.withUnsafeBytes { l in
                id.withUnsafeBytes { i in
                    body(LogEntryView(source: s, timeNano: time, line: l, partial: partial,
                                      hasPartialMetadata: metadata != nil, partialLast: metadata?.last ?? false,
                                      partialID: i, partialOrdinal: metadata?.ordinal ?? 0))
                }
            }
        }
    }

    func add(_ m: inout PartialMerger, _ sink: Sink, source: String = "stdout", time: Int64 = 1, line: [UInt8],
             partial: Bool = false, metadata: (id: String, ordinal: Int32, last: Bool)? = nil, now: Int64 = 0) {
        withEntry(source: source, time: time, line: line, partial: partial, metadata: metadata) { entry in
            m.add(entry, now: now, sink.emit)
        }
    }

    /// Feeds a line the way the daemon splits it: 16 KiB chunks, then the remainder with last=true.
    func addSplitLine(_ m: inout PartialMerger, _ sink: Sink, _ line: [UInt8], source: String = "stdout",
                      id: String = idA, firstTime: Int64 = 100, terminated: Bool = true) {
        var ordinal: Int32 = 1
        var from = 0
        while line.count - from >= 16_384 {
            add(&m, sink, source: source, time: firstTime, line: Array(line[from..<(from + 16_384)]),
                partial: true, metadata: (id, ordinal, false))
            from += 16_384
            ordinal += 1
        }
        if terminated {
            add(&m, sink, source: source, time: firstTime, line: Array(line[from...]), partial: true, metadata: (id, ordinal, true))
        } else if from < line.count {
            add(&m, sink, source: source, time: firstTime, line: Array(line[from...]), partial: true, metadata: (id, ordinal, false))
        }
    }

    func bytes(_ n: Int, seed: UInt8 = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed } }

    // MARK: - Whole lines

    func testWholeLinesPassThroughWithoutCopying() {
        var m = PartialMerger(enabled: true)
        let line = Array("hello".utf8)
        withEntry(time: 42, line: line) { entry in
            var calls = 0
            m.add(entry, now: 0) { l, s, t, partial in
                calls += 1
                XCTAssertEqual(l.baseAddress, entry.line.baseAddress)
                XCTAssertEqual(s.baseAddress, entry.source.baseAddress)
                XCTAssertEqual(t, 42)
                XCTAssertFalse(partial)
            }
            XCTAssertEqual(calls, 1)
        }
        XCTAssertEqual(m.pendingBytes, 0)
    }

    func testEmptyWholeLineIsEmitted() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, line: [])
        XCTAssertEqual(sink.out, [Emitted(line: [], source: "stdout", timeNano: 1, partial: false)])
    }

    // MARK: - Merging

    func testRejoins40000ByteLineFromThreeChunks() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        let line = bytes(40_000)
        // 16384 + 16384 + 7232, later chunks stamped later to check the first stamp wins.
        add(&m, sink, time: 100, line: Array(line[0..<16_384]), partial: true, metadata: (Self.idA, 1, false))
        XCTAssertEqual(m.pendingBytes, 16_384)
        add(&m, sink, time: 200, line: Array(line[16_384..<32_768]), partial: true, metadata: (Self.idA, 2, false))
        XCTAssertEqual(m.pendingBytes, 32_768)
        XCTAssertEqual(sink.out, [])
        add(&m, sink, time: 300, line: Array(line[32_768...]), partial: true, metadata: (Self.idA, 3, true))
        XCTAssertEqual(sink.out, [Emitted(line: line, source: "stdout", timeNano: 100, partial: false)])
        XCTAssertEqual(m.pendingBytes, 0)
    }

    func testExactly16KiBLineEndsWithEmptyLastChunk() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        let line = bytes(16_384)
        addSplitLine(&m, sink, line)
        XCTAssertEqual(sink.out, [Emitted(line: line, source: "stdout", timeNano: 100, partial: false)])
        XCTAssertEqual(m.pendingBytes, 0)
    }

    func testLinesOfManySizesRoundTrip() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        var expected: [Emitted] = []
        for n in [16_384, 16_385, 32_767, 32_768, 49_152, 100_000] {
            let line = bytes(n, seed: UInt8(n % 251))
            addSplitLine(&m, sink, line, id: String(repeating: "c", count: 63) + String(n % 10))
            expected.append(Emitted(line: line, source: "stdout", timeNano: 100, partial: false))
        }
        XCTAssertEqual(sink.out, expected)
    }

    func testSingleChunkSequenceIsEmittedWithoutCopying() {
        var m = PartialMerger(enabled: true)
        withEntry(time: 5, line: Array("tail".utf8), partial: true, metadata: (Self.idA, 1, true)) { entry in
            var calls = 0
            m.add(entry, now: 0) { l, _, t, partial in
                calls += 1
                XCTAssertEqual(l.baseAddress, entry.line.baseAddress)
                XCTAssertEqual(t, 5)
                XCTAssertFalse(partial)
            }
            XCTAssertEqual(calls, 1)
        }
    }

    func testInterleavedStdoutAndStderrSequences() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        let out = bytes(20_000, seed: 1)
        let err = bytes(33_000, seed: 2)
        add(&m, sink, source: "stdout", time: 10, line: Array(out[0..<16_384]), partial: true, metadata: (Self.idA, 1, false))
        add(&m, sink, source: "stderr", time: 20, line: Array(err[0..<16_384]), partial: true, metadata: (Self.idB, 1, false))
        add(&m, sink, source: "stderr", time: 20, line: Array(err[16_384..<32_768]), partial: true, metadata: (Self.idB, 2, false))
        XCTAssertEqual(m.pendingBytes, 3 * 16_384)
        add(&m, sink, source: "stdout", time: 10, line: Array(out[16_384...]), partial: true, metadata: (Self.idA, 2, true))
        // A whole stdout line while stderr is still open goes straight out.
        add(&m, sink, source: "stdout", time: 30, line: Array("short".utf8))
        add(&m, sink, source: "stderr", time: 20, line: Array(err[32_768...]), partial: true, metadata: (Self.idB, 3, true))
        XCTAssertEqual(sink.out, [
            Emitted(line: out, source: "stdout", timeNano: 10, partial: false),
            Emitted(line: Array("short".utf8), source: "stdout", timeNano: 30, partial: false),
            Emitted(line: err, source: "stderr", timeNano: 20, partial: false),
        ])
        XCTAssertEqual(m.pendingBytes, 0)
    }

    // MARK: - Unfinished sequences

    func testUnterminatedSequenceIsFlushedAsPartialAtEOF() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        let line = bytes(20_000)
        addSplitLine(&m, sink, line, terminated: false)  // `printf` without newline, then exit
        XCTAssertEqual(sink.out, [])
        XCTAssertEqual(m.pendingBytes, 20_000)
        m.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out, [Emitted(line: line, source: "stdout", timeNano: 100, partial: true)])
        XCTAssertEqual(m.pendingBytes, 0)
        m.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out.count, 1, "flushing twice emits nothing more")
    }

    func testFlushOnlyTakesSequencesIdleSinceBeforeTheCutoff() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, source: "stdout", line: [1, 2], partial: true, metadata: (Self.idA, 1, false), now: 100)
        add(&m, sink, source: "stderr", line: [3], partial: true, metadata: (Self.idB, 1, false), now: 200)
        m.flush(olderThan: 100, sink.emit)
        XCTAssertEqual(sink.out, [])
        m.flush(olderThan: 150, sink.emit)
        XCTAssertEqual(sink.out, [Emitted(line: [1, 2], source: "stdout", timeNano: 1, partial: true)])
        // Extending a sequence refreshes it.
        add(&m, sink, source: "stderr", line: [4], partial: true, metadata: (Self.idB, 2, false), now: 300)
        m.flush(olderThan: 250, sink.emit)
        XCTAssertEqual(sink.out.count, 1)
        m.flush(olderThan: 301, sink.emit)
        XCTAssertEqual(sink.out.last, Emitted(line: [3, 4], source: "stderr", timeNano: 1, partial: true))
    }

    func testANinthSourceFlushesTheLeastRecentlyExtendedSequence() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        // Eight sources with an open sequence each; s3 is the least recently extended.
        for k in 0..<8 {
            add(&m, sink, source: "s\(k)", line: [UInt8(k)], partial: true, metadata: (Self.idA, 1, false), now: k == 3 ? 50 : 100 + Int64(k))
        }
        XCTAssertEqual(sink.out, [])
        add(&m, sink, source: "s8", line: [8], partial: true, metadata: (Self.idB, 1, false), now: 200)
        XCTAssertEqual(sink.out, [Emitted(line: [3], source: "s3", timeNano: 1, partial: true)])
        // s3's slot now holds s8's sequence; the others are intact.
        m.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(Set(sink.out.map(\.source)), Set((0..<9).map { "s\($0)" }))
        XCTAssertEqual(sink.out.count, 9)
    }

    func testNewIDOnSameSourceFlushesTheOldSequenceFirst() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, time: 1, line: [1, 1], partial: true, metadata: (Self.idA, 1, false))
        add(&m, sink, time: 2, line: [2, 2], partial: true, metadata: (Self.idB, 1, false))
        add(&m, sink, time: 2, line: [2], partial: true, metadata: (Self.idB, 2, true))
        XCTAssertEqual(sink.out, [
            Emitted(line: [1, 1], source: "stdout", timeNano: 1, partial: true),
            Emitted(line: [2, 2, 2], source: "stdout", timeNano: 2, partial: false),
        ])
    }

    func testWholeLineAfterAnUnfinishedSequenceKeepsOrder() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, time: 1, line: [1], partial: true, metadata: (Self.idA, 1, false))
        add(&m, sink, source: "stderr", time: 2, line: [9])
        add(&m, sink, time: 3, line: [2])
        XCTAssertEqual(sink.out, [
            Emitted(line: [9], source: "stderr", timeNano: 2, partial: false),
            Emitted(line: [1], source: "stdout", timeNano: 1, partial: true),
            Emitted(line: [2], source: "stdout", timeNano: 3, partial: false),
        ])
    }

    func testSequenceJoinedMidwayIsAPiece() {
        // After re-attaching to a FIFO the first chunk we see may be ordinal 2.
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, line: [1], partial: true, metadata: (Self.idA, 2, false))
        add(&m, sink, line: [2], partial: true, metadata: (Self.idA, 3, true))
        add(&m, sink, line: [3], partial: true, metadata: (Self.idB, 4, true))
        XCTAssertEqual(sink.out, [
            Emitted(line: [1, 2], source: "stdout", timeNano: 1, partial: true),
            Emitted(line: [3], source: "stdout", timeNano: 1, partial: true),
        ])
    }

    func testMissingChunkMakesTheLineAPiece() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, line: [1], partial: true, metadata: (Self.idA, 1, false))
        add(&m, sink, line: [3], partial: true, metadata: (Self.idA, 3, true))
        XCTAssertEqual(sink.out, [Emitted(line: [1, 3], source: "stdout", timeNano: 1, partial: true)])
    }

    func testPartialWithoutMetadataIsEmittedAsAPiece() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        add(&m, sink, line: [1, 2, 3], partial: true)
        XCTAssertEqual(sink.out, [Emitted(line: [1, 2, 3], source: "stdout", timeNano: 1, partial: true)])
        XCTAssertEqual(m.pendingBytes, 0)
    }

    // MARK: - Size cap

    func testCapEmitsHeldBytesAsPiecesAndKeepsGoing() {
        var m = PartialMerger(enabled: true, maxLineBytes: 20_000)
        let sink = Sink()
        let line = bytes(40_000)
        addSplitLine(&m, sink, line)
        XCTAssertEqual(sink.out.map(\.line.count), [16_384, 16_384, 7_232])
        XCTAssertEqual(Array(sink.out.map(\.line).joined()), line)
        XCTAssertTrue(sink.out.allSatisfy { $0.partial && $0.timeNano == 100 })
        XCTAssertLessThanOrEqual(m.pendingBytes, 0)
    }

    func testLineExactlyAtTheCapIsWhole() {
        var m = PartialMerger(enabled: true, maxLineBytes: 32_768)
        let sink = Sink()
        let line = bytes(32_768)
        addSplitLine(&m, sink, line)
        XCTAssertEqual(sink.out, [Emitted(line: line, source: "stdout", timeNano: 100, partial: false)])
    }

    func testChunkLargerThanTheCapIsPassedOnAsItsOwnPiece() {
        var m = PartialMerger(enabled: true, maxLineBytes: 1000)
        let sink = Sink()
        let line = bytes(16_384 + 10)
        addSplitLine(&m, sink, line)
        XCTAssertEqual(sink.out.map(\.line.count), [16_384, 10])
        XCTAssertEqual(Array(sink.out.map(\.line).joined()), line)
        XCTAssertTrue(sink.out.allSatisfy(\.partial))
        XCTAssertLessThanOrEqual(m.pendingBytes, 1000)
    }

    func testCapNeverHoldsMoreThanTheLimit() {
        var m = PartialMerger(enabled: true, maxLineBytes: 50_000)
        let sink = Sink()
        for ordinal in Int32(1)...20 {
            add(&m, sink, line: bytes(16_384), partial: true, metadata: (Self.idA, ordinal, false))
            XCTAssertLessThanOrEqual(m.pendingBytes, 50_000)
        }
        m.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out.reduce(0) { $0 + $1.line.count }, 20 * 16_384)
        XCTAssertTrue(sink.out.allSatisfy(\.partial))
    }

    // MARK: - Disabled

    func testDisabledEmitsEveryChunkAsAPiece() {
        var m = PartialMerger(enabled: false)
        let sink = Sink()
        let line = bytes(40_000)
        addSplitLine(&m, sink, line)
        XCTAssertEqual(sink.out.map(\.line.count), [16_384, 16_384, 7_232])
        XCTAssertTrue(sink.out.allSatisfy(\.partial), "a chunk of a split line is never a whole line")
        XCTAssertEqual(m.pendingBytes, 0)
    }

    func testDisabledSkipsTheEmptyLastChunk() {
        var m = PartialMerger(enabled: false)
        let sink = Sink()
        let line = bytes(16_384)
        addSplitLine(&m, sink, line)
        XCTAssertEqual(sink.out, [Emitted(line: line, source: "stdout", timeNano: 100, partial: true)])
    }

    func testDisabledPassesWholeLinesThrough() {
        var m = PartialMerger(enabled: false)
        let sink = Sink()
        add(&m, sink, line: Array("x".utf8))
        XCTAssertEqual(sink.out, [Emitted(line: Array("x".utf8), source: "stdout", timeNano: 1, partial: false)])
    }

    // MARK: - Odd input

    func testManySourcesDoNotGrowWithoutBound() {
        var m = PartialMerger(enabled: true)
        let sink = Sink()
        for i in 0..<50 {
            add(&m, sink, source: "src\(i)", line: [UInt8(i)], partial: true, metadata: (Self.idA, 1, false), now: Int64(i))
        }
        m.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(Set(sink.out.map(\.source)).count, 50)
        XCTAssertTrue(sink.out.allSatisfy(\.partial))
        XCTAssertEqual(m.pendingBytes, 0)
    }
}
