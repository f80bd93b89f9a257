// The per-stream buffer between a container's FIFO and its sink connection.
//
// The stream thread appends encoded events; the connection thread sends them and,
// once the server has confirmed them, releases them. Events that were sent but not
// confirmed when a connection fails are sent again after reconnecting (at-least-once).
// Records are LineRecords (raw lines with their time and source); offsets are absolute
// byte positions in the stream's history, so "sent" and "confirmed" marks survive compaction.
// Byte counters count line bytes.
import Synchronization

public final class EventBuffer: Sendable {
    public struct Counters: Sendable {
        public var receivedLines = 0, receivedBytes = 0
        public var publishedLines = 0, publishedBytes = 0
        public var droppedLines = 0, droppedBytes = 0
        /// Lines the server refused (permissions, invalid subject): never published.
        public var rejectedLines = 0, rejectedBytes = 0
        public var resentLines = 0
        /// Published lines a JetStream stream already held (a replay it deduplicated): not stored twice.
        public var duplicateLines = 0
        public var bufferedBytes = 0
        /// Lines held now; at any moment received = published + dropped + rejected + buffered.
        public var bufferedLines = 0
    }

    struct State {
        var storage: [UInt8] = []
        var head = 0                 // index in storage of the oldest unconfirmed byte
        var base: Int64 = 0          // absolute offset of storage[head]
        var sent: Int64 = 0          // absolute offset up to which records were handed out
        var lastProgress: Int64 = 0  // monotonic ns of the last confirmation that released bytes
        var charged = 0              // bytes charged to the shared budget: min(live, throttleMark)
        var counters = Counters()
        /// Records drop-oldest removed while the sink had them in flight (end offset, line
        /// bytes), oldest first: the server may well have them, so they count as published when
        /// a confirmation passes them and as dropped when the sink gives them up (rewind).
        var inFlightDropped: [(end: Int64, bytes: Int)] = []
        var live: Int { storage.count - head }
        var end: Int64 { base + Int64(live) }
    }

    public let limit: Int
    public let policy: BufferFullPolicy
    /// While the sink keeps up, the stream pauses above this much (a little latency, little memory);
    /// the rest of `limit` is for riding out a sink that is slow or down.
    public let throttleMark: Int
    /// Shared by all streams: what they hold below their marks.
    public let budget: FlowBudget
    private let state = Mutex(State())
    /// An append found the sink caught up while the budget held wake-ups (see takeOwedWake).
    private let wakeOwed = Atomic<Bool>(false)

    public init(limit: Int, policy: BufferFullPolicy, budget: FlowBudget = FlowBudget()) {
        self.limit = limit
        self.policy = policy
        self.budget = budget
        self.throttleMark = min(limit, EventBuffer.defaultThrottleMark)
        state.withLock { $0.lastProgress = Clock.monotonicNanos() }   // a new sink gets a grace period
    }

    deinit {
        let charged = state.withLock { $0.charged }
        budget.charge(-charged)
    }

    /// Re-charges the budget after `live` changed; wakes the stream loop when this buffer falls
    /// below its mark (it may be paused).
    private func recharge(_ s: inout State) {
        let now = min(s.live, throttleMark)
        let resumes = s.charged >= throttleMark && now < throttleMark
        budget.charge(now - s.charged, resumes: resumes)
        s.charged = now
    }

    /// In-flight records dropped whose fate is kept at most (a server that reads and never
    /// confirms cannot make the list grow): beyond it they count as dropped at once.
    static let maxInFlightDropped = 65_536

    /// How long a full buffer may hold up reading while the sink is still confirming events.
    public static let stallNanos: Int64 = 2_000_000_000
    public static let defaultThrottleMark = 256 * 1024
    /// The storage an emptied buffer keeps for the next lines; more is given back, so idle and
    /// trickling streams cost little each (memory follows what is in flight, not the number of
    /// containers times their largest burst).
    static let keptCapacity = 16 * 1024

    public struct Appended: Sendable, Equatable {
        /// Lines the buffer-full policy dropped.
        public var dropped = 0
        /// The sink had taken everything before: it must be told (otherwise it comes back for more
        /// by itself). While the budget holds wake-ups, the wake-up is owed instead (takeOwedWake).
        public var wakeSink = false
    }

