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

    private func replyOps(_ bytes: [UInt8], inbox: String, splitAt cut: Int? = nil) throws -> [NATSServerOp] {
        var p = NATSServerParser(keepPayloadBytes: 64)
        p.replyInbox = Array(inbox.utf8)
        var out: [NATSServerOp] = []
        let pieces = cut.map { [bytes[..<$0], bytes[$0...]] } ?? [bytes[...]]
        for piece in pieces {
            Array(piece).withUnsafeBytes { p.append($0) }
            while let op = try p.next() { out.append(op) }
        }
        return out
    }

    func testRepliesToTheInboxComeAsPubAcksWhereverTheReadsSplit() throws {
        // What nats-server 2.9 to 2.15 send: an empty reply field (two spaces), JSON with spaces.
        let wire = Array(("MSG _INBOX.me.3 1  26\r\n{\"stream\":\"LOGS\", \"seq\":7}\r\n"
                          + "MSG\t_INBOX.me.4  1 42\r\n{\"stream\":\"LOGS\",\"seq\":8,\"duplicate\":true}\r\n"
                          + "MSG _INBOX.me.5 1  2\r\nno\r\n"
                          + "MSG _INBOX.me.6 1 2\r\n{}\r\n"                 // no reply field at all
                          + "MSG _INBOX.me.7 1 a.reply 2\r\n{}\r\nPING\r\n").utf8)
        let want: [NATSServerOp] = [.pubAck(seq: 3, .stored(seq: 7, duplicate: false)),
                                    .pubAck(seq: 4, .stored(seq: 8, duplicate: true)),
                                    .pubAck(seq: 5, nil), .pubAck(seq: 6, nil), .pubAck(seq: 7, nil), .ping]
        XCTAssertEqual(try replyOps(wire, inbox: "_INBOX.me."), want)
        for cut in 1..<wire.count {
            XCTAssertEqual(try replyOps(wire, inbox: "_INBOX.me.", splitAt: cut), want, "split at \(cut)")
        }
    }

    func testOnlyRepliesWithSid1OnTheInboxAreReadAsPubAcks() throws {
        func msg(_ subject: String, _ sid: String, payload: [UInt8]?, status: Int? = nil) -> NATSServerOp {
            .msg(NATSMessage(subject: Array(subject.utf8), sid: Array(sid.utf8), status: status, statusText: "", payload: payload))
        }
        let ok = Array("{}".utf8)
        let wire = Array(("MSG _INBOX.me.3 2  2\r\n{}\r\n"                  // another sid
                          + "MSG _INBOX.other.3 1  2\r\n{}\r\n"             // another inbox
                          + "MSG _INBOX.me.3x 1  2\r\n{}\r\n"               // not a sequence number
                          + "MSG _INBOX.me.99999999999999999999 1  2\r\n{}\r\n"  // too long for one
                          + "MSG _INBOX.me.3 11  2\r\n{}\r\n"               // sid 11
                          + "msg _INBOX.me.3 1  2\r\n{}\r\n"                // lower case: the general parser
                          + "HMSG _INBOX.me.6 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
                          + "MSG _INBOX.me.7 1  100\r\n" + String(repeating: "x", count: 100) + "\r\nPONG\r\n").utf8)
        XCTAssertEqual(try replyOps(wire, inbox: "_INBOX.me."), [
            msg("_INBOX.me.3", "2", payload: ok), msg("_INBOX.other.3", "1", payload: ok), msg("_INBOX.me.3x", "1", payload: ok),
            msg("_INBOX.me.99999999999999999999", "1", payload: ok), msg("_INBOX.me.3", "11", payload: ok),
            msg("_INBOX.me.3", "1", payload: ok),
            msg("_INBOX.me.6", "1", payload: [], status: 503),
            msg("_INBOX.me.7", "1", payload: nil),   // over keepPayloadBytes: skipped, never held
            .pong])
        // Without an inbox, nothing is a PubAck.
        XCTAssertEqual(try replyOps(Array("MSG _INBOX.me.3 1  2\r\n{}\r\n".utf8), inbox: ""), [msg("_INBOX.me.3", "1", payload: ok)])
    }

    func testMalformedMsgLinesStayProtocolErrorsWithAnInbox() {
        for bad in ["MSG _INBOX.me.3 1  2x\r\n", "MSG _INBOX.me.3\r\n", "MSG _INBOX.me.3 1 a b 2\r\n",
                    "MSG _INBOX.me.3 1  \(64 << 20 + 1)\r\n"] {
            XCTAssertThrowsError(try replyOps(Array(bad.utf8), inbox: "_INBOX.me."), bad)
        }
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
