// The incremental HTTP/1.1 response parser of the HTTP sinks (Logentries' webhook
// ingestion): bytes in, complete responses out. It reads the status line and the headers
// (bounded), skips the body without holding it (Content-Length, chunked, none for 1xx, 204
// and 304, or everything up to the connection's end), drops interim 1xx responses, and says
// whether the connection may carry the next request. Nothing a server sends can make it hold
// more than the header limit plus one read.

public struct HTTPStatusResponse: Equatable, Sendable {
    public var status: Int
    /// The connection may carry another request after this response.
    public var keepAlive: Bool
}

public struct HTTPResponseError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

public struct HTTPResponseParser {
    private enum State: Equatable {
        case statusLine
        case headers
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case failed
    }

    public static let defaultMaxHeadBytes = 16 * 1024

    public let maxHeadBytes: Int
    private var state: State = .statusLine
    private var buffer: [UInt8] = []
    private var start = 0
    /// Head bytes (status line and headers, or a chunk's size line and trailers) seen so far.
    private var headBytes = 0
    private var failure: HTTPResponseError?

    // The response being read.
    private var status = 0
    private var http11 = true
    private var closeToken = false
    private var keepAliveToken = false
    private var contentLength: Int?
    private var chunked = false
    private var otherCoding = false

    public init(maxHeadBytes: Int = defaultMaxHeadBytes) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// Nothing of a response has been read (the server may close here without losing one).
    public var isBetweenResponses: Bool { state == .statusLine && headBytes == 0 && start == buffer.count }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024); start = 0 }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete response, or nil when more bytes are needed. A failure is final.
    public mutating func next() throws(HTTPResponseError) -> HTTPStatusResponse? {
        if let failure { throw failure }
        do throws(HTTPResponseError) {
            let r = try step()
            compact()
            return r
        } catch {
            state = .failed
            failure = error
            throw error
        }
    }

    /// The connection ended (EOF): the response that was read up to here, if its body ends
    /// with the connection; nil between responses; an error in the middle of one.
    public mutating func finish() throws(HTTPResponseError) -> HTTPStatusResponse? {
        if let failure { throw failure }
        if state == .untilClose {
            state = .statusLine
            return HTTPStatusResponse(status: status, keepAlive: false)
        }
        if isBetweenResponses { return nil }
        let e = HTTPResponseError(message: "the connection closed in the middle of a response")
        state = .failed
        failure = e
        throw e
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024)
            start = 0
        } else if start > 32 * 1024 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
    }

    private func fail(_ m: String) -> HTTPResponseError { HTTPResponseError(message: m) }

    /// A whole line (without CR LF or LF) from the buffer, counted against the head limit.
    private mutating func line() throws(HTTPResponseError) -> ArraySlice<UInt8>? {
        var i = start
        while i < buffer.count && buffer[i] != 0x0A { i += 1 }
        if i == buffer.count {
            if headBytes + (buffer.count - start) > maxHeadBytes { throw fail("the response head is larger than \(maxHeadBytes) bytes") }
            return nil
        }
        headBytes += i + 1 - start
        if headBytes > maxHeadBytes { throw fail("the response head is larger than \(maxHeadBytes) bytes") }
        var end = i
        if end > start && buffer[end - 1] == 0x0D { end -= 1 }
        let l = buffer[start..<end]
        start = i + 1
        return l
    }

    private mutating func step() throws(HTTPResponseError) -> HTTPStatusResponse? {
        while true {
            switch state {
            case .failed:
                throw failure ?? fail("failed")
            case .statusLine:
                guard let l = try line() else { return nil }
                try parseStatusLine(l)
                state = .headers
            case .headers:
                guard let l = try line() else { return nil }
                if !l.isEmpty { try parseHeader(l); continue }
                headBytes = 0
                if (100..<200).contains(status) {
                    // Interim (100 Continue, 103 Early Hints): the real response follows.
                    if status == 101 { throw fail("the server switched protocols (101)") }
                    resetResponse()
                    state = .statusLine
                    continue
                }
                if status == 204 || status == 304 { return complete() }
                if chunked { state = .chunkSize; continue }
                if otherCoding { state = .untilClose; continue }
                if let n = contentLength {
                    if n == 0 { return complete() }
                    state = .body(remaining: n)
                    continue
                }
                state = .untilClose
            case .body(let remaining):
                let n = min(remaining, buffer.count - start)
                start += n
                if n == remaining { return complete() }
                state = .body(remaining: remaining - n)
                return nil
            case .chunkSize:
                guard let l = try line() else { return nil }
                var size = 0, digits = 0
                for b in l {
                    guard let v = Self.hex(b) else {
                        if digits > 0 && (b == UInt8(ascii: ";") || b == 0x20 || b == 0x09) { break }
                        throw fail("invalid chunk size")
                    }
                    digits += 1
                    if digits > 15 { throw fail("chunk size too large") }
                    size = size << 4 | v
                }
                if digits == 0 { throw fail("invalid chunk size") }
                headBytes = 0
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, buffer.count - start)
                start += n
                if n < remaining { state = .chunkData(remaining: remaining - n); return nil }
                state = .chunkDataEnd
            case .chunkDataEnd:
                guard let l = try line() else { return nil }
                if !l.isEmpty { throw fail("chunk data longer than its size") }
                headBytes = 0
                state = .chunkSize
            case .trailers:
                guard let l = try line() else { return nil }
                if !l.isEmpty { continue }
                headBytes = 0
                return complete()
            case .untilClose:
                start = buffer.count
                return nil
            }
        }
    }

    private mutating func complete() -> HTTPStatusResponse {
        let keepAlive = !closeToken && (http11 || keepAliveToken)
        let r = HTTPStatusResponse(status: status, keepAlive: keepAlive)
        resetResponse()
        state = .statusLine
        headBytes = 0
        return r
    }

    private mutating func resetResponse() {
        status = 0
        http11 = true
        closeToken = false
        keepAliveToken = false
        contentLength = nil
        chunked = false
        otherCoding = false
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`
    private mutating func parseStatusLine(_ l: ArraySlice<UInt8>) throws(HTTPResponseError) {
        let b = Array(l)
        let prefix = Array("HTTP/1.".utf8)
        guard b.count >= 12, Array(b[0..<7]) == prefix, b[7] == UInt8(ascii: "0") || b[7] == UInt8(ascii: "1"),
              b[8] == 0x20 else {
            throw fail("not an HTTP/1.x status line")
        }
        http11 = b[7] == UInt8(ascii: "1")
        var code = 0
        for i in 9..<12 {
            guard b[i] >= 0x30 && b[i] <= 0x39 else { throw fail("invalid status code") }
            code = code * 10 + Int(b[i] - 0x30)
        }
        guard code >= 100 else { throw fail("invalid status code") }
        if b.count > 12 && b[12] != 0x20 { throw fail("invalid status code") }
        status = code
    }

    private mutating func parseHeader(_ l: ArraySlice<UInt8>) throws(HTTPResponseError) {
        guard let colon = l.firstIndex(of: UInt8(ascii: ":")), colon > l.startIndex else {
            throw fail("invalid header line")
        }
        let name = l[l.startIndex..<colon]
        guard name.allSatisfy(Self.isTokenByte) else { throw fail("invalid header name") }
        var v = l[(colon + 1)...]
        while let f = v.first, f == 0x20 || f == 0x09 { v = v.dropFirst() }
        while let e = v.last, e == 0x20 || e == 0x09 { v = v.dropLast() }
        if v.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) { throw fail("control byte in a header value") }
        if Self.equalsLower(name, "content-length") {
            // A list of equal values is one value (RFC 9110 8.6); anything else is an error.
            for part in v.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                var p = part
                while let f = p.first, f == 0x20 || f == 0x09 { p = p.dropFirst() }
                while let e = p.last, e == 0x20 || e == 0x09 { p = p.dropLast() }
                guard !p.isEmpty, p.count <= 15, p.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw fail("invalid Content-Length") }
                let n = p.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                if let c = contentLength, c != n { throw fail("conflicting Content-Length values") }
                contentLength = n
            }
        } else if Self.equalsLower(name, "transfer-encoding") {
            // The last coding decides: chunked ends the body, any other reads to the end.
            let codings = v.split(separator: UInt8(ascii: ",")).map { c -> ArraySlice<UInt8> in
                var c = c
                while let f = c.first, f == 0x20 || f == 0x09 { c = c.dropFirst() }
                while let e = c.last, e == 0x20 || e == 0x09 { c = c.dropLast() }
                return c
            }
            if let last = codings.last, Self.equalsLower(last, "chunked") { chunked = true; otherCoding = false } else { chunked = false; otherCoding = true }
        } else if Self.equalsLower(name, "connection") {
            for t in v.split(separator: UInt8(ascii: ",")) {
                var t = t
                while let f = t.first, f == 0x20 || f == 0x09 { t = t.dropFirst() }
                while let e = t.last, e == 0x20 || e == 0x09 { t = t.dropLast() }
                if Self.equalsLower(t, "close") { closeToken = true }
                if Self.equalsLower(t, "keep-alive") { keepAliveToken = true }
            }
        }
        // With both headers, Content-Length is wrong or a smuggling attempt: the coding
        // decides where the body ends, and the connection is not used again.
        if (chunked || otherCoding) && contentLength != nil { closeToken = true }
    }

    static func hex(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: return Int(b - 0x30)
        case 0x41...0x46: return Int(b - 0x41 + 10)
        case 0x61...0x66: return Int(b - 0x61 + 10)
        default: return nil
        }
    }

    static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): return true
        default: return false
        }
    }

    /// ASCII case-insensitive comparison with a lowercase literal.
    static func equalsLower(_ s: ArraySlice<UInt8>, _ lower: StaticString) -> Bool {
        guard s.count == lower.utf8CodeUnitCount else { return false }
        var i = 0
        for b in s {
            let c = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
            if c != lower.utf8Start[i] { return false }
            i += 1
        }
        return true
    }
}
