// libFuzzer target: the HTTP/1.1 response parser of the HTTP sinks
// (Sources/LogRelayCore/Transport/HTTPResponseParser.swift).
//
// Input byte 0 picks the head limit; the rest is what a server sends on one connection,
// then the connection ends. It is parsed once in one piece and once in small pieces.
// Checked: no out-of-bounds access (ASan); statuses are three digits from 200 (interim 1xx
// never come out); a failure is sticky; both ways of feeding give the same responses and the
// same verdict.

struct Parsed: Equatable {
    var responses: [HTTPStatusResponse] = []
    var failed = false
}

func parse(_ bytes: [UInt8], pieces: [Int], maxHead: Int) -> Parsed {
    var parser = HTTPResponseParser(maxHeadBytes: maxHead)
    var out = Parsed()
    func take(_ r: HTTPStatusResponse) {
        fuzzCheck((200...999).contains(r.status), "status \(r.status) came out")
        out.responses.append(r)
    }
    bytes.withUnsafeBytes { all in
        var pos = 0
        for n in pieces where !out.failed {
            parser.append(UnsafeRawBufferPointer(rebasing: all[pos..<(pos + n)]))
            pos += n
            do {
                while let r = try parser.next() { take(r) }
            } catch {
                out.failed = true
            }
        }
    }
    if !out.failed {
        do {
            if let r = try parser.finish() { take(r) }
        } catch {
            out.failed = true
        }
    }
    if out.failed {
        let more: [UInt8] = Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)
        more.withUnsafeBytes { parser.append($0) }
        do {
            _ = try parser.next()
            fuzzCheck(false, "parser recovered after a failure")
        } catch {}
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPResponseParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let maxHead = [64, 300, 4096, 16 * 1024][Int(input[0] & 3)]
    let bytes = Array(input[1...])
    var splitter = FuzzSplitter(seed: seed(input))

    let whole = parse(bytes, pieces: bytes.isEmpty ? [] : [bytes.count], maxHead: maxHead)
    let split = parse(bytes, pieces: splitter.pieces(bytes.count), maxHead: maxHead)
    fuzzCheck(whole.failed == split.failed, "one-piece and split parsing disagree on failure")
    if !whole.failed {
        fuzzCheck(whole.responses == split.responses, "one-piece and split parsing give different responses")
    } else {
        // A failure may come after some responses: those must agree as far as both got.
        let n = min(whole.responses.count, split.responses.count)
        fuzzCheck(Array(whole.responses[..<n]) == Array(split.responses[..<n]), "responses before the failure differ")
    }
    return 0
}
