// logentries-transport=http options: the webhook URL from the region or logentries-url, the
// token appended or kept, what is refused, and that no message shows the URL's token.
import XCTest
@testable import LogRelayCore

final class LogentriesHTTPOptionsTests: XCTestCase {
    static let token = "2bfbea1e-10c3-4419-bdad-7e6435882e1f"

    private func http(_ extra: [String: String]) throws(OptionError) -> LogentriesOptions {
        var config = ["logentries-token": Self.token, "logentries-transport": "http"]
        config.merge(extra) { $1 }
        guard let l = try LogOptions.parse(config, driver: .auto).logentries else { throw OptionError("no Logentries options") }
        return l
    }

    private func refused(_ extra: [String: String], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try http(extra)
            XCTFail("accepted \(extra)", file: file, line: line)
        } catch {
            XCTAssertTrue(error.message.contains(fragment), error.message, file: file, line: line)
            XCTAssertFalse(error.message.contains(Self.token), "the token is in: \(error.message)", file: file, line: line)
        }
    }

    func testTheRegionGivesRapid7sWebhookURL() throws {
        let l = try http(["logentries-region": "eu"])
        XCTAssertEqual(l.transport, .http)
        XCTAssertEqual(l.http, LogentriesHTTPEndpoint(tls: true, host: "eu.webhook.logs.insight.rapid7.com", port: 443,
                                                      path: "/v1/noformat/\(Self.token)"))
        XCTAssertEqual(l.http?.redacted, "https://eu.webhook.logs.insight.rapid7.com:443")
        XCTAssertEqual(l.httpConnectionKey, LogentriesHTTPConnectionKey(tls: true, host: "eu.webhook.logs.insight.rapid7.com", port: 443, caCert: nil))
    }

    func testAURLKeepsItsTokenOrGetsItAppended() throws {
        XCTAssertEqual(try http(["logentries-url": "https://Relay.example:8443/v1/noformat/\(Self.token)"]).http,
                       LogentriesHTTPEndpoint(tls: true, host: "relay.example", port: 8443, path: "/v1/noformat/\(Self.token)"))
        XCTAssertEqual(try http(["logentries-url": "https://relay.example/v1/noformat/"]).http?.path, "/v1/noformat/\(Self.token)")
        XCTAssertEqual(try http(["logentries-url": "https://relay.example/in"]).http?.path, "/in/\(Self.token)")
        XCTAssertEqual(try http(["logentries-url": "http://[::1]"]).http,
                       LogentriesHTTPEndpoint(tls: false, host: "::1", port: 80, path: "/\(Self.token)"))
        XCTAssertTrue(try http(["logentries-url": "http://127.0.0.1:9/x"]).http?.isLoopback ?? false)
        XCTAssertFalse(try http(["logentries-url": "http://192.0.2.1/x"]).http?.isLoopback ?? true)
    }

    func testTheCAIsForHTTPSOnly() throws {
        XCTAssertEqual(try http(["logentries-region": "us", "logentries-tls-ca-cert": "/etc/logrelay/ca.pem"]).httpConnectionKey?.caCert,
                       "/etc/logrelay/ca.pem")
        refused(["logentries-url": "http://127.0.0.1/x", "logentries-tls-ca-cert": "/etc/logrelay/ca.pem"], "no effect with an http://")
    }

    func testWhatIsRefused() {
        refused([:], "needs logentries-region")
        refused(["logentries-transport": "udp"], "invalid logentries-transport")
        refused(["logentries-region": "eu", "logentries-url": "https://x/"], "set only one of them")
        refused(["logentries-region": "eu", "logentries-address": "x:443"], "logentries-address is for logentries-transport=tcp")
        refused(["logentries-region": "eu", "logentries-tls": "false"], "logentries-tls is for logentries-transport=tcp")
        refused(["logentries-region": "EU!"], "invalid logentries-region")
        refused(["logentries-url": "ftp://x/\(Self.token)"], "https:// or http://")
        refused(["logentries-url": "https://user:\(Self.token)@x/"], "user info")
        refused(["logentries-url": "https://x/\(Self.token)?a=b"], "query or fragment")
        refused(["logentries-url": "https://x/a b/\(Self.token)"], "spaces or non-ASCII")
        refused(["logentries-url": "https:///\(Self.token)"], "missing host")
        refused(["logentries-url": "https://x:99999/\(Self.token)"], "port must be")
    }

    func testTCPStaysTheDefaultAndRefusesAURL() throws {
        let l = try LogOptions.parse(["logentries-token": Self.token], driver: .auto).logentries
        XCTAssertEqual(l?.transport, .tcp)
        XCTAssertNil(l?.http)
        XCTAssertNil(l?.httpConnectionKey)
        XCTAssertThrowsError(try LogOptions.parse(["logentries-token": Self.token, "logentries-url": "https://x/"], driver: .auto))
    }
}
