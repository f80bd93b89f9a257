// The thread that drains every container FIFO: one epoll set, one read buffer. A FIFO is
// always drained (unless its stream uses buffer-full=block and its buffer is full);
// StopLogging only marks a stream, which ends at EOF.
//
// The daemon writes one frame per write, at its own pace: reading each frame as it comes
// would cost a wake-up and a read per line. So the loop works in rounds: when a stream
// becomes readable after a quiet moment, the loop sleeps 2-3 ms (frames pile up in the 1 MiB
// pipes; longest while streams trickle), then reads every stream readable by then, once
// each, and tells each sink once per round (FlowBudget holds the wake-ups meanwhile). While
// lines keep coming, the next round follows the same sleep without waiting for a first
// frame: one wake-up per round. A round in which some stream was left behind last time (a
// backlog, or a read cut short by its buffer) starts at once. FIFOs are watched
// level-triggered (no re-arming per read); a paused stream is taken out of the epoll set, and
// its buffer wakes the loop when it may read again, or the loop looks again when the sink
// counts as stalled: no polling.
import CSystem
import Glibc
import Synchronization

public final class StreamLoop: Sendable {
    private enum Command { case add(LogStream), stop(String), readAll(Int) }

    private let poller = EventPoll()
    private let wakeup = Wakeup()
    private let inbox = Mutex<[Command]>([])
    private let active = Mutex<[String: LogStream]>([:])
    private let onEnded: @Sendable (LogStream) -> Void
    private let readAllDone = Atomic<Int>(0)
    /// What every stream's buffer charges while its sink keeps up; releasing wakes this loop.
    public let budget: FlowBudget

    static let readChunk = 256 * 1024
    /// The smallest read while a buffer nears its mark (reads never overshoot it by more).
    static let minimumRead = 16 * 1024
    /// How long a round waits for frames to pile up: until, at the pace of the last round, it
    /// brings `roundBytes` and `streamBytes` per stream it reads (what a wake-up and a read cost
    /// is then small per line), within these bounds (the added latency stays well under 10 ms).
    static let minCoalesceNs: Int64 = 2_000_000
    static let maxCoalesceNs: Int64 = 3_000_000
    static let roundBytes: Int64 = 16 * 1024
    static let streamBytes: Int64 = 4 * 1024
    /// A drain that read this much found a backlog: the next round starts as soon as it is ready.
    static let busyBytes = 64 * 1024
    static let staleNs: Int64 = 2_000_000_000
    /// A stopped stream whose writer never closes (leaked by the daemon) is closed after this.
    static let stopGraceNs: Int64 = 60_000_000_000

    public init(budgetBytes: Int = FlowBudget.defaultLimitBytes, onEnded: @escaping @Sendable (LogStream) -> Void) {
        self.onEnded = onEnded
        budget = FlowBudget(limitBytes: budgetBytes, onRelease: wakeup)
        poller.watch(wakeup.fd)
    }

    public func start() {
        startThread(name: "streams") { [self] in run() }
    }

    public func add(_ s: LogStream) {
        active.withLock { $0[s.file] = s }
        inbox.withLock { $0.append(.add(s)) }
        wakeup.signal()
    }

    public func stop(file: String) {
        inbox.withLock { $0.append(.stop(file)) }
        wakeup.signal()
    }

    /// Reads every FIFO until it is empty (for shutdown: what the daemon wrote before
    /// SIGTERM gets into the buffers). Waits up to `timeoutNs` for the loop to do it.
    public func readAll(timeoutNs: Int64) {
        let ticket = Int(Clock.monotonicNanos())
        inbox.withLock { $0.append(.readAll(ticket)) }
        wakeup.signal()
        let deadline = Clock.monotonicNanos() + timeoutNs
        while readAllDone.load(ordering: .acquiring) < ticket && Clock.monotonicNanos() < deadline {
            usleep(5_000)
        }
    }

    public func isActive(_ file: String) -> Bool { active.withLock { $0[file] != nil } }
    public var streams: [LogStream] { active.withLock { Array($0.values) } }

    private func run() {
        var byFD: [Int32: StreamReader] = [:]
        var paused: [StreamReader] = []
        var roundRead: [StreamReader] = []    // the streams read in this round: their sinks may be owed a wake-up
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: StreamLoop.readChunk, alignment: 16)
        var ready = [Int32](repeating: 0, count: 64)
        var lastStaleCheck = Clock.monotonicNanos()
        var coalesceNs = StreamLoop.minCoalesceNs
        var lastRoundAt = lastStaleCheck
        var scratch = [UInt8]()
        scratch.reserveCapacity(StreamLoop.readChunk)

        func end(_ s: StreamReader) {
            s.flushAll(scratch: &scratch)
            if !s.paused { poller.remove(s.fd) }
            byFD[s.fd] = nil
            paused.removeAll { $0 === s }
            FD.close(s.fd)
            s.stream.sink.finish()
            active.withLock { $0[s.stream.file] = nil }
            onEnded(s.stream)
        }

        /// Stops watching the FIFO until the buffer lets the stream read again.
        func pause(_ s: StreamReader) {
            s.paused = true
            paused.append(s)
            poller.remove(s.fd)
        }

