// The Logentries wire format: `TOKEN EVENT\n` / `TOKEN LINE\n`, U+2028 folding, lines cut
// under 64 KiB with the token on every piece, the delivery tracker, and one connection
// against a loopback TCP listener.
import FoundationEssentials
import Glibc
import XCTest
@testable import LogRelayCore

final class LogentriesWireTests: XCTestCase {
    static let token = "2bfbea1e-10c3-4419-bdad-7e6435882e1f"
    static let info = ContainerInfo(containerID: String(repeating: "a", count: 64), containerName: "/web",
                                    containerImageID: "sha256:" + String(repeating: "b", count: 64), containerImageName: "alpine")

    struct Event: Decodable {
        var time: String
        var source: String
        var log: String
        var tag: String
        var partial: Bool?
    }

    func wire(_ format: EventFormat, token: String = token) -> LogentriesWire {
        LogentriesWire(token: token, encoder: EventEncoder(info: Self.info, tag: "tag1", attrs: [], format: format))
    }

    func records(_ lines: [[UInt8]], partial: Bool = false) -> [UInt8] {
        lineRecords(lines, source: "stderr", time: 1_700_000_000_000_000_001, partial: partial)
    }

    /// Encodes and splits the output into wire lines (each without its "\n"), checking framing.
    func encode(_ w: LogentriesWire, _ lines: [[UInt8]], prefill: [UInt8] = [], file: StaticString = #filePath, line: UInt = #line) -> [[UInt8]] {
        var out = prefill
        var scratch: [UInt8] = []
        let n = records(lines).withUnsafeBytes { w.append(records: $0, to: &out, scratch: &scratch) }
        XCTAssertEqual(Array(out.prefix(prefill.count)), prefill, "existing output untouched", file: file, line: line)
        let body = Array(out.dropFirst(prefill.count))
        XCTAssertTrue(body.isEmpty || body.last == 0x0A, "ends with a newline", file: file, line: line)
        let wireLines = body.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map(Array.init)
        XCTAssertEqual(wireLines.count, n, "returned line count", file: file, line: line)
        for l in wireLines {
            XCTAssertLessThan(l.count + 1, 65536, "wire line under 64 KiB", file: file, line: line)
            XCTAssertEqual(Array(l.prefix(37)), Array((Self.token + " ").utf8), "token and one space first", file: file, line: line)
            XCTAssertFalse(l.contains(0x0D), "no CR", file: file, line: line)
        }
        return wireLines
    }

    func payload(_ l: [UInt8]) -> [UInt8] { Array(l.dropFirst(37)) }

    func testJSONEventsOnePerLineWithToken() throws {
        let lines = encode(wire(.json), [Array("hello".utf8), Array("multi\nline\r\nx".utf8), []], prefill: Array("old".utf8))
        XCTAssertEqual(lines.count, 3)
        let e0 = try JSONDecoder().decode(Event.self, from: Data(payload(lines[0])))
        XCTAssertEqual(e0.log, "hello")
        XCTAssertEqual(e0.source, "stderr")
        XCTAssertEqual(e0.tag, "tag1")
        XCTAssertEqual(e0.time, "2023-11-14T22:13:20.000000001Z")
        XCTAssertNil(e0.partial)
        let e1 = try JSONDecoder().decode(Event.self, from: Data(payload(lines[1])))
        XCTAssertEqual(e1.log, "multi\nline\r\nx")      // escaped in JSON: no raw newline on the wire
        let e2 = try JSONDecoder().decode(Event.self, from: Data(payload(lines[2])))
        XCTAssertEqual(e2.log, "")                      // a JSON event is never empty
    }

    func testLineOnlyFoldsNewlinesIntoU2028AndSkipsEmptyLines() {
        let lines = encode(wire(.rawLine), [Array("a\nb\r\nc\rd".utf8), [], Array("plain".utf8), Array("bad \u{FF} end".utf8)])
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(String(decoding: payload(lines[0]), as: UTF8.self), "a\u{2028}b\u{2028}c\u{2028}d")
        XCTAssertEqual(String(decoding: payload(lines[1]), as: UTF8.self), "plain")
        XCTAssertEqual(String(decoding: payload(lines[2]), as: UTF8.self), "bad \u{FF} end")
        var invalid = Array("x".utf8); invalid.append(0xFF); invalid.append(0x79)
        let l2 = encode(wire(.rawLine), [invalid])
        XCTAssertEqual(String(decoding: payload(l2[0]), as: UTF8.self), "x\u{FFFD}y")
    }

