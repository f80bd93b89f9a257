// --log-opt parsing: defaults, driver selection, unknown keys, every option's good and
// bad values, secrets never echoed, and which options split NATS connections.
import XCTest
@testable import LogRelayCore

final class LogOptionsTests: XCTestCase {
    static let token = "2bfbea1e-10c3-4419-bdad-7e6435882e1f"

    func parse(_ config: [String: String], _ driver: DriverSetting = .auto,
               file: StaticString = #filePath, line: UInt = #line) -> LogOptions? {
        do {
            return try LogOptions.parse(config, driver: driver)
        } catch {
            XCTFail("\(config): \(error)", file: file, line: line)
            return nil
        }
    }

    /// Asserts parsing fails, that the message names every `contains` part and none of `secrets`.
    @discardableResult
    func fails(_ config: [String: String], _ driver: DriverSetting = .auto, contains parts: [String],
               secrets: [String] = [], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try LogOptions.parse(config, driver: driver)
            XCTFail("\(config) parsed", file: file, line: line)
            return ""
        } catch {
            for p in parts {
                XCTAssertTrue(error.message.contains(p), "\(error.message) lacks \(p)", file: file, line: line)
            }
            for s in secrets {
                XCTAssertFalse(error.message.contains(s), "\(error.message) leaks a secret", file: file, line: line)
            }
            XCTAssertEqual(error.description, error.message, file: file, line: line)
            return error.message
        }
    }

    // MARK: driver selection and keys

    func testDefaultsForNATS() {
        guard let o = parse([:]) else { return }
        XCTAssertEqual(o.driver, .nats)
        XCTAssertNil(o.logentries)
        XCTAssertEqual(o.common.tag.source, "{{.ID}}")
        XCTAssertEqual(o.common.labels, [])
        XCTAssertNil(o.common.labelsRegex)
        XCTAssertEqual(o.common.env, [])
        XCTAssertNil(o.common.envRegex)
        XCTAssertEqual(o.common.bufferSize, 8 << 20)
        XCTAssertEqual(o.common.bufferFull, .dropOldest)
        XCTAssertTrue(o.common.partialMerge)
        let n = o.nats!
        XCTAssertEqual(n.servers, [NATSServerURL(scheme: .nats, host: "localhost", port: 4222)])
        XCTAssertNil(n.subject)
        XCTAssertEqual(n.maxReconnect, -1)
        XCTAssertNil(n.user); XCTAssertNil(n.pass); XCTAssertNil(n.token)
        XCTAssertNil(n.tlsCACert); XCTAssertNil(n.tlsCert); XCTAssertNil(n.tlsKey)
        XCTAssertFalse(n.tlsSkipVerify)
    }

    func testAutoPicksLogentriesOnlyWhenTokenPresent() {
        XCTAssertEqual(parse(["logentries-token": Self.token])?.driver, .logentries)
        XCTAssertEqual(parse(["tag": "x"])?.driver, .nats)
        fails(["logentries-token": ""], contains: ["logentries-token is required"])
        fails(["nats-servers": "nats://h", "logentries-token": Self.token], contains: [#""nats-servers""#, "logentries log driver"])
    }

    func testExplicitDriverWins() {
        fails(["logentries-token": Self.token], .nats, contains: [#""logentries-token""#, "nats log driver"], secrets: [Self.token])
        fails(["nats-servers": "nats://h"], .logentries, contains: [#""nats-servers""#, "logentries log driver"])
        fails([:], .logentries, contains: ["logentries-token is required"])
        XCTAssertEqual(parse(["nats-subject": "a"], .nats)?.driver, .nats)
    }

    func testUnknownKeyNamesKeyAndDriverAndValidKeys() {
        let m = fails(["foo": "bar"], contains: [#"unknown log option "foo" for the nats log driver"#, "valid:", "nats-servers", "buffer-size"])
        XCTAssertFalse(m.contains("bar"))
        fails(["foo": "1", "logentries-token": Self.token], contains: [#""foo""#, "for the logentries log driver", "line-only"])
        fails(["b": "1", "a": "2"], contains: [#"unknown log options "a", "b""#])
    }

    func testOtherDriversKeysAreUnknown() {
        fails(["line-only": "true"], contains: [#""line-only""#, "nats log driver"])
        fails(["logentries-token": Self.token, "nats-user": "u"], contains: [#""nats-user""#, "logentries log driver"])
    }

    func testUnknownKeyValueIsNeverEchoed() {
        fails(["nats-password": "hunter2"], contains: [#""nats-password""#], secrets: ["hunter2"])
    }

    func testDaemonConsumedKeysAreAccepted() {
        let daemon = ["mode": "non-blocking", "max-buffer-size": "4m", "cache-disabled": "false",
                      "cache-max-size": "20m", "cache-max-file": "5", "cache-compress": "true",
                      "max-size": "10m", "max-file": "3", "compress": "false"]
        XCTAssertNotNil(parse(daemon))
        XCTAssertNotNil(parse(daemon.merging(["logentries-token": Self.token]) { a, _ in a }))
    }

    // MARK: common options

    func testTagIsParsedAtParseTime() {
        XCTAssertEqual(parse(["tag": "{{.Name}}"])?.common.tag.source, "{{.Name}}")
        XCTAssertEqual(parse(["tag": ""])?.common.tag.source, "{{.ID}}", "empty means default")
        fails(["tag": "{{.Nope}}"], contains: ["invalid tag", "{{.Nope}}", "unknown field"])
    }

    func testLabelsAndEnvSplitOnCommaExactly() {
        let o = parse(["labels": "a,,b ,c", "env": "X,Y"])
        XCTAssertEqual(o?.common.labels, ["a", "", "b ", "c"])
        XCTAssertEqual(o?.common.env, ["X", "Y"])
    }

    func testRegexesAreCompiledAtParseTime() {
        let o = parse(["labels-regex": "^com\\.", "env-regex": "^(A|B)$"])
        XCTAssertEqual(o?.common.labelsRegex, "^com\\.")
        XCTAssertEqual(o?.common.envRegex, "^(A|B)$")
        fails(["labels-regex": "(unclosed"], contains: ["labels-regex", "(unclosed"])
        fails(["env-regex": "[z-a]"], contains: ["env-regex"])
    }

    func testBufferSizeAcceptsUnits() {
        let cases: [(String, Int)] = [("65536", 65536), ("64k", 65536), ("64K", 65536), ("64kb", 65536),
                                      ("64KiB", 65536), ("8m", 8 << 20), ("8MB", 8 << 20), ("8 MiB", 8 << 20),
                                      ("1g", 1 << 30), ("1.5m", 3 << 19), ("100000b", 100_000)]
        for (text, bytes) in cases {
            XCTAssertEqual(parse(["buffer-size": text])?.common.bufferSize, bytes, text)
        }
    }

    func testBufferSizeRejectsBadValues() {
        for bad in ["abc", "0", "-1", "10x", "1.2.3m", "m", "99999999999999g", "1e6"] {
            fails(["buffer-size": bad], contains: ["buffer-size", "\"\(bad)\""])
        }
        fails(["buffer-size": "1k"], contains: ["buffer-size", "\"1k\"", "minimum is 64k"])
    }

    func testBufferFullPolicies() {
        XCTAssertEqual(parse(["buffer-full": "drop-oldest"])?.common.bufferFull, .dropOldest)
        XCTAssertEqual(parse(["buffer-full": "drop-newest"])?.common.bufferFull, .dropNewest)
        XCTAssertEqual(parse(["buffer-full": "block"])?.common.bufferFull, .block)
        fails(["buffer-full": "drop"], contains: ["buffer-full", "\"drop\"", "drop-oldest, drop-newest or block"])
    }

    func testBooleans() {
        for (text, value) in [("true", true), ("false", false), ("1", true), ("0", false), ("yes", true),
                              ("no", false), ("TRUE", true), ("False", false)] {
            XCTAssertEqual(parse(["partial-merge": text])?.common.partialMerge, value, text)
        }
        fails(["partial-merge": "maybe"], contains: ["partial-merge", "\"maybe\""])
    }

    // MARK: NATS options

    func testNATSServers() {
        let o = parse(["nats-servers": "nats://a:1, tls://B ,,c:4223"])
        XCTAssertEqual(o?.nats?.servers.map(\.description), ["nats://a:1", "tls://b:4222", "nats://c:4223"])
        fails(["nats-servers": "http://h"], contains: ["nats-servers", "http"])
        fails(["nats-servers": " , "], contains: ["nats-servers"])
    }

    func testNATSServerCredentialsNeverInErrors() {
        fails(["nats-servers": "nats://u:s3cr3t@host:notaport"], contains: ["nats-servers", "port"], secrets: ["s3cr3t"])
        fails(["nats-servers": "nats://t0k3n@bad host"], contains: ["nats-servers"], secrets: ["t0k3n"])
        fails(["nats-servers": "nats://ok:4222,ftp://u:pw0rd@h"], contains: ["nats-servers"], secrets: ["pw0rd"])
    }

    func testNATSSubject() {
        XCTAssertEqual(parse(["nats-subject": "logs.web"])?.nats?.subject?.source, "logs.web")
        XCTAssertEqual(parse(["nats-subject": "logs.{{.Name}}"])?.nats?.subject?.source, "logs.{{.Name}}")
        XCTAssertNil(parse(["nats-subject": ""])?.nats?.subject, "empty means the tag")
        fails(["nats-subject": "logs..web"], contains: ["nats-subject", "empty token"])
        fails(["nats-subject": "logs.*"], contains: ["nats-subject", "wildcard"])
        fails(["nats-subject": "logs web"], contains: ["nats-subject", "whitespace"])
        fails(["nats-subject": "logs.{{.Bad}}"], contains: ["invalid nats-subject", "unknown field"])
    }

    func testNATSMaxReconnect() {
        XCTAssertEqual(parse(["nats-max-reconnect": "-1"])?.nats?.maxReconnect, -1)
        XCTAssertEqual(parse(["nats-max-reconnect": "0"])?.nats?.maxReconnect, 0)
        XCTAssertEqual(parse(["nats-max-reconnect": "60"])?.nats?.maxReconnect, 60)
        fails(["nats-max-reconnect": "-2"], contains: ["nats-max-reconnect", "\"-2\""])
        fails(["nats-max-reconnect": "lots"], contains: ["nats-max-reconnect", "\"lots\""])
    }

    func testNATSAuthentication() {
        let o = parse(["nats-user": "alice", "nats-pass": "pw"])
        XCTAssertEqual(o?.nats?.user, "alice")
        XCTAssertEqual(o?.nats?.pass, "pw")
        XCTAssertEqual(parse(["nats-token": "tok"])?.nats?.token, "tok")
        XCTAssertEqual(parse(["nats-user": "alice"])?.nats?.user, "alice")
        fails(["nats-pass": "hunter2"], contains: ["nats-pass needs nats-user"], secrets: ["hunter2"])
        fails(["nats-user": "alice", "nats-pass": "hunter2", "nats-token": "t0k3n"], contains: ["nats-token", "nats-user"],
              secrets: ["hunter2", "t0k3n"])
    }

    func testNATSTLSFiles() {
        let o = parse(["nats-tls-ca-cert": "/etc/ca.pem", "nats-tls-cert": "/c.pem", "nats-tls-key": "/k.pem"])
        XCTAssertEqual(o?.nats?.tlsCACert, "/etc/ca.pem")
        XCTAssertEqual(o?.nats?.tlsCert, "/c.pem")
        XCTAssertEqual(o?.nats?.tlsKey, "/k.pem")
        fails(["nats-tls-ca-cert": "ca.pem"], contains: ["nats-tls-ca-cert", "absolute", "\"ca.pem\""])
        fails(["nats-tls-cert": "/c.pem"], contains: ["nats-tls-cert and nats-tls-key"])
        fails(["nats-tls-key": "./k.pem"], contains: ["nats-tls-key", "absolute"])
    }

    func testNATSSkipVerify() {
        XCTAssertEqual(parse(["nats-tls-skip-verify": ""])?.nats?.tlsSkipVerify, true, "no value means true")
        XCTAssertEqual(parse(["nats-tls-skip-verify": "true"])?.nats?.tlsSkipVerify, true)
        XCTAssertEqual(parse(["nats-tls-skip-verify": "false"])?.nats?.tlsSkipVerify, false)
        fails(["nats-tls-skip-verify": "please"], contains: ["nats-tls-skip-verify", "\"please\""])
    }

    // MARK: Logentries options

    func testLogentriesDefaults() {
        guard let l = parse(["logentries-token": Self.token])?.logentries else { return XCTFail("no logentries") }
        XCTAssertEqual(l.token, Self.token)
        XCTAssertFalse(l.lineOnly)
        XCTAssertEqual(l.host, "data.logentries.com")
        XCTAssertEqual(l.port, 443)
        XCTAssertEqual(l.hostPort, "data.logentries.com:443")
        XCTAssertTrue(l.tls)
        XCTAssertNil(l.caCert)
    }

    func testLogentriesTokenMustLookLikeUUID() {
        XCTAssertNotNil(parse(["logentries-token": Self.token.uppercased()]))
        for bad in ["not-a-token", "2bfbea1e10c34419bdad7e6435882e1f", "2bfbea1e-10c3-4419-bdad-7e6435882e1g",
                    " 2bfbea1e-10c3-4419-bdad-7e6435882e1f"] {
            fails(["logentries-token": bad], contains: ["logentries-token", "UUID"], secrets: [bad])
        }
        fails(["logentries-token": ""], contains: ["logentries-token is required"])
    }

    func testLogentriesAddressAndRegion() {
        let t = ["logentries-token": Self.token]
        let a = parse(t.merging(["logentries-address": "Logs.Example.com:10000"]) { a, _ in a })?.logentries
        XCTAssertEqual(a?.host, "logs.example.com")
        XCTAssertEqual(a?.port, 10000)
        XCTAssertEqual(parse(t.merging(["logentries-address": "[::1]:8443"]) { a, _ in a })?.logentries?.hostPort, "[::1]:8443")
        XCTAssertEqual(parse(t.merging(["logentries-address": "h"]) { a, _ in a })?.logentries?.port, 443)
        XCTAssertEqual(parse(t.merging(["logentries-address": "h", "logentries-tls": "false"]) { a, _ in a })?.logentries?.port, 80)
        let r = parse(t.merging(["logentries-region": "eu"]) { a, _ in a })?.logentries
        XCTAssertEqual(r?.hostPort, "eu.data.logs.insight.rapid7.com:443")
        XCTAssertEqual(parse(t.merging(["logentries-region": "us2"]) { a, _ in a })?.logentries?.host, "us2.data.logs.insight.rapid7.com")
        for bad in ["h:0", "h:99999", "h:x", ":443", "a:b:c", "[::1"] {
            fails(t.merging(["logentries-address": bad]) { a, _ in a }, contains: ["logentries-address", "\"\(bad)\""], secrets: [Self.token])
        }
        for bad in ["EU", "e u", "eu.evil.com", "-eu", ""] where !bad.isEmpty {
            fails(t.merging(["logentries-region": bad]) { a, _ in a }, contains: ["logentries-region", "\"\(bad)\""])
        }
        fails(t.merging(["logentries-region": "eu", "logentries-address": "h:1"]) { a, _ in a },
              contains: ["logentries-address", "logentries-region"], secrets: [Self.token])
    }

    func testLogentriesTLSAndLineOnly() {
        let t = ["logentries-token": Self.token]
        let l = parse(t.merging(["logentries-tls": "false", "line-only": "true"]) { a, _ in a })?.logentries
        XCTAssertEqual(l?.tls, false)
        XCTAssertEqual(l?.lineOnly, true)
        XCTAssertEqual(l?.port, 80)
        XCTAssertEqual(parse(t.merging(["logentries-tls-ca-cert": "/ca.pem"]) { a, _ in a })?.logentries?.caCert, "/ca.pem")
        fails(t.merging(["logentries-tls-ca-cert": "ca.pem"]) { a, _ in a }, contains: ["logentries-tls-ca-cert", "absolute"])
        fails(t.merging(["logentries-tls-ca-cert": "/ca.pem", "logentries-tls": "false"]) { a, _ in a },
              contains: ["logentries-tls-ca-cert", "logentries-tls=false"])
        fails(t.merging(["line-only": "sure"]) { a, _ in a }, contains: ["line-only", "\"sure\""], secrets: [Self.token])
        fails(t.merging(["logentries-tls": "nah"]) { a, _ in a }, contains: ["logentries-tls", "\"nah\""], secrets: [Self.token])
    }

    // MARK: secrets

    func testSecretsNeverAppearInAnyError() {
        let secrets = ["S3cretPass", "T0kenValue", "2bfbea1e-10c3-4419-bdad-7e6435882e1f", "UrlPassw0rd", "UrlT0ken"]
        let configs: [([String: String], DriverSetting)] = [
            (["nats-pass": "S3cretPass"], .auto),
            (["nats-user": "u", "nats-pass": "S3cretPass", "nats-token": "T0kenValue"], .auto),
            (["nats-token": "T0kenValue", "bogus": "1"], .auto),
            (["nats-token": "T0kenValue", "buffer-size": "x"], .auto),
            (["nats-pass": "S3cretPass", "nats-user": "u", "nats-subject": "a..b"], .auto),
            (["nats-servers": "nats://u:UrlPassw0rd@h:bad"], .auto),
            (["nats-servers": "nats://u:UrlPassw0rd@"], .auto),
            (["nats-servers": "tls://UrlT0ken@h/x"], .auto),
            (["nats-servers": "nats://UrlT0ken@[::1"], .auto),
            (["nats-servers": "nats://u:Url%zzPassw0rd@h"], .auto),
            (["logentries-token": "2bfbea1e-10c3-4419-bdad-7e6435882e1f", "nats-pass": "S3cretPass"], .auto),
            (["logentries-token": "2bfbea1e-10c3-4419-bdad-7e6435882e1f", "logentries-address": "x:y"], .auto),
            (["logentries-token": "T0kenValue"], .auto),
            (["logentries-token": "2bfbea1e-10c3-4419-bdad-7e6435882e1f"], .nats),
            // Malformed URLs: a comma in a password (nats-servers is split on it), no host,
            // credentials before the scheme, a password with colons.
            (["nats-servers": "nats://carol:S3cretP,ass@host"], .auto),
            (["nats-servers": "nats://dave:SECRETdave"], .auto),
            (["nats-servers": "nats://dave:SECRETdave/"], .auto),
            (["nats-servers": "nats://[::1]:SECRETdave"], .auto),
            (["nats-servers": "nats://dave:SEC:RETdave"], .auto),
            (["nats-servers": "dave:SECRETdave@nats:/x://h"], .auto),
            (["nats-servers": "u:SECRETdave://h"], .auto),
        ]
        for (config, driver) in configs {
            fails(config, driver, contains: [], secrets: secrets + ["Url%zzPassw0rd", "S3cretP", "ass@", "SECRETdave", "RETdave"])
        }
    }

    // MARK: connection key

    func key(_ config: [String: String]) -> NATSConnectionKey? { parse(config)?.nats?.connectionKey }

    func testConnectionKeyIgnoresPerContainerOptions() {
        let base = ["nats-servers": "nats://a:1,nats://b:2", "nats-user": "u", "nats-pass": "p"]
        XCTAssertEqual(key(base), key(base))
        for extra in [["tag": "{{.Name}}"], ["nats-subject": "x.y"], ["buffer-size": "1m"], ["labels": "a"],
                      ["buffer-full": "block"], ["partial-merge": "false"], ["mode": "non-blocking"]] {
            XCTAssertEqual(key(base), key(base.merging(extra) { a, _ in a }), "\(extra)")
        }
        XCTAssertEqual(key(["nats-servers": "nats://A:1"]), key(["nats-servers": "nats://a:1/"]), "normalised")
    }

    func testConnectionKeyDiffersForConnectionOptions() {
        let base = ["nats-servers": "nats://a:1", "nats-user": "u", "nats-pass": "p"]
        let variants: [[String: String]] = [
            ["nats-servers": "nats://a:2"], ["nats-servers": "tls://a:1"], ["nats-servers": "nats://a:1,nats://b:1"],
            ["nats-servers": "nats://x:y@a:1"], ["nats-user": "v"], ["nats-pass": "q"],
            ["nats-max-reconnect": "3"], ["nats-tls-ca-cert": "/ca"], ["nats-tls-skip-verify": "true"],
            ["nats-tls-cert": "/c", "nats-tls-key": "/k"],
        ]
        for v in variants {
            XCTAssertNotEqual(key(base), key(base.merging(v) { _, b in b }), "\(v)")
        }
        XCTAssertNotEqual(key(["nats-token": "a"]), key(["nats-token": "b"]))
        XCTAssertNotEqual(key(["nats-servers": "nats://t1@h"]), key(["nats-servers": "nats://t2@h"]))
        var set = Set<NATSConnectionKey>()
        for v in variants { if let k = key(base.merging(v) { _, b in b }) { set.insert(k) } }
        XCTAssertEqual(set.count, variants.count)
    }

    func testConnectionKeyDescriptionIsRedacted() {
        let k = key(["nats-servers": "nats://u:UrlPass@a:1,nats://UrlTok@b", "nats-user": "u", "nats-pass": "S3cret"])
        let d = k?.description ?? ""
        for s in ["UrlPass", "UrlTok", "S3cret"] { XCTAssertFalse(d.contains(s), d) }
        XCTAssertTrue(d.contains("nats://u:***@a:1"), d)
    }
}
