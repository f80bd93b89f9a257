// NATS client protocol, publisher side: the incremental parser for what a server
// sends (INFO, PING, PONG, +OK, -ERR, MSG/HMSG), the bytes we send (CONNECT, SUB), and the
// byte-level parser of JetStream's PubAck replies.
import FoundationEssentials
import Glibc

public enum NATSServerOp: Equatable, Sendable {
    case info(NATSInfo)
    case ping
    case pong
    case ok
    case err(String)          // text without quotes, as sent
    case msg(NATSMessage)     // a delivered message (JetStream replies to our inbox)
    /// A MSG on `replyInbox` with sid 1, read in place: the sequence number its subject ends in
    /// and its payload as a PubAck (nil: the payload is not one).
    case pubAck(seq: UInt64, NATSPubAck?)
}

/// A MSG or HMSG. Payloads larger than the parser's `keepPayloadBytes` are skipped, never
/// held (a publisher expects small replies): `payload` is then nil.
public struct NATSMessage: Equatable, Sendable {
    public var subject: [UInt8]
    public var sid: [UInt8]
    /// The status of an HMSG whose header block starts `NATS/1.0 <code>` (503: no responders).
    public var status: Int?
    public var statusText: String
    public var payload: [UInt8]?
}
public struct NATSInfo: Decodable, Equatable, Sendable {
    public var serverID: String?
    public var version: String?
    public var proto: Int?
    public var headers: Bool?
    public var maxPayload: Int?
    public var authRequired: Bool?
    public var tlsRequired: Bool?
    public var tlsAvailable: Bool?
    public var tlsVerify: Bool?
    public var connectURLs: [String]?
    public var ldm: Bool?
    /// Present when the server authenticates with NKeys or JWTs: the client signs it.
    public var nonce: String?
    public var jetstream: Bool?

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id", version, proto, headers
        case maxPayload = "max_payload", authRequired = "auth_required"
        case tlsRequired = "tls_required", tlsAvailable = "tls_available", tlsVerify = "tls_verify"
        case connectURLs = "connect_urls", ldm, nonce, jetstream
    }

    public init() {}
}

public struct NATSProtocolError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// Set for refusals that repeat on every attempt (auth): logged once per cause.
    public var cause: String? = nil
    public var description: String { message }
}

/// Incremental parser of server → client traffic. Lines may end in CRLF or a bare LF,
/// ops are case-insensitive, fields are separated by runs of spaces or tabs.
public struct NATSServerParser {
    private var buffer: [UInt8] = []
    private var start = 0
    private var skipPayload = 0      // bytes of a large MSG payload (+CRLF) still to skip
    private var pending: (message: NATSMessage, headerBytes: Int, totalBytes: Int)? = nil  // a MSG waiting for its payload
    private var pendingReply: (seq: UInt64, totalBytes: Int)? = nil   // a reply to replyInbox waiting for its payload
    /// "_INBOX.<random>.": MSGs on `<replyInbox><digits>` with sid 1 come as `.pubAck`, without
    /// copying their subject or payload (one arrives per JetStream publish). Empty: none do.
    public var replyInbox: [UInt8] = []
    public let maxLineBytes: Int
    /// Payloads up to this size are kept; larger ones are skipped as they arrive.
    public let keepPayloadBytes: Int
    /// Largest MSG/HMSG payload size accepted (nats-server refuses max_payload above 64 MiB).
    static let maxMessageBytes = 64 << 20