    func testLongLinesAreCutWithTheTokenOnEveryPiece() throws {
        // 200 KiB with multi-byte characters: pieces cut at character boundaries.
        var big: [UInt8] = []
        while big.count < 200 * 1024 { big += Array("0123456789 é 日本 🚀 ".utf8) }
        let rawPieces = encode(wire(.rawLine), [big])
        XCTAssertGreaterThanOrEqual(rawPieces.count, 4)
        XCTAssertEqual(rawPieces.flatMap(payload), big)
        for p in rawPieces { XCTAssertNotNil(String(validating: payload(p), as: UTF8.self)) }
        XCTAssertEqual(rawPieces.first!.count + 1, 65535, "pieces fill the line")

        let jsonPieces = encode(wire(.json), [big])
        XCTAssertGreaterThanOrEqual(jsonPieces.count, 4)
        var joined = ""
        for p in jsonPieces {
            let e = try JSONDecoder().decode(Event.self, from: Data(payload(p)))
            XCTAssertEqual(e.partial, true)
            joined += e.log
        }
        XCTAssertEqual(Array(joined.utf8), big)
    }

    func testLineJustUnderTheLimitIsOnePiece() {
        let w = wire(.rawLine)
        let exact = [UInt8](repeating: 0x61, count: w.maxEventBytes)
        XCTAssertEqual(encode(w, [exact]).count, 1)
        XCTAssertEqual(encode(w, [exact + [0x62]]).count, 2)
    }

    func testManyLinesMixedWithACutOne() {
        let w = wire(.rawLine)
        let big = [UInt8](repeating: 0x7A, count: 70_000)
        let lines = encode(w, [Array("first".utf8), big, Array("last".utf8)])
        XCTAssertEqual(lines.count, 3 + 1)
        XCTAssertEqual(payload(lines[0]), Array("first".utf8))
        XCTAssertEqual(payload(lines[1]) + payload(lines[2]), big)
        XCTAssertEqual(payload(lines[3]), Array("last".utf8))
    }

    // MARK: delivery tracker

    func testTrackerConfirmsOnAcknowledgementAndRetainsForTheGracePeriod() {
        var t = DeliveryTracker<Int>(graceNs: 100, retainMaxBytes: 1000)
        t.add([1], bytes: 10, endOffset: 10)
        t.add([2, 3], bytes: 10, endOffset: 20)
        t.add([], bytes: 10, endOffset: 25)              // nothing to track
        XCTAssertEqual(t.inFlightCount, 2)
        XCTAssertFalse(t.isEmpty)
        XCTAssertEqual(t.update(acked: 9, now: 0), [])
        XCTAssertEqual(t.update(acked: 15, now: 50), [1])          // batch 1 acknowledged at 50
        XCTAssertEqual(t.retainedCount, 1)
        XCTAssertEqual(t.update(acked: 15, now: 149), [])
        XCTAssertEqual(t.retainedCount, 1)
        XCTAssertEqual(t.update(acked: 20, now: 150), [2, 3])      // batch 1 leaves, batch 2 retained
        XCTAssertTrue(t.isEmpty)
        XCTAssertEqual(t.retainedCount, 1)
        XCTAssertEqual(t.retainedBytes, 10)
        XCTAssertEqual(t.update(acked: 20, now: 250), [])
        XCTAssertFalse(t.hasRetained)
        XCTAssertEqual(t.retainedBytes, 0)
    }

