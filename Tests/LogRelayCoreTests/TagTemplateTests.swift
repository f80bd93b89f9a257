// Docker's tag markup: every field and function, pipelines, parentheses, literals,
// trim markers, and the parse-time errors for everything outside the subset.
import XCTest
@testable import LogRelayCore

final class TagTemplateTests: XCTestCase {
    static let info = ContainerInfo(
        config: ["tag": "{{.Name}}", "x": "y"],
        containerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        containerName: "/web-app_1",
        containerEntrypoint: "sh",
        containerArgs: ["-c", "echo hi"],
        containerImageID: "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        containerImageName: "alpine:3.19",
        containerCreated: "2024-05-01T12:00:00.12345Z",
        containerEnv: ["A=1", "B=2"],
        containerLabels: ["com.example.team": "core", "env": "prod"],
        logPath: "",
        daemonName: "docker")

    func render(_ source: String, _ info: ContainerInfo = TagTemplateTests.info,
                file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            return try TagTemplate(source).render(info, hostname: "host-1")
        } catch {
            XCTFail("\(source): \(error)", file: file, line: line)
            return nil
        }
    }

    /// Asserts parsing fails and returns the message.
    @discardableResult
    func parseError(_ source: String, contains part: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try TagTemplate(source)
            XCTFail("\(source) parsed", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error.message.contains(part), "\(error.message) lacks \(part)", file: file, line: line)
            XCTAssertTrue(error.message.contains("invalid template"), error.message, file: file, line: line)
            return error.message
        }
    }

    // MARK: fields

    func testDockerMethodFields() {
        XCTAssertEqual(render("{{.ID}}"), "0123456789ab")
        XCTAssertEqual(render("{{.FullID}}"), Self.info.containerID)
        XCTAssertEqual(render("{{.Name}}"), "web-app_1")
        XCTAssertEqual(render("{{.ImageID}}"), "abcdef012345")
        XCTAssertEqual(render("{{.ImageFullID}}"), Self.info.containerImageID)
        XCTAssertEqual(render("{{.ImageName}}"), "alpine:3.19")
        XCTAssertEqual(render("{{.DaemonName}}"), "docker")
        XCTAssertEqual(render("{{.Command}}"), "sh -c echo hi")
        XCTAssertEqual(render("{{.Hostname}}"), "host-1")
    }

    func testCommandWithoutArgsIsEntrypoint() {
        var info = Self.info
        info.containerArgs = []
        XCTAssertEqual(render("{{.Command}}", info), "sh")
    }

    func testImageIDWithoutAlgorithmAndShortIDs() {
        var info = Self.info
        info.containerImageID = "0123456789abcdef"
        info.containerID = "abc"
        info.containerName = "noslash"
        XCTAssertEqual(render("{{.ImageID}}", info), "0123456789ab")
        XCTAssertEqual(render("{{.ID}}", info), "abc")
        XCTAssertEqual(render("{{.Name}}", info), "noslash")
    }

    func testInfoFields() {
        XCTAssertEqual(render("{{.ContainerName}}"), "/web-app_1")
        XCTAssertEqual(render("{{.ContainerID}}"), Self.info.containerID)
        XCTAssertEqual(render("{{.ContainerImageName}}"), "alpine:3.19")
        XCTAssertEqual(render("{{.ContainerImageID}}"), Self.info.containerImageID)
        XCTAssertEqual(render("{{.ContainerEntrypoint}}"), "sh")
        XCTAssertEqual(render("{{.ContainerCreated}}"), "2024-05-01T12:00:00.12345Z")
        XCTAssertEqual(render("{{.LogPath}}"), "")
        XCTAssertEqual(render("{{.ContainerArgs}}"), "[-c echo hi]")
        XCTAssertEqual(render("{{.ContainerEnv}}"), "[A=1 B=2]")
        XCTAssertEqual(render("{{.ContainerLabels}}"), "map[com.example.team:core env:prod]")
        XCTAssertEqual(render("{{.Config}}"), "map[tag:{{.Name}} x:y]")
    }

    func testIndexOnMapsAndLists() {
        XCTAssertEqual(render(#"{{index .ContainerLabels "com.example.team"}}"#), "core")
        XCTAssertEqual(render(#"{{index .Config "x"}}"#), "y")
        XCTAssertEqual(render(#"{{index .ContainerLabels "missing"}}"#), "", "missing key is the zero value")
        XCTAssertEqual(render(#"{{index .ContainerArgs 1}}"#), "echo hi")
    }

    func testFieldChainSelectsMapEntry() {
        XCTAssertEqual(render("{{.ContainerLabels.env}}"), "prod")
        XCTAssertEqual(render("{{.Config.x}}"), "y")
        XCTAssertEqual(render("{{.Config.nope}}"), "")
    }

    // MARK: functions

    func testJSONWithoutHTMLEscaping() {
        var info = Self.info
        info.containerName = "/a<b>&\"c\"\n\u{1}\u{2028}"
        XCTAssertEqual(render("{{json .ContainerName}}", info), #""/a<b>&\"c\"\n\u0001\u2028""#)
        XCTAssertEqual(render("{{json .ContainerArgs}}"), #"["-c","echo hi"]"#)
        XCTAssertEqual(render("{{json .ContainerLabels}}"), #"{"com.example.team":"core","env":"prod"}"#)
        XCTAssertEqual(render("{{json 42}}"), "42")
    }

    func testSplitAndJoin() {
        XCTAssertEqual(render(#"{{split .Name "-"}}"#), "[web app_1]")
        XCTAssertEqual(render(#"{{join (split .Name "-") "."}}"#), "web.app_1")
        XCTAssertEqual(render(#"{{join .ContainerArgs ","}}"#), "-c,echo hi")
        XCTAssertEqual(render(#"{{split "abc" ""}}"#), "[a b c]")
        XCTAssertEqual(render(#"{{json (split "" ",")}}"#), #"[""]"#)
        XCTAssertEqual(render(#"{{json (split "a,,b," ",")}}"#), #"["a","","b",""]"#)
    }

    func testTitleLowerUpper() {
        XCTAssertEqual(render(#"{{title "hello wORLD foo-bar x_y élan 3d"}}"#), "Hello WORLD Foo-Bar X_y Élan 3d")
        XCTAssertEqual(render("{{upper .Name}}"), "WEB-APP_1")
        XCTAssertEqual(render(#"{{lower "MiXeD ÉÀ"}}"#), "mixed éà")
        XCTAssertEqual(render(#"{{upper "straße"}}"#), "STRAßE", "simple per-character mapping, as Go")
    }

    func testPad() {
        XCTAssertEqual(render("{{pad .Name 2 3}}"), "  web-app_1   ")
        XCTAssertEqual(render(#"{{pad "" 2 3}}"#), "", "empty stays empty")
        XCTAssertEqual(render("{{pad .Name 0 0}}"), "web-app_1")
    }

    func testTruncateCountsBytesAndKeepsUTF8Valid() {
        XCTAssertEqual(render("{{truncate .Name 3}}"), "web")
        XCTAssertEqual(render("{{truncate .Name 9}}"), "web-app_1")
        XCTAssertEqual(render("{{truncate .Name 100}}"), "web-app_1")
        XCTAssertEqual(render(#"{{truncate "héllo" 2}}"#), "h", "never cuts inside é")
        XCTAssertEqual(render(#"{{truncate "héllo" 3}}"#), "hé")
        XCTAssertEqual(render("{{truncate .Name 0}}"), "")
    }

    // MARK: syntax

    func testPipelines() {
        XCTAssertEqual(render("{{.Name | upper}}"), "WEB-APP_1")
        XCTAssertEqual(render("{{.Name | upper | lower}}"), "web-app_1")
        XCTAssertEqual(render(#"{{"a-b" | upper | json}}"#), #""A-B""#)
        XCTAssertEqual(render(#"{{.ContainerLabels | json}}"#), #"{"com.example.team":"core","env":"prod"}"#)
        XCTAssertEqual(render(#"{{(split .Name "-") | json}}"#), #"["web","app_1"]"#)
    }

    func testPipedValueIsTheLastArgument() {
        // Go passes the piped value last: `.Name | truncate 3` is `truncate 3 .Name`, a type error.
        parseError("{{.Name | truncate 3}}", contains: "argument 1 of truncate must be a string")
        XCTAssertEqual(render(#"{{"." | join (split .Name "-")}}"#), "web.app_1")
    }

    func testLiteralTextAroundMarkup() {
        XCTAssertEqual(render("docker/{{.Name}}/{{.ID}}.log"), "docker/web-app_1/0123456789ab.log")
        XCTAssertEqual(render("plain"), "plain")
        XCTAssertEqual(render("a }} b { c"), "a }} b { c")
        XCTAssertEqual(render(""), "")
        XCTAssertEqual(render("ünïcode-{{.Name}}-ü"), "ünïcode-web-app_1-ü")
    }

    func testStringAndNumberLiterals() {
        XCTAssertEqual(render(#"{{"a\tb\n\x41\u00e9\101\"\\"}}"#), "a\tb\nAéA\"\\")
        XCTAssertEqual(render("{{`raw\\n{{x}}`}}"), "raw\\n{{x}}")
        XCTAssertEqual(render(#"{{"\U0001F600"}}"#), "😀")
        XCTAssertEqual(render("{{pad .Name 0x2 1_0}}"), "  web-app_1          ")
        XCTAssertEqual(render("{{-3}}"), "-3", "a dash without space is a sign")
    }

    func testTrimMarkersAndComments() {
        XCTAssertEqual(render("a \n {{- .Name -}} \t b"), "aweb-app_1b")
        XCTAssertEqual(render("a {{- .Name}} b"), "aweb-app_1 b")
        XCTAssertEqual(render("a {{.Name -}} b"), "a web-app_1b")
        XCTAssertEqual(render("x{{/* a comment */}}y"), "xy")
        XCTAssertEqual(render("x {{- /* c */ -}} y"), "xy")
    }

    func testLiteralValueOnlyWithoutMarkup() throws {
        XCTAssertEqual(try TagTemplate("logs.web").literalValue, "logs.web")
        XCTAssertNil(try TagTemplate("logs.{{.Name}}").literalValue)
        XCTAssertEqual(TagTemplate.defaultTag.source, "{{.ID}}")
        XCTAssertEqual(try TagTemplate.defaultTag.render(Self.info, hostname: "h"), "0123456789ab")
    }

    // MARK: errors

    func testUnknownFieldFails() {
        let m = parseError("{{.Foo}}", contains: "unknown field .Foo")
        XCTAssertTrue(m.contains(".Name"), "lists valid fields")
        parseError("{{.ExtraAttributes}}", contains: "not supported")
        parseError("{{.Name.foo}}", contains: "cannot select .foo")
    }

    func testUnknownOrUnsupportedFunctionFails() {
        parseError("{{foo .Name}}", contains: #"function "foo" not defined"#)
        parseError(#"{{printf "%s" .Name}}"#, contains: #"function "printf" is not supported"#)
        parseError("{{len .Name}}", contains: "not supported")
    }

    func testControlStructuresAndVariablesFail() {
        parseError("{{if .Name}}x{{end}}", contains: #""if" is not supported"#)
        parseError("{{range .ContainerArgs}}{{end}}", contains: "not supported")
        parseError("{{$x := .Name}}", contains: "variables")
        parseError("{{true}}", contains: "not supported")
        parseError("{{.}}", contains: "{{.}}")
        parseError("{{'a'}}", contains: "character constants")
    }

    func testBadSyntaxFails() {
        parseError("{{.Name", contains: "unclosed action")
        parseError("{{}}", contains: "empty action")
        parseError(#"{{"abc}}"#, contains: "unterminated quoted string")
        parseError("{{`abc}}", contains: "unterminated raw string")
        parseError(#"{{"\q"}}"#, contains: "unknown escape")
        parseError("{{(upper .Name}}", contains: "unclosed left parenthesis")
        parseError("{{upper .Name)}}", contains: "unexpected")
        parseError("{{.Name .ID}}", contains: "non-function")
        parseError("{{1.5}}", contains: "whole numbers")
        parseError("{{.Name | }}", contains: "missing command")
        parseError("{{.Name | .ID}}", contains: "only a function call")
        parseError("{{/* open", contains: "unclosed comment")
        parseError("{{.Name}} {{ # }}", contains: "unexpected character")
        parseError("{{upper upper}}", contains: "parentheses")
    }

    func testDeepNestingFailsInsteadOfOverflowingTheStack() {
        XCTAssertEqual(render(String(repeating: "{{", count: 1) + String(repeating: "(", count: 30) + ".Name"
                              + String(repeating: ")", count: 30) + "}}"), "web-app_1")
        parseError("{{" + String(repeating: "(", count: 10_000) + ".Name" + String(repeating: ")", count: 10_000) + "}}",
                   contains: "nested too deeply")
    }

    func testLongSourcesAreCutInMessages() {
        let m = parseError("{{.Nope}}" + String(repeating: "x", count: 5000), contains: "...")
        XCTAssertLessThan(m.count, 1000)
    }

    func testWrongArgumentsFail() {
        parseError("{{upper}}", contains: "wrong number of arguments for upper: want 1, got 0")
        parseError(#"{{join .Name ","}}"#, contains: "argument 1 of join must be a list")
        parseError(#"{{pad .Name "1" 2}}"#, contains: "argument 2 of pad must be a integer")
        parseError(#"{{index .Name "x"}}"#, contains: "index needs a map")
        parseError("{{index .ContainerLabels 1}}", contains: "index needs a map")
        parseError("{{upper .ContainerArgs}}", contains: "must be a string")
    }

    func testRenderErrors() throws {
        let t = try TagTemplate("{{index .ContainerArgs 5}}")
        XCTAssertThrowsError(try t.render(Self.info, hostname: "h")) { error in
            XCTAssertTrue("\(error)".contains("index out of range"), "\(error)")
        }
        XCTAssertThrowsError(try TagTemplate("{{pad .Name -1 0}}").render(Self.info, hostname: "h"))
        XCTAssertThrowsError(try TagTemplate("{{truncate .Name -1}}").render(Self.info, hostname: "h"))
    }

    func testErrorNamesTheTemplate() {
        let m = parseError("x{{.Nope}}", contains: #""x{{.Nope}}""#)
        XCTAssertTrue(m.hasPrefix("invalid template"), m)
    }

    // MARK: hostile templates (found by Tests/Fuzz, tag target)

    private func renderError(_ source: String, contains part: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let out = try TagTemplate(source).render(Self.info, hostname: "h")
            XCTFail("\(source.prefix(80)) rendered \(out.utf8.count) bytes", file: file, line: line)
        } catch {
            XCTAssertTrue(error.message.contains(part), "\(error.message) lacks \(part)", file: file, line: line)
        }
    }

    /// A container's own tag must not make the plugin allocate gigabytes (it crashed the
    /// plugin, so every container lost its logs): results are capped at 64 KiB.
    func testHugeResultsFailInsteadOfExhaustingMemory() {
        renderError("{{pad .Name 21000000000 3}}", contains: "error calling pad: result longer than 65536 bytes")
        renderError("{{pad .Name 0 9223372036854775807}}", contains: "result longer than")
        renderError("{{.Name" + String(repeating: " | json", count: 64) + "}}", contains: "error calling json")
        renderError("{{join (split .FullID \"\") \"" + String(repeating: "x", count: 2000) + "\"}}",
                    contains: "error calling join")
        renderError(String(repeating: "{{pad .Name 60000 0}}", count: 3), contains: "the result is longer than 65536 bytes")
        XCTAssertEqual(render("{{pad .Name 2 65000}}")?.utf8.count, 2 + 9 + 65000)
        XCTAssertEqual(render(#"{{join (split .Name "") "-"}}"#), "w-e-b---a-p-p-_-1")
    }

    func testErrorMessagesStayOnOneLine() {
        let m = parseError("{{\"\\\n\"}}", contains: "unknown escape sequence")
        XCTAssertFalse(m.contains("\n"), m)
    }
}
