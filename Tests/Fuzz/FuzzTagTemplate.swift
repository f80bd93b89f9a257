// libFuzzer target: the log-tag template parser and renderer
// (Sources/LogRelayCore/Event/TagTemplate.swift), as StartLogging uses them for `tag` and
// `nats-subject` (the container's own --log-opt values, so any user can send anything).
//
// The input is the template text. Checked: no crash, trap or runaway allocation (libFuzzer's
// -malloc_limit_mb / -rss_limit_mb catch the latter); text without "{{" is a literal that
// renders as itself; a rendered tag stays bounded; an error is one short line that a person
// can read in `docker run`'s output.

let info = ContainerInfo(
    config: ["tag": "x", "labels": "team"],
    containerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    containerName: "/web-1",
    containerEntrypoint: "/bin/sh",
    containerArgs: ["-c", "echo hello ünïcödé"],
    containerImageID: "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
    containerImageName: "busybox:local",
    containerCreated: "2026-11-23T08:00:09.215590730Z",
    containerEnv: ["A=1", "PATH=/bin"],
    containerLabels: ["team": "core", "com.example.x": "y z", "": "empty"],
    logPath: "",
    daemonName: "docker")

/// What a rendered tag may grow to (a NATS subject or a tag is a short string; this bounds
/// what a template can make the plugin allocate).
let maxRendered = 1 << 20

func checkMessage(_ e: OptionError) {
    fuzzCheck(!e.message.isEmpty, "empty error message")
    fuzzCheck(!e.message.contains("\n") && !e.message.contains("\r"), "error message spans lines: \(e.message.debugDescription)")
    fuzzCheck(e.message.utf8.count <= 2000, "error message of \(e.message.utf8.count) bytes")
}

/// Byte-wise: "{{" followed by a combining mark is not a Character match, but is markup.
func hasMarkup(_ s: String) -> Bool {
    let u = Array(s.utf8)
    return u.count >= 2 && (0..<(u.count - 1)).contains { u[$0] == 0x7b && u[$0 + 1] == 0x7b }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTagTemplate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let template: TagTemplate
    do {
        template = try TagTemplate(source, context: "tag")
    } catch {
        fuzzCheck(hasMarkup(source), "plain text rejected: \(error.message)")
        checkMessage(error)
        return 0
    }
    if !hasMarkup(source) {
        fuzzCheck(template.literalValue == source, "plain text not kept as it is")
    }
    do {
        let tag = try template.render(info, hostname: "host-1")
        fuzzCheck(tag.utf8.count <= maxRendered, "rendered tag of \(tag.utf8.count) bytes")
        if let literal = template.literalValue {
            fuzzCheck(tag == literal, "a literal template renders differently")
        }
    } catch {
        checkMessage(error)
    }
    return 0
}