    func testTrackerKeepsTheLatestCopiesUpToKeepBytesWhateverTheEstimate() {
        var t = DeliveryTracker<Int>(graceNs: 0, retainMaxBytes: 1000)
        for k in 1...4 { t.add([k], bytes: 10, endOffset: Int64(10 * k)) }
        // Everything acknowledged and, by the estimate, read: a young connection keeps 25 bytes' worth.
        XCTAssertEqual(t.update(acked: 40, read: 40, keepBytes: 25, now: 0), [1, 2, 3, 4])
        XCTAssertEqual(t.retainedCount, 2, "the two newest batches stay")
        let (kept, _) = t.takeAll()
        XCTAssertEqual(kept, [3, 4])
        // Grown up (keepBytes 0): read copies go.
        t.add([5], bytes: 10, endOffset: 50)
        XCTAssertEqual(t.update(acked: 50, read: 50, keepBytes: 25, now: 1), [5])
        XCTAssertEqual(t.update(acked: 50, read: 50, now: 2), [])
        XCTAssertFalse(t.hasRetained)
    }

    func testTrackerHandsBackRetainedThenInFlightOnFailure() {
        var t = DeliveryTracker<Int>(graceNs: 1000, retainMaxBytes: 25)
        t.add([1], bytes: 10, endOffset: 10)
        t.add([2], bytes: 10, endOffset: 20)
        t.add([3], bytes: 10, endOffset: 30)
        t.add([4], bytes: 10, endOffset: 40)
        XCTAssertEqual(t.update(acked: 30, now: 0), [1, 2, 3])
        XCTAssertEqual(t.retainedCount, 2, "the byte cap lets the oldest go early")
        let (kept, flying) = t.takeAll()
        XCTAssertEqual(kept, [2, 3])
        XCTAssertEqual(flying, [4])
        XCTAssertTrue(t.isEmpty)
        XCTAssertFalse(t.hasRetained)
    }

