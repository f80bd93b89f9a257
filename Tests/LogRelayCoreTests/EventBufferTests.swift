import XCTest
@testable import LogRelayCore

final class EventBufferTests: XCTestCase {
    /// One-byte lines make 14-byte records.
    private func records(_ lines: [String]) -> [UInt8] {
        lineRecords(lines.map { Array($0.utf8) }, source: "stdout", time: 42)
    }

    private func take(_ buf: EventBuffer, max: Int = 1 << 20) -> ([String], Int64?) {
        var got: [String] = []
        let off = buf.takeUnsent(maxBytes: max) { p in
            var i = 0
            while i < p.count {
                let (rec, next) = LineRecord.read(p, at: i)
                XCTAssertEqual(rec.timeNano, 42)
                XCTAssertEqual(String(decoding: rec.source, as: UTF8.self), "stdout")
                got.append(String(decoding: rec.line, as: UTF8.self))
                i = next
            }
        }
        return (got, off)
    }

    /// Appends as if the sink had stalled (no confirmation for longer than stallNanos), unless told otherwise.
    private var clock = Clock.monotonicNanos()

    private func append(_ buf: EventBuffer, _ lines: [String], sinkStalled: Bool = true) -> Int {
        let r = records(lines)
        // Each "stalled" append happens well after the previous one, with no confirmation between.
        if sinkStalled { clock += 3 * EventBuffer.stallNanos }
        let now = sinkStalled ? clock : Clock.monotonicNanos()
        return r.withUnsafeBytes { buf.append(records: $0, lines: lines.count, lineBytes: lines.count, now: now).dropped }
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
        let buf = EventBuffer(limit: 4 * (5 + LineRecord.bodyOverhead), policy: .dropOldest)   // 4 one-byte lines
        XCTAssertEqual(append(buf, ["a", "b", "c", "d"]), 0)
        XCTAssertEqual(append(buf, ["e", "f"]), 2)
        XCTAssertEqual(take(buf).0, ["c", "d", "e", "f"])
        XCTAssertEqual(buf.counters.droppedLines, 2)
    }

    func testDropsNewestWhenFull() {
        let buf = EventBuffer(limit: 4 * (5 + LineRecord.bodyOverhead), policy: .dropNewest)
        XCTAssertEqual(append(buf, ["a", "b", "c", "d"]), 0)
        XCTAssertEqual(append(buf, ["e", "f"]), 2)
        XCTAssertEqual(take(buf).0, ["a", "b", "c", "d"])
    }

