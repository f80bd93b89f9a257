// One connection to a Logentries / Rapid7 Insight token endpoint, shared by every stream
// with the same endpoint settings (the protocol allows many tokens on one stream: each
// line carries its own).
//
// Its thread owns the socket. It connects only while lines are waiting, encodes the
// streams' lines into large writes (hundreds of lines per TLS record, never one write per
// line), and releases lines once the peer's TCP stack acknowledged them, keeping a copy for
// a short grace period in case the endpoint dies with them unread (LogentriesDelivery.swift). The endpoint
// never answers, so a dead connection shows only as a write error, EOF or RST: the socket
// is always polled for reading (TLS 1.3 session tickets are read and ignored), a stalled
// send queue counts as dead, and a connection idle for a few minutes is closed before the
// server's own idle cut-off and opened again when lines come. On failure everything not
// released is rewound and sent again after reconnecting with capped, jittered backoff.
import CSystem
import Glibc
import Synchronization

/// Streams with equal keys share a connection. The token is not part of it.
public struct LogentriesConnectionKey: Hashable, Sendable {
    public let host: String
    public let port: Int
    public let tls: Bool
    public let caCert: String?
}

extension LogentriesOptions {
    public var connectionKey: LogentriesConnectionKey {
        LogentriesConnectionKey(host: host, port: port, tls: tls, caCert: tls ? caCert : nil)
    }
}

/// A stream's attachment to a connection.
public final class LogentriesPublisher: Sendable {
    public let buffer: EventBuffer
    public let name: String              // container name, for the plugin's log
    let wire: LogentriesWire
    let finishedAt = Atomic<Int64>(0)    // monotonic ns of the stream's EOF, 0 while it runs

    init(buffer: EventBuffer, name: String, wire: LogentriesWire) {
        self.buffer = buffer
        self.name = name
        self.wire = wire
    }

    var isFinished: Bool { finishedAt.load(ordering: .acquiring) != 0 }
}

public final class LogentriesConnection: Sendable {
    public enum State: String, Sendable { case idle, connecting, connected, disconnected, closed }

    public struct Status: Sendable {
        public var state: State = .idle
        public var endpoint: String = ""
        public var tls = true
        public var connects = 0
        public var reconnects = 0          // connections lost (not counting idle closes)
        public var resentLines = 0         // acknowledged lines sent again after a failure
        public var lastError: String = ""
    }

    public let key: LogentriesConnectionKey
    private let tls: TLSContext?
    private let publishers = Mutex<[LogentriesPublisher]>([])
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    /// Lines of a failed connection waiting to be sent again (for drain: not delivered yet).
    private let resendPending = Atomic<Int>(0)
    private let statusBox: Mutex<Status>
    private let onIdle: @Sendable (LogentriesConnection) -> Bool

    static let connectTimeoutMs: Int32 = 5000
    static let handshakeTimeoutNs: Int64 = 10_000_000_000
    /// Raw line bytes taken from the buffers per write batch (the wire bytes are more).
    static let writeBatchBytes = 256 * 1024
    /// Acknowledged lines are kept this long (raw, up to retainMaxBytes) to be sent again if
    /// the connection fails: the endpoint may have died with them unread.
    static let graceNs: Int64 = 200_000_000
    static let retainMaxBytes = 4 << 20
    /// Unacknowledged bytes with no acknowledgement progress for this long: the peer is gone.
    static let stallNs: Int64 = 30_000_000_000
    static let backoffFirstNs: Int64 = 100_000_000
    static let backoffMaxNs: Int64 = 10_000_000_000
    /// No streams for this long: the connection closes and leaves the registry.
    static let unusedCloseNs: Int64 = 30_000_000_000
    /// A stream that ended and could not be delivered for this long (the endpoint still
    /// unreachable) is given up, counted as dropped: memory stays bounded as containers come and go.
    static let finishedKeepNs: Int64 = 600_000_000_000
    /// No lines for this long: the connection closes, well before the ~10 min idle cut-off of
    /// the service and of middleboxes, and opens again when lines come.
    /// LOGRELAY_LOGENTRIES_IDLE_SECONDS overrides it (tests).
    static let idleReopenNs: Int64 = {
        if let v = getenv("LOGRELAY_LOGENTRIES_IDLE_SECONDS"), let s = Double(String(cString: v)), s > 0 {
            return Int64(s * 1e9)
        }
        return 240_000_000_000
    }()

