// Tests for MultilineGrouper (multiline-pattern / multiline-datetime-format): stack traces and
// pretty-printed JSON become one event each, per source, with a flush timeout and a size cap.
import XCTest
@testable import LogRelayCore

final class MultilineGrouperTests: XCTestCase {
    struct Event: Equatable, CustomStringConvertible {
        var text: String
        var source: String
        var timeNano: Int64
        var partial: Bool
        var description: String { "\(source)@\(timeNano)\(partial ? " partial" : ""): \(text.debugDescription)" }
    }

    final class Sink {
        var out: [Event] = []
        func emit(_ line: UnsafeRawBufferPointer, _ source: UnsafeRawBufferPointer, _ time: Int64, _ partial: Bool) {
            out.append(Event(text: String(decoding: line, as: UTF8.self), source: String(decoding: source, as: UTF8.self),
                             timeNano: time, partial: partial))
        }
    }

    static let datetime = try! LinearRegex(MultilineGrouper.startPattern(datetimeFormat: "%Y-%m-%d %H:%M:%S"))

    func add(_ g: inout MultilineGrouper, _ sink: Sink, _ line: String, source: String = "stdout", time: Int64 = 1,
             partial: Bool = false, now: Int64 = 0) {
        Array(line.utf8).withUnsafeBytes { l in
            Array(source.utf8).withUnsafeBytes { s in
                g.add(l, source: s, timeNano: time, partial: partial, now: now, sink.emit)
            }
        }
    }

    /// A container's output: ordinary lines, a Java trace, a Python trace, pretty-printed JSON.
    static let sample: [String] = [
        "2024-05-01 10:00:00 INFO starting",
        "2024-05-01 10:00:01 ERROR request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.Foo.bar(Foo.java:42)",
        "\tat com.example.Main.main(Main.java:7)",
        "Caused by: java.io.IOException: disk \"full\"",
        "\t... 2 more",
        "2024-05-01 10:00:02 WARN python said",
        "Traceback (most recent call last):",
        "  File \"app.py\", line 3, in <module>",
        "    main()",
        "ZeroDivisionError: division by zero",
        "2024-05-01 10:00:03 INFO payload {",
        "  \"a\": 1,",
        "  \"b\": [",
        "    2",
        "  ]",
        "}",
        "2024-05-01 10:00:04 INFO done",
    ]
    static let expected: [String] = [
        sample[0],
        sample[1...6].joined(separator: "\n"),
        sample[7...11].joined(separator: "\n"),
        sample[12...17].joined(separator: "\n"),
        sample[18],
    ]

