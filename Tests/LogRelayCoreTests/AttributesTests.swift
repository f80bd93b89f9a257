// attrs from labels / labels-regex / env / env-regex, with Docker's precedence.
import XCTest
@testable import LogRelayCore

final class AttributesTests: XCTestCase {
    static let info = ContainerInfo(
        containerEnv: ["PATH=/bin", "TEAM=env-team", "EMPTY=", "NOEQUALS", "DUP=1", "DUP=2", "EQ=a=b", "team=env"],
        containerLabels: ["team": "label", "com.example.app": "shop", "com.example.tier": "web", "other": "x"])

    func extract(_ options: CommonOptions, _ info: ContainerInfo = AttributesTests.info) -> [String] {
        do {
            return try Attributes.extract(from: info, options: options).map { "\($0.key)=\($0.value)" }
        } catch {
            XCTFail("\(error)")
            return []
        }
    }

    func testNoOptionsGiveNoAttrs() {
        XCTAssertEqual(extract(CommonOptions()), [])
    }

    func testLabelsCopiesOnlyListedPresentLabels() {
        XCTAssertEqual(extract(CommonOptions(labels: ["other", "missing", "", "team"])), ["other=x", "team=label"])
    }

    func testLabelsRegexMatchesAnywhereInKey() {
        XCTAssertEqual(extract(CommonOptions(labelsRegex: "example")), ["com.example.app=shop", "com.example.tier=web"])
        XCTAssertEqual(extract(CommonOptions(labelsRegex: "^o")), ["other=x"])
    }

    func testEnvSplitsAtFirstEqualsIgnoresEntriesWithoutAndKeepsLastDuplicate() {
        XCTAssertEqual(extract(CommonOptions(env: ["EQ", "EMPTY", "NOEQUALS", "DUP", "ABSENT"])), ["DUP=2", "EMPTY=", "EQ=a=b"])
    }

    func testEnvRegex() {
        XCTAssertEqual(extract(CommonOptions(envRegex: "^T")), ["TEAM=env-team"])
    }

    func testPrecedenceLabelsThenLabelsRegexThenEnvThenEnvRegex() {
        var info = Self.info
        info.containerLabels = ["k": "label"]
        info.containerEnv = ["k=env"]
        XCTAssertEqual(extract(CommonOptions(labels: ["k"], env: ["k"]), info), ["k=env"], "env beats labels")
        XCTAssertEqual(extract(CommonOptions(labels: ["k"], labelsRegex: "k", env: ["k"]), info), ["k=env"])
        info.containerLabels = ["k": "label", "kk": "label-regex"]
        info.containerEnv = ["kk=env", "k=env"]
        XCTAssertEqual(extract(CommonOptions(labels: ["kk"], labelsRegex: "kk"), info), ["kk=label-regex"], "labels-regex beats labels")
        info.containerEnv = ["kk=env", "kkk=x"]
        XCTAssertEqual(extract(CommonOptions(env: ["kk"], envRegex: "^kk$"), info), ["kk=env"])
        XCTAssertEqual(extract(CommonOptions(labelsRegex: "kk", env: ["kk"]), info), ["kk=env"], "env beats labels-regex")
        XCTAssertEqual(extract(CommonOptions(labels: ["team"], envRegex: "^team$")), ["team=env"], "env-regex beats labels")
    }

    func testKeysKeepCaseAndAreSortedBytewise() {
        var info = ContainerInfo()
        info.containerLabels = ["b": "1", "B": "2", "a": "3", "é": "4", "Z": "5"]
        XCTAssertEqual(extract(CommonOptions(labelsRegex: "."), info), ["B=2", "Z=5", "a=3", "b=1", "é=4"])
    }

    func testBadRegexFailsNamingTheKey() {
        XCTAssertThrowsError(try Attributes.extract(from: Self.info, options: CommonOptions(envRegex: "("))) { error in
            XCTAssertTrue("\(error)".contains("env-regex"), "\(error)")
        }
    }
}