    /// `onIdle` is asked (with the registry's lock) whether a connection without streams may close.
    init(key: LogentriesConnectionKey, tls: TLSContext?, onIdle: @escaping @Sendable (LogentriesConnection) -> Bool) {
        self.key = key
        self.tls = tls
        self.onIdle = onIdle
        var st = Status()
        st.endpoint = (key.host.contains(":") ? "[\(key.host)]" : key.host) + ":\(key.port)"
        st.tls = key.tls
        statusBox = Mutex(st)
    }

    func start() {
        startThread(name: "le-conn") { [self] in run() }
    }

    public var status: Status { statusBox.withLock { $0 } }
    public var publisherCount: Int { publishers.withLock { $0.count } }
    public var hasUndelivered: Bool {
        resendPending.load(ordering: .relaxed) > 0 || publishers.withLock { $0.contains { !$0.buffer.isEmpty } }
    }

    func attach(_ p: LogentriesPublisher) {
        publishers.withLock { $0.append(p) }
        wakeup.signal()
    }

    /// New lines are waiting.
    public func notify() { wakeup.signal() }

    /// The stream reached EOF: detach once its buffer has been delivered.
    public func finish(_ p: LogentriesPublisher) {
        p.finishedAt.store(max(Clock.monotonicNanos(), 1), ordering: .releasing)
        wakeup.signal()
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    /// Called with the registry lock held: may this connection without streams close?
    func isUnused() -> Bool { publishers.withLock { $0.isEmpty } }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) }

    // MARK: - Connection thread

    private enum SessionEnd {
        case failed(String)
        case idle
        case unused
        case stopped
    }

    private func run() {
        var failures = 0
        var unusedSince: Int64? = nil
        var resend: [Piece] = []      // lines of a failed connection to send first, oldest first
        while !isStopping {
            if resend.isEmpty && reapAndCheckUnused(&unusedSince) { break }
            // Connect only while lines are waiting: no traffic, no connection to go stale.
            guard !resend.isEmpty || hasUnsent else {
                _ = wakeup.wait(timeoutMs: 1000)
                continue
            }
            if failures > 0 {
                // Capped exponential backoff with jitter: 100 ms doubling to 10 s, each wait
                // between half and all of it, so restarted endpoints are not hit in step.
                let base = min(LogentriesConnection.backoffFirstNs << Int64(min(failures - 1, 20)), LogentriesConnection.backoffMaxNs)
                wakeup.sleep(ns: base / 2 + Int64.random(in: 0...(base / 2))) { isStopping }
                if isStopping { break }
            }
            setState(.connecting)
            let stream: ByteStream
            do {
                stream = try connect()
            } catch {
                failures += 1
                statusBox.withLock { $0.state = .disconnected }
                noteError("\(error)")
                continue
            }
            statusBox.withLock { $0.state = .connected; $0.connects += 1 }
            Log.info("logentries: connected to \(status.endpoint)\(key.tls ? " (TLS)" : "")")
            var delivered = false
            let end = session(stream, resend: &resend, delivered: &delivered)
            stream.close()
            rewindAll()
            if case .failed = end {} else { resend = [] }
            resendPending.store(resend.count, ordering: .relaxed)
            switch end {
            case .stopped:
                break
            case .unused:
                Log.debug("logentries: closing the unused connection to \(status.endpoint)")
                statusBox.withLock { $0.state = .closed }
                return
            case .idle:
                failures = 0
                setState(.idle)
                Log.debug("logentries: closed the idle connection to \(status.endpoint); it opens again when lines come")
            case .failed(let reason):
                // A connection that delivered something is retried at once, else backoff grows.
                failures = delivered ? 0 : failures + 1
                statusBox.withLock { $0.state = .disconnected; $0.reconnects += 1 }
                noteError("connection to \(status.endpoint) lost: \(reason); reconnecting", always: delivered)
            }
        }
        statusBox.withLock { $0.state = .closed }
    }

    /// TCP connect, socket options, TLS handshake (certificate and host name verified, SNI).
    private func connect() throws -> ByteStream {
        let fd = try TCPSocket.connect(host: key.host, port: key.port, timeoutMs: LogentriesConnection.connectTimeoutMs)
        LogentriesConnection.tuneSocket(fd)
        guard key.tls, let ctx = tls else { return PlainStream(fd: fd) }
        let deadline = Clock.monotonicNanos() + LogentriesConnection.handshakeTimeoutNs
        return try TLSStream(fd: fd, context: ctx, serverName: key.host, deadline: deadline)   // closes fd on failure
    }

    /// Keepalive probes after 60 s of silence (the endpoint never talks), and a kernel-side
    /// limit on unacknowledged data, so a vanished peer fails the socket instead of hanging it.
    static func tuneSocket(_ fd: Int32) {
        func set(_ level: Int32, _ name: Int32, _ value: Int32) {
            var v = value
            _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        let tcp = Int32(IPPROTO_TCP)
        set(SOL_SOCKET, SO_KEEPALIVE, 1)
        set(tcp, TCP_KEEPIDLE, 60)
        set(tcp, TCP_KEEPINTVL, 20)
        set(tcp, TCP_KEEPCNT, 3)
        set(tcp, TCP_USER_TIMEOUT, Int32(stallNs / 1_000_000))
    }

    /// Raw lines of one stream in one batch. `offset`: where to confirm them in the stream's
    /// buffer; nil for lines being sent again from an earlier connection (already released).
    struct Piece {
        let publisher: LogentriesPublisher
        let offset: Int64?
        let records: [UInt8]
    }

    /// Runs a connected session until it fails, goes idle or is stopped. On failure, `resend`
    /// gets what must be sent first on the next connection (acknowledged lines still within
    /// the grace period, and earlier resends not acknowledged); the streams' unacknowledged
    /// lines are rewound by the caller.
    private func session(_ stream: ByteStream, resend: inout [Piece], delivered: inout Bool) -> SessionEnd {
        let fd = stream.fd
        var out = [UInt8]()
        out.reserveCapacity(LogentriesConnection.writeBatchBytes * 2)
        var outOff = 0
        var batch: [Piece] = []              // pieces encoded in `out`, until it is fully written
        var batchBytes = 0
        var tracker = DeliveryTracker<Piece>(graceNs: LogentriesConnection.graceNs,
                                             retainMaxBytes: LogentriesConnection.retainMaxBytes)
        var scratch = [UInt8]()
        var readBuf = [UInt8](repeating: 0, count: 16 * 1024)
        var rr = 0
        var lastActivity = Clock.monotonicNanos()   // last write, or start
        var acked: Int64 = -1
        var lastAckProgress = lastActivity
        var unusedSince: Int64? = nil
        var resendNext = 0

        func fail(_ reason: String) -> SessionEnd {
            // Oldest first: acknowledged but retained, then written but unacknowledged, then
            // the batch being written, then resends not written yet. Lines with an offset that
            // were not acknowledged are rewound in their buffers instead.
            let (kept, flying) = tracker.takeAll()
            var again = kept
            again += flying.filter { $0.offset == nil }
            again += batch.filter { $0.offset == nil }
            again += resend[resendNext...]
            resend = again
            let lines = kept.reduce(0) { $0 + LogentriesConnection.countRecords($1.records) }
            if lines > 0 { statusBox.withLock { $0.resentLines += lines } }
            return .failed(reason)
        }

        while !isStopping {
            var now = Clock.monotonicNanos()
            if outOff == out.count && batch.isEmpty {
                out.removeAll(keepingCapacity: true)
                outOff = 0
                batchBytes = 0
                if resendNext < resend.count {
                    // What a failed connection left: first, before anything newer.
                    while resendNext < resend.count && batchBytes < LogentriesConnection.writeBatchBytes {
                        let piece = resend[resendNext]
                        resendNext += 1
                        piece.records.withUnsafeBytes { _ = piece.publisher.wire.append(records: $0, to: &out, scratch: &scratch) }
                        batchBytes += piece.records.count
                        batch.append(piece)
                    }
                    if resendNext == resend.count { resend = []; resendNext = 0 }
                } else {
                    batch = gather(into: &out, scratch: &scratch, rr: &rr, bytes: &batchBytes)
                }
                if !batch.isEmpty && out.isEmpty {
                    // Only lines that are not sent (empty lines in line-only mode): done.
                    tracker.add(batch, bytes: batchBytes, endOffset: 0)
                    batch = []
                }
            }

            let writing = outOff < out.count
            // An acknowledgement wakes nothing: while batches wait for one, look again every
            // millisecond (a released buffer lets a paused stream read on), else every 10 ms
            // while acknowledged lines are retained, else once a second.
            var timeout: Int32 = 1000
            if !tracker.isEmpty { timeout = 1 } else if tracker.hasRetained { timeout = 10 }
            if stream.hasBufferedInput { timeout = 0 }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (writing ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0)]
            let r = poll(&fds, 2, timeout)
            if r < 0 && errno != EINTR { return fail("poll: \(SystemError("poll"))") }
            if fds[1].revents != 0 { wakeup.drain() }
            now = Clock.monotonicNanos()

            // Liveness: the endpoint never sends data; readable means TLS housekeeping
            // (session tickets: read and ignored), EOF or RST.
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || stream.hasBufferedInput {
                do {
                    readLoop: while true {
                        let res = try readBuf.withUnsafeMutableBytes { p throws(SystemError) in try stream.read(into: p) }
                        switch res {
                        case .wouldBlock: break readLoop
                        case .eof: return fail("the endpoint closed the connection")
                        case .bytes: continue
                        }
                    }
                } catch {
                    return fail("\(error)")
                }
            }

            // Write as much of the batch as the socket takes.
            while outOff < out.count {
                let res: IOResult
                do {
                    res = try out.withUnsafeBytes { p throws(SystemError) in try stream.write(UnsafeRawBufferPointer(rebasing: p[outOff...])) }
                } catch {
                    return fail("\(error)")
                }
                if case .bytes(let n) = res {
                    outOff += n
                    lastActivity = now
                } else if res == .eof {
                    return fail("the endpoint closed the connection")
                } else {
                    break
                }
            }
            if outOff == out.count && !batch.isEmpty {
                tracker.add(batch, bytes: batchBytes, endOffset: TCPProgress.endOffset(fd))
                batch = []
            }

            // Release what the peer acknowledged; a send queue that stopped moving is a dead peer.
            if !tracker.isEmpty || tracker.hasRetained || outOff < out.count {
                let a = TCPProgress.acked(fd)
                if a != acked { acked = a; lastAckProgress = now }
                for piece in tracker.update(acked: a, now: now) {
                    if let off = piece.offset { piece.publisher.buffer.confirm(upTo: off) }
                    delivered = true
                }
                if (!tracker.isEmpty || outOff < out.count) && now - lastAckProgress > LogentriesConnection.stallNs {
                    return fail("no acknowledgement from the endpoint for \(LogentriesConnection.stallNs / 1_000_000_000) s")
                }
            } else {
                lastAckProgress = now
            }

            if outOff == out.count && batch.isEmpty && tracker.isEmpty && resend.isEmpty {
                resendPending.store(0, ordering: .relaxed)
                if reapAndCheckUnused(&unusedSince) { return .unused }
                if now - lastActivity > LogentriesConnection.idleReopenNs && !hasUnsent { return .idle }
            }
        }
        return .stopped
    }

    static func countRecords(_ records: [UInt8]) -> Int {
        records.withUnsafeBytes { p in
            var i = 0, n = 0
            while i + 4 <= p.count { i += 4 + EventBuffer.recordLength(p, at: i); n += 1 }
            return n
        }
    }

    /// Takes unsent lines of every stream, fairly, up to the batch size, and encodes them
    /// into wire lines (outside the buffers' locks, so the streams never wait for encoding).
    private func gather(into out: inout [UInt8], scratch: inout [UInt8], rr: inout Int, bytes: inout Int) -> [Piece] {
        let list = publishers.withLock { $0 }
        guard !list.isEmpty else { return [] }
        var pieces: [Piece] = []
        var budget = LogentriesConnection.writeBatchBytes
        let startAt = rr % list.count
        rr &+= 1
        for k in 0..<list.count where budget > 0 {
            let p = list[(startAt + k) % list.count]
            let share = max(budget / (list.count - k), 16 * 1024)
            var records: [UInt8] = []
            guard let off = p.buffer.copyUnsent(maxBytes: share, into: &records) else { continue }
            budget -= records.count
            bytes += records.count
            records.withUnsafeBytes { _ = p.wire.append(records: $0, to: &out, scratch: &scratch) }
            pieces.append(Piece(publisher: p, offset: off, records: records))
        }
        return pieces
    }

    private var hasUnsent: Bool { publishers.withLock { $0.contains { $0.buffer.hasUnsent } } }

    /// Detaches finished streams that are delivered (or given up); true when the connection
    /// has had no streams for a while and the registry let it go.
    private func reapAndCheckUnused(_ since: inout Int64?) -> Bool {
        let now = Clock.monotonicNanos()
        var abandoned: [LogentriesPublisher] = []
        let down = status.state != .connected
        let empty: Bool = publishers.withLock { list in
            list.removeAll { p in
                let t = p.finishedAt.load(ordering: .acquiring)
                guard t != 0 else { return false }
                if p.buffer.isEmpty { return true }
                if down && now - t > LogentriesConnection.finishedKeepNs { abandoned.append(p); return true }
                return false
            }
            return list.isEmpty
        }
        for p in abandoned {
            p.buffer.dropAll()
            Log.warn("logentries: gave up on the undelivered lines of stopped container \(p.name) after \(LogentriesConnection.finishedKeepNs / 60_000_000_000) min (\(status.endpoint): \(status.lastError))")
        }
        guard empty else { since = nil; return false }
        if let s = since {
            return now - s > LogentriesConnection.unusedCloseNs && onIdle(self)
        }
        since = now
        return false
    }

    private func rewindAll() {
        for p in publishers.withLock({ $0 }) { p.buffer.rewind() }
    }

    private func setState(_ s: State) {
        statusBox.withLock { $0.state = s }
    }

    private let errorLog = RateLimitedLog(intervalNanos: 10_000_000_000)

    /// Records the error for metrics and logs it (rate-limited unless `always`). Messages come
    /// from the transport and name the endpoint only: never the token.
    private func noteError(_ text: String, always: Bool = false) {
        statusBox.withLock { $0.lastError = text }
        if always {
            Log.warn("logentries: \(text)")
            return
        }
        errorLog.attempt { suppressed in
            Log.warn("logentries: \(text)" + (suppressed > 0 ? " (\(suppressed) similar messages suppressed)" : ""))
        }
    }

}