    func testTCPProgressOnALoopbackConnection() throws {
        let (listener, port) = try listen()
        defer { close(listener) }
        let fd = try TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMs: 2000)
        defer { close(fd) }
        let peer = accept(listener, nil, nil)
        defer { close(peer) }
        // Linux counts the SYN as one acknowledged byte: offsets are relative to the start.
        let base = TCPProgress.acked(fd)
        XCTAssertTrue(base == 0 || base == 1, "\(base)")
        XCTAssertEqual(TCPProgress.endOffset(fd), base)
        let data = [UInt8](repeating: 1, count: 10_000)
        XCTAssertEqual(data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }, 10_000)
        XCTAssertEqual(TCPProgress.endOffset(fd), base + 10_000)
        let deadline = Clock.monotonicNanos() + 5_000_000_000
        while TCPProgress.acked(fd) < base + 10_000 && Clock.monotonicNanos() < deadline { usleep(1000) }
        XCTAssertEqual(TCPProgress.acked(fd), base + 10_000)
    }

    // MARK: a whole connection over loopback TCP

    func testConnectionDeliversEveryLineAndReleasesThem() throws {
        let (listener, port) = try listen()
        defer { close(listener) }
        let registry = LogentriesRegistry()
        defer { registry.stopAll() }
        let opts = LogentriesOptions(token: Self.token, lineOnly: true, host: "127.0.0.1", port: port, tls: false)
        let buffer = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        let sink = attachLogentries(registry: registry, options: opts, tls: nil, name: "/t", buffer: buffer,
                                        encoder: EventEncoder(info: Self.info, tag: "t", attrs: [], format: .rawLine))
        let n = 5000
        let recs = records((0..<n).map { Array("line \($0)".utf8) })
        recs.withUnsafeBytes { _ = buffer.append(records: $0, lines: n, lineBytes: 0) }
        sink.notify()

        // The endpoint: accept, read everything until n lines arrived.
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 5000) == 1 else { XCTFail("no connection"); return }
        let peer = accept(listener, nil, nil)
        defer { close(peer) }
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = Clock.monotonicNanos() + 10_000_000_000
        while got.filter({ $0 == 0x0A }).count < n && Clock.monotonicNanos() < deadline {
            var p = pollfd(fd: peer, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 200) == 1 {
                let r = chunk.withUnsafeMutableBytes { Glibc.read(peer, $0.baseAddress, $0.count) }
                if r <= 0 { break }
                got += chunk[0..<r]
            }
        }
        let lines = got.split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(lines, (0..<n).map { "\(Self.token) line \($0)" })
        // Released once acknowledged and the grace period passed.
        let until = Clock.monotonicNanos() + 5_000_000_000
        while !buffer.isEmpty && Clock.monotonicNanos() < until { usleep(10_000) }
        XCTAssertTrue(buffer.isEmpty)
        XCTAssertEqual(buffer.counters.publishedLines, n)
        XCTAssertEqual(sink.connection.status.state, .connected)
        XCTAssertEqual(sink.connection.status.connects, 1)
    }

    /// The endpoint's kernel acknowledged the lines, its process never read them and closed
    /// (RST): the lines were released from the buffer on the acknowledgement, but the
    /// connection kept them for the grace period and sends them on the next connection.
    func testAcknowledgedButUnreadLinesAreSentAgainWhenTheEndpointResets() throws {
        try checkAcknowledgedButUnreadLinesArrive(afterResets: 1)
    }

    /// The copies sent again are lost with the next connection too (a dying endpoint's accept
    /// queue takes it and resets it): they must be sent on the one after, as copies (their
    /// lines left their buffer long ago, no rewind brings them back).
    func testLinesSentAgainSurviveTheNextConnectionResettingToo() throws {
        try checkAcknowledgedButUnreadLinesArrive(afterResets: 2)
    }

    private func checkAcknowledgedButUnreadLinesArrive(afterResets resets: Int) throws {
        let (listener, port) = try listen()
        defer { close(listener) }
        let registry = LogentriesRegistry()
        defer { registry.stopAll() }
        let opts = LogentriesOptions(token: Self.token, lineOnly: true, host: "127.0.0.1", port: port, tls: false)
        let buffer = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        let sink = attachLogentries(registry: registry, options: opts, tls: nil, name: "/t", buffer: buffer,
                                        encoder: EventEncoder(info: Self.info, tag: "t", attrs: [], format: .rawLine))
        let n = 100
        let recs = records((0..<n).map { Array("unread \($0)".utf8) })
        recs.withUnsafeBytes { _ = buffer.append(records: $0, lines: n, lineBytes: 0) }
        sink.notify()

        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 5000) == 1 else { XCTFail("no connection"); return }
        let first = accept(listener, nil, nil)
        let deadline = Clock.monotonicNanos() + 5_000_000_000
        while !buffer.isEmpty && Clock.monotonicNanos() < deadline { usleep(500) }
        XCTAssertTrue(buffer.isEmpty, "released once acknowledged")
        close(first)   // unread data: the kernel answers with RST

        var second: Int32 = -1
        for k in 1...resets {
            pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 5000) == 1 else {
                XCTFail("no reconnect: the acknowledged lines were not kept to be sent again")
                return
            }
            second = accept(listener, nil, nil)
            if k < resets {
                // Reset at once, whatever of the copies arrived unread or is still on its way.
                var lin = linger(l_onoff: 1, l_linger: 0)
                _ = setsockopt(second, SOL_SOCKET, SO_LINGER, &lin, socklen_t(MemoryLayout<linger>.size))
                close(second)
            }
        }
        defer { close(second) }
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let until = Clock.monotonicNanos() + 5_000_000_000
        while got.filter({ $0 == 0x0A }).count < n && Clock.monotonicNanos() < until {
            var p = pollfd(fd: second, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 200) == 1 {
                let r = chunk.withUnsafeMutableBytes { Glibc.read(second, $0.baseAddress, $0.count) }
                if r <= 0 { break }
                got += chunk[0..<r]
            }
        }
        let lines = got.split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(lines, (0..<n).map { "\(Self.token) unread \($0)" })
        XCTAssertGreaterThanOrEqual(sink.connection.status.resentLines, n)
        // A reset can also meet the connect itself (a failed attempt, not a lost connection).
        XCTAssertTrue((1...resets).contains(sink.connection.status.reconnects), "\(sink.connection.status.reconnects)")
    }

    private func listen() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && Glibc.listen(fd, 8) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { close(fd); throw SystemError("listen") }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }
}
