// Decoding Docker's Info and StartLogging bodies: nulls, missing keys, bad bodies.
import FoundationEssentials
import XCTest
@testable import LogRelayCore

final class ContainerInfoTests: XCTestCase {
    static let sample = #"""
    {"File":"/run/docker/logging/6f1e","Info":{"Config":{"mode":"non-blocking","tag":"{{.Name}}"},
     "ContainerID":"aaaa","ContainerName":"/web","ContainerEntrypoint":"sh","ContainerArgs":["-c","echo hi"],
     "ContainerImageID":"sha256:bbbb","ContainerImageName":"alpine","ContainerCreated":"2024-05-01T12:00:00.12345Z",
     "ContainerEnv":["PATH=/usr/bin"],"ContainerLabels":{"a":"b"},"LogPath":"","DaemonName":"docker"}}
    """#

    func parse(_ s: String) throws(OptionError) -> StartLoggingRequest {
        try StartLoggingRequest.parse(Array(s.utf8))
    }

    func testDecodesEveryDockerKey() throws {
        let r = try parse(Self.sample)
        XCTAssertEqual(r.file, "/run/docker/logging/6f1e")
        XCTAssertEqual(r.info, ContainerInfo(
            config: ["mode": "non-blocking", "tag": "{{.Name}}"], containerID: "aaaa", containerName: "/web",
            containerEntrypoint: "sh", containerArgs: ["-c", "echo hi"], containerImageID: "sha256:bbbb",
            containerImageName: "alpine", containerCreated: "2024-05-01T12:00:00.12345Z",
            containerEnv: ["PATH=/usr/bin"], containerLabels: ["a": "b"], logPath: "", daemonName: "docker"))
    }

    func testNullsMeanEmpty() throws {
        let r = try parse(#"{"File":"/f","Info":{"Config":null,"ContainerArgs":null,"ContainerEnv":null,"ContainerLabels":null,"ContainerID":null}}"#)
        XCTAssertEqual(r.info, ContainerInfo())
    }

    func testMissingKeysGetDefaults() throws {
        let r = try parse(#"{"File":"/f","Info":{"ContainerID":"x"}}"#)
        XCTAssertEqual(r.info.containerID, "x")
        XCTAssertEqual(r.info.daemonName, "docker")
        XCTAssertEqual(r.info.config, [:])
        XCTAssertEqual(try parse(#"{"File":"/f"}"#).info, ContainerInfo())
        XCTAssertEqual(try parse(#"{"File":"/f","Info":null,"Extra":1}"#).info, ContainerInfo())
    }

    func testRoundTripsWithDockerKeyNames() throws {
        let info = try parse(Self.sample).info
        let data = try JSONEncoder().encode(info)
        let text = String(decoding: data, as: UTF8.self)
        for key in ["Config", "ContainerID", "ContainerName", "ContainerEntrypoint", "ContainerArgs", "ContainerImageID",
                    "ContainerImageName", "ContainerCreated", "ContainerEnv", "ContainerLabels", "LogPath", "DaemonName"] {
            XCTAssertTrue(text.contains("\"\(key)\""), key)
        }
        XCTAssertEqual(try JSONDecoder().decode(ContainerInfo.self, from: data), info)
    }

    func testBadBodiesFailWithClearMessages() {
        func message(_ body: String) -> String {
            do { _ = try parse(body); return "parsed" } catch { return error.message }
        }
        XCTAssertEqual(message(""), "empty StartLogging request body")
        XCTAssertTrue(message("{").contains("not valid JSON"))
        XCTAssertTrue(message("[]").contains("invalid StartLogging request body"))
        XCTAssertEqual(message(#"{"Info":{}}"#), "StartLogging request has no File")
        XCTAssertEqual(message(#"{"File":"","Info":{}}"#), "StartLogging request has no File")
        XCTAssertTrue(message(#"{"File":5}"#).contains("File"))
        let m = message(#"{"File":"/f","Info":{"Config":{"nats-pass":"hunter2","x":5}}}"#)
        XCTAssertTrue(m.contains("Config"), m)
        XCTAssertFalse(m.contains("hunter2"), m)
    }
}
