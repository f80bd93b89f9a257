// nats-servers entries (schemes, ports, IPv6, credentials, redaction) and subject rules.
import XCTest
@testable import LogRelayCore

final class NATSServerURLTests: XCTestCase {
    func url(_ s: String, file: StaticString = #filePath, line: UInt = #line) -> NATSServerURL? {
        do {
            return try NATSServerURL(parsing: s)
        } catch {
            XCTFail("\(s): \(error)", file: file, line: line)
            return nil
        }
    }

    @discardableResult
    func fails(_ s: String, contains part: String = "", secret: String? = nil,
               file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try NATSServerURL(parsing: s)
            XCTFail("\(s) parsed", file: file, line: line)
            return ""
        } catch {
            if !part.isEmpty {
                XCTAssertTrue(error.message.contains(part), "\(error.message) lacks \(part)", file: file, line: line)
            }
            if let secret { XCTAssertFalse(error.message.contains(secret), error.message, file: file, line: line) }
            return error.message
        }
    }

    func testSchemesHostsAndPorts() {
        XCTAssertEqual(url("nats://h:1234"), NATSServerURL(scheme: .nats, host: "h", port: 1234))
        XCTAssertEqual(url("tls://h"), NATSServerURL(scheme: .tls, host: "h", port: 4222))
        XCTAssertEqual(url("h:5222"), NATSServerURL(scheme: .nats, host: "h", port: 5222))
        XCTAssertEqual(url("h"), NATSServerURL(host: "h"))
        XCTAssertEqual(url("NATS://Host.Example.COM:1/"), NATSServerURL(host: "host.example.com", port: 1))
        XCTAssertEqual(url("  127.0.0.1:4222 "), NATSServerURL(host: "127.0.0.1"))
    }

    func testIPv6() {
        XCTAssertEqual(url("[::1]:4222")?.host, "::1")
        XCTAssertEqual(url("nats://[::1]")?.port, 4222)
        XCTAssertEqual(url("tls://[fe80::1]:99")?.hostPort, "[fe80::1]:99")
        XCTAssertEqual(url("nats://[::1]:7")?.description, "nats://[::1]:7")
        fails("::1", contains: "brackets")
        fails("[::1", contains: "]")
        fails("[::1]x", contains: "after")
        fails("[zz]:1", contains: "IPv6")
    }

    func testUserPasswordAndToken() {
        let up = url("nats://alice:s3cr3t@h:4222")
        XCTAssertEqual(up?.user, "alice")
        XCTAssertEqual(up?.password, "s3cr3t")
        XCTAssertNil(up?.token)
        let t = url("tls://t0k3n@h")
        XCTAssertEqual(t?.token, "t0k3n")
        XCTAssertNil(t?.user)
        XCTAssertNil(t?.password)
        XCTAssertNil(url("nats://@h")?.token, "empty userinfo is none")
    }

    func testUserinfoIsPercentDecodedAndLastAtWins() {
        let u = url("nats://us%40er:p%3Ass%40w%2F@h")
        XCTAssertEqual(u?.user, "us@er")
        XCTAssertEqual(u?.password, "p:ss@w/")
        XCTAssertEqual(url("nats://u:p@ss@h")?.password, "p@ss")
        XCTAssertEqual(url("nats://caf%C3%A9@h")?.token, "café")
        fails("nats://u:%zz@h", contains: "percent-encoding", secret: "%zz")
        fails("nats://u:%FF@h", contains: "percent-encoding")
    }

    func testDescriptionIsRedacted() {
        XCTAssertEqual(url("nats://alice:s3cr3t@h")?.description, "nats://alice:***@h:4222")
        XCTAssertEqual(url("tls://t0k3n@h:1")?.description, "tls://***@h:1")
        XCTAssertEqual(url("h")?.description, "nats://h:4222")
        XCTAssertEqual(url("h:1")?.hostPort, "h:1")
    }

    func testBadURLs() {
        fails("", contains: "empty")
        fails("http://h", contains: "unsupported scheme \"http\"")
        fails("nats://", contains: "missing host")
        fails("nats://:4222", contains: "missing host")
        fails("nats://h:0", contains: "port")
        fails("nats://h:65536", contains: "port")
        fails("nats://h:", contains: "port")
        fails("nats://h:+1", contains: "port")
        fails("nats://h/path", contains: "path")
        fails("nats://h?x=1", contains: "path")
        fails("nats://bad host", contains: "host")
    }

    func testErrorsNeverContainCredentials() {
        for (s, secret) in [("nats://u:s3cr3t@h:bad", "s3cr3t"), ("nats://t0k3n@h/x", "t0k3n"),
                            ("ftp://u:s3cr3t@h", "s3cr3t"), ("nats://u:s3cr3t@", "s3cr3t"),
                            ("u:s3cr3t@[::1", "s3cr3t"), ("nats://t0k3n@bad host", "t0k3n")] {
            let m = fails(s, secret: secret)
            XCTAssertTrue(m.contains("***@"), m)
        }
    }

    func testSubjectValidation() throws {
        for ok in ["logs", "logs.web", "foo*", "a>b", "föö.bär", "a.b.c-d_e"] {
            XCTAssertNoThrow(try NATSSubject.validate(ok), ok)
        }
        let bad: [(String, String)] = [("", "empty"), ("a..b", "empty token"), (".a", "empty token"),
                                       ("a.", "empty token"), ("a b", "whitespace"), ("a\tb", "whitespace"),
                                       ("a\rb", "whitespace"), ("a\nb", "whitespace"), ("a\u{0C}b", "whitespace"),
                                       ("a\u{0B}b", "whitespace"), ("a\u{1}b", "control"), ("a\u{7F}", "control"),
                                       ("a.*", "wildcard"), (">", "wildcard"), ("a.>", "wildcard"), ("*.a", "wildcard")]
        for (s, part) in bad {
            XCTAssertThrowsError(try NATSSubject.validate(s), s) { error in
                XCTAssertTrue("\(error)".contains(part), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"), "one line")
            }
        }
    }
}
