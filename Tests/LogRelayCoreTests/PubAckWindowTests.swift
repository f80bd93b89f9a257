// The JetStream window: lines are released in order per stream, only when every message up
// to them is acknowledged, and a reset ignores late replies.
import XCTest
@testable import LogRelayCore

final class PubAckWindowTests: XCTestCase {
    func testAStreamStopsAtItsLowestUnacknowledgedMessage() {
        var w = PubAckWindow()
        let a1 = w.add(stream: 0, end: 10, lineBytes: 5, wireBytes: 100, now: 0)
        let b1 = w.add(stream: 1, end: 7, lineBytes: 3, wireBytes: 100, now: 0)
        let a2 = w.add(stream: 0, end: 20, lineBytes: 5, wireBytes: 100, now: 0)
        XCTAssertEqual(w.waiting, 3)
        XCTAssertEqual(w.waitingBytes, 300)
        XCTAssertEqual(w.settle(a2, as: .stored), 0)
        XCTAssertEqual(w.release(stream: 0).offset, -1, "a2 is acked but a1 is not")
        XCTAssertEqual(w.settle(b1, as: .duplicate), 1)
        let rb = w.release(stream: 1)
        XCTAssertEqual(rb.offset, 7)
        XCTAssertEqual(rb.duplicates, 1)
        XCTAssertEqual(w.settle(a1, as: .stored), 0)
        let ra = w.release(stream: 0)
        XCTAssertEqual(ra.offset, 20)
        XCTAssertEqual(ra.lines, 2)
        XCTAssertTrue(w.isEmpty)
        XCTAssertEqual(w.waiting, 0)
        XCTAssertEqual(w.waitingBytes, 0)
        XCTAssertNil(w.settle(a1, as: .stored), "a repeated reply is ignored")
    }

    func testPiecesOfACutLineReleaseTheLineOnlyWhenAllAreStored() {
        var w = PubAckWindow()
        let p0 = w.add(stream: 0, end: -1, lineBytes: 0, wireBytes: 10, now: 0)
        let p1 = w.add(stream: 0, end: 50, lineBytes: 40, wireBytes: 10, now: 0)
        w.add(stream: 0, end: 60, lineBytes: 8, wireBytes: 0, state: .dropped, now: 0)
        _ = w.settle(p1, as: .stored)
        XCTAssertEqual(w.release(stream: 0).offset, -1)
        _ = w.settle(p0, as: .stored)
        let r = w.release(stream: 0)
        XCTAssertEqual(r.offset, 60)
        XCTAssertEqual(r.lines, 2)
        XCTAssertEqual(r.unpublished.droppedLines, 1)
        XCTAssertEqual(r.unpublished.droppedBytes, 8)
    }

    func testResetIgnoresRepliesFromBefore() {
        var w = PubAckWindow()
        let old = w.add(stream: 0, end: 10, lineBytes: 5, wireBytes: 1, now: 5)
        XCTAssertEqual(w.oldestWaiting(), 5)
        w.reset()
        XCTAssertTrue(w.isEmpty)
        XCTAssertNil(w.oldestWaiting())
        XCTAssertNil(w.settle(old, as: .stored))
        let new = w.add(stream: 0, end: 10, lineBytes: 5, wireBytes: 1, now: 9)
        XCTAssertGreaterThan(new, old)
        XCTAssertEqual(w.settle(new, as: .rejected), 0)
        XCTAssertEqual(w.release(stream: 0).unpublished.rejectedLines, 1)
    }

    func testReleaseDoneGivesOnlyStreamsWithANewlyDonePrefix() {
        var w = PubAckWindow()
        let a = w.add(stream: 0, end: 10, lineBytes: 5, wireBytes: 1, now: 0)
        let b = w.add(stream: 1, end: 20, lineBytes: 5, wireBytes: 1, now: 0)
        let c = w.add(stream: 2, end: 30, lineBytes: 5, wireBytes: 1, now: 0)
        var got: [Int: Int64] = [:]
        w.releaseDone { got[$0] = $1.offset }
        XCTAssertEqual(got, [:], "nothing is done yet")
        _ = w.settle(b, as: .stored)
        _ = w.settle(c, as: .rejected)
        w.releaseDone { got[$0] = $1.offset }
        XCTAssertEqual(got, [1: 20, 2: 30])
        got = [:]
        w.releaseDone { got[$0] = $1.offset }
        XCTAssertEqual(got, [:], "released once")
        _ = w.settle(a, as: .stored)
        w.releaseDone { got[$0] = $1.offset }
        XCTAssertEqual(got, [0: 10])
        XCTAssertTrue(w.isEmpty)
        w.add(stream: 1, end: 40, lineBytes: 5, wireBytes: 0, state: .dropped, now: 0)
        var dropped = 0
        w.releaseDone { _, r in dropped += r.unpublished.droppedLines }
        XCTAssertEqual(dropped, 1, "a line dropped at encoding is released without a PubAck")
    }

    func testFirstWaitingSkipsDoneMessagesOfItsStreamOnly() {
        var w = PubAckWindow()
        let a1 = w.add(stream: 0, end: 1, lineBytes: 1, wireBytes: 1, now: 0)
        let b1 = w.add(stream: 1, end: 1, lineBytes: 1, wireBytes: 1, now: 0)
        let a2 = w.add(stream: 0, end: 2, lineBytes: 1, wireBytes: 1, now: 0)
        XCTAssertEqual(w.firstWaiting(stream: 0), a1)
        XCTAssertEqual(w.firstWaiting(stream: 1), b1)
        XCTAssertNil(w.firstWaiting(stream: 7))
        _ = w.settle(a1, as: .rejected)
        XCTAssertEqual(w.firstWaiting(stream: 0), a2, "before the release too")
        _ = w.settle(a2, as: .rejected)
        XCTAssertNil(w.firstWaiting(stream: 0))
        var rejected = 0
        w.releaseDone { _, r in rejected += r.unpublished.rejectedLines }
        XCTAssertEqual(rejected, 2)
        let a3 = w.add(stream: 0, end: 3, lineBytes: 1, wireBytes: 1, now: 0)
        XCTAssertEqual(w.firstWaiting(stream: 0), a3, "after the queue was emptied")
        w.reset()
        XCTAssertNil(w.firstWaiting(stream: 0))
        XCTAssertNil(w.firstWaiting(stream: 1))
        // Through a compaction of a long queue (more than 1024 released at its front).
        var seqs: [UInt64] = []
        for i in 0..<3000 { seqs.append(w.add(stream: 0, end: Int64(10 + i), lineBytes: 1, wireBytes: 1, now: 0)) }
        for s in seqs.prefix(2000) { _ = w.settle(s, as: .stored) }
        XCTAssertEqual(w.firstWaiting(stream: 0), seqs[2000])
        w.releaseDone { _, _ in }
        XCTAssertEqual(w.firstWaiting(stream: 0), seqs[2000])
        _ = w.settle(seqs[2000], as: .stored)
        XCTAssertEqual(w.firstWaiting(stream: 0), seqs[2001])
    }

    func testManyMessagesStayBounded() {
        var w = PubAckWindow()
        for round in 0..<20 {
            var seqs: [UInt64] = []
            for i in 0..<3000 { seqs.append(w.add(stream: i % 3, end: Int64(round * 3000 + i + 1), lineBytes: 1, wireBytes: 1, now: 0)) }
            for s in seqs.reversed() { _ = w.settle(s, as: .stored) }
            for s in 0..<3 { _ = w.release(stream: s) }
            XCTAssertTrue(w.isEmpty)
        }
    }
}
