// libFuzzer target: the regex engine (Sources/LogRelayCore/Regex), as StartLogging compiles
// labels-regex/env-regex (the container's own --log-opt values, so any user can send any
// pattern) and as the stream thread matches log lines (any bytes).
//
// The input is the pattern, a 0x00 byte, then the subject bytes (no 0x00: all pattern, empty
// subject). Checked: no crash, trap, hang or runaway allocation (libFuzzer's -timeout,
// -malloc_limit_mb and -rss_limit_mb catch the last two); an error is one short line with
// an offset inside the pattern; the verdict does not depend on the scratch's history or on
// taking the String or the bytes path.

/// Run first on the same scratch, to catch state leaking from one program to the next.
let warmUp = try! LinearRegex("(?:a|b|c|d|e|f){50}x")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRegex(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = UnsafeBufferPointer(start: data, count: size)
    let cut = all.firstIndex(of: 0) ?? size
    let patternBytes = UnsafeBufferPointer(rebasing: all[..<cut])
    let subject = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: all[min(cut + 1, size)...]))
    let pattern = String(decoding: patternBytes, as: UTF8.self)

    let re: LinearRegex
    do {
        re = try LinearRegex(pattern)
    } catch {
        fuzzCheck(!error.reason.isEmpty, "empty reason")
        fuzzCheck(!error.description.contains("\n") && !error.description.contains("\r"), "error spans lines: \(error.description.debugDescription)")
        fuzzCheck(error.description.utf8.count <= 400, "error of \(error.description.utf8.count) bytes")
        fuzzCheck(error.offset >= 0 && error.offset <= pattern.utf8.count, "offset \(error.offset) outside a \(pattern.utf8.count)-byte pattern")
        return 0
    }

    let fresh = re.matches(subject)
    var scratch = RegexScratch()
    _ = warmUp.matches(subject, using: &scratch)
    fuzzCheck(re.matches(subject, using: &scratch) == fresh, "verdict depends on the scratch's history")
    let text = String(decoding: subject, as: UTF8.self)
    if text.utf8.elementsEqual(subject) {
        fuzzCheck(re.matches(text) == fresh, "String and bytes verdicts differ")
    }
    return 0
}