    func testBlockPolicyReportsFullAndKeepsEverything() {
        let buf = EventBuffer(limit: 30, policy: .block)
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

    func testThrottlesInsteadOfDroppingWhileTheSinkConfirms() {
        let buf = EventBuffer(limit: 56, policy: .dropOldest)
        XCTAssertEqual(append(buf, ["a", "b", "c", "d"], sinkStalled: false), 0)
        XCTAssertEqual(append(buf, ["e", "f"], sinkStalled: false), 0)       // overshoots, keeps all
        XCTAssertTrue(buf.shouldPause(now: Clock.monotonicNanos()))          // the stream stops reading
        XCTAssertFalse(buf.shouldPause(now: Clock.monotonicNanos() + 2 * EventBuffer.stallNanos))
        XCTAssertEqual(take(buf).0, ["a", "b", "c", "d", "e", "f"])
        XCTAssertEqual(buf.counters.droppedLines, 0)
    }

    func testCountsLineBytesNotRecordBytes() {
        let buf = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        _ = append(buf, ["abc", "de"])
        let (_, off) = take(buf)
        buf.confirm(upTo: off!)
        XCTAssertEqual(buf.counters.publishedBytes, 5)
        XCTAssertEqual(buf.counters.publishedLines, 2)
    }

    func testDropOldestAfterSendKeepsOffsetsConsistent() {
        let buf = EventBuffer(limit: 2 * (5 + LineRecord.bodyOverhead) + 2, policy: .dropOldest)
        _ = append(buf, ["a", "b"])
        let (_, off) = take(buf)
        _ = append(buf, ["c", "d"])      // drops a, b (sent, unconfirmed)
        buf.confirm(upTo: off!)           // nothing more to release, but a and b reached the server
        XCTAssertEqual(take(buf).0, ["c", "d"])
        XCTAssertEqual(buf.counters.droppedLines, 0)
        XCTAssertEqual(buf.counters.publishedLines, 2)
        XCTAssertEqual(buf.counters.bufferedLines, 2)
    }

    func testInFlightLinesDropOldestRemovedCountOnceAsWhatTheSinkSays() {
        let buf = EventBuffer(limit: 2 * (5 + LineRecord.bodyOverhead) + 2, policy: .dropOldest)
        _ = append(buf, ["a", "b"])
        _ = take(buf)
        _ = append(buf, ["c", "d"])      // drops a, b while in flight: not counted yet
        let c = buf.counters
        XCTAssertEqual(c.droppedLines + c.publishedLines, 0)
        XCTAssertEqual(c.receivedLines, c.bufferedLines)
        buf.rewind()                      // the connection failed: a and b are gone
        XCTAssertEqual(buf.counters.droppedLines, 2)
        XCTAssertEqual(buf.counters.bufferedLines, 2)
        let (got, off) = take(buf)
        XCTAssertEqual(got, ["c", "d"])
        buf.confirm(upTo: off!)
        let end = buf.counters
        XCTAssertEqual(end.receivedLines, end.publishedLines + end.droppedLines + end.rejectedLines + end.bufferedLines)
        XCTAssertEqual(end.publishedLines, 2)
        XCTAssertEqual(buf.unconfirmed().lines, 0)
    }

    func testReadRoomFollowsTheSharedBudgetAndIsZeroWhenThePausePolicySaysSo() {
        let budget = FlowBudget(limitBytes: 64 * 1024, minimumShare: 1024)
        let a = EventBuffer(limit: 1 << 20, policy: .dropOldest, budget: budget)
        let b = EventBuffer(limit: 1 << 20, policy: .dropOldest, budget: budget)
        let now = Clock.monotonicNanos()
        XCTAssertEqual(a.readRoom(now: now, floor: 16, ceiling: 1 << 20), 64 * 1024)   // below a's own mark: the budget bounds it
        XCTAssertEqual(append(b, [String(repeating: "x", count: 40_000)], sinkStalled: false), 0)
        let heldByB = b.counters.bufferedBytes
        XCTAssertEqual(a.readRoom(now: now, floor: 16, ceiling: 1 << 20), 64 * 1024 - heldByB)
        XCTAssertEqual(append(b, [String(repeating: "y", count: 40_000)], sinkStalled: false), 0)   // the budget is spent
        XCTAssertEqual(b.readRoom(now: now, floor: 16, ceiling: 1 << 20), 0)            // b holds more than its share: it pauses
        XCTAssertEqual(a.readRoom(now: now, floor: 16, ceiling: 1 << 20), 1024)         // a still gets its minimum share
        XCTAssertEqual(b.readRoom(now: now + 2 * EventBuffer.stallNanos, floor: 16, ceiling: 1 << 20), 1 << 20)   // stalled: reads on
    }

    func testWakeUpsHeldByTheBudgetAreOwedInstead() {
        let budget = FlowBudget()
        let buf = EventBuffer(limit: 1 << 20, policy: .dropOldest, budget: budget)
        let r = records(["a"])
        budget.holdWakes(true)
        XCTAssertFalse(r.withUnsafeBytes { buf.append(records: $0, lines: 1, lineBytes: 1) }.wakeSink)
        budget.holdWakes(false)
        XCTAssertTrue(buf.takeOwedWake())
        XCTAssertFalse(buf.takeOwedWake())
        _ = take(buf)                                                                  // the sink took everything
        XCTAssertTrue(r.withUnsafeBytes { buf.append(records: $0, lines: 1, lineBytes: 1) }.wakeSink)
        XCTAssertFalse(buf.takeOwedWake())
    }

    func testCompactionIntoASmallerArrayAfterABurstKeepsTheRecords() {
        let buf = EventBuffer(limit: 1 << 20, policy: .dropOldest)
        let burst = (0..<1000).map { "burst \($0) " + String(repeating: "z", count: 200) }
        _ = append(buf, burst, sinkStalled: false)
        let (_, all) = take(buf)
        buf.rewind()
        let (_, allButLast) = take(buf, max: Int(all!) - records([burst[999]]).count)   // every record but the last
        buf.confirm(upTo: allButLast!)
        _ = append(buf, ["after"], sinkStalled: false)                                 // compacts: far more capacity than needed
        XCTAssertEqual(take(buf).0, [burst[999], "after"])
        XCTAssertEqual(buf.counters.bufferedLines, 2)
    }

    func testWakeupCoalescesSignalsUntilDrained() {
        let w = Wakeup()
        w.signal()
        w.signal()
        XCTAssertTrue(w.wait(timeoutMs: 0))
        XCTAssertFalse(w.wait(timeoutMs: 0))
        w.signal()                                                                     // after a drain, a signal writes again
        XCTAssertTrue(w.wait(timeoutMs: 0))
    }
}
