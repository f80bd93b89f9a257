import XCTest
@testable import LogRelayCore

final class NATSServerParserTests: XCTestCase {
    private func ops(_ chunks: [String]) throws -> [NATSServerOp] {
        var p = NATSServerParser()
        var out: [NATSServerOp] = []
        for c in chunks {
            Array(c.utf8).withUnsafeBytes { p.append($0) }
            while let op = try p.next() { out.append(op) }
        }
        return out
    }

    func testParsesInfoWithTrailingSpaceAndFields() throws {
        let got = try ops(["INFO {\"server_id\":\"X\",\"max_payload\":4096,\"connect_urls\":[\"127.0.0.1:4223\"],\"ldm\":true} \r\n"])
        guard case .info(let info) = got.first else { return XCTFail("no info") }
        XCTAssertEqual(info.maxPayload, 4096)
        XCTAssertEqual(info.connectURLs, ["127.0.0.1:4223"])
        XCTAssertEqual(info.ldm, true)
    }

    func testOpsAreCaseInsensitiveAndSplitAcrossReads() throws {
        XCTAssertEqual(try ops(["PI", "NG\r", "\npong\n+OK\r\n"]), [.ping, .pong, .ok])
    }

    func testErrTextLosesItsQuotes() throws {
        XCTAssertEqual(try ops(["-ERR 'Authorization Violation'\r\n"]), [.err("Authorization Violation")])
    }

    func testMsgPayloadIsKeptEvenWithCRLFInside() throws {
        let m = NATSMessage(subject: Array("a".utf8), sid: Array("1".utf8), status: nil, statusText: "", payload: Array("\r\n\r\n".utf8))
        XCTAssertEqual(try ops(["MSG a 1  4\r\n\r\n", "\r\n\r\nPING\r\n"]), [.msg(m), .ping])
    }

    func testLargeMsgPayloadIsSkippedNotHeld() throws {
        var p = NATSServerParser(keepPayloadBytes: 16)
        Array("MSG a 1 100\r\n".utf8).withUnsafeBytes { p.append($0) }
        guard case .msg(let m)? = try p.next() else { return XCTFail("no msg") }
        XCTAssertNil(m.payload)
        Array((String(repeating: "x", count: 100) + "\r\nPONG\r\n").utf8).withUnsafeBytes { p.append($0) }
        XCTAssertEqual(try p.next(), .pong)
    }

    func testGarbageIsAProtocolError() {
        XCTAssertThrowsError(try ops(["HELLO\r\n"]))
        XCTAssertThrowsError(try ops(["INFO {not json\r\n"]))
        XCTAssertThrowsError(try ops(["MSG a 1 x\r\n"]))
    }

    // Found by Tests/Fuzz (nats target): a size of Int.max overflowed `n + 2` and trapped,
    // killing the plugin; a size beyond NATS's 64 MiB limit is a protocol error now.
    func testMsgWithImpossibleSizeIsAProtocolErrorNotATrap() {
        XCTAssertThrowsError(try ops(["MSG a 1 9223372036854775807\r\n"]))
        XCTAssertThrowsError(try ops(["HMSG a 1 2 9223372036854775806\r\n"]))
        XCTAssertThrowsError(try ops(["MSG a 1 \(64 << 20 + 1)\r\n"]))
        XCTAssertEqual(try ops(["MSG a 1 \(64 << 20)\r\n"]),
                       [.msg(NATSMessage(subject: [0x61], sid: [0x31], status: nil, statusText: "", payload: nil))])
    }

    func testHugeLineIsRefusedNotBuffered() {
        var p = NATSServerParser(maxLineBytes: 1024)
        let big = [UInt8](repeating: 0x41, count: 4096)
        big.withUnsafeBytes { p.append($0) }
        XCTAssertThrowsError(try p.next())
    }

    func testConnectCommandEscapesCredentials() {
        let bytes = NATSClientCommands.connect(.init(user: "a\"b", pass: "p\\q"), headers: false, name: "logrelay")
        let s = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(s.hasPrefix("CONNECT {\"verbose\":false,\"pedantic\":false,"))
        XCTAssertTrue(s.contains("\"user\":\"a\\\"b\""))
        XCTAssertTrue(s.contains("\"pass\":\"p\\\\q\""))
        XCTAssertTrue(s.hasSuffix("}\r\nPING\r\n"))
    }
}