    func testGroupsStackTracesAndJSONBetweenOrdinaryLines() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
        let sink = Sink()
        for (i, line) in Self.sample.enumerated() { add(&g, sink, line, time: Int64(100 + i)) }
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out.map(\.text), Self.expected)
        // Every event keeps its first line's time.
        XCTAssertEqual(sink.out.map(\.timeNano), [100, 101, 107, 112, 118])
        XCTAssertFalse(sink.out.contains { $0.partial })
        XCTAssertEqual(g.pendingBytes, 0)
    }

    func testEventIsHeldUntilTheNextStartLine() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
        let sink = Sink()
        add(&g, sink, "2024-05-01 10:00:01 ERROR x")
        add(&g, sink, "  at y")
        XCTAssertEqual(sink.out, [])
        add(&g, sink, "2024-05-01 10:00:02 next")
        XCTAssertEqual(sink.out.map(\.text), ["2024-05-01 10:00:01 ERROR x\n  at y"])
    }

    func testLinesBeforeTheFirstStartFormOneEvent() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
        let sink = Sink()
        add(&g, sink, "banner 1")
        add(&g, sink, "banner 2")
        add(&g, sink, "2024-05-01 10:00:00 up")
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out.map(\.text), ["banner 1\nbanner 2", "2024-05-01 10:00:00 up"])
    }

    func testStdoutAndStderrAreGroupedSeparately() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
        let sink = Sink()
        add(&g, sink, "2024-05-01 10:00:01 out trace", source: "stdout", time: 1)
        add(&g, sink, "2024-05-01 10:00:01 err trace", source: "stderr", time: 2)
        add(&g, sink, "  out frame", source: "stdout", time: 3)
        add(&g, sink, "  err frame", source: "stderr", time: 4)
        add(&g, sink, "2024-05-01 10:00:02 err next", source: "stderr", time: 5)
        XCTAssertEqual(sink.out, [Event(text: "2024-05-01 10:00:01 err trace\n  err frame", source: "stderr", timeNano: 2, partial: false)])
        add(&g, sink, "  out frame 2", source: "stdout", time: 6)
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out.dropFirst().map { $0 }, [
            Event(text: "2024-05-01 10:00:01 out trace\n  out frame\n  out frame 2", source: "stdout", timeNano: 1, partial: false),
            Event(text: "2024-05-01 10:00:02 err next", source: "stderr", timeNano: 5, partial: false),
        ])
    }

    /// The sample, interleaved line by line with a second copy on stderr, in every proportion.
    func testInterleavedSourcesInEveryOrderGiveTheSameEvents() {
        let n = Self.sample.count
        for seed in 0..<64 {
            var rng = SplitMix(seed: UInt64(seed))
            var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
            let sink = Sink()
            var i = 0, j = 0
            while i < n || j < n {
                if j >= n || (i < n && rng.next() & 1 == 0) {
                    add(&g, sink, Self.sample[i], source: "stdout"); i += 1
                } else {
                    add(&g, sink, Self.sample[j], source: "stderr"); j += 1
                }
            }
            g.flush(olderThan: .max, sink.emit)
            XCTAssertEqual(sink.out.filter { $0.source == "stdout" }.map(\.text), Self.expected, "seed \(seed)")
            XCTAssertEqual(sink.out.filter { $0.source == "stderr" }.map(\.text), Self.expected, "seed \(seed)")
        }
    }

    /// Frames cut at every byte go through the decoder, the partial merger (a line split by
    /// the daemon at 16 KiB, too) and the grouper: the events are the same every time.
    func testSplitAtEveryByteThroughDecoderAndMerger() {
        let id = String(repeating: "c", count: 64)
        let long = String(repeating: "x", count: 300)
        var stream: [UInt8] = []
        var lines = Self.sample
        lines.insert("  " + long, at: 4)   // a frame of the Java trace arrives in two pieces
        for (k, line) in lines.enumerated() where k != 4 {
            stream += ProtoWriter.frame(ProtoWriter.entry(time: Int64(k + 1), line: Array(line.utf8)))
            if k == 3 {
                let piece = Array(("  " + long).utf8)
                stream += ProtoWriter.frame(ProtoWriter.entry(time: 99, line: Array(piece[..<100]), partial: true, metadata: (id, 1, false)))
                stream += ProtoWriter.frame(ProtoWriter.entry(time: 99, line: Array(piece[100...]), partial: true, metadata: (id, 2, true)))
            }
        }
        var expected = Self.expected
        expected[1] = lines[1...7].joined(separator: "\n")

        for cut in 0...stream.count {
            var decoder = FrameDecoder()
            var merger = PartialMerger(enabled: true)
            var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
            let sink = Sink()
            for part in [Array(stream[..<cut]), Array(stream[cut...])] {
                part.withUnsafeBytes { p in
                    decoder.feed(p) { entry in
                        merger.add(entry, now: 0) { line, source, time, partial in
                            g.add(line, source: source, timeNano: time, partial: partial, now: 0, sink.emit)
                        }
                    }
                }
            }
            g.flush(olderThan: .max, sink.emit)
            XCTAssertEqual(sink.out.map(\.text), expected, "cut at \(cut)")
            XCTAssertFalse(sink.out.contains { $0.partial }, "cut at \(cut)")
        }
    }

    /// However the input ends, after any line: a flush gives back every line, in order, once.
    func testFlushAtEveryLineBoundary() {
        for k in 0...Self.sample.count {
            var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
            let sink = Sink()
            for line in Self.sample[..<k] { add(&g, sink, line) }
            g.flush(olderThan: .max, sink.emit)
            XCTAssertEqual(sink.out.map(\.text).joined(separator: "\n"), Self.sample[..<k].joined(separator: "\n"), "after \(k) lines")
            XCTAssertEqual(g.pendingBytes, 0)
        }
    }

    func testFlushTimeoutSendsTheLastEventOfAQuietSource() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
        let sink = Sink()
        add(&g, sink, "2024-05-01 10:00:01 ERROR x", source: "stdout", now: 1_000)
        add(&g, sink, "  at y", source: "stdout", now: 2_000)
        add(&g, sink, "2024-05-01 10:00:01 busy", source: "stderr", now: 5_000)
        g.flush(olderThan: 2_000, sink.emit)        // not quiet long enough
        XCTAssertEqual(sink.out, [])
        g.flush(olderThan: 2_001, sink.emit)        // stdout went quiet; stderr did not
        XCTAssertEqual(sink.out.map(\.text), ["2024-05-01 10:00:01 ERROR x\n  at y"])
        XCTAssertFalse(sink.out[0].partial)
        // A continuation after the timeout starts an event of its own.
        add(&g, sink, "  late", source: "stdout", now: 9_000)
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(Set(sink.out.dropFirst().map(\.text)), ["2024-05-01 10:00:01 busy", "  late"])
    }

    func testSizeCapCutsTheEventAndMarksEveryPiecePartial() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 40)
        let sink = Sink()
        add(&g, sink, "2024-05-01 10:00:01 E", time: 7)       // 21 bytes
        add(&g, sink, "  frame 1 ......", time: 8)             // 21 + 1 + 16 = 38
        add(&g, sink, "  frame 2 ......", time: 9)             // would be 55: cut
        add(&g, sink, "  frame 3 ......", time: 10)
        add(&g, sink, "2024-05-01 10:00:02 ok", time: 11)
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out, [
            Event(text: "2024-05-01 10:00:01 E\n  frame 1 ......", source: "stdout", timeNano: 7, partial: true),
            Event(text: "  frame 2 ......\n  frame 3 ......", source: "stdout", timeNano: 7, partial: true),
            Event(text: "2024-05-01 10:00:02 ok", source: "stdout", timeNano: 11, partial: false),
        ])
        XCTAssertTrue(sink.out.allSatisfy { $0.text.utf8.count <= 40 })
    }

    func testLineLongerThanTheCapPassesAsItsOwnPiece() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 30)
        let sink = Sink()
        let huge = "2024-05-01 10:00:01 " + String(repeating: "z", count: 50)
        add(&g, sink, huge, time: 1)
        add(&g, sink, "  after", time: 2)
        add(&g, sink, "  " + String(repeating: "w", count: 40), time: 3)
        add(&g, sink, "2024-05-01 10:00:02 ok", time: 4)
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out, [
            Event(text: huge, source: "stdout", timeNano: 1, partial: true),
            Event(text: "  after", source: "stdout", timeNano: 1, partial: true),
            Event(text: "  " + String(repeating: "w", count: 40), source: "stdout", timeNano: 1, partial: true),
            Event(text: "2024-05-01 10:00:02 ok", source: "stdout", timeNano: 4, partial: false),
        ])
    }

    func testPieceOfASplitLineEndsTheEventAndPassesThrough() {
        var g = MultilineGrouper(start: Self.datetime, maxEventBytes: 1 << 20)
        let sink = Sink()
        add(&g, sink, "2024-05-01 10:00:01 E", time: 1)
        add(&g, sink, "  at x", time: 2)
        add(&g, sink, "piece of a 1 MiB line", time: 3, partial: true)
        add(&g, sink, "2024-05-01 10:00:02 ok", time: 4)
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out, [
            Event(text: "2024-05-01 10:00:01 E\n  at x", source: "stdout", timeNano: 1, partial: false),
            Event(text: "piece of a 1 MiB line", source: "stdout", timeNano: 3, partial: true),
            Event(text: "2024-05-01 10:00:02 ok", source: "stdout", timeNano: 4, partial: false),
        ])
    }

    func testUnanchoredPatternAndEmptyLines() throws {
        // multiline-pattern matches anywhere, as Go's regexp.Match in awslogs.
        var g = MultilineGrouper(start: try LinearRegex("^(INFO|ERROR) "), maxEventBytes: 1 << 20)
        let sink = Sink()
        for l in ["INFO a", "", "ERROR b", "  x", "", "INFO c"] { add(&g, sink, l) }
        g.flush(olderThan: .max, sink.emit)
        XCTAssertEqual(sink.out.map(\.text), ["INFO a\n", "ERROR b\n  x\n", "INFO c"])
    }

    func testDatetimeFormatTranslation() throws {
        XCTAssertEqual(try MultilineGrouper.startPattern(datetimeFormat: "%Y-%m-%d"), #"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[1,2][0-9]|3[0,1])"#)
        // Literal characters match only themselves; %% is a percent sign.
        XCTAssertEqual(try MultilineGrouper.startPattern(datetimeFormat: "[%H.%%]"), #"^\[(?:[0,1][0-9]|2[0-3])\.%\]"#)
        let cases: [(String, String, Bool)] = [
            ("%Y-%m-%dT%H:%M:%S%L%z", "2024-12-31T23:59:59.123+0100 x", true),
            ("%b %d %H:%M:%S", "May 01 10:00:00 host sshd", true),
            ("%a, %d %B %Y %I:%M %p %Z", "Wed, 01 May 2024 09:15 AM CEST", true),
            ("%Y-%m-%d", "  2024-05-01", false),      // anchored at the line's start
            ("%Y-%m-%d", "2024-13-01", false),
            ("%H:%M:%S.%f", "10:00:00.123456", true),
            ("%H:%M:%S.%f", "10:00:00x123456", false),
            ("%j/%y %w", "366/24 6", true),
        ]
        for (format, line, match) in cases {
            let re = try LinearRegex(MultilineGrouper.startPattern(datetimeFormat: format))
            XCTAssertEqual(re.matches(line), match, "\(format) on \(line)")
        }
        XCTAssertThrowsError(try MultilineGrouper.startPattern(datetimeFormat: "%Q"))
        XCTAssertThrowsError(try MultilineGrouper.startPattern(datetimeFormat: "%Y%"))
    }

    func testOptionsAreValidated() throws {
        func parse(_ c: [String: String]) throws(OptionError) -> MultilineOptions? {
            try LogOptions.parse(c, driver: .nats).common.multiline
        }
        XCTAssertNil(try parse([:]))
        let m = try XCTUnwrap(try parse(["multiline-datetime-format": "%Y-%m-%d", "multiline-flush-interval": "500ms",
                                         "multiline-max-bytes": "64k"]))
        XCTAssertEqual(m.flushIntervalNs, 500_000_000)
        XCTAssertEqual(m.maxEventBytes, 64 << 10)
        XCTAssertTrue(m.start.matches("2024-05-01 x"))
        XCTAssertEqual(try parse(["multiline-pattern": "^\\S"])?.maxEventBytes, MultilineOptions.defaultMaxEventBytes)
        XCTAssertEqual(try parse(["multiline-pattern": "^\\S", "buffer-size": "64k"])?.maxEventBytes, 64 << 10)

        let bad: [([String: String], String)] = [
            (["multiline-pattern": "^x", "multiline-datetime-format": "%Y"], "set only one"),
            (["multiline-pattern": "(unclosed"], "invalid multiline-pattern"),
            (["multiline-pattern": String(repeating: "a", count: 1025)], "limit is 1024"),
            (["multiline-pattern": "(abc){1000}"], "instructions"),
            (["multiline-datetime-format": "%Q"], "invalid multiline-datetime-format"),
            (["multiline-flush-interval": "2s"], "needs multiline-pattern"),
            (["multiline-pattern": "^x", "multiline-flush-interval": "2"], "invalid multiline-flush-interval"),
            (["multiline-pattern": "^x", "multiline-flush-interval": "20m"], "invalid multiline-flush-interval"),
            (["multiline-pattern": "^x", "multiline-max-bytes": "10"], "invalid multiline-max-bytes"),
            (["multiline-pattern": "^x", "multiline-max-bytes": "16m"], "larger than buffer-size"),
        ]
        for (config, message) in bad {
            XCTAssertThrowsError(try parse(config), "\(config)") { e in
                XCTAssertTrue("\(e)".contains(message), "\(config): \(e)")
            }
        }
    }
}

/// A small deterministic generator for the interleaving test.
struct SplitMix {
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
