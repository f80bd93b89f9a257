// The JetStream publishes of one session that wait for their PubAck. Every message has a
// sequence number (the last token of its reply subject); a line is done when the PubAck of
// its last piece arrived, and a stream's lines are released in order: the buffer releases a
// prefix, so a stream stops at its lowest unacknowledged message even when later ones are
// acknowledged. Pure bookkeeping (no sockets), so it is unit-tested on its own.
struct PubAckWindow {
    enum State: UInt8 { case waiting, stored, duplicate, dropped, rejected }

    struct Entry {
        var stream: Int32
        /// The buffer offset after the record, on the record's last entry; -1 on earlier pieces.
        var end: Int64
        var lineBytes: Int32
        var wireBytes: Int32
        var state: State
        var sentAt: Int64
    }

    /// What releasing a stream's done prefix gives its buffer.
    struct Release {
        var offset: Int64 = -1
        var lines = 0
        var duplicates = 0
        var unpublished = EventBuffer.Unpublished()
    }

    private var entries: [Entry] = []
    /// Sequence number of entries[0].
    private(set) var base: UInt64 = 1
    /// Entries before this index are released.
    private var head = 0
    /// Entries before this index are done (for the timeout scan).
    private var scan = 0
    /// Per stream: the indices (as sequence numbers) of its entries not yet released, in order.
    private var queues: [[UInt64]] = []
    private var queueHeads: [Int] = []
    /// Per stream: its queue's entries before this index are done (for firstWaiting).
    private var queueScans: [Int] = []
    private(set) var waiting = 0
    private(set) var waitingBytes = 0
    /// An entry became done since the last releaseDone: a stream may have a prefix to release.
    private var newlyDone = false

    var nextSeq: UInt64 { base + UInt64(entries.count) }
    var isEmpty: Bool { head == entries.count }

    /// Adds a message (or, with a done state, a line that needs no message) for stream `stream`.
    @discardableResult
    mutating func add(stream: Int, end: Int64, lineBytes: Int, wireBytes: Int, state: State = .waiting, now: Int64) -> UInt64 {
        while queues.count <= stream { queues.append([]); queueHeads.append(0); queueScans.append(0) }
        let seq = nextSeq
        entries.append(Entry(stream: Int32(stream), end: end, lineBytes: Int32(clamping: lineBytes),
                             wireBytes: Int32(clamping: wireBytes), state: state, sentAt: now))
        queues[stream].append(seq)
        if state == .waiting {
            waiting += 1
            waitingBytes += wireBytes
        } else {
            newlyDone = true
        }
        return seq
    }

    /// Records the outcome for `seq`; returns its stream, or nil for a sequence this window
    /// does not wait for (a late reply from before a retry, or a repeated one).
    mutating func settle(_ seq: UInt64, as state: State) -> Int? {
        guard seq >= base, seq < nextSeq else { return nil }
        let i = Int(seq - base)
        guard entries[i].state == .waiting else { return nil }
        entries[i].state = state
        waiting -= 1
        waitingBytes -= Int(entries[i].wireBytes)
        newlyDone = true
        return Int(entries[i].stream)
    }

    /// Pops the done entries at the front of `stream`'s queue.
    mutating func release(stream: Int) -> Release {
        let r = popDone(stream: stream)
        compact()
        return r
    }

    /// Releases every stream's done prefix (nothing to do unless an entry became done since
    /// the last call): `each` gets the streams that have lines to release.
    mutating func releaseDone(_ each: (_ stream: Int, Release) -> Void) {
        guard newlyDone else { return }
        newlyDone = false
        for stream in queues.indices {
            let r = popDone(stream: stream)
            if r.offset >= 0 { each(stream, r) }
        }
        compact()
    }

    private mutating func popDone(stream: Int) -> Release {
        var r = Release()
        guard stream < queues.count else { return r }
        var h = queueHeads[stream]
        let count = queues[stream].count
        while h < count {
            let e = entries[Int(queues[stream][h] - base)]
            guard e.state != .waiting else { break }
            h += 1
            guard e.end >= 0 else { continue }
            r.offset = e.end
            r.lines += 1
            switch e.state {
            case .duplicate: r.duplicates += 1
            case .dropped:
                r.unpublished.droppedLines += 1
                r.unpublished.droppedBytes += Int(e.lineBytes)
            case .rejected:
                r.unpublished.rejectedLines += 1
                r.unpublished.rejectedBytes += Int(e.lineBytes)
            case .stored, .waiting: break
            }
        }
        if h == count {
            queues[stream].removeAll(keepingCapacity: true)
            queueHeads[stream] = 0
            queueScans[stream] = 0
        } else if h > 1024 && h > count / 2 {
            queues[stream].removeSubrange(0..<h)
            queueHeads[stream] = 0
            queueScans[stream] = max(0, queueScans[stream] - h)
        } else {
            queueHeads[stream] = h
            queueScans[stream] = max(queueScans[stream], h)
        }
        return r
    }

    /// The sequence number of `stream`'s oldest message still waiting (nil: none waits).
    /// Entries only ever go from waiting to done, so the scan resumes where it stopped.
    mutating func firstWaiting(stream: Int) -> UInt64? {
        guard stream < queues.count else { return nil }
        var k = queueScans[stream]
        let count = queues[stream].count
        while k < count && entries[Int(queues[stream][k] - base)].state != .waiting { k += 1 }
        queueScans[stream] = k
        return k < count ? queues[stream][k] : nil
    }

    /// When the oldest message still waiting was sent (nil: none waits).
    mutating func oldestWaiting() -> Int64? {
        while scan < entries.count && entries[scan].state != .waiting { scan += 1 }
        return scan < entries.count ? entries[scan].sentAt : nil
    }

    /// Forgets everything (the session retries from the buffers' release points); replies to
    /// the old sequence numbers are ignored from now on.
    mutating func reset() {
        base = nextSeq
        entries.removeAll(keepingCapacity: true)
        head = 0
        scan = 0
        for i in queues.indices { queues[i].removeAll(keepingCapacity: true); queueHeads[i] = 0; queueScans[i] = 0 }
        waiting = 0
        waitingBytes = 0
        newlyDone = false
    }

    /// Drops released entries from the front (every stream's queue is past them).
    private mutating func compact() {
        var low = nextSeq
        for s in queues.indices where queueHeads[s] < queues[s].count { low = min(low, queues[s][queueHeads[s]]) }
        head = Int(low - base)
        if head == entries.count {
            base = nextSeq
            entries.removeAll(keepingCapacity: true)
            head = 0
            scan = 0
        } else if head > 4096 && head > entries.count / 2 {
            entries.removeSubrange(0..<head)
            base += UInt64(head)
            scan = max(0, scan - head)
            head = 0
        }
    }
}
