// The Logentries / Rapid7 Insight token-TCP protocol on the connection shell. One
// connection serves every stream with the same endpoint settings (each line carries its own
// token). It connects only while lines are waiting, encodes the streams' lines into large
// writes (hundreds of lines per TLS record, never one write per line), and releases lines
// once the peer's TCP stack acknowledged them, keeping a copy for a short grace period in
// case the endpoint dies with them unread (LogentriesDelivery.swift). The endpoint never
// answers, so a dead connection shows only as a write error, EOF or RST: the socket is
// always polled for reading (TLS 1.3 session tickets are read and ignored), a stalled send
// queue counts as dead, and a connection idle for a few minutes is closed before the
// server's own idle cut-off and opened again when lines come.
import CSystem
import Glibc

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

/// The endpoint's address, as the pool and the logs see it.
public struct LogentriesEndpoint: PoolAddress, CustomStringConvertible {
    public let host: String
    public let port: Int
    public var description: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
}

public typealias LogentriesConnection = SinkConnection<LogentriesSink>
public typealias LogentriesAttachment = SinkAttachment<LogentriesWire>

public struct LogentriesSink: SinkProtocol {
    public typealias Route = LogentriesWire
    public typealias Address = LogentriesEndpoint
    public typealias Link = ByteStream
    public typealias Carry = [Piece]
    public static let kind = "logentries"
    public let key: LogentriesConnectionKey
    let tls: TLSContext?
    public let pool: ServerPool<LogentriesEndpoint>
    public var connectsOnlyWhenBusy: Bool { true }

    static let connectTimeoutMs: Int32 = 5000
    static let handshakeTimeoutNs: Int64 = 10_000_000_000
    /// Raw line bytes taken from the buffers per write batch (the wire bytes are more).
    static let writeBatchBytes = 256 * 1024
    /// Acknowledged lines are kept (raw) until the endpoint's application has read them, to be
    /// sent again if the connection fails: the endpoint may die with them unread. Where the
    /// kernel does not tell what was read, this long; and never longer, or more, than the caps.
    static let graceNs: Int64 = 200_000_000
    static let retainMaxBytes = 8 << 20
    static let retainMaxNs: Int64 = 30_000_000_000
    /// A connection this young keeps this much of its latest acknowledged lines whatever the
    /// endpoint's window says (LogentriesDelivery.swift: the window still grows).
    static let youngNs: Int64 = 2_000_000_000
    static let youngKeepBytes = 1 << 20
    /// Unacknowledged bytes with no acknowledgement progress for this long: the peer is gone.
    static let stallNs: Int64 = 30_000_000_000
    /// No lines for this long: the connection closes, well before the ~10 min idle cut-off of
    /// the service and of middleboxes, and opens again when lines come.
    /// LOGRELAY_LOGENTRIES_IDLE_SECONDS overrides it (tests).
    static let idleReopenNs = Environment.nanoseconds("LOGRELAY_LOGENTRIES_IDLE_SECONDS", default: 240_000_000_000)

    public init(key: LogentriesConnectionKey, tls: TLSContext?) {
        self.key = key
        self.tls = tls
        pool = ServerPool(explicit: [LogentriesEndpoint(host: key.host, port: key.port)])
    }

    /// Raw lines of one stream in one batch. `offset`: where to confirm them in the stream's
    /// buffer; nil for lines being sent again from an earlier connection (already released).
    public struct Piece {
        let attachment: LogentriesAttachment
        let offset: Int64?
        let records: [UInt8]

        /// The copy to send again: its lines left their buffer when first acknowledged, so
        /// no rewind brings them back (only this copy does, on every later failure too).
        var released: Piece { Piece(attachment: attachment, offset: nil, records: records) }
    }

    /// Lines of a failed connection to send first on the next one, oldest first.
    public func makeCarry() -> [Piece] { [] }
    public func carriedLines(_ carry: [Piece]) -> Int { carry.reduce(0) { $0 + LogentriesSink.countRecords($1.records) } }
    public func close(_ link: ByteStream) { link.close() }

    public func open(_ server: ServerPool<LogentriesEndpoint>.Server, on shell: LogentriesConnection) throws -> ByteStream {
        try LogentriesSink.connect(host: key.host, port: key.port, tls: key.tls ? tls : nil,
                                   connectTimeoutMs: LogentriesSink.connectTimeoutMs, handshakeTimeoutNs: LogentriesSink.handshakeTimeoutNs)
    }