        /// Reads until a short read (the pipe is empty), bounded per turn for fairness.
        /// Returns false at EOF.
        func drain(_ s: StreamReader) -> Bool {
            var budget = 4 * StreamLoop.readChunk
            var total = 0
            var emptied = false
            defer {
                s.lastDrainBytes = total
                s.behind = !emptied || total >= StreamLoop.busyBytes
            }
            while budget > 0 {
                let now = Clock.monotonicNanos()
                let room = s.buffer.readRoom(now: now, floor: StreamLoop.minimumRead, ceiling: StreamLoop.readChunk)
                if room == 0 {
                    pause(s)
                    return true
                }
                let r: IOResult
                do { r = try FD.read(s.fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<room])) } catch {
                    Log.error("reading the log stream: \(error)", container: s.name)
                    return false
                }
                guard case .bytes(let n) = r else {
                    if r == .eof { return false }
                    emptied = true
                    break
                }
                s.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), now: now, scratch: &scratch)
                total += n
                budget -= n
                if n < room {
                    emptied = true
                    break
                }
            }
            return true
        }

        /// Reads every stream that is readable now, once each; `ready[0..<count]` is current when
        /// `fresh`, else it is fetched. Then wakes each sink that is owed it, once. Returns the
        /// bytes read and whether a stream was left behind (a backlog, a read cut short).
        func readRound(count first: Int, fresh: Bool) -> (bytes: Int64, leftBehind: Bool) {
            let start = Clock.monotonicNanos()
            budget.holdWakes(true)
            var count = fresh ? first : poller.wait(into: &ready, timeoutMs: 0)
            var fetches = 1
            while true {
                for i in 0..<count {
                    guard let s = byFD[ready[i]], !s.paused else { continue }   // the wakeup fd, or paused meanwhile
                    roundRead.append(s)
                    if !drain(s) { end(s) }
                }
                // More fds than one batch may be ready: fetch as many batches as cover every stream once.
                guard count == ready.count && fetches <= byFD.count / ready.count else { break }
                count = poller.wait(into: &ready, timeoutMs: 0)
                fetches += 1
            }
            budget.holdWakes(false)
            var bytes: Int64 = 0
            var leftBehind = false
            for s in roundRead {
                if s.buffer.takeOwedWake() { s.stream.sink.notify() }
                bytes += Int64(s.lastDrainBytes)
                if s.behind { leftBehind = true }
            }
            if !roundRead.isEmpty {
                let target = max(StreamLoop.roundBytes, StreamLoop.streamBytes * Int64(roundRead.count))
                let period = min(max(start - lastRoundAt, 1), 1_000_000_000)   // bounded: no overflow after a long quiet time
                let wait = bytes == 0 ? StreamLoop.maxCoalesceNs : target * period / bytes
                coalesceNs = min(max(wait, StreamLoop.minCoalesceNs), StreamLoop.maxCoalesceNs)
                lastRoundAt = start
            }
            roundRead.removeAll(keepingCapacity: true)
            return (bytes, leftBehind)
        }

        var flowing = false    // the last round read lines and left no stream behind

        while true {
            // Sleep until a FIFO is readable, the next stall deadline of a paused stream, or the
            // next stale check, whichever comes first.
            var now = Clock.monotonicNanos()
            var wakeAt = lastStaleCheck + 500_000_000
            for s in paused {
                let t = s.buffer.stallDeadline()
                if t > now { wakeAt = min(wakeAt, t) }
            }
            let timeout = Int32(clamping: max(0, (wakeAt - now + 999_999) / 1_000_000))
            // Lines are flowing: the round's sleep comes first, the frames that came meanwhile after.
            if flowing { usleep(UInt32(coalesceNs / 1000)) }
            let n = poller.wait(into: &ready, timeoutMs: flowing ? 0 : min(timeout, 1000))
            var streamsReady = false
            var backlog = false
            for i in 0..<n {
                if ready[i] == wakeup.fd {
                    wakeup.drain()
                } else if let s = byFD[ready[i]] {
                    streamsReady = true
                    if s.behind { backlog = true }
                }
            }
            now = Clock.monotonicNanos()

            for cmd in inbox.withLock({ let c = $0; $0.removeAll(); return c }) {
                switch cmd {
                case .add(let stream):
                    let s = StreamReader(stream)
                    byFD[s.fd] = s
                    poller.watch(s.fd)
                    if !drain(s) { end(s) }
                case .stop(let file):
                    if let s = byFD.values.first(where: { $0.stream.file == file }) {
                        s.stopRequestedAt = s.stopRequestedAt ?? now
                    }
                case .readAll(let ticket):
                    for s in Array(byFD.values) where !s.paused {
                        var open = true
                        for _ in 0..<64 where open && !s.paused { open = drain(s) }
                        if !open { end(s) }
                    }
                    readAllDone.store(ticket, ordering: .releasing)
                }
            }

            if streamsReady {
                // Let frames pile up (unless that was done, or a stream is behind already).
                if !backlog && !flowing { usleep(UInt32(coalesceNs / 1000)) }
                let round = readRound(count: n, fresh: backlog || flowing)
                flowing = round.bytes > 0 && !round.leftBehind
            } else {
                flowing = false
            }

            // Resume paused streams that may read again (woken by a buffer, or stalled).
            if !paused.isEmpty {
                for s in paused where !s.mustPause {
                    if s.buffer.isFull && s.buffer.policy != .block {
                        Log.debug("sink made no progress for \(EventBuffer.stallNanos / 1_000_000) ms; reading on, the buffer-full policy applies", container: s.name)
                    }
                    s.paused = false
                    paused.removeAll { $0 === s }
                    poller.watch(s.fd)
                    if !drain(s) { end(s) }
                }
            }

            if now - lastStaleCheck >= 500_000_000 {
                lastStaleCheck = now
                for s in Array(byFD.values) {
                    s.flushStale(now: now, scratch: &scratch)
                    if let t = s.stopRequestedAt, now - t > StreamLoop.stopGraceNs {
                        Log.warn("no EOF \(StreamLoop.stopGraceNs / 1_000_000_000) s after StopLogging; closing the stream", container: s.name)
                        _ = drain(s)
                        end(s)
                    }
                }
            }
        }
    }
}
