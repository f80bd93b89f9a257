import XCTest
@testable import LogRelayCore

final class HTTPResponseParserTests: XCTestCase {
    /// Parses `text` fed in the given piece sizes; `eof` ends the connection afterwards.
    private func parse(_ text: [UInt8], pieces: [Int]? = nil, eof: Bool = false, maxHead: Int = HTTPResponseParser.defaultMaxHeadBytes)
        throws(HTTPResponseError) -> [HTTPStatusResponse] {
        var p = HTTPResponseParser(maxHeadBytes: maxHead)
        var out: [HTTPStatusResponse] = []
        var at = 0
        for n in pieces ?? [text.count] {
            text[at..<(at + n)].withUnsafeBytes { p.append($0) }
            at += n
            while let r = try p.next() { out.append(r) }
        }
        if eof, let r = try p.finish() { out.append(r) }
        return out
    }

    private func parse(_ s: String, eof: Bool = false) throws(HTTPResponseError) -> [HTTPStatusResponse] {
        try parse(Array(s.utf8), eof: eof)
    }

    /// The same responses whether the bytes come at once, one by one, or cut anywhere in two.
    private func assertSplitsAgree(_ s: String, eof: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = Array(s.utf8)
        let whole = try parse(bytes, eof: eof)
        XCTAssertEqual(try parse(bytes, pieces: Array(repeating: 1, count: bytes.count), eof: eof), whole, "byte by byte", file: file, line: line)
        for cut in 0...bytes.count {
            XCTAssertEqual(try parse(bytes, pieces: [cut, bytes.count - cut], eof: eof), whole, "cut at \(cut)", file: file, line: line)
        }
    }

