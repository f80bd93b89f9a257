// libFuzzer target: the plugin socket's HTTP/1.1 request parser
// (Sources/LogRelayCore/DaemonAPI/HTTPParser.swift).
//
// Input byte 0 picks the header and body limits; the rest is what a client sends on one
// connection. It is parsed once in one piece and once in small pieces. Checked: no
// out-of-bounds access (ASan); no body longer than the limit; method, target and header
// fields only ever made of the bytes the grammar allows; a failure is one of the statuses the
// server answers with, and sticky; both ways of feeding give the same requests and the same
// verdict.

struct Seen: Equatable {
    var method: String
    var path: String
    var headers: [String]
    var body: [UInt8]
    var keepAlive: Bool
}

struct Parsed: Equatable {
    var requests: [Seen] = []
    var failure: Int?
}

let statuses: Set<Int> = [400, 413, 431, 501, 505]

func isTokenChar(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), 0x30...0x39: return true
    default: return Array("!#$%&'*+-.^_`|~".utf8).contains(c)
    }
}

func drain(_ parser: inout HTTPRequestParser, into out: inout Parsed, maxHeader: Int, maxBody: Int) {
    while out.failure == nil {
        switch parser.next() {
        case .needMore:
            return
        case .failure(let status, let message):
            fuzzCheck(statuses.contains(status), "unexpected status \(status)")
            fuzzCheck(!message.isEmpty, "failure without a message")
            out.failure = status
        case .request(let r):
            fuzzCheck(r.body.count <= maxBody, "body of \(r.body.count) bytes exceeds the limit \(maxBody)")
            fuzzCheck(!r.method.isEmpty && r.method.utf8.allSatisfy(isTokenChar), "bad method \(r.method.debugDescription)")
            fuzzCheck(!r.path.isEmpty && r.path.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }, "bad target \(r.path.debugDescription)")
            var headerBytes = 0
            for h in r.headers {
                fuzzCheck(!h.name.isEmpty && h.name.utf8.allSatisfy(isTokenChar), "bad header name \(h.name.debugDescription)")
                fuzzCheck(h.value.utf8.allSatisfy { ($0 >= 0x20 && $0 != 0x7f) || $0 == 0x09 }, "control byte in a header value")
                fuzzCheck(h.value.utf8.first != 0x20 && h.value.utf8.last != 0x20, "header value not trimmed")
                headerBytes += h.name.unicodeScalars.count + h.value.unicodeScalars.count  // ≤ the raw bytes (U+FFFD per bad byte)
            }
            fuzzCheck(headerBytes <= maxHeader, "header section larger than the limit")
            out.requests.append(Seen(method: r.method, path: r.path, headers: r.headers.map { $0.name + ":" + $0.value },
                                     body: r.body, keepAlive: r.keepAlive))
        }
    }
}

func parse(_ bytes: [UInt8], pieces: [Int], maxHeader: Int, maxBody: Int) -> Parsed {
    var parser = HTTPRequestParser(maxHeaderBytes: maxHeader, maxBodyBytes: maxBody)
    var out = Parsed()
    bytes.withUnsafeBytes { all in
        var pos = 0
        for n in pieces {
            parser.append(UnsafeRawBufferPointer(rebasing: all[pos..<(pos + n)]))
            pos += n
            drain(&parser, into: &out, maxHeader: maxHeader, maxBody: maxBody)
        }
    }
    if let status = out.failure {
        // Sticky: more input changes nothing.
        let more: [UInt8] = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        more.withUnsafeBytes { parser.append($0) }
        if case .failure(let again, _) = parser.next() {
            fuzzCheck(again == status, "failure status changed from \(status) to \(again)")
        } else {
            fuzzCheck(false, "parser recovered after a failure")
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let maxHeader = [48, 200, 1024, 16 * 1024][Int(input[0] & 3)]
    let maxBody = [0, 8, 300, 4 * 1024 * 1024][Int(input[0] >> 2 & 3)]
    let bytes = Array(input[1...])
    var splitter = FuzzSplitter(seed: seed(input))

    let whole = parse(bytes, pieces: bytes.isEmpty ? [] : [bytes.count], maxHeader: maxHeader, maxBody: maxBody)
    let split = parse(bytes, pieces: splitter.pieces(bytes.count), maxHeader: maxHeader, maxBody: maxBody)
    fuzzCheck(whole.requests == split.requests, "one-piece and split parsing give different requests (\(whole.requests.count) vs \(split.requests.count))")
    fuzzCheck((whole.failure == nil) == (split.failure == nil), "one-piece and split parsing disagree on failure: \(String(describing: whole.failure)) vs \(String(describing: split.failure))")
    return 0
}
