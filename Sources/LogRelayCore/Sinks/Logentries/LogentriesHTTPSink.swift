// Logentries / Rapid7 webhook ingestion on the connection shell (logentries-transport=http):
// the streams' lines are POSTed in batches, as `noformat` text with one event (or raw line)
// per line, to `/v1/noformat/<token>` over one kept-alive TLS connection per endpoint. Unlike
// token TCP, the endpoint answers every batch, so a line is released only by the 2xx of the
// request that carried it. One request is in flight at a time (batches are large):
// - 2xx: the batch's lines are published;
// - 408, 429, 5xx, a broken connection or no answer in time: the session ends, every
//   unanswered line is rewound and sent again after the shared backoff (at-least-once: the
//   batch in flight may arrive twice);
// - 413: the batch was too large for the endpoint: the batch limit halves and the lines go
//   again; a single line refused so is rejected;
// - any other status: not retryable; the batch's lines count as rejected, the status is logged.
// The token is in the request path only: logs, errors and metrics name scheme, host and port.
import Glibc

/// Streams with equal keys share a connection; each request carries its stream's token.
public struct LogentriesHTTPConnectionKey: Hashable, Sendable {
    public let tls: Bool
    public let host: String
    public let port: Int
    public let caCert: String?
}

extension LogentriesOptions {
    /// nil unless the transport is http.
    public var httpConnectionKey: LogentriesHTTPConnectionKey? {
        http.map { LogentriesHTTPConnectionKey(tls: $0.tls, host: $0.host, port: $0.port, caCert: $0.tls ? caCert : nil) }
    }
}

/// Where a stream's lines go, and how they are written.
public struct LogentriesHTTPRoute: Sendable {
    /// The request target (token included): lines of streams with equal paths share requests.
    let path: [UInt8]
    let encoder: EventEncoder
    /// line-only: an empty line would be an empty event; it is not sent.
    let skipEmptyLines: Bool

    public init(path: String, encoder: EventEncoder) {
        self.path = Array(path.utf8)
        self.encoder = encoder
        skipEmptyLines = encoder.format == .rawLine
    }
}

public typealias LogentriesHTTPConnection = SinkConnection<LogentriesHTTPSink>
public typealias LogentriesHTTPAttachment = SinkAttachment<LogentriesHTTPRoute>

public struct LogentriesHTTPSink: SinkProtocol {
    public typealias Route = LogentriesHTTPRoute
    public typealias Address = LogentriesEndpoint
    public typealias Link = ByteStream
    public typealias Carry = Limits
    public static let kind = "logentries"
    public let key: LogentriesHTTPConnectionKey
    let tls: TLSContext?
    public let pool: ServerPool<LogentriesEndpoint>
    public var connectsOnlyWhenBusy: Bool { true }
    /// The Host header.
    let hostHeader: String

    static let connectTimeoutMs: Int32 = 5000
    static let handshakeTimeoutNs: Int64 = 10_000_000_000
    /// Raw line bytes per request at most (the body is larger: JSON events carry the
    /// container's fields); halved on 413.
    static let batchBytes = 128 * 1024
    /// No further stream's lines join a request whose body has reached this (Rapid7 documents
    /// no limit; other ingestion APIs take 1 to 10 MiB).
    static let bodyBytes = 1 << 20
    /// The longest body line, "\n" included (the token-TCP limit: the service's line limit).
    static let maxLineBytes = LogentriesWire.maxLineBytes
    /// A request without progress (writing it, or reading its answer) for this long is lost.
    static let responseTimeoutNs: Int64 = 30_000_000_000
    /// An unused kept-alive connection is closed after this long (before servers and load
    /// balancers, typically 60 s, close it under a request) and opened again when lines come.
    static let idleCloseNs: Int64 = 30_000_000_000

    /// The endpoint's limits as learnt on this connection (413 halves the batch).
    public struct Limits {
        var batchBytes = LogentriesHTTPSink.batchBytes
    }

    public init(key: LogentriesHTTPConnectionKey, tls: TLSContext?) {
        self.key = key
        self.tls = tls
        pool = ServerPool(explicit: [LogentriesEndpoint(host: key.host, port: key.port)])
        let host = key.host.contains(":") ? "[\(key.host)]" : key.host
        hostHeader = key.port == (key.tls ? 443 : 80) ? host : "\(host):\(key.port)"
    }

    /// What /metrics calls the connection: scheme, host and port, never the path (the token).
    public var endpointLabel: String {
        (key.tls ? "https://" : "http://") + LogentriesEndpoint(host: key.host, port: key.port).description
    }

