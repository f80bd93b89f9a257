// One NATS connection, shared by every stream with the same connection options.
//
// Its thread owns the socket: it connects across the server pool with capped,
// jittered backoff, coalesces the streams' events into large writes of PUBs, follows
// each write with a PING, and releases events only when the matching PONG arrives
// (the server has processed them). On any failure the unconfirmed events are rewound
// and sent again after reconnecting.
import Glibc
import Synchronization

/// A stream's attachment to a connection.
public final class NATSPublisher: Sendable {
    public let buffer: EventBuffer
    public let name: String              // container name, for the plugin's log
    let encoder: EventEncoder
    let pubPrefix: [UInt8]               // "PUB <subject> "
    let finished = Atomic<Bool>(false)

    init(buffer: EventBuffer, subject: String, name: String, encoder: EventEncoder) {
        self.buffer = buffer
        self.name = name
        self.encoder = encoder
        self.pubPrefix = Array("PUB \(subject) ".utf8)
    }
}

public final class NATSConnection: Sendable {
    public enum State: String, Sendable { case connecting, connected, disconnected, closed }

    public struct Status: Sendable {
        public var state: State = .connecting
        public var server: String = ""
        public var reconnects = 0
        public var lastError: String = ""
    }

    public let key: NATSConnectionKey
    private let options: NATSOptions
    /// Set when the options ask for TLS (tls:// or any nats-tls-* option): always used.
    private let tls: TLSContext?
    /// For servers that demand TLS although the options did not: system CAs, verified.
    private let fallbackTLS = Mutex<TLSContext?>(nil)
    private let publishers = Mutex<[NATSPublisher]>([])
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let statusBox = Mutex(Status())
    /// The server's max_payload; streams cut events to fit it.
    public let maxPayload = Atomic<Int>(1 << 20)
    private let onIdle: @Sendable (NATSConnection) -> Bool

    static let handshakeTimeoutNs: Int64 = 2_000_000_000
    static let writeBatchBytes = 512 * 1024
    static let keepaliveNs: Int64 = 5_000_000_000
    static let staleNs: Int64 = 20_000_000_000
    static let idleCloseNs: Int64 = 30_000_000_000

    /// `onIdle` is asked (with the registry's lock) whether a connection without streams may close.
    init(key: NATSConnectionKey, options: NATSOptions, tls: TLSContext?, onIdle: @escaping @Sendable (NATSConnection) -> Bool) {
        self.key = key
        self.options = options
        self.tls = tls
        self.onIdle = onIdle
    }

    func start() {
        startThread(name: "nats-conn") { [self] in run() }
    }

    public var status: Status { statusBox.withLock { $0 } }
    public var publisherCount: Int { publishers.withLock { $0.count } }
    public var hasUndelivered: Bool { publishers.withLock { $0.contains { !$0.buffer.isEmpty } } }

    func attach(_ p: NATSPublisher) {
        publishers.withLock { $0.append(p) }
        wakeup.signal()
    }

    /// New events are waiting.
    public func notify() { wakeup.signal() }

