// Tests for the plugin socket's HTTP/1.1 request parser and response writer (protocol doc §1.2–1.4).
import XCTest
@testable import LogRelayCore

final class HTTPParserTests: XCTestCase {
    // MARK: - Helpers

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// A StartLogging body the way Go's json.Encoder writes it, padded to exactly 597 bytes like the capture.
    static let startLoggingBody: [UInt8] = {
        let c64 = String(repeating: "c", count: 64)
        func body(_ pad: Int) -> String {
            "{\"File\":\"/run/docker/logging/\(c64)\",\"Info\":{\"Config\":{\"tag\":\"\\u003cweb\\u003e\"},"
                + "\"ContainerID\":\"\(c64)\",\"ContainerName\":\"/web\",\"ContainerEntrypoint\":\"sh\","
                + "\"ContainerArgs\":[\"-c\",\"echo hello\"],\"ContainerImageID\":\"sha256:\(c64)\","
                + "\"ContainerImageName\":\"busybox:local\",\"ContainerCreated\":\"2026-11-23T08:00:00.000000000Z\","
                + "\"ContainerEnv\":[\"PATH=/bin\"],\"ContainerLabels\":{},\"LogPath\":\"\",\"DaemonName\":\"docker\","
                + "\"Pad\":\"\(String(repeating: "x", count: pad))\"}}\n"
        }
        let base = body(0).utf8.count
        return Array(body(597 - base).utf8)
    }()

    /// The request bytes captured from the 20.10.24 client (go1.19.8): empty Host, no Content-Type.
    static let dockerRequest: [UInt8] = bytes(
        "POST /LogDriver.StartLogging HTTP/1.1\r\n"
            + "Host: \r\n"
            + "User-Agent: Go-http-client/1.1\r\n"
            + "Content-Length: 597\r\n"
            + "Accept: application/vnd.docker.plugins.v1.2+json\r\n"
            + "\r\n") + startLoggingBody

