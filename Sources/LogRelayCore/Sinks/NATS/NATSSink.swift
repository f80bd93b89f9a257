// The NATS protocol on the connection shell. The handshake is (TLS first →) INFO → CONNECT
// (user/password, token, or an NKey signature of the server's nonce with the user JWT of a
// .creds file) → PING/PONG. A session then coalesces the streams' lines into large writes of
// PUBs (HPUBs when the server supports headers: a stable Nats-Msg-Id and the container's id,
// name and source), and releases them:
// - core NATS: each write ends in a PING and its lines are released by the PONG after them
//   (the server has processed them; after a small write, the PONG is read when the next lines
//   come, within 5 ms, so a trickle costs one wake-up per write). Lines the server refused
//   (-ERR permissions violation) count as rejected.
// - JetStream (nats-jetstream): each message carries a reply subject on the session's inbox
//   and its line is released by the stream's PubAck, in order per stream, with a bounded
//   window of messages waiting (refilled a quarter at a time; while it has room, PubAcks are
//   read every 2 ms, in large reads). Duplicates the stream detected are counted, not re-sent;
//   a message the server refused (-ERR permissions violation: no PubAck comes) counts as
//   rejected; errors where retrying helps (503, no PubAck in time) rewind every stream to its
//   release point and publish again after a backoff (the same ids: the stream drops what it holds).
// Lines that cannot fit the server's max_payload count as dropped; no refused, dropped or
// unacknowledged line is ever counted as published.
//
// Nothing a server sends can make the session grow: input is read in bounded chunks and
// parsed after each one, at most `inboundBytesPerSecond` (more with JetStream, whose PubAcks
// arrive one per line); PINGs are answered with one PONG per write; the write buffer is
// refilled only when it has drained; message payloads over 4 KiB are skipped unread. A PONG
// without a PING of ours in flight, or a MSG that is not a reply to our inbox, is a protocol error.
import FoundationEssentials
import Glibc