    public init(maxLineBytes: Int = 1 << 20, keepPayloadBytes: Int = 4096) {
        self.maxLineBytes = maxLineBytes
        self.keepPayloadBytes = keepPayloadBytes
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete op, nil when more bytes are needed.
    public mutating func next() throws(NATSProtocolError) -> NATSServerOp? {
        while true {
            if skipPayload > 0 {
                let avail = buffer.count - start
                let n = min(avail, skipPayload)
                start += n
                skipPayload -= n
                if skipPayload > 0 { return nil }
            }
            if let r = pendingReply {
                guard buffer.count - start >= r.totalBytes + 2 else { compact(); return nil }
                pendingReply = nil
                let ack = buffer.withUnsafeBytes { NATSPubAck.parse(UnsafeRawBufferPointer(rebasing: $0[start..<(start + r.totalBytes)])) }
                start += r.totalBytes + 2
                return .pubAck(seq: r.seq, ack)
            }
            if let p = pending {
                guard buffer.count - start >= p.totalBytes + 2 else { compact(); return nil }
                pending = nil
                var m = p.message
                let body = buffer[start..<(start + p.totalBytes)]
                start += p.totalBytes + 2
                if p.headerBytes > 0 { NATSServerParser.parseStatus(body.prefix(p.headerBytes), into: &m) }
                m.payload = Array(body.dropFirst(p.headerBytes))
                return .msg(m)
            }
            guard let nl = newline(from: start) else {
                if buffer.count - start > maxLineBytes {
                    throw NATSProtocolError(message: "server sent a line longer than \(maxLineBytes) bytes")
                }
                compact()
                return nil
            }
            var lineEnd = nl
            if lineEnd > start && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let parsed: Line
            if let fast = msgLine(start, lineEnd) {
                parsed = fast
            } else {
                let line = Array(buffer[start..<lineEnd])
                if line.isEmpty { start = nl + 1; continue }
                parsed = try NATSServerParser.parseLine(line)
            }
            start = nl + 1
            switch parsed {
            case .op(let op): return op
            case .reply(let seq, let totalBytes): pendingReply = (seq, totalBytes)
            case .message(let m, let headerBytes, let totalBytes):
                if totalBytes <= keepPayloadBytes {
                    pending = (m, headerBytes, totalBytes)
                } else {
                    skipPayload = totalBytes + 2
                    return .msg(m)
                }
            }
        }
    }

    /// The index of the first LF at or after `from`.
    private func newline(from: Int) -> Int? {
        buffer.withUnsafeBytes { p in
            guard from < p.count, let hit = memchr(p.baseAddress! + from, 0x0A, p.count - from) else { return nil }
            return UnsafeRawPointer(hit) - p.baseAddress!
        }
    }

    /// A well-formed `MSG <subject> <sid> [reply] <#bytes>` (upper case; what nats-server sends
    /// for each PubAck, with a double space for the empty reply field) read in place, without
    /// copying the line: a reply to `replyInbox` with sid 1 whose payload is kept becomes
    /// `.reply`, any other MSG a message. Nil for anything else, which the general parser
    /// handles (and refuses when malformed).
    private func msgLine(_ from: Int, _ end: Int) -> Line? {
        buffer.withUnsafeBytes { p -> Line? in     // every index below stays under `end` ≤ p.count
            guard end - from > 4, p[from] == 0x4D, p[from + 1] == 0x53, p[from + 2] == 0x47,
                  p[from + 3] == 0x20 || p[from + 3] == 0x09 else { return nil }
            if let reply = pubAckLine(p, from + 4, end) { return reply }
            var subject = 0..<0, sid = 0..<0, size = 0..<0
            var count = 0
            var i = from + 4
            while true {
                while i < end && (p[i] == 0x20 || p[i] == 0x09) { i += 1 }
                guard i < end else { break }
                let f = i
                while i < end && p[i] != 0x20 && p[i] != 0x09 { i += 1 }
                switch count {
                case 0: subject = f..<i
                case 1: sid = f..<i
                case 2, 3: size = f..<i     // the last field is the size; a reply before it is ignored
                default: return nil
                }
                count += 1
            }
            guard count == 3 || count == 4, size.count <= 9 else { return nil }
            var total = 0
            for j in size {
                let d = p[j]
                guard d >= 0x30 && d <= 0x39 else { return nil }
                total = total * 10 + Int(d - 0x30)
            }
            guard total <= NATSServerParser.maxMessageBytes else { return nil }
            if total <= keepPayloadBytes, sid.count == 1, p[sid.lowerBound] == 0x31,
               let seq = NATSServerParser.replySequence(UnsafeRawBufferPointer(rebasing: p[subject]), inbox: replyInbox) {
                return .reply(seq: seq, totalBytes: total)
            }
            let m = NATSMessage(subject: Array(p[subject]), sid: Array(p[sid]), status: nil, statusText: "", payload: nil)
            return .message(m, headerBytes: 0, totalBytes: total)
        }
    }

    /// `<inbox><seq> 1  <size>` after "MSG ", byte for byte as nats-server writes a PubAck's line
    /// (one space or two before the size), with a payload to keep; nil for anything else, which
    /// the field split reads.
    private func pubAckLine(_ p: UnsafeRawBufferPointer, _ from: Int, _ end: Int) -> Line? {
        let n = replyInbox.count
        guard n > 0, end - from >= n + 5,      // the inbox, a digit, " 1 ", a digit
              replyInbox.withUnsafeBytes({ memcmp(p.baseAddress! + from, $0.baseAddress!, n) }) == 0 else { return nil }
        var i = from + n
        let digits = i
        var seq: UInt64 = 0
        while i < end && i - digits < 19 && p[i] >= 0x30 && p[i] <= 0x39 {   // 19 digits cannot overflow
            seq = seq * 10 + UInt64(p[i] - 0x30)
            i += 1
        }
        guard i > digits, end - i > 3, p[i] == 0x20, p[i + 1] == 0x31, p[i + 2] == 0x20 else { return nil }
        i += 3
        if p[i] == 0x20 { i += 1 }          // after the empty reply field
        let size = i
        var total = 0
        while i < end && i - size < 9 && p[i] >= 0x30 && p[i] <= 0x39 {
            total = total * 10 + Int(p[i] - 0x30)
            i += 1
        }
        guard i == end, i > size, total <= keepPayloadBytes else { return nil }
        return .reply(seq: seq, totalBytes: total)
    }

    /// The sequence number in `<inbox><digits>` (at most 19 digits: no overflow), nil for any
    /// other subject or an empty inbox.
    static func replySequence(_ subject: UnsafeRawBufferPointer, inbox: [UInt8]) -> UInt64? {
        guard !inbox.isEmpty, subject.count > inbox.count, subject.count <= inbox.count + 19,
              inbox.withUnsafeBytes({ memcmp(subject.baseAddress!, $0.baseAddress!, inbox.count) }) == 0 else { return nil }
        var n: UInt64 = 0
        for k in inbox.count..<subject.count {
            let b = subject[k]
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + UInt64(b - 0x30)
        }
        return n
    }

    /// `NATS/1.0 503 No Responders` → status 503 and its text; other header lines are ignored.
    static func parseStatus(_ headers: ArraySlice<UInt8>, into m: inout NATSMessage) {
        let first = headers.prefix { $0 != 0x0D && $0 != 0x0A }
        let fields = first.split(maxSplits: 2, whereSeparator: { $0 == 0x20 || $0 == 0x09 })
        guard fields.count >= 2, fields[0].elementsEqual("NATS/1.0".utf8), fields[1].count == 3,
              let code = Int(String(decoding: fields[1], as: UTF8.self)) else { return }
        m.status = code
        if fields.count == 3 { m.statusText = String(decoding: fields[2].prefix(200), as: UTF8.self) }
    }

    enum Line {
        case op(NATSServerOp)
        case message(NATSMessage, headerBytes: Int, totalBytes: Int)
        case reply(seq: UInt64, totalBytes: Int)
    }

    private mutating func compact() {
        if start > 0 && start > buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }

    static func parseLine(_ line: [UInt8]) throws(NATSProtocolError) -> Line {
        // Op name: up to the first space/tab.
        var i = 0
        while i < line.count && line[i] != 0x20 && line[i] != 0x09 { i += 1 }
        let op = String(decoding: line[0..<i], as: UTF8.self).uppercased()
        let rest = line[i...]
        switch op {
        case "PING": return .op(.ping)
        case "PONG": return .op(.pong)
        case "+OK": return .op(.ok)
        case "-ERR":
            var text = rest.drop { $0 == 0x20 || $0 == 0x09 }
            while let l = text.last, l == 0x20 || l == 0x09 { text = text.dropLast() }
            if text.first == 0x27 { text = text.dropFirst() }     // the text comes in single quotes
            if text.last == 0x27 { text = text.dropLast() }
            return .op(.err(String(decoding: text, as: UTF8.self)))
        case "INFO":
            do {
                let info = try JSONDecoder().decode(NATSInfo.self, from: Data(rest))
                return .op(.info(info))
            } catch {
                throw NATSProtocolError(message: "server sent an INFO that is not valid JSON")
            }
        case "MSG", "HMSG":
            // MSG <subject> <sid> [reply] <#bytes>; HMSG <subject> <sid> [reply] <#hdr> <#total>.
            let fields = rest.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 })
            let headers = op == "HMSG"
            // Sizes are bounded by NATS's own hard limit on max_payload (64 MiB), so `n + 2`
            // cannot overflow and a hostile size cannot make the connection swallow everything after it.
            func size(_ f: ArraySlice<UInt8>?) -> Int? {
                guard let f, f.count <= 9, let n = Int(String(decoding: f, as: UTF8.self)), n >= 0,
                      n <= NATSServerParser.maxMessageBytes else { return nil }
                return n
            }
            let minFields = headers ? 4 : 3
            guard fields.count >= minFields, fields.count <= minFields + 1, let total = size(fields.last),
                  let hdr = headers ? size(fields[fields.count - 2]) : 0, hdr <= total else {
                throw NATSProtocolError(message: "server sent a malformed \(op) line")
            }
            let m = NATSMessage(subject: Array(fields[0]), sid: Array(fields[1]), status: nil, statusText: "", payload: nil)
            return .message(m, headerBytes: hdr, totalBytes: total)
        default:
            let shown = String(decoding: line.prefix(40), as: UTF8.self)
            throw NATSProtocolError(message: "server sent an unknown operation: \(shown.debugDescription)")
        }
    }
}

