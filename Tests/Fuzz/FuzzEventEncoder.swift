// libFuzzer target: the event encoder (Sources/LogRelayCore/Event/EventEncoder.swift), the
// hot path every line takes. Whatever the line (invalid UTF-8, control bytes, NULs, long
// runs), the tag, names and attrs, each record is valid UTF-8 and strict JSON (or, for
// line-only, a line without CR or LF), the framing adds up, and a cut event keeps to the
// limit unless a single character cannot.
//
// Input: byte 0: format, partial flag and size limit; then fields split at 0x00: the line,
// the tag, the container name, the image name, then attr keys and values in turn.

import FoundationEssentials

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventEncoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let mode = input[0]
    let format: EventFormat = mode & 1 == 0 ? .json : .rawLine
    let partial = mode & 2 != 0
    let limit = [1 << 20, 65535 - 40, 300, 40, 1, 0, -1, 2000][Int(mode >> 2 & 7)]
    let f = fields(input[1...])
    func text(_ i: Int) -> String { i < f.count ? String(decoding: f[i], as: UTF8.self) : "" }
    let line = f.first.map(Array.init) ?? []
    var attrs: [(key: String, value: String)] = []
    var k = 4
    while k + 1 < f.count { attrs.append((text(k), text(k + 1))); k += 2 }
    let info = ContainerInfo(containerID: String(repeating: "ab", count: 32), containerName: text(2), containerImageName: text(3))
    let encoder = EventEncoder(info: info, tag: text(1), attrs: attrs, format: format)
    var out: [UInt8] = []
    let source: StaticString = "stdout"
    let records = line.withUnsafeBytes { l in
        encoder.append(line: l, source: UnsafeRawBufferPointer(start: source.utf8Start, count: source.utf8CodeUnitCount),
                       timeNano: 1_700_000_000_123_456_789, partial: partial, maxEventBytes: limit, to: &out)
    }
    fuzzCheck(records >= 1, "no record")
    var i = 0
    var seen = 0
    while i < out.count {
        fuzzCheck(i + 4 <= out.count, "a cut length prefix")
        let n = Int(out[i]) << 24 | Int(out[i + 1]) << 16 | Int(out[i + 2]) << 8 | Int(out[i + 3])
        fuzzCheck(i + 4 + n <= out.count, "a record longer than the output")
        let rec = Array(out[(i + 4)..<(i + 4 + n)])
        switch format {
        case .json:
            fuzzCheck(JSONValidator.isValid(rec), "not valid JSON: \(String(decoding: rec, as: UTF8.self).debugDescription)")
            if records > 1 { fuzzCheck(String(decoding: rec, as: UTF8.self).contains("\"partial\":true"), "a piece not marked partial") }
        case .rawLine:
            fuzzCheck(String(validating: rec, as: UTF8.self) != nil, "a raw line that is not UTF-8")
            fuzzCheck(!rec.contains(0x0A) && !rec.contains(0x0D), "a raw line with CR or LF")
        }
        // A piece may exceed the limit only when it holds a single character of the line.
        if records > 1 && limit > 0 && n > limit && format == .rawLine { fuzzCheck(n <= 4, "a raw piece of \(n) bytes over the limit \(limit)") }
        i += 4 + n
        seen += 1
    }
    fuzzCheck(seen == records, "\(records) records reported, \(seen) written")
    return 0
}
