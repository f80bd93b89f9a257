// NKeys, credentials files and JetStream PubAcks, against vectors made with the Python
// `nkeys` package (the reference implementation's port): the seed bytes 0…31 and 0xFF×32.
import XCTest
@testable import LogRelayCore

final class NKeysTests: XCTestCase {
    // nkeys.encode_seed(bytes(range(32)), PREFIX_BYTE_USER) and its public key.
    let seed = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y"
    let publicKey = "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK"
    // base64url(nopad) of kp.sign(b"Yw5pL3dNxQ-nonce"): Ed25519 is deterministic.
    let signature = "UA-twSYq5DVOONQAvq7RO3TnAI9RovgF4HfGX4g1panPiGYsZHE2wUYv1EZA_1AMOkaDQiDEJ0QkNPHTCZtCAA"

    func testCRC16IsXMODEM() {
        XCTAssertEqual(NKeys.crc16(Array("123456789".utf8)), 0x31C3)
    }

    func testUserSeedDecodesToItsBytesAndEncodesBack() throws {
        XCTAssertEqual(try NKeys.decodeUserSeed(Array(seed.utf8)), Array(0..<32))
        XCTAssertEqual(NKeys.encodeUserSeed(Array(0..<32)), seed)
        XCTAssertEqual(NKeys.encodeUserSeed([UInt8](repeating: 0xFF, count: 32)),
                       "SUAP777777777777777777777777777777777777777777777777775UUA")
    }

    func testPublicKeyAndSignatureMatchTheReference() throws {
        let signer = try NATSSigner(seed: try NKeys.decodeUserSeed(Array(seed.utf8)))
        XCTAssertEqual(signer.publicKey, publicKey)
        XCTAssertEqual(try signer.sign(Array("Yw5pL3dNxQ-nonce".utf8)), signature)
        let other = try NATSSigner(seed: [UInt8](repeating: 0xFF, count: 32))
        XCTAssertEqual(other.publicKey, "UB3KCWJAISTOJ5IREZN4U45GATMQWBJJ2HPWAK7DBIM2SJLWMDI7LRYD")
    }

    func testBadSeedsSayWhatIsWrongWithoutShowingTheSeed() {
        func message(_ s: String) -> String {
            do { _ = try NKeys.decodeUserSeed(Array(s.utf8)); return "" } catch { return error.message }
        }
        var typo = Array(seed.utf8)
        typo[20] = typo[20] == 0x41 ? 0x42 : 0x41
        let cases = [
            (String(seed.dropLast()), "57 characters"),
            (String(decoding: typo, as: UTF8.self), "checksum"),
            (seed.lowercased(), "alphabet"),
            ("SAAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4HYMHI", "account seed"),
            (publicKey + "AA", "checksum"),
        ]
        for (input, expected) in cases {
            let m = message(input)
            XCTAssertTrue(m.contains(expected), "\(input): \(m)")
            XCTAssertFalse(m.contains(input.prefix(20)), "the message shows the seed: \(m)")
        }
    }

