import XCTest
@testable import LogRelayCore

final class EventBufferTests: XCTestCase {
    private func records(_ payloads: [String]) -> [UInt8] {
        var out: [UInt8] = []
        for p in payloads {
            let b = Array(p.utf8)
            out += [UInt8(b.count >> 24 & 0xff), UInt8(b.count >> 16 & 0xff), UInt8(b.count >> 8 & 0xff), UInt8(b.count & 0xff)]
            out += b
        }
        return out
    }

    private func take(_ buf: EventBuffer, max: Int = 1 << 20) -> ([String], Int64?) {
        var got: [String] = []
        let off = buf.takeUnsent(maxBytes: max) { p in
            var i = 0
            while i + 4 <= p.count {
                let n = EventBuffer.recordLength(p, at: i)
                got.append(String(decoding: p[(i + 4)..<(i + 4 + n)], as: UTF8.self))
                i += 4 + n
            }
        }
        return (got, off)
    }

    private func append(_ buf: EventBuffer, _ payloads: [String]) -> Int {
        let r = records(payloads)
        return r.withUnsafeBytes { buf.append(records: $0, lines: payloads.count, lineBytes: 0) }
    }

    func testReleasesOnlyWhatWasConfirmed() {
        let buf = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        _ = append(buf, ["a", "b", "c"])
        let (first, off) = take(buf)
        XCTAssertEqual(first, ["a", "b", "c"])
        XCTAssertFalse(buf.hasUnsent)
        _ = append(buf, ["d"])
        buf.confirm(upTo: off!)
        XCTAssertEqual(buf.counters.publishedLines, 3)
        XCTAssertEqual(take(buf).0, ["d"])
    }

    func testRewindSendsUnconfirmedAgainInOrder() {
        let buf = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        _ = append(buf, ["1", "2"])
        let (_, off1) = take(buf)
        _ = append(buf, ["3"])
        _ = take(buf)
        buf.confirm(upTo: off1!)
        buf.rewind()
        XCTAssertEqual(take(buf).0, ["3"])
        XCTAssertEqual(buf.counters.resentLines, 1)
    }

    func testDropsOldestWhenFull() {
        let buf = EventBuffer(limit: 20, policy: .dropOldest)   // 4 records of 1 byte = 20 bytes
        XCTAssertEqual(append(buf, ["a", "b", "c", "d"]), 0)
        XCTAssertEqual(append(buf, ["e", "f"]), 2)
        XCTAssertEqual(take(buf).0, ["c", "d", "e", "f"])
        XCTAssertEqual(buf.counters.droppedLines, 2)
    }

    func testDropsNewestWhenFull() {
        let buf = EventBuffer(limit: 20, policy: .dropNewest)
        XCTAssertEqual(append(buf, ["a", "b", "c", "d"]), 0)
        XCTAssertEqual(append(buf, ["e", "f"]), 2)
        XCTAssertEqual(take(buf).0, ["a", "b", "c", "d"])
    }

    func testBlockPolicyReportsFullAndKeepsEverything() {
        let buf = EventBuffer(limit: 10, policy: .block)
        XCTAssertEqual(append(buf, ["a", "b", "c"]), 0)
        XCTAssertTrue(buf.isFull)
        let (got, off) = take(buf)
        XCTAssertEqual(got, ["a", "b", "c"])
        buf.confirm(upTo: off!)
        XCTAssertFalse(buf.isFull)
        XCTAssertTrue(buf.isEmpty)
    }

    func testTakeRespectsBatchSizeButAlwaysMakesProgress() {
        let buf = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        _ = append(buf, ["xxxxxxxxxx", "y"])
        XCTAssertEqual(take(buf, max: 3).0, ["xxxxxxxxxx"])
        XCTAssertEqual(take(buf, max: 3).0, ["y"])
    }

    func testDropOldestAfterSendKeepsOffsetsConsistent() {
        let buf = EventBuffer(limit: 10, policy: .dropOldest)
        _ = append(buf, ["a", "b"])
        let (_, off) = take(buf)
        _ = append(buf, ["c", "d"])      // drops a, b (sent, unconfirmed)
        buf.confirm(upTo: off!)           // stale mark: nothing more to release
        XCTAssertEqual(take(buf).0, ["c", "d"])
        XCTAssertEqual(buf.counters.droppedLines, 2)
    }
}