    public func makeCarry() -> Limits { Limits() }
    public func carriedLines(_ carry: Limits) -> Int { 0 }
    public func close(_ link: ByteStream) { link.close() }

    public func open(_ server: ServerPool<LogentriesEndpoint>.Server, on shell: LogentriesHTTPConnection) throws -> ByteStream {
        try LogentriesSink.connect(host: key.host, port: key.port, tls: key.tls ? tls : nil,
                                   connectTimeoutMs: LogentriesHTTPSink.connectTimeoutMs, handshakeTimeoutNs: LogentriesHTTPSink.handshakeTimeoutNs)
    }

    /// A stream's lines in the request in flight: `offset` confirms them in its buffer.
    struct Piece {
        let attachment: LogentriesHTTPAttachment
        let offset: Int64
        var lines: Int
        var lineBytes: Int
    }

    public func run(_ stream: ByteStream, on shell: LogentriesHTTPConnection, pool: inout ServerPool<LogentriesEndpoint>,
                    carry limits: inout Limits) -> SessionEnd {
        let fd = stream.fd
        var parser = HTTPResponseParser()
        var out = [UInt8]()
        var outOff = 0
        var batch: [Piece] = []           // the request in flight (written or being written)
        var body = [UInt8]()
        var raw = [UInt8]()
        var scratch = [UInt8]()
        var readBuf = [UInt8](repeating: 0, count: 16 * 1024)
        var rotation = 0
        var lastProgress = Clock.monotonicNanos()
        var lastActivity = lastProgress
        var unusedSince: Int64? = nil

        while !shell.isStopping {
            var now = Clock.monotonicNanos()
            if batch.isEmpty {
                if buildRequest(shell, limits: limits, rotation: &rotation, batch: &batch, raw: &raw, body: &body,
                                scratch: &scratch, out: &out) {
                    outOff = 0
                    lastProgress = now
                    lastActivity = now
                } else {
                    if shell.reapAndCheckUnused(&unusedSince) { return .unused }
                    if now - lastActivity > LogentriesHTTPSink.idleCloseNs && !shell.hasUnsent { return .idle }
                }
                if batch.isEmpty && shell.hasUnsent { continue }   // a batch of skipped lines only
            }

            let writing = outOff < out.count && !batch.isEmpty
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (writing ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: shell.wakeup.fd, events: Int16(POLLIN), revents: 0)]
            do { _ = try FD.poll(&fds, timeoutMs: stream.hasBufferedInput ? 0 : 1000) } catch { return .failed("\(error)") }
            if fds[1].revents != 0 { shell.wakeup.drain() }
            now = Clock.monotonicNanos()

            if writing {
                while outOff < out.count {
                    let res: IOResult
                    do {
                        res = try out.withUnsafeBytes { p throws(SystemError) in try stream.write(UnsafeRawBufferPointer(rebasing: p[outOff...])) }
                    } catch {
                        return .failed("\(error)")
                    }
                    guard case .bytes(let n) = res else {
                        if res == .eof { return .failed("the endpoint closed the connection") }
                        break
                    }
                    outOff += n
                    lastProgress = now
                }
            }

            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || stream.hasBufferedInput {
                var ended = false
                do {
                    for _ in 0..<4 {
                        let res = try readBuf.withUnsafeMutableBytes { p throws(SystemError) in try stream.read(into: p) }
                        if case .bytes(let n) = res {
                            readBuf.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                            lastProgress = now
                        } else {
                            ended = res == .eof
                            break
                        }
                    }
                } catch {
                    return .failed("\(error)")
                }
                do {
                    while let response = try parser.next() {
                        if let end = handle(response, batch: &batch, limits: &limits, shell: shell) { return end }
                        lastActivity = now
                    }
                    if ended {
                        if let response = try parser.finish(), let end = handle(response, batch: &batch, limits: &limits, shell: shell) {
                            return end
                        }
                        // Between requests the server may close a kept-alive connection: nothing is lost.
                        return batch.isEmpty ? .idle : .failed("the endpoint closed the connection before answering")
                    }
                } catch {
                    return .failed("invalid response from the endpoint: \(error)")
                }
            }

            if !batch.isEmpty && now - lastProgress > LogentriesHTTPSink.responseTimeoutNs {
                return .failed("no answer from the endpoint for \(LogentriesHTTPSink.responseTimeoutNs / 1_000_000_000) s")
            }
        }
        return .stopped
    }

    /// Acts on the answer to the request in flight; a non-nil result ends the session.
    private func handle(_ response: HTTPStatusResponse, batch: inout [Piece], limits: inout Limits,
                        shell: LogentriesHTTPConnection) -> SessionEnd? {
        guard !batch.isEmpty else { return .failed("the endpoint answered a request that was not sent") }
        let status = response.status
        let lines = batch.reduce(0) { $0 + $1.lines }
        switch status {
        case 200..<300:
            for p in batch { p.attachment.buffer.confirm(upTo: p.offset) }
        case 408, 429, 500..<600:
            // The shell rewinds the unanswered lines and reconnects after the backoff.
            return .failed("HTTP \(status) from the endpoint; sending again")
        case 413 where lines > 1:
            limits.batchBytes = max(limits.batchBytes / 2, 1)
            for p in batch { p.attachment.buffer.rewind() }
            shell.noteError("HTTP 413 from the endpoint: batches are now at most \(limits.batchBytes) bytes of lines", always: true)
        default:
            for p in batch {
                var u = EventBuffer.Unpublished()
                u.rejectedLines = p.lines
                u.rejectedBytes = p.lineBytes
                p.attachment.buffer.confirm(upTo: p.offset, unpublished: u)
            }
            shell.noteError("HTTP \(status) from the endpoint: \(lines) line(s) of container \(batch[0].attachment.name) counted as rejected (not retryable)")
        }
        batch = []
        return response.keepAlive ? nil : .idle
    }

    /// Takes the next batch: the unsent lines of the streams that share one request target,
    /// starting from a rotating stream (the first one left out last time, if any), each an
    /// equal share of the limit. Writes the request into `out`; false when nothing is waiting.
    /// Lines that encode to nothing (empty lines in line-only mode) are released at once.
    private func buildRequest(_ shell: LogentriesHTTPConnection, limits: Limits, rotation: inout Int, batch: inout [Piece],
                              raw: inout [UInt8], body: inout [UInt8], scratch: inout [UInt8], out: inout [UInt8]) -> Bool {
        let list = shell.current
        guard !list.isEmpty else { return false }
        let first = rotation % list.count
        rotation = first + 1
        let order = (0..<list.count).map { (first + $0) % list.count }
        guard let lead = order.first(where: { list[$0].buffer.hasUnsent }) else { return false }
        let path = list[lead].route.path
        let sharing = order.filter { list[$0].route.path == path && list[$0].buffer.hasUnsent }
        body.removeAll(keepingCapacity: true)
        var left = limits.batchBytes
        for (k, index) in sharing.enumerated() {
            guard left > 0 && body.count < LogentriesHTTPSink.bodyBytes else {
                rotation = index    // the limit ran out before this stream: the next request starts with it (as gatherFairly)
                break
            }
            let a = list[index]
            let share = max(left / (sharing.count - k), 1)
            raw.removeAll(keepingCapacity: true)
            guard let offset = a.buffer.copyUnsent(maxBytes: share, into: &raw) else { continue }
            left -= raw.count
            var piece = Piece(attachment: a, offset: offset, lines: 0, lineBytes: 0)
            raw.withUnsafeBytes { records in
                var i = 0
                while i < records.count {
                    let (rec, next) = LineRecord.read(records, at: i)
                    i = next
                    piece.lines += 1
                    piece.lineBytes += rec.line.count
                    if a.route.skipEmptyLines && rec.line.isEmpty { continue }
                    scratch.removeAll(keepingCapacity: true)
                    _ = a.route.encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano, partial: rec.partial,
                                           maxEventBytes: LogentriesHTTPSink.maxLineBytes - 1, to: &scratch)
                    LogentriesHTTPSink.appendLines(framed: scratch, to: &body)
                }
            }
            batch.append(piece)
        }
        guard !batch.isEmpty else { return false }
        if body.isEmpty {
            for p in batch { p.attachment.buffer.confirm(upTo: p.offset) }
            batch = []
            return false
        }
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: "POST ".utf8)
        out.append(contentsOf: path)
        out.append(contentsOf: " HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: logrelay/\(logrelayVersion)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        out.append(contentsOf: body)
        return true
    }

    /// `[UInt32 BE len][event]` records → `event\n` lines.
    static func appendLines(framed: [UInt8], to out: inout [UInt8]) {
        framed.withUnsafeBytes { p in
            var j = 0
            while j + 4 <= p.count {
                let n = EventBuffer.recordLength(p, at: j)
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[(j + 4)..<(j + 4 + n)]))
                out.append(0x0A)
                j += 4 + n
            }
        }
    }
}