    /// Adds a batch of LineRecords. When the buffer is full and the sink has stalled, applies
    /// the buffer-full policy.
    @discardableResult
    public func append(records: UnsafeRawBufferPointer, lines: Int, lineBytes: Int, now: Int64 = Clock.monotonicNanos()) -> Appended {
        state.withLock { s in
            var wakeSink = s.sent == s.end
            if wakeSink && budget.holdsWakes {
                wakeOwed.store(true, ordering: .relaxed)
                wakeSink = false
            }
            s.counters.receivedLines += lines
            s.counters.receivedBytes += lineBytes
            if s.live == 0 { s.lastProgress = now }   // the sink had caught up: a new burst gets a grace period
            var incoming = records
            var dropped = 0
            // While the sink keeps confirming, a batch may overshoot the limit: the stream
            // pauses reading before the next one (shouldPause), so nothing is lost to a burst.
            let throttling = policy == .block || now - s.lastProgress < EventBuffer.stallNanos
            if s.live + incoming.count > limit && !throttling {
                switch policy {
                case .block:
                    break
                case .dropNewest:
                    // Keep the leading records that fit, drop the rest of this batch.
                    var keep = 0
                    var off = 0
                    while off + 4 <= incoming.count {
                        let n = EventBuffer.recordLength(incoming, at: off)
                        if s.live + off + 4 + n > limit { break }
                        off += 4 + n
                        keep = off
                    }
                    let rest = UnsafeRawBufferPointer(rebasing: incoming[keep...])
                    dropped += EventBuffer.countRecords(rest, &s.counters)
                    incoming = UnsafeRawBufferPointer(rebasing: incoming[..<keep])
                case .dropOldest:
                    // Drop whole records from the front until the batch fits (or all is gone).
                    let need = s.live + incoming.count - limit
                    var freed = 0
                    s.storage.withUnsafeBytes { p in
                        while freed < need && s.head + freed + 4 <= s.storage.count {
                            let n = EventBuffer.recordLength(p, at: s.head + freed)
                            freed += 4 + n
                            let end = s.base + Int64(freed)
                            if end <= s.sent && s.inFlightDropped.count < EventBuffer.maxInFlightDropped {
                                s.inFlightDropped.append((end, n - LineRecord.bodyOverhead))
                                continue
                            }
                            dropped += 1
                            s.counters.droppedLines += 1
                            s.counters.droppedBytes += n - LineRecord.bodyOverhead
                        }
                    }
                    s.head += freed
                    s.base += Int64(freed)
                    if s.sent < s.base { s.sent = s.base }
                    // A single batch larger than the whole buffer: keep only its tail.
                    if incoming.count > limit {
                        var off = 0
                        while incoming.count - off > limit && off + 4 <= incoming.count {
                            let n = EventBuffer.recordLength(incoming, at: off)
                            off += 4 + n
                            dropped += 1
                            s.counters.droppedLines += 1
                            s.counters.droppedBytes += n - LineRecord.bodyOverhead
                        }
                        incoming = UnsafeRawBufferPointer(rebasing: incoming[off...])
                    }
                }
            }
            if !incoming.isEmpty {
                s.compactIfNeeded(adding: incoming.count)
                s.storage.append(contentsOf: incoming)
            }
            s.counters.bufferedLines += lines - dropped
            s.counters.bufferedBytes = s.live
            recharge(&s)
            return Appended(dropped: dropped, wakeSink: wakeSink)
        }
    }

    /// True while the buffer is at or over its limit.
    public var isFull: Bool {
        state.withLock { $0.live >= limit }
    }

    /// Whether the stream should stop reading for now. While the sink is still confirming
    /// events (slower than the container, not down), reading pauses above `throttleMark`, so a
    /// burst is throttled instead of lost and memory stays small; above a small share, it also
    /// pauses while the budget shared by all streams is spent. Once the sink has made no
    /// progress for `stallNanos`, the stream reads on into the rest of the buffer and, when that
    /// is full, the policy drops, except `block`, which pauses at `limit`.
    public func shouldPause(now: Int64) -> Bool {
        state.withLock { pauses($0, now: now) }
    }

    private func pauses(_ s: State, now: Int64) -> Bool {
        if policy == .block && s.live >= limit { return true }
        guard now - s.lastProgress < EventBuffer.stallNanos else { return false }
        return s.live >= throttleMark || (s.live >= budget.minimumShare && budget.isSpent)
    }