    /// The stream reached EOF: detach once its buffer has been delivered.
    public func finish(_ p: NATSPublisher) {
        p.finished.store(true, ordering: .releasing)
        wakeup.signal()
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    /// Called with the registry lock held: may this idle connection close?
    func isIdle() -> Bool { publishers.withLock { $0.isEmpty } }

    // MARK: - Connection thread

    private struct ServerEntry {
        var url: NATSServerURL
        var explicit: Bool
        var tlsName: String          // name the server certificate must carry
        var failures = 0
    }

    private func run() {
        var pool = options.servers.map { ServerEntry(url: $0, explicit: true, tlsName: $0.host) }
        var next = 0
        var failedPasses = 0
        var idleSince: Int64? = nil
        let scheme = options.servers.first?.scheme ?? .nats

        while !stopping.load(ordering: .relaxed) {
            if reapAndCheckIdle(&idleSince) { return }
            if pool.isEmpty {
                // Given up: drop what streams still send (counted) until they are gone.
                if status.state != .closed {
                    setState(.closed, error: "gave up after nats-max-reconnect=\(options.maxReconnect) attempts per server")
                    Log.error("nats: no server left to try; dropping buffered events (\(status.lastError))")
                }
                dropEverything()
                _ = wakeup.wait(timeoutMs: 1000)
                continue
            }

            // One pass over the pool.
            var connected: (ByteStream, NATSInfo, NATSServerParser, Int)? = nil
            var tried = 0
            while tried < pool.count && connected == nil && !stopping.load(ordering: .relaxed) {
                let i = next % pool.count
                next += 1
                tried += 1
                do {
                    let (stream, info, parser) = try handshake(pool[i].url, tlsName: pool[i].tlsName)
                    connected = (stream, info, parser, i)
                } catch {
                    pool[i].failures += 1
                    noteError("\(pool[i].url): \(error)")
                }
            }
            // Drop servers that used up their attempts (nats-max-reconnect >= 0).
            if options.maxReconnect >= 0 {
                pool.removeAll { $0.failures > options.maxReconnect }
            }

            guard let (stream, info, parser, index) = connected else {
                failedPasses += 1
                let base = min(100_000_000 * Int64(1 << min(failedPasses - 1, 6)), 5_000_000_000)
                let jitter = Int64.random(in: 0...(base / 4))
                wakeup.sleep(ns: base + jitter) { stopping.load(ordering: .relaxed) }
                continue
            }
            failedPasses = 0
            if index < pool.count { pool[index].failures = 0 }
            let serverName = pool.indices.contains(index) ? pool[index].url.description : "?"
            statusBox.withLock { $0.state = .connected; $0.server = serverName }
            Log.info("nats: connected to \(serverName)")
            let tlsName = pool.indices.contains(index) ? pool[index].tlsName : ""
            mergeDiscovered(info, into: &pool, scheme: scheme, tlsName: tlsName)

            let reason = session(stream, parser: parser, pool: &pool, scheme: scheme, tlsName: tlsName)
            stream.close()
            rewindAll()
            if stopping.load(ordering: .relaxed) { break }
            statusBox.withLock { $0.state = .disconnected; $0.reconnects += 1; $0.lastError = reason }
            Log.warn("nats: connection to \(serverName) lost: \(reason); reconnecting")
        }
        statusBox.withLock { $0.state = .closed }
    }

    /// Connects and completes INFO → CONNECT → PING/PONG within one deadline.
    /// Returns the parser too: bytes the server sent right after the PONG are already in it.
    private func handshake(_ url: NATSServerURL, tlsName: String) throws -> (ByteStream, NATSInfo, NATSServerParser) {
        let deadline = Clock.monotonicNanos() + NATSConnection.handshakeTimeoutNs
        let fd = try TCPSocket.connect(host: url.host, port: url.port, timeoutMs: 2000)
        let plain = PlainStream(fd: fd)
        var stream: ByteStream = plain
        var parser = NATSServerParser()
        var buf = [UInt8](repeating: 0, count: 16384)

        func nextOp() throws -> NATSServerOp {
            while true {
                if let op = try parser.next() { return op }
                let n = try buf.withUnsafeMutableBytes { p in try stream.readSome(into: p, deadline: deadline) }
                buf.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
        }

        do {
            guard case .info(let info) = try nextOp() else {
                throw NATSProtocolError(message: "server did not start with INFO")
            }
            // TLS is required by local config (never only by INFO, which a MITM could strip),
            // or by the server.
            let wantTLS = url.scheme == .tls || tls != nil
            if wantTLS && info.tlsRequired != true && info.tlsAvailable != true {
                throw NATSProtocolError(message: "TLS was asked for but the server does not offer it")
            }
            if wantTLS || info.tlsRequired == true {
                let ctx = try tls ?? defaultTLSContext()
                plain.release()
                stream = try TLSStream(fd: fd, context: ctx, serverName: tlsName, deadline: deadline)
            }
            let (user, pass, token) = credentials(for: url)
            if info.authRequired == true && user == nil && token == nil {
                Log.warn("nats: \(url) requires authentication and no credentials are configured")
            }
            try stream.writeAll(NATSClientCommands.connect(user: user, pass: pass, token: token, headers: false, name: "logrelay"), deadline: deadline)
            while true {
                switch try nextOp() {
                case .pong:
                    if let mp = info.maxPayload, mp > 0 { maxPayload.store(mp, ordering: .relaxed) }
                    return (stream, info, parser)
                case .ping: try stream.writeAll(Array("PONG\r\n".utf8), deadline: deadline)
                case .ok, .msg, .info: continue
                case .err(let text): throw NATSProtocolError(message: "server refused the connection: \(text)")
                }
            }
        } catch {
            stream.close()
            throw error
        }
    }

    private func defaultTLSContext() throws -> TLSContext {
        try fallbackTLS.withLock { c in
            if let c { return c }
            let made = try TLSContext(TLSConfig())
            c = made
            return made
        }
    }

    /// URL user info wins over the options (nats.go's rule).
    private func credentials(for url: NATSServerURL) -> (String?, String?, String?) {
        if url.token != nil { return (nil, nil, url.token) }
        if url.user != nil { return (url.user, url.password, nil) }
        if let explicit = options.servers.first(where: { $0.user != nil || $0.token != nil }) {
            if explicit.token != nil { return (nil, nil, explicit.token) }
            return (explicit.user, explicit.password, nil)
        }
        if options.token != nil { return (nil, nil, options.token) }
        return (options.user, options.pass, nil)
    }

    /// Adds servers announced by the cluster. A server announced by IP address is
    /// verified against the name of the server that announced it (as nats.go does).
    private func mergeDiscovered(_ info: NATSInfo, into pool: inout [ServerEntry], scheme: NATSServerURL.Scheme, tlsName: String) {
        guard let urls = info.connectURLs else { return }
        for hp in urls {
            guard let u = try? NATSServerURL(parsing: "\(scheme.rawValue)://\(hp)") else { continue }
            if !pool.contains(where: { $0.url.host == u.host && $0.url.port == u.port }) {
                let name = TLSStream.isIPAddress(u.host) && !tlsName.isEmpty ? tlsName : u.host
                pool.append(ServerEntry(url: u, explicit: false, tlsName: name))
            }
        }
    }

    private struct Mark { let publisher: NATSPublisher; let offset: Int64 }

    /// Runs a connected session until it fails; returns why.
    private func session(_ stream: ByteStream, parser initialParser: NATSServerParser, pool: inout [ServerEntry], scheme: NATSServerURL.Scheme, tlsName: String) -> String {
        var parser = initialParser
        var pendingInput = true     // the handshake may have left ops in the parser
        var out = [UInt8]()
        out.reserveCapacity(NATSConnection.writeBatchBytes + 64 * 1024)
        var outOff = 0
        var pending: [[Mark]] = []        // one entry per PING in flight, oldest first
        var pendingHead = 0
        var pingSentAt: [Int64] = []
        var readBuf = [UInt8](repeating: 0, count: 64 * 1024)
        var lastSend = Clock.monotonicNanos()
        var rr = 0
        var idleSince: Int64? = nil
        var eventScratch = [UInt8]()
        var rawScratch = [UInt8]()

        while !stopping.load(ordering: .relaxed) {
            let now = Clock.monotonicNanos()
            // Fill the write buffer when it has drained.
            if outOff == out.count {
                out.removeAll(keepingCapacity: true)
                outOff = 0
                let marks = gather(into: &out, scratch: &eventScratch, raw: &rawScratch, rr: &rr)
                if !marks.isEmpty || now - lastSend > NATSConnection.keepaliveNs {
                    out.append(contentsOf: NATSConnection.pingBytes)
                    pending.append(marks)
                    pingSentAt.append(now)
                    lastSend = now
                }
            }
            if pendingHead < pingSentAt.count && now - pingSentAt[pendingHead] > NATSConnection.staleNs {
                return "stale connection: no PONG for \(NATSConnection.staleNs / 1_000_000_000) s"
            }
            if reapAndCheckIdle(&idleSince) { stopping.store(true, ordering: .relaxed); return "idle" }

            var fds = [pollfd(fd: stream.fd, events: Int16(POLLIN) | (outOff < out.count ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0)]
            let timeout: Int32 = stream.hasBufferedInput || pendingInput ? 0 : 1000
            let r = poll(&fds, 2, timeout)
            if r < 0 && errno != EINTR { return "poll: \(SystemError("poll"))" }
            if fds[1].revents != 0 { wakeup.drain() }

            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || stream.hasBufferedInput || pendingInput {
                pendingInput = false
                do {
                    readLoop: while true {
                        let res = try readBuf.withUnsafeMutableBytes { p throws(SystemError) in try stream.read(into: p) }
                        switch res {
                        case .wouldBlock: break readLoop
                        case .eof: return "connection closed by server"
                        case .bytes(let n):
                            readBuf.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                            if n < readBuf.count { break readLoop }
                        }
                    }
                    while let op = try parser.next() {
                        switch op {
                        case .ping:
                            out.append(contentsOf: Array("PONG\r\n".utf8))
                        case .pong:
                            if pendingHead < pending.count {
                                for m in pending[pendingHead] { m.publisher.buffer.confirm(upTo: m.offset) }
                                pending[pendingHead] = []
                                pendingHead += 1
                                if pendingHead > 1024 && pendingHead * 2 > pending.count {
                                    pending.removeFirst(pendingHead); pingSentAt.removeFirst(pendingHead); pendingHead = 0
                                }
                            }
                        case .info(let info):
                            if let mp = info.maxPayload, mp > 0 { maxPayload.store(mp, ordering: .relaxed) }
                            mergeDiscovered(info, into: &pool, scheme: scheme, tlsName: tlsName)
                            if info.ldm == true { return "server entered lame-duck mode" }
                        case .err(let text):
                            let lower = text.lowercased()
                            if lower.hasPrefix("permissions violation") || lower.hasPrefix("invalid publish subject") {
                                noteError("server: \(text)")   // the connection stays open
                            } else {
                                return "server error: \(text)"
                            }
                        case .ok, .msg:
                            break
                        }
                    }
                } catch {
                    return "\(error)"
                }
            }

            if outOff < out.count {
                do {
                    let res = try out.withUnsafeBytes { p throws(SystemError) in try stream.write(UnsafeRawBufferPointer(rebasing: p[outOff...])) }
                    switch res {
                    case .bytes(let n): outOff += n
                    case .wouldBlock: break
                    case .eof: return "connection closed by server"
                    }
                } catch {
                    return "\(error)"
                }
            }
        }
        return "stopped"
    }

    static let pingBytes = Array("PING\r\n".utf8)

    /// Encodes unsent lines of every stream into PUBs, fairly, up to the batch size.
    /// Events are cut to the server's max_payload here, so a smaller limit learned on a
    /// reconnect applies to everything still buffered.
    private func gather(into out: inout [UInt8], scratch eventScratch: inout [UInt8], raw rawScratch: inout [UInt8], rr: inout Int) -> [Mark] {
        let list = publishers.withLock { $0 }
        guard !list.isEmpty else { return [] }
        var marks: [Mark] = []
        let limit = maxPayload.load(ordering: .relaxed)
        var budget = NATSConnection.writeBatchBytes
        let startAt = rr % list.count
        rr &+= 1
        for k in 0..<list.count where budget > 0 {
            let p = list[(startAt + k) % list.count]
            let share = max(budget / (list.count - k), 16 * 1024)
            rawScratch.removeAll(keepingCapacity: true)
            guard let off = p.buffer.copyUnsent(maxBytes: share, into: &rawScratch) else { continue }
            budget -= rawScratch.count
            rawScratch.withUnsafeBytes { records in
                var i = 0
                while i < records.count {
                    let (rec, next) = LineRecord.read(records, at: i)
                    i = next
                    eventScratch.removeAll(keepingCapacity: true)
                    p.encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano, partial: rec.partial,
                                     maxEventBytes: limit, to: &eventScratch)
                    eventScratch.withUnsafeBytes { events in
                        var j = 0
                        while j + 4 <= events.count {
                            let n = EventBuffer.recordLength(events, at: j)
                            out.append(contentsOf: p.pubPrefix)
                            appendDecimal(n, to: &out)
                            out.append(0x0D); out.append(0x0A)
                            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: events[(j + 4)..<(j + 4 + n)]))
                            out.append(0x0D); out.append(0x0A)
                            j += 4 + n
                        }
                    }
                }
            }
            marks.append(Mark(publisher: p, offset: off))
        }
        return marks
    }

