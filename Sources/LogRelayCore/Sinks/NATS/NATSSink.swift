// The NATS protocol on the connection shell. The handshake is INFO → CONNECT → PING/PONG;
// a session then coalesces the streams' lines into large writes of PUBs, each write ending
// in a PING, and releases lines when the PONG after them arrives (the server has processed
// them). Lines the server refused (-ERR permissions violation) count as rejected, lines
// that cannot fit the server's max_payload as dropped: neither is ever counted as published.
//
// Nothing a server sends can make the session grow: input is read in bounded chunks and
// parsed after each one, at most `inboundBytesPerSecond` (a publisher receives little: PONGs,
// PINGs, INFOs); PINGs are answered with one PONG per write; the write buffer is refilled
// only when it has drained. A PONG without a PING of ours in flight, or a MSG (we never
// subscribe), is a protocol error.
import FoundationEssentials
import Glibc

public struct NATSRoute: Sendable {
    public let subject: String
    let pubPrefix: [UInt8]               // "PUB <subject> "
    let encoder: EventEncoder

    public init(subject: String, encoder: EventEncoder) {
        self.subject = subject
        self.encoder = encoder
        pubPrefix = Array("PUB \(subject) ".utf8)
    }
}

extension NATSServerURL: PoolAddress {}

public typealias NATSConnection = SinkConnection<NATSSink>
public typealias NATSAttachment = SinkAttachment<NATSRoute>

public struct NATSLink {
    let stream: ByteStream
    let info: NATSInfo
    /// Holds what the server sent right after the handshake PONG.
    let parser: NATSServerParser
    let tlsName: String
}

public struct NATSSink: SinkProtocol {
    public typealias Route = NATSRoute
    public typealias Address = NATSServerURL
    public typealias Link = NATSLink
    public typealias Carry = Void
    public static let kind = "nats"
    let options: NATSOptions
    /// Set when the options ask for TLS (tls:// or any nats-tls-* option): always used.
    let tls: TLSContext?
    /// For servers that demand TLS although the options did not: system CAs, verified.
    let systemTLS: SystemTLS
    public let pool: ServerPool<NATSServerURL>
    public var connectsOnlyWhenBusy: Bool { false }

    static let handshakeTimeoutNs: Int64 = 2_000_000_000
    static let writeBatchBytes = 512 * 1024
    static let readChunk = 64 * 1024
    static let readsPerTurn = 4
    static let inboundBytesPerSecond = 4 << 20
    static let keepaliveNs: Int64 = 5_000_000_000
    static let staleNs: Int64 = 20_000_000_000
    static let maxTrackedSubjects = 1024

    public init(options: NATSOptions, tls: TLSContext?, systemTLS: SystemTLS) {
        self.options = options
        self.tls = tls
        self.systemTLS = systemTLS
        pool = ServerPool(explicit: options.servers, maxAttempts: options.maxReconnect)
    }

    public func makeCarry() {}
    public func carriedLines(_ carry: Void) -> Int { 0 }
    public func close(_ link: NATSLink) { link.stream.close() }

    // MARK: - Handshake