    /// How much the stream should read next, 0 when it should pause (shouldPause): while the
    /// sink keeps up, up to its mark and to what the shared budget has left (so a read
    /// overshoots neither by much, however many streams read in one round), at least `floor`;
    /// `ceiling` once the sink has stalled.
    public func readRoom(now: Int64, floor: Int, ceiling: Int) -> Int {
        state.withLock { s in
            if pauses(s, now: now) { return 0 }
            guard now - s.lastProgress < EventBuffer.stallNanos else { return ceiling }
            return min(ceiling, max(floor, min(throttleMark - s.live, budget.room(charged: s.charged))))
        }
    }

    /// Whether an append owed the sink a wake-up while the budget held them; clears it.
    public func takeOwedWake() -> Bool {
        wakeOwed.load(ordering: .relaxed) && wakeOwed.exchange(false, ordering: .relaxed)
    }

    /// When a paused stream must look again although nothing woke it: the moment its sink
    /// counts as stalled and the stream reads on into the outage buffer.
    public func stallDeadline() -> Int64 {
        state.withLock { $0.lastProgress + EventBuffer.stallNanos }
    }

    public var hasUnsent: Bool { state.withLock { $0.sent < $0.end } }
    public var isEmpty: Bool { state.withLock { $0.live == 0 } }

    /// Appends up to `maxBytes` of unsent records to `out` (at least one record if any is
    /// unsent). Returns the absolute offset the caller should confirm later. The caller encodes
    /// after this returns, so the stream thread never waits for encoding.
    public func copyUnsent(maxBytes: Int, into out: inout [UInt8]) -> Int64? {
        takeUnsent(maxBytes: maxBytes) { out.append(contentsOf: $0) }
    }

