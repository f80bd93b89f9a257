// HTTP/1.1 for the plugin socket: an incremental request parser (bytes in → requests out,
// no sockets) and a response writer.
//
// The daemon's Go client sends small Content-Length requests over persistent connections
// (protocol doc §1.2): empty or odd Host, no Content-Type, JSON body ending in "\n". The
// parser accepts exactly that and more (bare LF, chunked bodies, pipelining), and turns
// anything it cannot serve into a status code the caller answers before closing.

public struct HTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var keepAlive: Bool

    public init(method: String, path: String, headers: [(name: String, value: String)] = [], body: [UInt8] = [], keepAlive: Bool = true) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        for h in headers where HTTPText.equalsIgnoringCase(h.name, name) { return h.value }
        return nil
    }
}

public enum HTTPParseResult: Sendable {
    case request(HTTPRequest)
    case needMore
    /// The request cannot be served: answer with `status` and close the connection.
    case failure(status: Int, message: String)
}

public struct HTTPRequestParser: Sendable {
    public let maxHeaderBytes: Int
    public let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    /// First byte not yet consumed; earlier bytes are dropped lazily by `append`.
    private var start = 0
    /// Header-section search state, so split input is not rescanned from the beginning.
    private var scanFrom = 0
    private var lineStart = 0
    /// The parsed request head, once its header section is complete, waiting for the body.
    private var head: Head?
    private var body: [UInt8] = []
    private var bodyComplete = false
    private var chunkPhase = ChunkPhase.size
    private var trailerBytes = 0
    /// Sticky: after a failure the connection is answered and closed, never parsed further.
    private var failed: (status: Int, message: String)?

    private struct Head {
        var method: String
        var path: String
        var headers: [(name: String, value: String)]
        var keepAlive: Bool
        var body: BodyKind
    }

    private enum BodyKind { case length(Int), chunked }
    private enum ChunkPhase { case size, data(Int), dataEnd, trailer }

    /// Longest chunk-size line (size plus extensions) accepted.
    private static let maxChunkLine = 4096