    /// TCP connect, socket options, TLS handshake (certificate and host name verified, SNI):
    /// how both Logentries transports reach their endpoint.
    static func connect(host: String, port: Int, tls: TLSContext?, connectTimeoutMs: Int32, handshakeTimeoutNs: Int64) throws -> ByteStream {
        let fd = try TCPSocket.connect(host: host, port: port, timeoutMs: connectTimeoutMs)
        tuneSocket(fd)
        guard let ctx = tls else { return PlainStream(fd: fd) }
        let deadline = Clock.monotonicNanos() + handshakeTimeoutNs
        return try TLSStream(fd: fd, context: ctx, serverName: host, deadline: deadline)   // closes fd on failure
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

    /// Runs a connected session until it fails, goes idle or is stopped. On failure, `resend`
    /// gets what must be sent first on the next connection (acknowledged lines still within
    /// the grace period, and earlier resends not acknowledged); the streams' unacknowledged
    /// lines are rewound by the shell.
    public func run(_ stream: ByteStream, on shell: LogentriesConnection, pool: inout ServerPool<LogentriesEndpoint>, carry resend: inout [Piece]) -> SessionEnd {
        let fd = stream.fd
        var out = [UInt8]()
        out.reserveCapacity(LogentriesSink.writeBatchBytes * 2)
        var outOff = 0
        var batch: [Piece] = []              // pieces encoded in `out`, until it is fully written
        var batchBytes = 0
        var tracker = DeliveryTracker<Piece>(graceNs: LogentriesSink.graceNs, retainMaxBytes: LogentriesSink.retainMaxBytes,
                                             maxRetainNs: LogentriesSink.retainMaxNs)
        var peer = PeerReading()
        var scratch = [UInt8]()
        var raw = [UInt8]()
        var readBuf = [UInt8](repeating: 0, count: 16 * 1024)
        var rotation = 0
        let startedAt = Clock.monotonicNanos()
        var lastActivity = startedAt                // last write, or start
        var acked: Int64 = -1
        var lastAckProgress = lastActivity
        var unusedSince: Int64? = nil
        var resendNext = 0

        /// `readEverything`: the endpoint closed with FIN, which Linux sends only when its
        /// application left nothing unread (else RST): the retained copies were read.
        func fail(_ reason: String, readEverything: Bool = false) -> SessionEnd {
            // Oldest first: acknowledged but retained, then written but unacknowledged, then
            // the batch being written, then resends not written yet. Lines with an offset that
            // were not acknowledged are rewound in their buffers instead.
            var (kept, flying) = tracker.takeAll()
            if readEverything { kept = [] }
            var again = kept.map(\.released)
            again += flying.filter { $0.offset == nil }
            again += batch.filter { $0.offset == nil }
            again += resend[resendNext...]
            resend = again
            shell.addResent(kept.reduce(0) { $0 + LogentriesSink.countRecords($1.records) })
            return .failed(reason)
        }

        while !shell.isStopping {
            var now = Clock.monotonicNanos()
            if outOff == out.count && batch.isEmpty {
                out.removeAll(keepingCapacity: true)
                outOff = 0
                batchBytes = 0
                if resendNext < resend.count {
                    // What a failed connection left: first, before anything newer.
                    while resendNext < resend.count && batchBytes < LogentriesSink.writeBatchBytes {
                        let piece = resend[resendNext]
                        resendNext += 1
                        piece.records.withUnsafeBytes { _ = piece.attachment.route.append(records: $0, to: &out, scratch: &scratch) }
                        batchBytes += piece.records.count
                        batch.append(piece)
                    }
                    if resendNext == resend.count { resend = []; resendNext = 0 }
                } else {
                    batchBytes = shell.gatherFairly(budget: LogentriesSink.writeBatchBytes, rotation: &rotation, scratch: &raw) { a, records, offset in
                        _ = a.route.append(records: records, to: &out, scratch: &scratch)
                        batch.append(Piece(attachment: a, offset: offset, records: Array(records)))
                    }
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
                       pollfd(fd: shell.wakeup.fd, events: Int16(POLLIN), revents: 0)]
            do { _ = try FD.poll(&fds, timeoutMs: timeout) } catch { return fail("\(error)") }
            if fds[1].revents != 0 { shell.wakeup.drain() }
            now = Clock.monotonicNanos()

            // Liveness: the endpoint never sends data; readable means TLS housekeeping
            // (session tickets: read and ignored), EOF or RST. Bounded per turn.
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || stream.hasBufferedInput {
                do {
                    for _ in 0..<4 {
                        let res = try readBuf.withUnsafeMutableBytes { p throws(SystemError) in try stream.read(into: p) }
                        if res == .eof { return fail("the endpoint closed the connection", readEverything: true) }
                        if res == .wouldBlock { break }
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
                let p = TCPProgress.sample(fd)
                if p.acked != acked { acked = p.acked; lastAckProgress = now }
                // What the endpoint read is known one round trip late: keep a copy that long more.
                let read = peer.readOffset(acked: p.acked, window: p.window, mss: p.mss,
                                           quiet: now - lastActivity >= 1_000_000_000 && outOff == out.count)
                // An empty send queue acknowledges every batch, whatever its recorded end.
                let ackedUpTo = outOff == out.count && TCPProgress.allAcknowledged(fd) ? Int64.max : p.acked
                let keep = now - startedAt < LogentriesSink.youngNs ? LogentriesSink.youngKeepBytes : 0
                for piece in tracker.update(acked: ackedUpTo, read: read, graceNs: read.map { _ in 2 * p.rttNs + 5_000_000 },
                                            keepBytes: keep, now: now) {
                    if let off = piece.offset { piece.attachment.buffer.confirm(upTo: off) }
                }
                if (!tracker.isEmpty || outOff < out.count) && now - lastAckProgress > LogentriesSink.stallNs {
                    return fail("no acknowledgement from the endpoint for \(LogentriesSink.stallNs / 1_000_000_000) s")
                }
            } else {
                lastAckProgress = now
            }

            if outOff == out.count && batch.isEmpty && tracker.isEmpty && resend.isEmpty {
                shell.noteCarried(0)
                if shell.reapAndCheckUnused(&unusedSince) { return .unused }
                if now - lastActivity > LogentriesSink.idleReopenNs && !shell.hasUnsent { return .idle }
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
}