    /// Hands up to `maxBytes` of unsent records to `body` (called under the buffer lock,
    /// so it must only copy). Returns the absolute offset the caller should confirm later.
    public func takeUnsent(maxBytes: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Int64? {
        state.withLock { s in
            guard s.sent < s.end else { return nil }
            let startIdx = s.head + Int(s.sent - s.base)
            var endIdx = startIdx
            s.storage.withUnsafeBytes { p in
                while endIdx + 4 <= p.count {
                    let n = EventBuffer.recordLength(p, at: endIdx)
                    if endIdx > startIdx && endIdx + 4 + n - startIdx > maxBytes { break }
                    endIdx += 4 + n
                }
                body(UnsafeRawBufferPointer(rebasing: p[startIdx..<endIdx]))
            }
            s.sent += Int64(endIdx - startIdx)
            return s.sent
        }
    }

    /// What became of lines the sink released without publishing them.
    public struct Unpublished: Sendable, Equatable {
        public var rejectedLines = 0, rejectedBytes = 0
        /// Lines that can never be sent (larger than the server accepts, envelope included).
        public var droppedLines = 0, droppedBytes = 0
        public init() {}
        public var isEmpty: Bool { rejectedLines == 0 && droppedLines == 0 }
    }

    /// The sink is done with everything up to `offset`: release it. Those lines count as
    /// published, except the ones `unpublished` counts as rejected or dropped; `duplicates` of
    /// the published ones were already stored by the server.
    public func confirm(upTo offset: Int64, unpublished: Unpublished = Unpublished(), duplicates: Int = 0) {
        state.withLock { s in
            EventBuffer.settleInFlightDropped(&s, upTo: offset)
            guard offset > s.base else { return }
            s.counters.duplicateLines += duplicates
            let target = min(offset, s.end)
            let count = Int(target - s.base)
            var lines = 0, bytes = 0
            s.storage.withUnsafeBytes { p in
                var off = s.head
                while off + 4 <= s.head + count {
                    let n = EventBuffer.recordLength(p, at: off)
                    lines += 1
                    bytes += n - LineRecord.bodyOverhead
                    off += 4 + n
                }
            }
            let rejected = min(unpublished.rejectedLines, lines)
            let dropped = min(unpublished.droppedLines, lines - rejected)
            let otherBytes = min(unpublished.rejectedBytes + unpublished.droppedBytes, bytes)
            s.counters.rejectedLines += rejected
            s.counters.rejectedBytes += min(unpublished.rejectedBytes, otherBytes)
            s.counters.droppedLines += dropped
            s.counters.droppedBytes += otherBytes - min(unpublished.rejectedBytes, otherBytes)
            s.counters.publishedLines += lines - rejected - dropped
            s.counters.bufferedLines -= lines
            s.counters.publishedBytes += bytes - otherBytes
            s.head += count
            s.base = target
            s.lastProgress = Clock.monotonicNanos()
            if s.sent < s.base { s.sent = s.base }
            if s.head == s.storage.count { s.storage.removeAll(keepingCapacity: s.storage.capacity <= EventBuffer.keptCapacity); s.head = 0 }
            s.counters.bufferedBytes = s.live
            recharge(&s)
        }
    }

    /// The connection failed: everything sent but unconfirmed is sent again.
    public func rewind() {
        state.withLock { s in
            EventBuffer.settleInFlightDropped(&s, upTo: .min)
            guard s.sent > s.base else { return }
            let count = Int(s.sent - s.base)
            s.storage.withUnsafeBytes { p in
                var off = s.head
                while off + 4 <= s.head + count {
                    s.counters.resentLines += 1
                    off += 4 + EventBuffer.recordLength(p, at: off)
                }
            }
            s.sent = s.base
        }
    }

    /// Gives up on everything held (sink closed for good); counts it as dropped and returns
    /// how many lines that was.
    @discardableResult
    public func dropAll() -> Int {
        state.withLock { s in
            EventBuffer.settleInFlightDropped(&s, upTo: .min)
            var lines = 0
            s.storage.withUnsafeBytes { p in
                var off = s.head
                while off + 4 <= p.count {
                    let n = EventBuffer.recordLength(p, at: off)
                    lines += 1
                    s.counters.droppedBytes += n - LineRecord.bodyOverhead
                    off += 4 + n
                }
            }
            s.counters.droppedLines += lines
            s.counters.bufferedLines = 0
            s.base = s.end
            s.sent = s.base
            s.storage = []
            s.head = 0
            s.counters.bufferedBytes = 0
            recharge(&s)
            return lines
        }
    }

    /// Every record not confirmed yet, oldest first, and how many lines they hold (for the
    /// shutdown spool).
    public func unconfirmed() -> (records: [UInt8], lines: Int) {
        state.withLock { s in (Array(s.storage[s.head...]), s.counters.bufferedLines - s.inFlightDropped.count) }
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// The in-flight records drop-oldest removed: those ending at or before `offset` were
    /// confirmed (published), the others, when `offset` is .min, are given up (dropped).
    private static func settleInFlightDropped(_ s: inout State, upTo offset: Int64) {
        guard !s.inFlightDropped.isEmpty else { return }
        let confirmed = offset == .min ? 0 : s.inFlightDropped.prefix { $0.end <= offset }.count
        for r in s.inFlightDropped.prefix(confirmed) {
            s.counters.publishedLines += 1
            s.counters.publishedBytes += r.bytes
        }
        let lost = offset == .min ? s.inFlightDropped.count : 0
        for r in s.inFlightDropped.suffix(lost) {
            s.counters.droppedLines += 1
            s.counters.droppedBytes += r.bytes
        }
        s.counters.bufferedLines -= confirmed + lost
        s.inFlightDropped.removeFirst(confirmed + lost)
    }

    @inline(__always)
    static func recordLength(_ p: UnsafeRawBufferPointer, at i: Int) -> Int {
        Int(p[i]) << 24 | Int(p[i + 1]) << 16 | Int(p[i + 2]) << 8 | Int(p[i + 3])
    }

    private static func countRecords(_ p: UnsafeRawBufferPointer, _ c: inout Counters) -> Int {
        var off = 0, n = 0
        while off + 4 <= p.count {
            let len = recordLength(p, at: off)
            c.droppedLines += 1
            c.droppedBytes += len - LineRecord.bodyOverhead
            off += 4 + len
            n += 1
        }
        return n
    }
}

extension EventBuffer.State {
    /// Moves live bytes to the front when the released prefix dominates, so memory stays
    /// bounded; into a smaller array when a burst left far more capacity than is needed now.
    mutating func compactIfNeeded(adding incoming: Int) {
        guard head > 0 && head >= storage.count / 2 else { return }
        let need = live + incoming
        if storage.capacity > EventBuffer.keptCapacity && storage.capacity >= 4 * need {
            var smaller = [UInt8]()
            smaller.reserveCapacity(2 * need)
            smaller.append(contentsOf: storage[head...])
            storage = smaller
        } else {
            storage.removeSubrange(0..<head)
        }
        head = 0
    }
}
