// NATS client protocol, publisher side: the incremental parser for what a server
// sends (INFO, PING, PONG, +OK, -ERR, MSG/HMSG) and the bytes we send (CONNECT, PUB).
import FoundationEssentials

public enum NATSServerOp: Equatable, Sendable {
    case info(NATSInfo)
    case ping
    case pong
    case ok
    case err(String)          // text without quotes, as sent
    case msg                  // a delivered message (we never subscribe; skipped)
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

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id", version, proto, headers
        case maxPayload = "max_payload", authRequired = "auth_required"
        case tlsRequired = "tls_required", tlsAvailable = "tls_available", tlsVerify = "tls_verify"
        case connectURLs = "connect_urls", ldm
    }

    public init() {}
}

public struct NATSProtocolError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Incremental parser of server → client traffic. Lines may end in CRLF or a bare LF,
/// ops are case-insensitive, fields are separated by runs of spaces or tabs.
public struct NATSServerParser {
    private var buffer: [UInt8] = []
    private var start = 0
    private var skipPayload = 0      // bytes of a MSG payload (+CRLF) still to skip
    public let maxLineBytes: Int
    /// Largest MSG/HMSG payload size accepted (nats-server refuses max_payload above 64 MiB).
    static let maxMessageBytes = 64 << 20

    public init(maxLineBytes: Int = 1 << 20) { self.maxLineBytes = maxLineBytes }

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
            guard let nl = buffer[start...].firstIndex(of: 0x0A) else {
                if buffer.count - start > maxLineBytes {
                    throw NATSProtocolError(message: "server sent a line longer than \(maxLineBytes) bytes")
                }
                compact()
                return nil
            }
            var lineEnd = nl
            if lineEnd > start && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = Array(buffer[start..<lineEnd])
            start = nl + 1
            if line.isEmpty { continue }
            return try NATSServerParser.parseLine(line, skip: &skipPayload)
        }
    }

    private mutating func compact() {
        if start > 0 && start > buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }

    static func parseLine(_ line: [UInt8], skip: inout Int) throws(NATSProtocolError) -> NATSServerOp {
        // Op name: up to the first space/tab.
        var i = 0
        while i < line.count && line[i] != 0x20 && line[i] != 0x09 { i += 1 }
        let op = String(decoding: line[0..<i], as: UTF8.self).uppercased()
        let rest = line[i...]
        switch op {
        case "PING": return .ping
        case "PONG": return .pong
        case "+OK": return .ok
        case "-ERR":
            var text = rest.drop { $0 == 0x20 || $0 == 0x09 }
            while let l = text.last, l == 0x20 || l == 0x09 { text = text.dropLast() }
            if text.first == 0x27 { text = text.dropFirst() }     // the text comes in single quotes
            if text.last == 0x27 { text = text.dropLast() }
            return .err(String(decoding: text, as: UTF8.self))
        case "INFO":
            do {
                let info = try JSONDecoder().decode(NATSInfo.self, from: Data(rest))
                return .info(info)
            } catch {
                throw NATSProtocolError(message: "server sent an INFO that is not valid JSON")
            }
        case "MSG", "HMSG":
            // The last field is the total payload size; skip payload + CRLF.
            let fields = rest.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 })
            // Bounded by NATS's own hard limit on max_payload (64 MiB), so `n + 2` cannot overflow
            // and a hostile size cannot make the connection swallow everything that follows.
            guard let last = fields.last, let n = Int(String(decoding: last, as: UTF8.self)), n >= 0,
                  n <= NATSServerParser.maxMessageBytes else {
                throw NATSProtocolError(message: "server sent a malformed \(op) line")
            }
            skip = n + 2
            return .msg
        default:
            let shown = String(decoding: line.prefix(40), as: UTF8.self)
            throw NATSProtocolError(message: "server sent an unknown operation: \(shown.debugDescription)")
        }
    }
}

/// Bytes we send.
enum NATSClientCommands {
    static func connect(user: String?, pass: String?, token: String?, headers: Bool, name: String) -> [UInt8] {
        var json = "{\"verbose\":false,\"pedantic\":false,\"lang\":\"swift\",\"version\":\"\(logrelayVersion)\",\"protocol\":1"
        json += ",\"name\":\(JSONText.quote(name))"
        if headers { json += ",\"headers\":true,\"no_responders\":true" }
        if let t = token { json += ",\"auth_token\":\(JSONText.quote(t))" }
        if let u = user { json += ",\"user\":\(JSONText.quote(u))" }
        if let p = pass { json += ",\"pass\":\(JSONText.quote(p))" }
        json += "}"
        return Array("CONNECT \(json)\r\nPING\r\n".utf8)
    }

    static let ping = Array("PING\r\n".utf8)
    static let pong = Array("PONG\r\n".utf8)

}

public let logrelayVersion = "0.1.0"