/// Bytes we send.
enum NATSClientCommands {
    struct Auth {
        var user: String?, pass: String?, token: String?
        var jwt: String?, nkey: String?, sig: String?
    }

    static func connect(_ auth: Auth, headers: Bool, name: String) -> [UInt8] {
        var json = "{\"verbose\":false,\"pedantic\":false,\"lang\":\"swift\",\"version\":\"\(logrelayVersion)\",\"protocol\":1"
        json += ",\"name\":\(JSONText.quote(name))"
        if headers { json += ",\"headers\":true,\"no_responders\":true" }
        if let t = auth.token { json += ",\"auth_token\":\(JSONText.quote(t))" }
        if let u = auth.user { json += ",\"user\":\(JSONText.quote(u))" }
        if let p = auth.pass { json += ",\"pass\":\(JSONText.quote(p))" }
        if let j = auth.jwt { json += ",\"jwt\":\(JSONText.quote(j))" }
        if let k = auth.nkey { json += ",\"nkey\":\(JSONText.quote(k))" }
        if let s = auth.sig { json += ",\"sig\":\(JSONText.quote(s))" }
        json += "}"
        return Array("CONNECT \(json)\r\nPING\r\n".utf8)
    }

    static func subscribe(_ subject: String, sid: Int) -> [UInt8] { Array("SUB \(subject) \(sid)\r\n".utf8) }

