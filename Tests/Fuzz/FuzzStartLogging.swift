// libFuzzer target: the StartLogging body as the daemon sends it (ContainerInfo.swift's
// StartLoggingRequest.parse), then what StartLogging does with it before any file or socket:
// the options, the tag and the attrs. Checked: no crash or trap whatever the JSON; a
// message never quotes a secret option's value (when that value appears nowhere else in the
// body, so the fuzzer cannot have put it into an echoed field too).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStartLogging(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    let req: StartLoggingRequest
    do { req = try StartLoggingRequest.parse(body) } catch {
        fuzzCheck(!error.message.isEmpty, "a parse error without a message")
        return 0
    }
    let info = req.info
    let bodyText = String(decoding: body, as: UTF8.self)
    let secrets = ["nats-pass", "nats-token", "logentries-token"].compactMap { info.config[$0] }
        .filter { $0.utf8.count >= 8 && bodyText.components(separatedBy: $0).count == 2 }
    func check(_ message: String) {
        for s in secrets { fuzzCheck(!message.contains(s), "secret \(s.debugDescription) in \(message.debugDescription)") }
    }
    do {
        let options = try LogOptions.parse(info.config, driver: .auto)
        _ = try options.common.tag.render(info, hostname: "fuzz-host")
        _ = try Attributes.extract(from: info, options: options.common)
    } catch {
        check(error.message)
    }
    return 0
}