    private func fails(_ s: String, _ fragment: String, eof: Bool = false, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try parse(s, eof: eof)
            XCTFail("accepted: \(s.debugDescription)", file: file, line: line)
        } catch {
            XCTAssertTrue(error.message.contains(fragment), "\(error.message)", file: file, line: line)
        }
    }

    func testRapid7s204WithoutBodyKeepsTheConnection() throws {
        let s = "HTTP/1.1 204 No Content\r\nCache-Control: no-cache, no-store, must-revalidate\r\nDate: Tue, 01 Dec 2026 08:00:00 GMT\r\n\r\n"
        XCTAssertEqual(try parse(s), [HTTPStatusResponse(status: 204, keepAlive: true)])
        try assertSplitsAgree(s + s)
    }

    func testContentLengthBodyIsSkippedAndTheNextResponseFollows() throws {
        let s = "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nbad request" + "HTTP/1.1 204 \r\n\r\n"
        XCTAssertEqual(try parse(s), [HTTPStatusResponse(status: 400, keepAlive: true), HTTPStatusResponse(status: 204, keepAlive: true)])
        try assertSplitsAgree(s)
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let s = "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n" +
            "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n" + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        XCTAssertEqual(try parse(s), [HTTPStatusResponse(status: 503, keepAlive: true), HTTPStatusResponse(status: 200, keepAlive: true)])
        try assertSplitsAgree(s)
    }

    func testConnectionCloseAndHTTP10() throws {
        XCTAssertEqual(try parse("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"), [HTTPStatusResponse(status: 204, keepAlive: false)])
        XCTAssertEqual(try parse("HTTP/1.0 204 No Content\r\n\r\n"), [HTTPStatusResponse(status: 204, keepAlive: false)])
        XCTAssertEqual(try parse("HTTP/1.0 204 No Content\r\nConnection: Keep-Alive\r\n\r\n"), [HTTPStatusResponse(status: 204, keepAlive: true)])
        XCTAssertEqual(try parse("HTTP/1.1 204 x\r\nconnection: foo, CLOSE\r\n\r\n"), [HTTPStatusResponse(status: 204, keepAlive: false)])
    }

    func testBodyWithoutLengthEndsWithTheConnection() throws {
        let s = "HTTP/1.1 500 Internal Server Error\r\n\r\nsomething broke"
        XCTAssertEqual(try parse(s), [])
        XCTAssertEqual(try parse(s, eof: true), [HTTPStatusResponse(status: 500, keepAlive: false)])
        try assertSplitsAgree(s, eof: true)
    }

    func testInterimResponsesAreSkipped() throws {
        let s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        XCTAssertEqual(try parse(s), [HTTPStatusResponse(status: 204, keepAlive: true)])
        try assertSplitsAgree(s)
    }

    func testBareLineFeedsAreAccepted() throws {
        XCTAssertEqual(try parse("HTTP/1.1 429 Too Many\nContent-Length: 2\n\nno"), [HTTPStatusResponse(status: 429, keepAlive: true)])
    }

    func testTransferEncodingWithContentLengthNeverReusesTheConnection() throws {
        let s = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        XCTAssertEqual(try parse(s), [HTTPStatusResponse(status: 200, keepAlive: false)])
    }

    func testEqualContentLengthListIsOneValue() throws {
        XCTAssertEqual(try parse("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nokHTTP/1.1 204 x\r\n\r\n").count, 2)
        fails("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", "conflicting Content-Length")
        fails("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length")
        fails("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "invalid Content-Length")
    }

    func testMalformedResponsesFail() {
        fails("HTTP/2 204\r\n\r\n", "not an HTTP/1.x status line")
        fails("SSH-2.0-OpenSSH\r\n", "not an HTTP/1.x status line")
        fails("HTTP/1.1 2x4 No\r\n\r\n", "invalid status code")
        fails("HTTP/1.1 099 No\r\n\r\n", "invalid status code")
        fails("HTTP/1.1 2040 No\r\n\r\n", "invalid status code")
        fails("HTTP/1.1 204 No\r\nBad Header: x\r\n\r\n", "invalid header name")
        fails("HTTP/1.1 204 No\r\n: x\r\n\r\n", "invalid header line")
        fails("HTTP/1.1 204 No\r\nX: a\u{1}b\r\n\r\n", "control byte")
        fails("HTTP/1.1 101 Switching\r\n\r\n", "switched protocols")
        fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size")
        fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "chunk size too large")
        fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n", "chunk data longer")
    }

    func testTheHeadIsBounded() {
        let big = "HTTP/1.1 204 No Content\r\nX: " + String(repeating: "a", count: 2000) + "\r\n\r\n"
        XCTAssertThrowsError(try parse(Array(big.utf8), maxHead: 1024))
        // Unterminated too: the limit holds before the line ends.
        XCTAssertThrowsError(try parse(Array(("HTTP/1.1 204 " + String(repeating: "a", count: 2000)).utf8), maxHead: 1024))
        XCTAssertEqual(try parse(Array(big.utf8), maxHead: 4096).count, 1)
    }

    func testEndOfConnectionMidResponseIsAnErrorAndBetweenResponsesIsNot() throws {
        XCTAssertEqual(try parse("HTTP/1.1 204 x\r\n\r\n", eof: true).count, 1)
        fails("HTTP/1.1 204 x\r\n", "closed in the middle", eof: true)
        fails("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed in the middle", eof: true)
        var p = HTTPResponseParser()
        XCTAssertTrue(p.isBetweenResponses)
        Array("HTTP/1.1".utf8).withUnsafeBytes { p.append($0) }
        XCTAssertFalse(p.isBetweenResponses)
    }

    func testAFailureIsFinal() {
        var p = HTTPResponseParser()
        Array("garbage\r\n".utf8).withUnsafeBytes { p.append($0) }
        XCTAssertThrowsError(try p.next())
        Array("HTTP/1.1 204 x\r\n\r\n".utf8).withUnsafeBytes { p.append($0) }
        XCTAssertThrowsError(try p.next())
    }

    func testLargeBodiesAreSkippedWithoutBeingHeld() throws {
        var p = HTTPResponseParser()
        Array("HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".utf8).withUnsafeBytes { p.append($0) }
        XCTAssertNil(try p.next())
        let chunk = [UInt8](repeating: 0x61, count: 100_000)
        for _ in 0..<100 {
            chunk.withUnsafeBytes { p.append($0) }
            if let r = try p.next() { XCTAssertEqual(r.status, 200); return }
        }
        XCTFail("the body never ended")
    }
}