    static func post(_ path: String, body: String = "{}", extra: String = "") -> [UInt8] {
        bytes("POST \(path) HTTP/1.1\r\nHost: plugin.moby.localhost\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    func feed(_ p: inout HTTPRequestParser, _ b: [UInt8]) {
        b.withUnsafeBytes { p.append($0) }
    }

    func feed(_ p: inout HTTPRequestParser, _ b: ArraySlice<UInt8>) {
        b.withUnsafeBytes { p.append($0) }
    }

    func request(_ r: HTTPParseResult, file: StaticString = #filePath, line: UInt = #line) -> HTTPRequest? {
        if case .request(let req) = r { return req }
        XCTFail("expected a request, got \(r)", file: file, line: line)
        return nil
    }

    func status(_ r: HTTPParseResult) -> Int? {
        if case .failure(let status, _) = r { return status }
        return nil
    }

    func isNeedMore(_ r: HTTPParseResult) -> Bool {
        if case .needMore = r { return true }
        return false
    }

    /// The status a complete input fails with (nil if it parses).
    func failure(_ s: String, maxHeaderBytes: Int = 16 * 1024, maxBodyBytes: Int = 4 * 1024 * 1024) -> Int? {
        var p = HTTPRequestParser(maxHeaderBytes: maxHeaderBytes, maxBodyBytes: maxBodyBytes)
        feed(&p, Self.bytes(s))
        return status(p.next())
    }

    func checkDockerRequest(_ req: HTTPRequest?) {
        guard let req else { return }
        XCTAssertEqual(req.method, "POST")
        XCTAssertEqual(req.path, "/LogDriver.StartLogging")
        XCTAssertEqual(req.header("Host"), "")
        XCTAssertEqual(req.header("content-length"), "597")
        XCTAssertEqual(req.header("ACCEPT"), "application/vnd.docker.plugins.v1.2+json")
        XCTAssertNil(req.header("Content-Type"))
        XCTAssertEqual(req.headers.map(\.name), ["Host", "User-Agent", "Content-Length", "Accept"])
        XCTAssertEqual(req.body, Self.startLoggingBody)
        XCTAssertEqual(req.body.last, UInt8(ascii: "\n"))
        XCTAssertTrue(req.keepAlive)
    }

    // MARK: - The daemon's requests

    func testParsesDockersCapturedRequest() {
        XCTAssertEqual(Self.startLoggingBody.count, 597)
        var p = HTTPRequestParser()
        feed(&p, Self.dockerRequest)
        checkDockerRequest(request(p.next()))
        XCTAssertTrue(isNeedMore(p.next()))
    }

    func testDockersRequestSplitAtEveryByte() {
        let r = Self.dockerRequest
        for cut in 0...r.count {
            var p = HTTPRequestParser()
            feed(&p, r[0..<cut])
            if cut < r.count { XCTAssertTrue(isNeedMore(p.next()), "cut \(cut)") }
            feed(&p, r[cut...])
            checkDockerRequest(request(p.next()))
            XCTAssertTrue(isNeedMore(p.next()))
        }
    }

    func testOneByteAtATime() {
        var p = HTTPRequestParser()
        var got: [HTTPRequest] = []
        for b in Self.dockerRequest + Self.dockerRequest {
            feed(&p, [b])
            if case .request(let r) = p.next() { got.append(r) }
        }
        XCTAssertEqual(got.count, 2)
        checkDockerRequest(got.first)
        checkDockerRequest(got.last)
    }

    func testEmptyBufferNeedsMore() {
        var p = HTTPRequestParser()
        XCTAssertTrue(isNeedMore(p.next()))
        feed(&p, [])
        XCTAssertTrue(isNeedMore(p.next()))
    }

    func testKeepAliveSequenceOnOneConnection() {
        var p = HTTPRequestParser()
        for path in ["/LogDriver.Capabilities", "/LogDriver.StartLogging", "/LogDriver.StopLogging", "/LogDriver.StartLogging"] {
            XCTAssertTrue(isNeedMore(p.next()))
            feed(&p, Self.post(path, body: "{\"File\":\"x\"}\n"))
            let req = request(p.next())
            XCTAssertEqual(req?.path, path)
            XCTAssertEqual(req?.body, Self.bytes("{\"File\":\"x\"}\n"))
            XCTAssertEqual(req?.keepAlive, true)
        }
        XCTAssertTrue(isNeedMore(p.next()))
    }

    func testPipelinedRequestsComeOutOneByOne() {
        var p = HTTPRequestParser()
        let third = Self.post("/c", body: "{\"n\":3}")
        feed(&p, Self.post("/a", body: "") + Self.post("/b", body: "{\"n\":2}") + third + Array(Self.post("/d")[0..<10]))
        XCTAssertEqual(request(p.next())?.path, "/a")
        XCTAssertEqual(request(p.next())?.body, Self.bytes("{\"n\":2}"))
        XCTAssertEqual(request(p.next())?.path, "/c")
        XCTAssertTrue(isNeedMore(p.next()), "the start of the fourth request stays buffered")
        feed(&p, Array(Self.post("/d")[10...]))
        XCTAssertEqual(request(p.next())?.path, "/d")
        XCTAssertTrue(isNeedMore(p.next()))
    }

    func testContentLengthZeroAndAbsentMeanEmptyBody() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("POST /LogDriver.Capabilities HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(request(p.next())?.body, [])
        feed(&p, Self.bytes("GET /metrics HTTP/1.1\r\n\r\n"))
        let req = request(p.next())
        XCTAssertEqual(req?.method, "GET")
        XCTAssertEqual(req?.path, "/metrics")
        XCTAssertEqual(req?.body, [])
        XCTAssertEqual(req?.headers.count, 0)
    }

    func testBareLFLineEndingsAreTolerated() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("POST /x HTTP/1.1\nHost:\nContent-Length: 2\r\n\n{}"))
        let req = request(p.next())
        XCTAssertEqual(req?.body, Self.bytes("{}"))
        XCTAssertEqual(req?.header("host"), "")
    }

    func testEmptyLinesBeforeARequestAreIgnored() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("\r\n\n\r\n") + Self.post("/a"))
        XCTAssertEqual(request(p.next())?.path, "/a")
        // Also when the empty line's CR and LF arrive separately.
        feed(&p, Self.bytes("\r"))
        XCTAssertTrue(isNeedMore(p.next()))
        feed(&p, Self.bytes("\n") + Self.post("/b"))
        XCTAssertEqual(request(p.next())?.path, "/b")
    }

    func testHeaderValuesAreTrimmedAndLookupIgnoresCase() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("GET / HTTP/1.1\r\nX-Thing: \t  spaced out \t\r\nx-other:v\r\nX-Thing: second\r\n\r\n"))
        let req = request(p.next())
        XCTAssertEqual(req?.header("x-thing"), "spaced out")
        XCTAssertEqual(req?.header("X-OTHER"), "v")
        XCTAssertEqual(req?.headers.count, 3)
    }

    func testHostIsNeverValidated() {
        for host in ["Host: \r\n", "", "Host: plugin.moby.localhost\r\n", "Host: ???\r\n", "Host: a\r\nHost: b\r\n"] {
            var p = HTTPRequestParser()
            feed(&p, Self.bytes("POST /x HTTP/1.1\r\n\(host)Content-Length: 0\r\n\r\n"))
            XCTAssertNotNil(request(p.next()), host)
        }
    }

    func testKeepAliveRules() {
        let cases: [(String, Bool)] = [
            ("HTTP/1.1", true),
            ("HTTP/1.1\r\nConnection: close", false),
            ("HTTP/1.1\r\nConnection: Keep-Alive, CLOSE", false),
            ("HTTP/1.1\r\nConnection: keep-alive", true),
            ("HTTP/1.0", false),
            ("HTTP/1.0\r\nConnection: keep-alive", true),
            ("HTTP/1.0\r\nConnection: Upgrade, Keep-Alive", true),
            ("HTTP/1.0\r\nConnection: close", false),
        ]
        for (head, keepAlive) in cases {
            var p = HTTPRequestParser()
            feed(&p, Self.bytes("POST /x \(head)\r\nContent-Length: 0\r\n\r\n"))
            XCTAssertEqual(request(p.next())?.keepAlive, keepAlive, head)
        }
    }

    func testIdenticalDuplicateContentLengthIsAccepted() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("POST /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"))
        XCTAssertEqual(request(p.next())?.body, Self.bytes("{}"))
    }

    func testBodyIsBinarySafe() {
        let body: [UInt8] = Array(0...255)
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("POST /x HTTP/1.1\r\nContent-Length: 256\r\n\r\n") + body)
        XCTAssertEqual(request(p.next())?.body, body)
    }

    // MARK: - Errors

    func testMalformedRequestLinesAre400() {
        for line in ["GET", "GET /", "GET  / HTTP/1.1", "GET / HTTP/1.1 ", " GET / HTTP/1.1", "GET /\tx HTTP/1.1",
                     "G(T / HTTP/1.1", "GET / http/1.1", "GET / HTTP/1.1x", "GET / HTTP/11", "GET / HTTP/1.",
                     "GET /a\rb HTTP/1.1", "GET / HTTP/1.1\r\r", "\u{0}\u{1}\u{2}", "GET /é HTTP/1.1"] {
            XCTAssertEqual(failure(line + "\r\n\r\n"), 400, line)
        }
    }

    func testBadRequestLineFailsWithoutWaitingForTheHeaders() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("\u{16}\u{3}\u{1} garbage\r\n"))
        XCTAssertEqual(status(p.next()), 400)
    }

    func testMalformedHeadersAre400() {
        for header in ["NoColon", ": empty-name", "Bad Name: x", "Name : x", "X: a\u{0}b", "X: a\rb", "X: \u{7f}",
                       "(x): y", "Content-Length: abc", "Content-Length: -1", "Content-Length: +5",
                       "Content-Length: 5, 5", "Content-Length: 1.0", "Content-Length:"] {
            XCTAssertEqual(failure("POST / HTTP/1.1\r\n\(header)\r\n\r\n"), 400, header)
        }
    }

    func testObsFoldIsRejected() {
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nX-Long: a\r\n  continued\r\n\r\n"), 400)
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nX-Long: a\r\n\tcontinued\r\n\r\n"), 400)
    }

    func testConflictingContentLengthsAre400() {
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"), 400)
    }

    func testBodyOverTheLimitIs413() {
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", maxBodyBytes: 100), 413)
        XCTAssertNil(failure("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + String(repeating: "x", count: 100), maxBodyBytes: 100))
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999999\r\n\r\n"), 413)
    }

    func testHeaderSectionOverTheLimitIs431() {
        let big = "POST / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 200))\r\n\r\n"
        XCTAssertEqual(failure(big, maxHeaderBytes: 100), 431)
        // Also while still incomplete: a client that never ends its headers cannot grow the buffer forever.
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 200))", maxHeaderBytes: 100), 431)
        XCTAssertNil(failure("POST / HTTP/1.1\r\nX: y\r\n\r\n", maxHeaderBytes: 25))
    }

    func testOtherTransferCodingsAre501() {
        for te in ["gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked, chunked"] {
            XCTAssertEqual(failure("POST / HTTP/1.1\r\nTransfer-Encoding: \(te)\r\n\r\n"), 501, te)
        }
    }

    func testChunkedWithContentLengthIs400() {
        XCTAssertEqual(failure("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 400)
    }

    func testOtherHTTPVersionsAre505() {
        XCTAssertEqual(failure("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505, "HTTP/2 preface")
        for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0"] {
            XCTAssertEqual(failure("GET / \(version)\r\n\r\n"), 505, version)
        }
    }

    func testFailureIsSticky() {
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("BAD\r\n\r\n"))
        XCTAssertEqual(status(p.next()), 400)
        feed(&p, Self.post("/a"))
        XCTAssertEqual(status(p.next()), 400, "after a failure the connection is closed, not parsed further")
    }

    // MARK: - Chunked bodies

    func chunked(_ body: String) -> [UInt8] {
        Self.bytes("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\(body)")
    }

    func testChunkedBodiesAreDecoded() {
        let cases: [(String, String)] = [
            ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
            ("0\r\n\r\n", ""),
            ("A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
            ("a;name=value;other\r\n0123456789\r\n0;end\r\n\r\n", "0123456789"),
            ("3 \r\nabc\r\n0\r\nX-Trailer: yes\r\nAnother: one\r\n\r\n", "abc"),
            ("0003\nabc\n0\n\n", "abc"),
        ]
        for (wire, body) in cases {
            let input = chunked(wire) + Self.post("/next")
            for cut in [0, 20, input.count / 2, input.count - 3] {
                var p = HTTPRequestParser()
                feed(&p, input[0..<cut])
                var got = p.next()
                if isNeedMore(got) {
                    feed(&p, input[cut...])
                    got = p.next()
                } else {
                    feed(&p, input[cut...])
                }
                let req = request(got)
                XCTAssertEqual(req?.body, Self.bytes(body), wire)
                XCTAssertEqual(req?.header("transfer-encoding"), "chunked")
                XCTAssertEqual(request(p.next())?.path, "/next", wire)
            }
        }
    }

    func testChunkedBodySplitAtEveryByte() {
        let input = chunked("4\r\nWiki\r\n5;x=y\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n")
        for cut in 0...input.count {
            var p = HTTPRequestParser()
            feed(&p, input[0..<cut])
            if cut < input.count { XCTAssertTrue(isNeedMore(p.next()), "cut \(cut)") }
            feed(&p, input[cut...])
            XCTAssertEqual(request(p.next())?.body, Self.bytes("Wikipedia in\r\n\r\nchunks."), "cut \(cut)")
        }
    }

    func testChunkedErrors() {
        XCTAssertEqual(status({ var p = HTTPRequestParser(maxBodyBytes: 10); feed(&p, chunked("6\r\nabcdef\r\n5\r\n")); return p.next() }()), 413)
        XCTAssertEqual(status({ var p = HTTPRequestParser(maxBodyBytes: 10); feed(&p, chunked("FFFFFFFFFFFFFFFFFFFFFFFF\r\n")); return p.next() }()), 413)
        for bad in ["x\r\n", "\r\n", "-1\r\n", "5\r\nhelloXX", "3\r\nabc\rX", "3 x\r\nabc\r\n", "3;\u{1}\r\n",
                    "0\r\nbad trailer\r\n\r\n"] {
            var p = HTTPRequestParser()
            feed(&p, chunked(bad))
            XCTAssertEqual(status(p.next()), 400, bad)
        }
        var long = HTTPRequestParser()
        feed(&long, chunked("1;" + String(repeating: "e", count: 5000)))
        XCTAssertEqual(status(long.next()), 400, "endless chunk extension")
        var trailers = HTTPRequestParser(maxHeaderBytes: 100)
        feed(&trailers, chunked("0\r\n" + String(repeating: "T: v\r\n", count: 30)))
        XCTAssertEqual(status(trailers.next()), 431)
    }

    func testChunkedOutputOfTheWriterRoundTrips() {
        var body: [UInt8] = []
        let pieces = [Self.bytes("first"), [], Array(repeating: 0x41, count: 300), [0, 13, 10]]
        for piece in pieces { piece.withUnsafeBytes { HTTPResponse.appendChunk($0, to: &body) } }
        body += HTTPResponse.lastChunk
        var p = HTTPRequestParser()
        feed(&p, Self.bytes("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") + body)
        XCTAssertEqual(request(p.next())?.body, Array(pieces.joined()))
    }

    // MARK: - Hostile input

    func testRandomBytesNeverCrash() {
        var rng = ParserTestRandom(seed: 99)
        for round in 0..<500 {
            var p = HTTPRequestParser(maxHeaderBytes: 512, maxBodyBytes: 1024)
            var input: [UInt8]
            switch round % 3 {
            case 0: input = (0..<Int.random(in: 0..<2000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                // Mutated valid requests hit the deeper states.
                input = Self.post("/a", body: "{}") + chunked("5\r\nhello\r\n0\r\n\r\n") + Self.post("/b")
                for _ in 0..<4 { input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            default:
                let alphabet = Self.bytes("GET POST / HTTP/1.1\r\n: chunked Content-Length Transfer-Encoding 0123456789abcdef;\n")
                input = (0..<Int.random(in: 0..<1500, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            }
            var from = 0
            var done = false
            while from < input.count && !done {
                let to = min(input.count, from + Int.random(in: 1...64, using: &rng))
                feed(&p, input[from..<to])
                from = to
                loop: while true {
                    switch p.next() {
                    case .request(let r): XCTAssertLessThanOrEqual(r.body.count, 1024)
                    case .needMore: break loop
                    case .failure(let s, _):
                        XCTAssertTrue([400, 413, 431, 501, 505].contains(s), "status \(s)")
                        done = true
                        break loop
                    }
                }
            }
        }
    }

    // MARK: - Responses

    func testSerializesAJSONResponse() {
        let out = HTTPResponse.serialize(status: 200, body: Self.bytes("{}"), keepAlive: true)
        XCTAssertEqual(String(decoding: out, as: UTF8.self),
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    }

    func testSerializesAnErrorThatClosesTheConnection() {
        let out = HTTPResponse.serialize(status: 400, body: Self.bytes("{\"Err\":\"bad\"}"),
                                         contentType: "application/vnd.docker.plugins.v1.1+json", keepAlive: false,
                                         extraHeaders: [("X-A", "1")])
        XCTAssertEqual(String(decoding: out, as: UTF8.self),
                       "HTTP/1.1 400 Bad Request\r\nContent-Type: application/vnd.docker.plugins.v1.1+json\r\n"
                       + "Content-Length: 13\r\nConnection: close\r\nX-A: 1\r\n\r\n{\"Err\":\"bad\"}")
    }

    func testReasonPhrasesForTheParsersStatuses() {
        XCTAssertEqual(HTTPResponse.reasonPhrase(413), "Content Too Large")
        XCTAssertEqual(HTTPResponse.reasonPhrase(431), "Request Header Fields Too Large")
        XCTAssertEqual(HTTPResponse.reasonPhrase(501), "Not Implemented")
        XCTAssertEqual(HTTPResponse.reasonPhrase(505), "HTTP Version Not Supported")
        XCTAssertEqual(HTTPResponse.reasonPhrase(299), "Status 299")
    }

    func testSerializesAChunkedHead() {
        let head = HTTPResponse.serializeChunkedHead(status: 200, keepAlive: true)
        XCTAssertEqual(String(decoding: head, as: UTF8.self),
                       "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        var out: [UInt8] = []
        Self.bytes("hello world, this is 31 bytes!!").withUnsafeBytes { HTTPResponse.appendChunk($0, to: &out) }
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "1f\r\nhello world, this is 31 bytes!!\r\n")
    }
}