    public init(maxHeaderBytes: Int = 16 * 1024, maxBodyBytes: Int = 4 * 1024 * 1024) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard failed == nil, bytes.count > 0 else { return }
        // Drop consumed bytes now rather than after each request: cheap when all was consumed,
        // and amortised otherwise.
        if start > 0 && (start == buffer.count || start >= 4096 && start * 2 >= buffer.count) {
            buffer.removeFirst(start)
            scanFrom = max(0, scanFrom - start)  // (only meaningful while reading a head)
            lineStart = max(0, lineStart - start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete request (consuming it), .needMore, or .failure — after a
    /// failure the connection must be answered and closed.
    public mutating func next() -> HTTPParseResult {
        if let f = failed { return .failure(status: f.status, message: f.message) }
        if head == nil {
            if let failure = parseHead() {
                failed = failure
                return .failure(status: failure.status, message: failure.message)
            }
            if head == nil { return .needMore }
        }
        if let failure = parseBody() {
            failed = failure
            return .failure(status: failure.status, message: failure.message)
        }
        guard let done = head, bodyComplete else { return .needMore }
        let request = HTTPRequest(method: done.method, path: done.path, headers: done.headers, body: body, keepAlive: done.keepAlive)
        head = nil
        body = []
        chunkPhase = .size
        trailerBytes = 0
        scanFrom = start
        lineStart = start
        return .request(request)
    }

    // MARK: - Head

    private typealias Failure = (status: Int, message: String)

    /// Looks for a complete header section and parses it into `head`.
    /// Returns a failure, or nil (with `head` set when complete).
    private mutating func parseHead() -> Failure? {
        var end = -1
        while scanFrom < buffer.count {
            guard let lf = buffer[scanFrom...].firstIndex(of: HTTPText.lf) else {
                scanFrom = buffer.count
                break
            }
            var lineEnd = lf
            if lineEnd > lineStart && buffer[lineEnd - 1] == HTTPText.cr { lineEnd -= 1 }
            if lineStart == start {
                if lineEnd == lineStart {
                    start = lf + 1  // an empty line before a request is ignored (RFC 9112 §2.2)
                } else if let failure = parseRequestLine(lineStart, lineEnd).failure {
                    // Reject a bad request line at once: garbage need not wait for a blank line.
                    return failure
                }
            } else if lineEnd == lineStart {
                end = lf + 1
                scanFrom = end
                break
            }
            lineStart = lf + 1
            scanFrom = lf + 1
        }
        if end < 0 {
            if buffer.count - start > maxHeaderBytes { return (431, "request header section too large") }
            return nil
        }
        if end - start > maxHeaderBytes { return (431, "request header section too large") }

        // Parse the complete section.
        let firstLF = buffer[start..<end].firstIndex(of: HTTPText.lf)!
        let requestLineEnd = firstLF > start && buffer[firstLF - 1] == HTTPText.cr ? firstLF - 1 : firstLF
        let line = parseRequestLine(start, requestLineEnd)
        guard let method = line.method, let path = line.path, let minor = line.minor else { return line.failure }

        var headers: [(name: String, value: String)] = []
        var contentLength: Int?
        var transferCodings: [String] = []
        var hasTransferEncoding = false
        var close = false
        var keepAliveToken = false
        var i = firstLF + 1
        while true {
            let lf = buffer[i..<end].firstIndex(of: HTTPText.lf)!
            var lineEnd = lf
            if lineEnd > i && buffer[lineEnd - 1] == HTTPText.cr { lineEnd -= 1 }
            if lineEnd == i { break }
            guard let field = parseField(i, lineEnd) else { return (400, "malformed header line") }
            headers.append(field)
            switch field.name.lowercased() {
            case "content-length":
                guard let n = HTTPText.parseDecimal(field.value) else { return (400, "invalid Content-Length") }
                if let previous = contentLength, previous != n { return (400, "conflicting Content-Length headers") }
                contentLength = n
            case "transfer-encoding":
                hasTransferEncoding = true
                transferCodings += HTTPText.listElements(field.value)
            case "connection":
                for token in HTTPText.listElements(field.value) {
                    if HTTPText.equalsIgnoringCase(token, "close") { close = true }
                    if HTTPText.equalsIgnoringCase(token, "keep-alive") { keepAliveToken = true }
                }
            default:
                break
            }
            i = lf + 1
        }

        let bodyKind: BodyKind
        if hasTransferEncoding {
            guard !transferCodings.isEmpty else { return (400, "empty Transfer-Encoding") }
            guard transferCodings.count == 1, HTTPText.equalsIgnoringCase(transferCodings[0], "chunked") else {
                return (501, "unsupported Transfer-Encoding")
            }
            // Both framings at once is how requests are smuggled: refuse (RFC 9112 §6.1).
            guard contentLength == nil else { return (400, "both Content-Length and Transfer-Encoding") }
            bodyKind = .chunked
        } else if let n = contentLength, n > maxBodyBytes {
            return (413, "request body too large")
        } else {
            bodyKind = .length(contentLength ?? 0)
        }

        let keepAlive = minor == 1 ? !close : (keepAliveToken && !close)
        head = Head(method: method, path: path, headers: headers, keepAlive: keepAlive, body: bodyKind)
        start = end
        body = []
        bodyComplete = false
        return nil
    }

    private struct RequestLine {
        var method: String?
        var path: String?
        var minor: Int?
        var failure: Failure?
    }

    /// `METHOD SP target SP HTTP/1.x`, with exactly one space between the parts.
    private func parseRequestLine(_ from: Int, _ to: Int) -> RequestLine {
        let bad = RequestLine(failure: (400, "malformed request line"))
        guard let sp1 = buffer[from..<to].firstIndex(of: HTTPText.sp), sp1 > from,
              let sp2 = buffer[(sp1 + 1)..<to].firstIndex(of: HTTPText.sp), sp2 > sp1 + 1 else { return bad }
        for k in from..<sp1 where !HTTPText.isTokenChar(buffer[k]) { return bad }
        for k in (sp1 + 1)..<sp2 where buffer[k] <= HTTPText.sp || buffer[k] >= 0x7f { return bad }
        // Version: "HTTP/" DIGIT "." DIGIT.
        let version = buffer[(sp2 + 1)..<to]
        guard version.count == 8, version.starts(with: Array("HTTP/".utf8)),
              HTTPText.isDigit(buffer[sp2 + 6]), buffer[sp2 + 7] == UInt8(ascii: "."), HTTPText.isDigit(buffer[sp2 + 8]) else {
            return bad
        }
        let major = Int(buffer[sp2 + 6] - UInt8(ascii: "0"))
        let minor = Int(buffer[sp2 + 8] - UInt8(ascii: "0"))
        guard major == 1, minor <= 1 else {
            return RequestLine(failure: (505, "HTTP version not supported"))
        }
        return RequestLine(
            method: String(decoding: buffer[from..<sp1], as: UTF8.self),
            path: String(decoding: buffer[(sp1 + 1)..<sp2], as: UTF8.self),
            minor: minor)
    }

    /// `name: value` with optional whitespace around the value; nil if malformed
    /// (including obs-fold continuation lines, which start with whitespace).
    private func parseField(_ from: Int, _ to: Int) -> (name: String, value: String)? {
        guard let colon = buffer[from..<to].firstIndex(of: UInt8(ascii: ":")), colon > from else { return nil }
        for k in from..<colon where !HTTPText.isTokenChar(buffer[k]) { return nil }
        var a = colon + 1
        var b = to
        while a < b && HTTPText.isWhitespace(buffer[a]) { a += 1 }
        while b > a && HTTPText.isWhitespace(buffer[b - 1]) { b -= 1 }
        for k in a..<b {
            let c = buffer[k]
            if (c < HTTPText.sp && c != HTTPText.tab) || c == 0x7f { return nil }  // CTLs, bare CR included
        }
        return (String(decoding: buffer[from..<colon], as: UTF8.self), String(decoding: buffer[a..<b], as: UTF8.self))
    }

    // MARK: - Body

    /// Consumes body bytes for `head`; sets `bodyComplete` when done.
    private mutating func parseBody() -> Failure? {
        guard let h = head, !bodyComplete else { return nil }
        switch h.body {
        case .length(let n):
            if buffer.count - start >= n {
                body = Array(buffer[start..<(start + n)])
                start += n
                bodyComplete = true
            }
            return nil
        case .chunked:
            return parseChunked()
        }
    }

    /// Decodes as much of a chunked body as is buffered (RFC 9112 §7.1).
    private mutating func parseChunked() -> Failure? {
        while true {
            switch chunkPhase {
            case .size:
                guard let lf = buffer[start...].firstIndex(of: HTTPText.lf) else {
                    return buffer.count - start > Self.maxChunkLine ? (400, "chunk size line too long") : nil
                }
                if lf - start > Self.maxChunkLine { return (400, "chunk size line too long") }
                var lineEnd = lf
                if lineEnd > start && buffer[lineEnd - 1] == HTTPText.cr { lineEnd -= 1 }
                var k = start
                var size = 0
                while k < lineEnd, let digit = HTTPText.hexValue(buffer[k]) {
                    size = size * 16 + digit
                    if size > maxBodyBytes - body.count { return (413, "request body too large") }
                    k += 1
                }
                guard k > start else { return (400, "malformed chunk size") }
                // Only whitespace then extensions (";name=value", ignored) may follow.
                while k < lineEnd && HTTPText.isWhitespace(buffer[k]) { k += 1 }
                guard k == lineEnd || buffer[k] == UInt8(ascii: ";") else { return (400, "malformed chunk size") }
                for j in k..<lineEnd where (buffer[j] < HTTPText.sp && buffer[j] != HTTPText.tab) || buffer[j] == 0x7f {
                    return (400, "malformed chunk extension")
                }
                start = lf + 1
                chunkPhase = size == 0 ? .trailer : .data(size)
            case .data(let remaining):
                let k = min(remaining, buffer.count - start)
                if k == 0 { return nil }
                body.append(contentsOf: buffer[start..<(start + k)])
                start += k
                chunkPhase = remaining == k ? .dataEnd : .data(remaining - k)
            case .dataEnd:
                guard start < buffer.count else { return nil }
                if buffer[start] == HTTPText.lf {
                    start += 1
                } else if buffer[start] == HTTPText.cr {
                    guard start + 1 < buffer.count else { return nil }
                    guard buffer[start + 1] == HTTPText.lf else { return (400, "malformed chunk end") }
                    start += 2
                } else {
                    return (400, "malformed chunk end")
                }
                chunkPhase = .size
            case .trailer:
                // Trailer fields are allowed but ignored; an empty line ends the body.
                guard let lf = buffer[start...].firstIndex(of: HTTPText.lf) else {
                    return trailerBytes + buffer.count - start > maxHeaderBytes ? (431, "trailer section too large") : nil
                }
                trailerBytes += lf + 1 - start
                if trailerBytes > maxHeaderBytes { return (431, "trailer section too large") }
                var lineEnd = lf
                if lineEnd > start && buffer[lineEnd - 1] == HTTPText.cr { lineEnd -= 1 }
                let empty = lineEnd == start
                if !empty && parseField(start, lineEnd) == nil { return (400, "malformed trailer field") }
                start = lf + 1
                if empty {
                    bodyComplete = true
                    return nil
                }
            }
        }
    }
}

public enum HTTPResponse {
    /// `HTTP/1.1 <status> <reason>`, Content-Type, Content-Length, `Connection: close` when
    /// not keeping the connection, the extra headers, a blank line, then the body.
    public static func serialize(status: Int, body: [UInt8], contentType: String = "application/json", keepAlive: Bool, extraHeaders: [(String, String)] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + body.count)
        appendHead(&out, status: status, contentType: contentType, framing: ("Content-Length", String(body.count)),
                   keepAlive: keepAlive, extraHeaders: extraHeaders)
        out += body
        return out
    }

    /// The head of a streamed response (`Transfer-Encoding: chunked`, no Content-Length),
    /// for ReadLogs. Follow it with `chunk(_:)` pieces and `lastChunk`.
    public static func serializeChunkedHead(status: Int, contentType: String = "application/octet-stream", keepAlive: Bool, extraHeaders: [(String, String)] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        appendHead(&out, status: status, contentType: contentType, framing: ("Transfer-Encoding", "chunked"),
                   keepAlive: keepAlive, extraHeaders: extraHeaders)
        return out
    }

    /// Appends one chunk of a chunked body (nothing for empty data: an empty chunk would end the body).
    public static func appendChunk(_ data: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        guard data.count > 0 else { return }
        out += Array(String(data.count, radix: 16).utf8)
        out += crlf
        out.append(contentsOf: data)
        out += crlf
    }

    /// Ends a chunked body.
    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }

    private static let crlf: [UInt8] = [HTTPText.cr, HTTPText.lf]

    /// Status line and headers up to and including the blank line.
    private static func appendHead(_ out: inout [UInt8], status: Int, contentType: String, framing: (String, String),
                                   keepAlive: Bool, extraHeaders: [(String, String)]) {
        out += Array("HTTP/1.1 \(status) \(reasonPhrase(status))\r\n".utf8)
        appendHeader(&out, "Content-Type", contentType)
        appendHeader(&out, framing.0, framing.1)
        if !keepAlive { appendHeader(&out, "Connection", "close") }
        for (name, value) in extraHeaders { appendHeader(&out, name, value) }
        out += crlf
    }

    private static func appendHeader(_ out: inout [UInt8], _ name: String, _ value: String) {
        out += Array(name.utf8)
        out += [UInt8(ascii: ":"), HTTPText.sp]
        out += Array(value.utf8)
        out += crlf
    }
}

/// Byte classes and small helpers shared by the parser and writer.
fileprivate enum HTTPText {
    static let cr: UInt8 = 0x0d
    static let lf: UInt8 = 0x0a
    static let sp: UInt8 = 0x20
    static let tab: UInt8 = 0x09

    static func isWhitespace(_ c: UInt8) -> Bool { c == sp || c == tab }
    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// RFC 9110 tchar.
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), 0x30...0x39:
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: return Int(c - 0x30)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// Digits only (no sign, no list); nil if not. Saturates instead of overflowing:
    /// any huge value is simply "too large" to the caller.
    static func parseDecimal(_ s: String) -> Int? {
        guard !s.isEmpty else { return nil }
        var value = 0
        for c in s.utf8 {
            guard isDigit(c) else { return nil }
            value = min(value * 10 + Int(c - 0x30), 1 << 53)
        }
        return value
    }

    /// Elements of a comma-separated header list, trimmed, empty ones dropped.
    static func listElements(_ s: String) -> [String] {
        s.split(separator: ",").compactMap { part in
            let trimmed = part.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
            return trimmed.isEmpty ? nil : String(trimmed)
        }
    }

    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8) { lower($0) == lower($1) }
    }

    private static func lower(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c + 32 : c
    }
}
