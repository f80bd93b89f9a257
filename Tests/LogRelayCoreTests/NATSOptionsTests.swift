// The NKey, JetStream and TLS-first options: what they accept and how they refuse.
import XCTest
@testable import LogRelayCore

final class NATSOptionsTests: XCTestCase {
    private func nats(_ config: [String: String]) throws -> NATSOptions {
        let o = try LogOptions.parse(config, driver: .nats)
        return try XCTUnwrap(o.nats)
    }

    private func refusal(_ config: [String: String]) -> String {
        do { _ = try LogOptions.parse(config, driver: .nats); return "" } catch { return error.message }
    }

    func testJetStreamExpectedStreamAndTLSFirstAreParsed() throws {
        let n = try nats(["nats-jetstream": "true", "nats-expected-stream": "LOGS", "nats-tls-first": "true",
                          "nats-creds": "/etc/logrelay/app.creds"])
        XCTAssertTrue(n.jetstream)
        XCTAssertEqual(n.expectedStream, "LOGS")
        XCTAssertTrue(n.tlsFirst)
        XCTAssertEqual(n.creds, "/etc/logrelay/app.creds")
        XCTAssertNotEqual(n.connectionKey, try nats(["nats-creds": "/etc/logrelay/app.creds"]).connectionKey,
                          "JetStream and core sessions never share a connection")
        XCTAssertFalse(try nats([:]).jetstream)
    }

    func testConflictsAndBadValuesAreRefusedWithTheKey() {
        XCTAssertTrue(refusal(["nats-creds": "/a.creds", "nats-nkey": "/a.nk"]).contains("alternatives"))
        XCTAssertTrue(refusal(["nats-creds": "/a.creds", "nats-user": "u"]).contains("nats-user"))
        XCTAssertTrue(refusal(["nats-nkey": "/a.nk", "nats-token": "t"]).contains("nats-token"))
        XCTAssertTrue(refusal(["nats-nkey": "a.nk"]).contains("absolute path"))
        XCTAssertTrue(refusal(["nats-expected-stream": "LOGS"]).contains("needs nats-jetstream=true"))
        for bad in ["LO GS", "a.b", "x*", ">", "a/b"] {
            XCTAssertTrue(refusal(["nats-jetstream": "true", "nats-expected-stream": bad]).contains("nats-expected-stream"), bad)
        }
        XCTAssertTrue(refusal(["nats-jetstream": "maybe"]).contains("nats-jetstream"))
        XCTAssertTrue(refusal(["nats-tls-first": "2"]).contains("nats-tls-first"))
    }
}