    /// Detaches finished streams that are fully delivered; true when the connection should close.
    private func reapAndCheckIdle(_ idleSince: inout Int64?) -> Bool {
        let empty: Bool = publishers.withLock { list in
            list.removeAll { $0.finished.load(ordering: .acquiring) && $0.buffer.isEmpty }
            return list.isEmpty
        }
        guard empty else { idleSince = nil; return false }
        let now = Clock.monotonicNanos()
        if let since = idleSince {
            if now - since > NATSConnection.idleCloseNs && onIdle(self) {
                Log.debug("nats: closing idle connection")
                return true
            }
        } else {
            idleSince = now
        }
        return false
    }

    private func rewindAll() {
        for p in publishers.withLock({ $0 }) { p.buffer.rewind() }
    }

    private func dropEverything() {
        let list = publishers.withLock { list in
            let l = list
            list.removeAll { $0.finished.load(ordering: .acquiring) }
            return l
        }
        for p in list { p.buffer.dropAll() }
    }

    private func setState(_ s: State, error: String) {
        statusBox.withLock { $0.state = s; $0.lastError = error }
    }

    private let errorLog = RateLimitedLog(intervalNanos: 10_000_000_000)

    private func noteError(_ text: String) {
        statusBox.withLock { $0.lastError = text }
        errorLog.attempt { suppressed in
            Log.warn("nats: \(text)" + (suppressed > 0 ? " (\(suppressed) similar messages suppressed)" : ""))
        }
    }

}

@inline(__always)
func appendDecimal(_ value: Int, to out: inout [UInt8]) {
    if value < 10 { out.append(UInt8(48 + value)); return }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var v = value
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
        while v > 0 { d[n] = UInt8(48 + v % 10); v /= 10; n += 1 }
        while n > 0 { n -= 1; out.append(d[n]) }
    }
}