    /// Connects and completes INFO → CONNECT → PING/PONG within one deadline.
    public func open(_ server: ServerPool<NATSServerURL>.Server, on shell: NATSConnection) throws -> NATSLink {
        let url = server.address
        let deadline = Clock.monotonicNanos() + NATSSink.handshakeTimeoutNs
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
                let ctx = try tls ?? systemTLS.context()
                plain.release()
                stream = try TLSStream(fd: fd, context: ctx, serverName: server.tlsName, deadline: deadline)
            }
            let (user, pass, token) = credentials(for: url)
            if info.authRequired == true && user == nil && token == nil {
                shell.noteError("\(url) requires authentication and no credentials are configured")
            }
            try stream.writeAll(NATSClientCommands.connect(user: user, pass: pass, token: token, headers: false, name: "logrelay"), deadline: deadline)
            while true {
                switch try nextOp() {
                case .pong:
                    return NATSLink(stream: stream, info: info, parser: parser, tlsName: server.tlsName)
                case .ping: try stream.writeAll(NATSClientCommands.pong, deadline: deadline)
                case .ok, .info: continue
                case .msg: throw NATSProtocolError(message: "server sent a message though we never subscribed")
                case .err(let text): throw NATSProtocolError(message: "server refused the connection: \(text)")
                }
            }
        } catch {
            stream.close()
            throw error
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

    /// The cluster's announced servers replace the discovered part of the pool. A server
    /// announced by IP address is verified against the name of the server that announced it
    /// (as nats.go does).
    private func discover(_ info: NATSInfo, into pool: inout ServerPool<NATSServerURL>, scheme: NATSServerURL.Scheme, tlsName: String) {
        guard let urls = info.connectURLs else { return }
        var announced: [(address: NATSServerURL, tlsName: String)] = []
        for hp in urls.prefix(2 * ServerPool<NATSServerURL>.maxDiscovered) {
            guard let u = try? NATSServerURL(parsing: "\(scheme.rawValue)://\(hp)") else { continue }
            announced.append((u, TLSStream.isIPAddress(u.host) && !tlsName.isEmpty ? tlsName : u.host))
        }
        pool.replaceDiscovered(announced)
    }

    // MARK: - Session

    /// The lines of one stream in one write, and what became of them.
    private struct Mark {
        let attachment: NATSAttachment
        let offset: Int64
        var lines = 0
        var lineBytes = 0
        var events = 0
        var unpublished = EventBuffer.Unpublished()
    }

    /// One write's marks; in flight once its PING is written, until the PONG.
    private struct Batch {
        var marks: [Mark]
        var sentAt: Int64
    }

    public func run(_ link: NATSLink, on shell: NATSConnection, pool: inout ServerPool<NATSServerURL>, carry: inout Void) -> SessionEnd {
        let stream = link.stream
        let scheme = options.servers.first?.scheme ?? .nats
        var parser = link.parser
        var maxPayload = link.info.maxPayload.map { max($0, 1) } ?? 1 << 20
        discover(link.info, into: &pool, scheme: scheme, tlsName: link.tlsName)

        var out = [UInt8]()
        out.reserveCapacity(NATSSink.writeBatchBytes + 64 * 1024)
        var outOff = 0
        var writing: Batch? = nil            // the batch in `out`, until its PING is written
        var inFlight: [Batch] = []
        var inFlightHead = 0
        var pongOwed = false
        var violations: [String: Int] = [:]  // PUBs refused per subject since the last PONG
        var reportedPayloadLimit = 0
        var lastSend = Clock.monotonicNanos()
        var lastWriteProgress = lastSend
        var readBuf = [UInt8](repeating: 0, count: NATSSink.readChunk)
        var rotation = 0
        var unusedSince: Int64? = nil
        var raw = [UInt8]()
        var events = [UInt8]()
        var inbound = NATSSink.inboundBytesPerSecond
        var inboundRefillAt = lastSend + 1_000_000_000
        var pendingInput = true              // the handshake may have left ops in the parser

        /// Handles one server op; non-nil ends the session.
        func handle(_ op: NATSServerOp) -> SessionEnd? {
            switch op {
            case .ping:
                pongOwed = true
            case .pong:
                guard inFlightHead < inFlight.count else {
                    return .failed("protocol error: server sent PONG without a PING of ours in flight")
                }
                release(inFlight[inFlightHead], violations: &violations, on: shell)
                inFlight[inFlightHead].marks = []
                inFlightHead += 1
                if inFlightHead == inFlight.count {
                    inFlight.removeAll(keepingCapacity: true)
                    inFlightHead = 0
                }
            case .info(let info):
                if let mp = info.maxPayload { maxPayload = max(mp, 1) }
                discover(info, into: &pool, scheme: scheme, tlsName: link.tlsName)
                if info.ldm == true { return .redirected("server entered lame-duck mode") }
            case .err(let text):
                let lower = text.lowercased()
                guard lower.hasPrefix("permissions violation for publish") || lower.hasPrefix("invalid publish subject") else {
                    return .failed("server error: \(text)")
                }
                // The connection stays open; the lines are counted as rejected on the next PONG.
                let subject = NATSSink.quotedSubject(text)
                if violations[subject] != nil || violations.count < NATSSink.maxTrackedSubjects {
                    violations[subject, default: 0] += 1
                }
                shell.noteError("server: \(text)")
            case .ok:
                break
            case .msg:
                return .failed("protocol error: server sent a message though we never subscribed")
            }
            return nil
        }

        while !shell.isStopping {
            var now = Clock.monotonicNanos()
            if now >= inboundRefillAt {
                inbound = NATSSink.inboundBytesPerSecond
                inboundRefillAt = now + 1_000_000_000
            }
            let reading = inbound > 0
            var fds = [pollfd(fd: stream.fd, events: (reading ? Int16(POLLIN) : 0) | (outOff < out.count ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: shell.wakeup.fd, events: Int16(POLLIN), revents: 0)]
            var timeout: Int32 = reading ? 1000 : Int32(max(1, (inboundRefillAt - now) / 1_000_000))
            if pendingInput || (reading && stream.hasBufferedInput) { timeout = 0 }
            do { _ = try FD.poll(&fds, timeoutMs: timeout) } catch { return .failed("\(error)") }
            if fds[1].revents != 0 { shell.wakeup.drain() }
            now = Clock.monotonicNanos()

            // Input: ops already parsed first, then a few bounded reads, parsing after each.
            if pendingInput || (reading && (fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || stream.hasBufferedInput)) {
                pendingInput = false
                var reads = 0
                while true {
                    do {
                        while let op = try parser.next() {
                            if let end = handle(op) { return end }
                        }
                    } catch {
                        return .failed("\(error)")
                    }
                    guard reads < NATSSink.readsPerTurn && inbound > 0 else { break }
                    reads += 1
                    let res: IOResult
                    do {
                        res = try readBuf.withUnsafeMutableBytes { p throws(SystemError) in try stream.read(into: p) }
                    } catch {
                        return .failed("\(error)")
                    }
                    guard case .bytes(let n) = res else {
                        if res == .eof { return .failed("connection closed by server") }
                        break
                    }
                    inbound -= n
                    readBuf.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            }

            // Output: refill only when the last write has drained, so the buffer stays bounded.
            if outOff == out.count {
                out.removeAll(keepingCapacity: true)
                outOff = 0
                if pongOwed {
                    out.append(contentsOf: NATSClientCommands.pong)
                    pongOwed = false
                }
                var marks: [Mark] = []
                var tooSmall: (name: String, needs: Int)? = nil
                _ = shell.gatherFairly(budget: NATSSink.writeBatchBytes, rotation: &rotation, scratch: &raw) { a, records, offset in
                    var mark = Mark(attachment: a, offset: offset)
                    NATSSink.encode(records, for: a, maxPayload: maxPayload, into: &out, events: &events, mark: &mark, tooSmall: &tooSmall)
                    marks.append(mark)
                }
                if let t = tooSmall, reportedPayloadLimit != maxPayload {
                    reportedPayloadLimit = maxPayload
                    shell.noteError("the server's max_payload (\(maxPayload) bytes) is smaller than any event of container \(t.name) (at least \(t.needs) bytes): its lines are dropped until the server allows more", always: true)
                }
                if !marks.isEmpty || now - lastSend > NATSSink.keepaliveNs {
                    out.append(contentsOf: NATSClientCommands.ping)
                    writing = Batch(marks: marks, sentAt: now)
                    lastSend = now
                }
                lastWriteProgress = now
            }
            if outOff < out.count {
                let res: IOResult
                do {
                    res = try out.withUnsafeBytes { p throws(SystemError) in try stream.write(UnsafeRawBufferPointer(rebasing: p[outOff...])) }
                } catch {
                    return .failed("\(error)")
                }
                switch res {
                case .bytes(let n):
                    outOff += n
                    lastWriteProgress = now
                case .wouldBlock: break
                case .eof: return .failed("connection closed by server")
                }
                // Its PING is on the wire: the PONG may come from now on.
                if outOff == out.count, let b = writing {
                    inFlight.append(b)
                    writing = nil
                }
            }

            if inFlightHead < inFlight.count && now - inFlight[inFlightHead].sentAt > NATSSink.staleNs {
                return .failed("stale connection: no PONG for \(NATSSink.staleNs / 1_000_000_000) s")
            }
            if outOff < out.count && now - lastWriteProgress > NATSSink.staleNs {
                return .failed("the server has not read anything for \(NATSSink.staleNs / 1_000_000_000) s")
            }
            if inFlightHead == inFlight.count && writing == nil && shell.reapAndCheckUnused(&unusedSince) { return .unused }
        }
        return .stopped
    }

    /// The PONG for `batch` arrived: its lines leave their buffers, as rejected where the
    /// server refused PUBs to their subject since the previous PONG, else as published.
    private func release(_ batch: Batch, violations: inout [String: Int], on shell: NATSConnection) {
        for var m in batch.marks {
            if let v = violations[m.attachment.route.subject], v > 0, m.events > 0 {
                let refused = min(v, m.events)
                violations[m.attachment.route.subject] = v - refused
                let lines = refused == m.events ? m.lines : min(m.lines, refused)
                m.unpublished.rejectedLines = lines
                m.unpublished.rejectedBytes = m.lines > 0 ? m.lineBytes * lines / m.lines : 0
                shell.noteError("server refused \(lines) line(s) of container \(m.attachment.name) for subject \(m.attachment.route.subject)")
            }
            m.attachment.buffer.confirm(upTo: m.offset, unpublished: m.unpublished)
        }
        violations.removeAll(keepingCapacity: true)
    }

    /// Encodes a stream's records into PUBs. Events are cut to the server's max_payload here,
    /// so a smaller limit learned on a reconnect applies to everything still buffered; a line
    /// whose event cannot fit at all (the envelope alone is larger) is dropped and counted.
    private static func encode(_ records: UnsafeRawBufferPointer, for a: NATSAttachment, maxPayload: Int,
                               into out: inout [UInt8], events: inout [UInt8], mark: inout Mark,
                               tooSmall: inout (name: String, needs: Int)?) {
        var i = 0
        while i < records.count {
            let (rec, next) = LineRecord.read(records, at: i)
            i = next
            events.removeAll(keepingCapacity: true)
            a.route.encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano, partial: rec.partial,
                                   maxEventBytes: maxPayload, to: &events)
            events.withUnsafeBytes { ev in
                var largest = 0
                var j = 0
                while j + 4 <= ev.count {
                    let n = EventBuffer.recordLength(ev, at: j)
                    largest = max(largest, n)
                    j += 4 + n
                }
                if largest > maxPayload {
                    mark.unpublished.droppedLines += 1
                    mark.unpublished.droppedBytes += rec.line.count
                    if tooSmall == nil { tooSmall = (a.name, largest) }
                    return
                }
                j = 0
                while j + 4 <= ev.count {
                    let n = EventBuffer.recordLength(ev, at: j)
                    out.append(contentsOf: a.route.pubPrefix)
                    appendDecimal(n, to: &out)
                    out.append(0x0D); out.append(0x0A)
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: ev[(j + 4)..<(j + 4 + n)]))
                    out.append(0x0D); out.append(0x0A)
                    j += 4 + n
                    mark.events += 1
                }
                mark.lines += 1
                mark.lineBytes += rec.line.count
            }
        }
    }

    /// The subject in `Permissions Violation for Publish to "logs.x"`; "" when none is quoted.
    static func quotedSubject(_ text: String) -> String {
        guard let first = text.firstIndex(of: "\""), let last = text.lastIndex(of: "\""), first < last else { return "" }
        return String(text[text.index(after: first)..<last])
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