    func testBase32AndBase64URLRoundTrips() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            XCTAssertEqual(NKeys.base32Decode(NKeys.base32Encode(bytes)), bytes)
            XCTAssertEqual(NKeys.base64URLDecode(Array(NKeys.base64URL(bytes).utf8)), bytes)
        }
        XCTAssertEqual(NKeys.base64URL(Array("any carnal pleas".utf8)), "YW55IGNhcm5hbCBwbGVhcw")
        XCTAssertNil(NKeys.base32Decode(Array("AB".utf8)), "leftover bits that are not zero")
    }

    // The layout `nsc generate creds` writes.
    func credsFile(jwt: String, seed: String) -> [UInt8] {
        Array("""
        -----BEGIN NATS USER JWT-----
        \(jwt)
        ------END NATS USER JWT------

        ************************* IMPORTANT *************************
        NKEY Seed printed below can be used to sign and prove identity.
        NKEYs are sensitive and should be treated as secrets.

        -----BEGIN USER NKEY SEED-----
        \(seed)
        ------END USER NKEY SEED------

        *************************************************************

        """.utf8)
    }

    func testCredsFileGivesTheJWTAndTheSeed() throws {
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJleHAiOjE3MDAwMDAwMDB9.c2ln"
        let c = try NATSUserCredentials.parseCreds(credsFile(jwt: jwt, seed: seed))
        XCTAssertEqual(c.jwt, jwt)
        XCTAssertEqual(c.seed, Array(0..<32))
        XCTAssertEqual(NATSUserCredentials.expiry(ofJWT: jwt), 1_700_000_000)
        // CRLF line ends, as a file edited on Windows has.
        let crlf = String(decoding: credsFile(jwt: jwt, seed: seed), as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertEqual(try NATSUserCredentials.parseCreds(Array(crlf.utf8)), c)
    }

    func testBrokenCredsFilesAreRefusedWithAReason() {
        let jwt = "aaa.bbb.ccc"
        func message(_ bytes: [UInt8]) -> String {
            do { _ = try NATSUserCredentials.parseCreds(bytes); return "" } catch { return error.message }
        }
        XCTAssertTrue(message(Array("hello\n".utf8)).contains("no credentials found"))
        XCTAssertTrue(message(Array("\(seed)\n".utf8)).contains("no user JWT"))
        XCTAssertTrue(message(Array("-----BEGIN NATS USER JWT-----\n\(jwt)\n------END NATS USER JWT------\n".utf8)).contains("one armored block"))
        XCTAssertTrue(message(credsFile(jwt: "notajwt", seed: seed)).contains("not a JWT"))
        XCTAssertTrue(message(credsFile(jwt: jwt, seed: String(seed.dropLast(2)) + "AA")).contains("checksum"))
    }

    func testSeedFileTakesTheFirstSeedLine() throws {
        XCTAssertEqual(try NATSUserCredentials.parseSeedFile(Array("# my key\n  \(seed)  \n".utf8)).seed, Array(0..<32))
        XCTAssertEqual(try NATSUserCredentials.parseSeedFile(credsFile(jwt: "a.b.c", seed: seed)).seed, Array(0..<32))
        XCTAssertThrowsError(try NATSUserCredentials.parseSeedFile(Array("\n\n".utf8)))
    }

    func testPubAcksParseOnBytes() {
        func ack(_ s: String) -> NATSPubAck? { NATSPubAck.parse(Array(s.utf8)) }
        XCTAssertEqual(ack(#"{"stream":"LOGS", "seq":1}"#), .stored(seq: 1, duplicate: false))
        XCTAssertEqual(ack(#"{"stream":"LOGS","seq":2,"duplicate": true}"#), .stored(seq: 2, duplicate: true))
        XCTAssertEqual(ack(#" {"stream":"LOGS","domain":"hub","seq":18446744073709551615} "#), .stored(seq: .max, duplicate: false))
        XCTAssertEqual(ack(#"{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"},"stream":"LOGS","seq":0}"#),
                       .error(code: 400, errCode: 10060, description: "expected stream does not match"))
        XCTAssertEqual(ack(#"{"error":{"code":503,"description":"insufficient resources","x":[1,{"y":null}]}}"#),
                       .error(code: 503, errCode: 0, description: "insufficient resources"))
        for bad in ["", "{", "[]", #"{"stream":"","seq":1}"#, #"{"stream":"L"}"#, #"{"stream":"L","seq":-1}"#,
                    #"{"stream":"L","seq":18446744073709551616}"#, #"{"stream":"L","seq":1} x"#, #"{"stream":"L","seq":1,}"#,
                    String(repeating: "[", count: 100)] {
            XCTAssertNil(ack(bad), bad)
        }
    }

    func testNATSServersPubAcksReadWithoutTheJSONWalkAgreeWithIt() {
        func both(_ s: String) -> (NATSPubAck?, NATSPubAck?) {
            Array(s.utf8).withUnsafeBytes { p in
                var r = PubAckReader(bytes: p)
                return (PubAckReader.stored(p), r.ack())
            }
        }
        for (text, want) in [(#"{"stream":"LOGS", "seq":1}"#, NATSPubAck.stored(seq: 1, duplicate: false)),
                             (#"{"stream":"L", "seq":18446744073709551615,"duplicate": true}"#, .stored(seq: .max, duplicate: true))] {
            let (fast, walked) = both(text)
            XCTAssertEqual(fast, want, text)
            XCTAssertEqual(walked, want, text)
        }
        // Left to the JSON walk: other spacing, a domain, an escape, overflow, anything after the end.
        for other in [#"{"stream":"LOGS","seq":1}"#, #"{"stream":"LOGS", "domain":"hub", "seq":1}"#, #"{"stream":"L"S", "seq":1}"#,
                      #"{"stream":"", "seq":1}"#, #"{"stream":"L", "seq":18446744073709551616}"#, #"{"stream":"L", "seq":1} "#,
                      #"{"stream":"L", "seq":1,"duplicate": true} "#, #"{"stream":"L", "seq":}"#, #"{"stream":"L"#] {
            XCTAssertNil(both(other).0, other)
        }
        XCTAssertEqual(NATSPubAck.parse(Array(#"{"stream":"LOGS","seq":1}"#.utf8)), .stored(seq: 1, duplicate: false))
    }

    func testHMSGStatusAndMSGPayloadAreKept() throws {
        var p = NATSServerParser()
        let bytes = Array("HMSG _INBOX.x.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nMSG _INBOX.x.2 1  26\r\n{\"stream\":\"LOGS\", \"seq\":1}\r\n".utf8)
        bytes.withUnsafeBytes { p.append($0) }
        guard case .msg(let m1)? = try p.next(), case .msg(let m2)? = try p.next() else { return XCTFail("two messages expected") }
        XCTAssertEqual(m1.status, 503)
        XCTAssertEqual(m1.payload, [])
        XCTAssertEqual(m2.subject, Array("_INBOX.x.2".utf8))
        XCTAssertEqual(m2.payload.flatMap(NATSPubAck.parse), .stored(seq: 1, duplicate: false))
    }

    func testReplySequenceOnlyForOurInbox() {
        let inbox = Array("_INBOX.abc.".utf8)
        func replySequence(_ s: String, inbox: [UInt8]) -> UInt64? {
            Array(s.utf8).withUnsafeBytes { NATSServerParser.replySequence($0, inbox: inbox) }
        }
        XCTAssertEqual(replySequence("_INBOX.abc.42", inbox: inbox), 42)
        XCTAssertNil(replySequence("_INBOX.abd.42", inbox: inbox))
        XCTAssertNil(replySequence("_INBOX.abc.4x", inbox: inbox))
        XCTAssertNil(replySequence("_INBOX.abc.", inbox: inbox))
        XCTAssertNil(replySequence("_INBOX.abc.99999999999999999999", inbox: inbox))
    }
}