    static let ping = Array("PING\r\n".utf8)
    static let pong = Array("PONG\r\n".utf8)
}

/// A JetStream publish reply: `{"stream":"LOGS","seq":7}`, `{…,"duplicate":true}`, or
/// `{"error":{"code":503,"err_code":10077,"description":"…"},…}`. Parsed on bytes: one arrives
/// per published line.
public enum NATSPubAck: Equatable, Sendable {
    case stored(seq: UInt64, duplicate: Bool)
    case error(code: Int, errCode: Int, description: String)

    /// nil when the payload is not a PubAck (not a JSON object, or neither `error` nor a
    /// non-empty `stream` with a `seq`).
    public static func parse(_ p: [UInt8]) -> NATSPubAck? { p.withUnsafeBytes { parse($0) } }

    /// Reads the PubAck where it lies (the parser's buffer).
    static func parse(_ p: UnsafeRawBufferPointer) -> NATSPubAck? {
        guard p.count <= 4096 else { return nil }
        if let ack = PubAckReader.stored(p) { return ack }
        var r = PubAckReader(bytes: p)
        return r.ack()
    }
}

/// A tiny JSON reader for the fields of a PubAck; anything else is skipped with a depth limit.
/// Every read is checked against `end` (raw buffer subscripts are not checked in release builds).
struct PubAckReader {
    let bytes: UnsafeRawBufferPointer
    var i = 0
    let end: Int
    static let maxDepth = 16

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        end = bytes.count
    }

    mutating func ack() -> NATSPubAck? {
        var stream = false, seq: UInt64? = nil, duplicate = false
        var error: (Int, Int, String)? = nil
        let ok = object { r, key in
            switch key {
            case .stream: guard let s = r.string() else { return false }; stream = !s.isEmpty
            case .seq: guard let n = r.unsigned() else { return false }; seq = n
            case .duplicate: guard let b = r.bool() else { return false }; duplicate = b
            case .error:
                var code = 0, errCode = 0, text = ""
                guard r.object({ r, k in
                    switch k {
                    case .code: guard let n = r.unsigned(), n < 1_000_000 else { return false }; code = Int(n)
                    case .errCode: guard let n = r.unsigned(), n < 1_000_000 else { return false }; errCode = Int(n)
                    case .description: guard let s = r.string() else { return false }; text = String(decoding: s.prefix(300), as: UTF8.self)
                    default: return r.skipValue(depth: 1)
                    }
                    return true
                }) else { return false }
                error = (code, errCode, text)
            default: return r.skipValue(depth: 0)
            }
            return true
        }
        guard ok else { return nil }
        skipSpace()
        guard i == end else { return nil }
        if let (c, e, t) = error { return .error(code: c, errCode: e, description: t) }
        guard stream, let seq else { return nil }
        return .stored(seq: seq, duplicate: duplicate)
    }

    mutating func skipSpace() {
        while i < end, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    mutating func eat(_ c: UInt8) -> Bool {
        skipSpace()
        guard i < end, bytes[i] == c else { return false }
        i += 1
        return true
    }

    /// The keys a PubAck's fields are recognised by, compared on bytes.
    enum Key {
        case stream, seq, duplicate, error, code, errCode, description, other

        init(_ k: UnsafeRawBufferPointer) {
            func is_(_ s: StaticString) -> Bool { PubAckReader.equal(k, s) }
            self = is_("stream") ? .stream : is_("seq") ? .seq : is_("duplicate") ? .duplicate : is_("error") ? .error
                : is_("code") ? .code : is_("err_code") ? .errCode : is_("description") ? .description : .other
        }
    }

    /// `{ "key": value, … }`; `field` reads the value of each key (false: malformed).
    mutating func object(_ field: (inout PubAckReader, Key) -> Bool) -> Bool {
        guard eat(0x7B) else { return false }
        if eat(0x7D) { return true }
        repeat {
            skipSpace()
            guard let k = string(), eat(0x3A) else { return false }
            let key = Key(k)
            skipSpace()
            guard field(&self, key) else { return false }
        } while eat(0x2C)
        return eat(0x7D)
    }

    /// `{"stream":"NAME", "seq":N}` or `{…, "seq":N,"duplicate": true}`, byte for byte as
    /// nats-server writes the PubAck of a stored message: read without walking the JSON. Nil
    /// for anything else (a domain, an error, other spacing), which `ack()` reads.
    static func stored(_ p: UnsafeRawBufferPointer) -> NATSPubAck? {
        let open: StaticString = #"{"stream":""#, seqKey: StaticString = #"", "seq":"#
        let duplicate: StaticString = #","duplicate": true}"#
        guard p.count > open.utf8CodeUnitCount, equal(UnsafeRawBufferPointer(rebasing: p[..<open.utf8CodeUnitCount]), open) else { return nil }
        var i = open.utf8CodeUnitCount
        let name = i
        while i < p.count && p[i] != 0x22 && p[i] != 0x5C { i += 1 }
        guard i > name, p.count - i > seqKey.utf8CodeUnitCount,
              equal(UnsafeRawBufferPointer(rebasing: p[i..<(i + seqKey.utf8CodeUnitCount)]), seqKey) else { return nil }
        i += seqKey.utf8CodeUnitCount
        let digits = i
        var seq: UInt64 = 0
        while i < p.count, p[i] >= 0x30 && p[i] <= 0x39 {
            let (m, o1) = seq.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(p[i] - 0x30))
            if o1 || o2 { return nil }
            seq = a
            i += 1
        }
        guard i > digits else { return nil }
        if i == p.count - 1 && p[i] == 0x7D { return .stored(seq: seq, duplicate: false) }
        if equal(UnsafeRawBufferPointer(rebasing: p[i...]), duplicate) { return .stored(seq: seq, duplicate: true) }
        return nil
    }

    static func equal(_ a: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        guard a.count == s.utf8CodeUnitCount else { return false }
        for k in 0..<a.count where a[k] != s.utf8Start[k] { return false }
        return true
    }

    /// A string's raw bytes between the quotes (escapes kept as written: the keys and values
    /// a PubAck carries need no unescaping to be recognized or shown).
    mutating func string() -> UnsafeRawBufferPointer? {
        skipSpace()
        guard i < end, bytes[i] == 0x22 else { return nil }
        let start = i + 1
        var j = start
        while j < end {
            switch bytes[j] {
            case 0x5C: j += 2
            case 0x22:
                i = j + 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<j])
            default: j += 1
            }
        }
        return nil
    }

    mutating func unsigned() -> UInt64? {
        skipSpace()
        var n: UInt64 = 0
        let start = i
        while i < end, bytes[i] >= 0x30 && bytes[i] <= 0x39 {
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(bytes[i] - 0x30))
            if o1 || o2 { return nil }
            n = a
            i += 1
        }
        return i > start ? n : nil
    }

    mutating func bool() -> Bool? {
        skipSpace()
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= end else { return false }
        guard PubAckReader.equal(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)]), word) else { return false }
        i += n
        return true
    }

    mutating func skipValue(depth: Int) -> Bool {
        guard depth < PubAckReader.maxDepth else { return false }
        skipSpace()
        guard i < end else { return false }
        switch bytes[i] {
        case 0x22: return string() != nil
        case 0x7B: return object { r, _ in r.skipValue(depth: depth + 1) }
        case 0x5B:
            i += 1
            if eat(0x5D) { return true }
            repeat { guard skipValue(depth: depth + 1) else { return false } } while eat(0x2C)
            return eat(0x5D)
        case 0x74: return literal("true")
        case 0x66: return literal("false")
        case 0x6E: return literal("null")
        default:
            let start = i
            while i < end, (bytes[i] >= 0x30 && bytes[i] <= 0x39) || bytes[i] == 0x2D || bytes[i] == 0x2B
                    || bytes[i] == 0x2E || bytes[i] == 0x65 || bytes[i] == 0x45 { i += 1 }
            return i > start
        }
    }
}

public let logrelayVersion = "0.1.0"