extension NATSServerURL: PoolAddress {}
extension NATSProtocolError: CausedError {}

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
    /// The nats-creds or nats-nkey file (validated at StartLogging), read for every handshake.
    let userKey: NATSUserKeyFile?
    /// Set when the options ask for TLS (tls://, tls-first or any nats-tls-* option): always used.
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
    /// PubAcks are ~100 bytes, one per line, at up to ~60,000 lines/s per connection.
    static let jetStreamInboundBytesPerSecond = 32 << 20
    static let keepaliveNs: Int64 = 5_000_000_000
    static let staleNs: Int64 = 20_000_000_000
    static let maxTrackedSubjects = 1024
    /// JetStream messages waiting for their PubAck, at most (nats.go's async limit is 4000).
    static let windowMessages = 4096
    static let windowBytes = 8 << 20
    /// A full window is refilled once a quarter of it is free again: while the stream is the
    /// bottleneck, fewer and larger writes instead of a few messages per PubAck read.
    static let windowRefillMessages = windowMessages / 4
    static let windowRefillBytes = windowBytes / 4
    /// While the window has room, PubAcks are read at most this often: they pile up in the
    /// socket and come in large reads instead of a wakeup per few of them.
    static let ackReadIntervalNs: Int64 = 2_000_000
    /// After a small write (lines trickle in), its PONG is read when the next lines wake the
    /// thread, or after this long: one wake-up per write instead of two.
    static let pongReadHoldNs: Int64 = 5_000_000
    static let smallWriteBytes = 64 * 1024
    /// No PubAck for this long: the stream (or its leader) lost the message; publish again.
    static let ackTimeoutNs: Int64 = 3_000_000_000

    public init(options: NATSOptions, userKey: NATSUserKeyFile? = nil, tls: TLSContext?, systemTLS: SystemTLS) {
        self.options = options
        self.userKey = userKey
        self.tls = tls
        self.systemTLS = systemTLS
        pool = ServerPool(explicit: options.servers, maxAttempts: options.maxReconnect)
    }

    public func makeCarry() {}
    public func carriedLines(_ carry: Void) -> Int { 0 }
    public func close(_ link: NATSLink) { link.stream.close() }

    // MARK: - Handshake

    /// Connects and completes (TLS →) INFO → CONNECT → PING/PONG within one deadline.
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
            if options.tlsFirst {
                // handshake_first servers speak TLS from the first byte and send INFO inside it.
                let ctx = try tls ?? systemTLS.context()
                plain.release()
                stream = try TLSStream(fd: fd, context: ctx, serverName: server.tlsName, deadline: deadline)
            }
            guard case .info(let info) = try nextOp() else {
                throw NATSProtocolError(message: "server did not start with INFO")
            }
            if !options.tlsFirst {
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
            }
            let auth = try authentication(for: url, info: info, on: shell)
            try stream.writeAll(NATSClientCommands.connect(auth, headers: info.headers == true, name: "logrelay"), deadline: deadline)
            while true {
                switch try nextOp() {
                case .pong:
                    return NATSLink(stream: stream, info: info, parser: parser, tlsName: server.tlsName)
                case .ping: try stream.writeAll(NATSClientCommands.pong, deadline: deadline)
                case .ok, .info: continue
                case .msg, .pubAck: throw NATSProtocolError(message: "server sent a message before we subscribed")
                case .err(let text): throw refusal(text)
                }
            }
        } catch {
            stream.close()
            throw error
        }
    }

    /// What CONNECT carries. The key file is read again for every connection, so credentials
    /// rotated on disk apply from the next reconnect; the seed is dropped once the nonce is signed.
    private func authentication(for url: NATSServerURL, info: NATSInfo, on shell: NATSConnection) throws -> NATSClientCommands.Auth {
        var auth = NATSClientCommands.Auth()
        if let file = userKey {
            let creds: NATSUserCredentials
            do { creds = try file.load() } catch {
                throw NATSProtocolError(message: error.message, cause: "file \(file.kind.rawValue): \(error.message)")
            }
            guard let nonce = info.nonce else {
                throw NATSProtocolError(message: "\(file.kind.rawValue) is set but the server sent no nonce to sign: it does not authenticate with NKeys or JWTs",
                                        cause: "no nonce")
            }
            let signer = try NATSSigner(seed: creds.seed)
            auth.sig = try signer.sign(Array(nonce.utf8))
            if let jwt = creds.jwt { auth.jwt = jwt } else { auth.nkey = signer.publicKey }
            return auth
        }
        let (user, pass, token) = credentials(for: url)
        if info.authRequired == true && user == nil && token == nil {
            shell.noteError("\(url) requires authentication and no credentials are configured", cause: "no credentials")
        }
        auth.user = user
        auth.pass = pass
        auth.token = token
        return auth
    }

    /// A -ERR during the handshake, said so a person can act on it (once per cause in the log).
    private func refusal(_ text: String) -> NATSProtocolError {
        let lower = text.lowercased()
        var message = "server refused the connection: \(text)"
        if let file = userKey, lower.hasPrefix("authorization violation") || lower.contains("expired") {
            let jwt = (try? file.load())?.jwt
            if let exp = jwt.flatMap(NATSUserCredentials.expiry(ofJWT:)), exp <= Int64(Glibc.time(nil)) {
                message += " (the user JWT in \(file.kind.rawValue) \(file.shownPath.debugDescription) expired at \(EventEncoder.formatTime(exp * 1_000_000_000)))"
            } else {
                message += " (check that the seed in \(file.kind.rawValue) \(file.shownPath.debugDescription) is the one the server knows\(jwt != nil ? " and that the user JWT is still valid" : ""))"
            }
        }
        return NATSProtocolError(message: message, cause: "refused: \(lower)")
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

    /// The lines of one stream in one write, and what became of them (core NATS).
    struct Mark {
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

    /// How messages are framed in this session.
    struct Framing {
        var headers: Bool
        /// "Nats-Expected-Stream: X\r\n" or empty.
        var extraHeaders: [UInt8]
        /// "_INBOX.<random>." with JetStream, else empty.
        var inbox: [UInt8]
        var maxPayload: Int
    }

    /// The JetStream side of a session: the window, the streams by slot, the retry schedule.
    private struct JetStreamState {
        var window = PubAckWindow()
        var slots: [ObjectIdentifier: Int] = [:]
        var attachments: [NATSAttachment] = []
        var retryAt: Int64 = 0
        var backoff = Backoff(firstNs: 250_000_000, maxNs: 5_000_000_000)

        mutating func slot(_ a: NATSAttachment) -> Int {
            if let s = slots[ObjectIdentifier(a)] { return s }
            attachments.append(a)
            slots[ObjectIdentifier(a)] = attachments.count - 1
            return attachments.count - 1
        }
    }

    public func run(_ link: NATSLink, on shell: NATSConnection, pool: inout ServerPool<NATSServerURL>, carry: inout Void) -> SessionEnd {
        let stream = link.stream
        let scheme = options.servers.first?.scheme ?? .nats
        var parser = link.parser
        let headers = link.info.headers == true
        var framing = Framing(headers: headers,
                              extraHeaders: headers ? options.expectedStream.map { Array("Nats-Expected-Stream: \($0)\r\n".utf8) } ?? [] : [],
                              inbox: options.jetstream ? NATSSink.newInbox() : [],
                              maxPayload: link.info.maxPayload.map { max($0, 1) } ?? 1 << 20)
        parser.replyInbox = framing.inbox
        discover(link.info, into: &pool, scheme: scheme, tlsName: link.tlsName)
        let jetstream = options.jetstream
        var js = JetStreamState()
        if jetstream && !headers {
            shell.noteError("the server does not support headers: JetStream messages go without Nats-Msg-Id, so replays may be stored twice", cause: "no headers")
        }

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
        let inboundPerSecond = jetstream ? NATSSink.jetStreamInboundBytesPerSecond : NATSSink.inboundBytesPerSecond
        var inbound = inboundPerSecond
        var inboundRefillAt = lastSend + 1_000_000_000
        var pendingInput = true              // the handshake may have left ops in the parser
        var inputHeldUntil: Int64 = 0
        if jetstream { out.append(contentsOf: NATSClientCommands.subscribe(String(decoding: framing.inbox, as: UTF8.self) + "*", sid: 1)) }

        /// Publishing again helps (no leader yet, storage busy, a lost message): every stream
        /// goes back to its release point and is published again after a backoff.
        func retry(code: Int, errCode: Int, text: String, now: Int64, logged: Bool = false) {
            guard !js.window.isEmpty else { return }
            if !logged {
                shell.noteError("JetStream: \(text) (code \(code)\(errCode != 0 ? ", err_code \(errCode)" : "")); publishing again", cause: "jetstream \(code) \(errCode)")
            }
            js.backoff.failed()
            js.retryAt = now + js.backoff.delay()
            js.window.reset()
            for a in js.attachments { a.buffer.rewind() }
        }

        /// A PubAck (or a no-responders status) for message `seq`.
        func settle(_ seq: UInt64, status: Int?, statusText: String, ack: NATSPubAck?, now: Int64) {
            let state: PubAckWindow.State
            if let status {
                // 503 on a reply: no stream listens on the subject (or its leader is gone).
                retry(code: status, errCode: 0, text: status == 503 ? "no responders: no stream for subject, or its leader is not available" : statusText, now: now)
                return
            }
            switch ack {
            case .stored(_, let duplicate)?:
                state = duplicate ? .duplicate : .stored
                js.backoff.reset()
            case .error(let code, let errCode, let text)?:
                if NATSSink.isRetryable(code: code, errCode: errCode) {
                    retry(code: code, errCode: errCode, text: text, now: now)
                    return
                }
                shell.noteError("JetStream refused a message: \(text) (code \(code), err_code \(errCode)); its line is counted as rejected",
                                cause: "jetstream \(code) \(errCode)")
                state = .rejected
            case nil:
                shell.noteError("JetStream sent a reply that is not a PubAck; publishing again", cause: "bad pub ack")
                retry(code: 0, errCode: 0, text: "", now: now, logged: true)
                return
            }
            // Released once per input turn (releaseAll), not per PubAck: one buffer lock per batch.
            _ = js.window.settle(seq, as: state)
        }

        /// The message a publish refusal is about. The server handles a connection's messages
        /// in order and refuses all of a subject's: the oldest waiting one on that subject, or
        /// the one a refused reply subject names.
        func refusedMessage(_ quoted: String, replyRefused: Bool) -> UInt64? {
            if replyRefused {
                return Array(quoted.utf8).withUnsafeBytes { NATSServerParser.replySequence($0, inbox: framing.inbox) }
            }
            var oldest: UInt64? = nil
            for (slot, a) in js.attachments.enumerated() where a.route.subject == quoted {
                if let seq = js.window.firstWaiting(stream: slot), seq < oldest ?? .max { oldest = seq }
            }
            return oldest
        }

        /// Hands every stream's acknowledged prefix back to its buffer.
        func releaseAll() {
            let attachments = js.attachments
            js.window.releaseDone { slot, r in
                attachments[slot].buffer.confirm(upTo: r.offset, unpublished: r.unpublished, duplicates: r.duplicates)
            }
        }

        /// Handles one server op; non-nil ends the session.
        func handle(_ op: NATSServerOp, now: Int64) -> SessionEnd? {
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
                if let mp = info.maxPayload { framing.maxPayload = max(mp, 1) }
                discover(info, into: &pool, scheme: scheme, tlsName: link.tlsName)
                if info.ldm == true { return .redirected("server entered lame-duck mode") }
            case .err(let text):
                let lower = text.lowercased()
                if jetstream && lower.hasPrefix("permissions violation for subscription") {
                    return .failed("server refused the PubAck inbox subscription (\(text)): the user needs subscribe permission on _INBOX.>")
                }
                guard lower.hasPrefix("permissions violation for publish") || lower.hasPrefix("invalid publish subject") else {
                    return .failed("server error: \(text)")
                }
                let subject = NATSSink.quotedSubject(text)
                if jetstream {
                    // A refused message gets no PubAck; waiting for one would publish it again
                    // forever. Settled as rejected instead. (A pedantic server still processes a
                    // message with an invalid subject: its PubAck comes.)
                    if lower.hasPrefix("permissions violation for publish"), let seq = refusedMessage(subject, replyRefused: lower.contains(" with reply of ")),
                       js.window.settle(seq, as: .rejected) != nil {
                        shell.noteError("server refused to publish to \(subject.debugDescription) (\(text)): its lines are counted as rejected",
                                        cause: "refused \(subject)")
                    } else {
                        shell.noteError("server: \(text)")
                    }
                    return nil
                }
                // The connection stays open; the lines are counted as rejected on the next PONG.
                if violations[subject] != nil || violations.count < NATSSink.maxTrackedSubjects {
                    violations[subject, default: 0] += 1
                }
                shell.noteError("server: \(text)")
            case .ok:
                break
            case .msg(let m):
                // What the parser did not read as a PubAck: a status (503), a payload too large
                // to keep, or a message that is no reply of ours.
                guard jetstream, m.sid.elementsEqual("1".utf8),
                      let seq = m.subject.withUnsafeBytes({ NATSServerParser.replySequence($0, inbox: framing.inbox) }) else {
                    return .failed("protocol error: server sent a message that is not a reply to our inbox")
                }
                settle(seq, status: m.status, statusText: m.statusText, ack: m.payload.flatMap(NATSPubAck.parse), now: now)
            case .pubAck(let seq, let ack):
                settle(seq, status: nil, statusText: "", ack: ack, now: now)
            }
            return nil
        }

        while !shell.isStopping {
            var now = Clock.monotonicNanos()
            if now >= inboundRefillAt {
                inbound = inboundPerSecond
                inboundRefillAt = now + 1_000_000_000
            }
            let reading = inbound > 0 && now >= inputHeldUntil
            var fds = [pollfd(fd: stream.fd, events: (reading ? Int16(POLLIN) : 0) | (outOff < out.count ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: shell.wakeup.fd, events: Int16(POLLIN), revents: 0)]
            func msUntil(_ t: Int64) -> Int32 { Int32(max(1, (t - now) / 1_000_000)) }
            var timeout: Int32 = reading ? 1000 : msUntil(inbound > 0 ? inputHeldUntil : inboundRefillAt)
            if jetstream && js.retryAt > now { timeout = min(timeout, msUntil(js.retryAt)) }
            if pendingInput || (reading && stream.hasBufferedInput) { timeout = 0 }
            do { _ = try FD.poll(&fds, timeoutMs: timeout) } catch { return .failed("\(error)") }
            let woken = fds[1].revents != 0
            if woken { shell.wakeup.drain() }
            now = Clock.monotonicNanos()

            // Input: ops already parsed first, then a few bounded reads, parsing after each.
            // Input held back is read anyway when new lines woke the thread.
            if pendingInput || fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0
                || (reading && stream.hasBufferedInput) || (woken && !reading && inbound > 0) {
                pendingInput = false
                var reads = 0
                var drained = false
                while true {
                    do {
                        while let op = try parser.next() {
                            if let end = handle(op, now: now) { return end }
                        }
                    } catch {
                        return .failed("\(error)")
                    }
                    guard !drained && reads < NATSSink.readsPerTurn && inbound > 0 else { break }
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
                    drained = n < readBuf.count      // a short read emptied the socket: no read for EAGAIN
                    readBuf.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
                if jetstream {
                    releaseAll()
                    if js.window.waiting > 0 && js.window.waiting <= NATSSink.windowMessages - NATSSink.windowRefillMessages
                        && js.window.waitingBytes <= NATSSink.windowBytes - NATSSink.windowRefillBytes {
                        inputHeldUntil = now + NATSSink.ackReadIntervalNs
                    }
                }
            }

            if jetstream, let oldest = js.window.oldestWaiting(), now - oldest > NATSSink.ackTimeoutNs {
                retry(code: 408, errCode: 0, text: "no PubAck within \(NATSSink.ackTimeoutNs / 1_000_000_000) s", now: now)
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
                var budget = NATSSink.writeBatchBytes
                if jetstream {
                    // Nothing waits: forget the streams seen so far (containers come and go).
                    if js.window.isEmpty && !js.attachments.isEmpty {
                        js.attachments.removeAll(keepingCapacity: true)
                        js.slots.removeAll(keepingCapacity: true)
                    }
                    let open = js.window.waiting <= NATSSink.windowMessages - NATSSink.windowRefillMessages
                        && js.window.waitingBytes <= NATSSink.windowBytes - NATSSink.windowRefillBytes && now >= js.retryAt
                    budget = open ? min(budget, NATSSink.windowBytes - js.window.waitingBytes) : 0
                }
                var taken = 0
                if budget > 0 {
                    taken = shell.gatherFairly(budget: budget, rotation: &rotation, scratch: &raw) { a, records, offset in
                        var mark = Mark(attachment: a, offset: offset)
                        let slot = jetstream ? js.slot(a) : -1
                        NATSSink.encode(records, endingAt: offset, for: a, framing: framing, into: &out, events: &events,
                                        mark: &mark, window: &js.window, useWindow: jetstream, slot: slot, now: now, tooSmall: &tooSmall)
                        if !jetstream { marks.append(mark) }
                    }
                }
                if let t = tooSmall, reportedPayloadLimit != framing.maxPayload {
                    reportedPayloadLimit = framing.maxPayload
                    shell.noteError("the server's max_payload (\(framing.maxPayload) bytes) is smaller than any event of container \(t.name) (at least \(t.needs) bytes): its lines are dropped until the server allows more", always: true)
                }
                // Lines dropped at encoding may already be releasable.
                if jetstream { releaseAll() }
                if !marks.isEmpty || now - lastSend > NATSSink.keepaliveNs {
                    out.append(contentsOf: NATSClientCommands.ping)
                    writing = Batch(marks: marks, sentAt: now)
                    lastSend = now
                    if !jetstream && taken < NATSSink.smallWriteBytes { inputHeldUntil = now + NATSSink.pongReadHoldNs }
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
            if inFlightHead == inFlight.count && writing == nil && js.window.isEmpty && shell.reapAndCheckUnused(&unusedSince) { return .unused }
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

    /// 5xx (no leader, storage unavailable or full, cluster busy) and timeouts may pass; a
    /// 4xx names something about the message itself (wrong expected stream, too large).
    static func isRetryable(code: Int, errCode: Int) -> Bool {
        code >= 500 || code == 408 || code == 0
    }

    /// "_INBOX.<22 random base62 characters>." (nats.go's NUID length).
    static func newInbox() -> [UInt8] {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var g = SystemRandomNumberGenerator()
        return Array("_INBOX.".utf8) + (0..<22).map { _ in alphabet[Int(g.next(upperBound: UInt64(alphabet.count)))] } + [0x2E]
    }

    /// The subject in `Permissions Violation for Publish to "logs.x"`; "" when none is quoted.
    static func quotedSubject(_ text: String) -> String {
        guard let first = text.firstIndex(of: "\""), let last = text.lastIndex(of: "\""), first < last else { return "" }
        return String(text[text.index(after: first)..<last])
    }
}
