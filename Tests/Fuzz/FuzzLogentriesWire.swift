// libFuzzer target: the Logentries token line format (Sinks/Logentries/LogentriesWire.swift):
// buffered LineRecords in, `TOKEN EVENT\n` lines out. Checked for any lines (invalid UTF-8,
// embedded CR/LF, lines past 64 KiB) and tokens: every wire line starts with the token and a
// space, ends with its only "\n", stays under 64 KiB, and carries valid JSON (or, line-only,
// valid UTF-8 text); the count returned is the count written; line-only never sends an
// empty line.
//
// Input: byte 0: format and token length; then lines split at 0x00 (a byte 0xFF in a line is
// expanded to 20,000 bytes of "x", so lines past the limit are cheap to reach).

import FoundationEssentials

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLogentriesWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let lineOnly = input[0] & 1 != 0
    let token = ["2bfbea1e-10c3-4419-bdad-7e6435882e1f", "t", "abc", ""][Int(input[0] >> 1 & 3)]
    let info = ContainerInfo(containerID: String(repeating: "cd", count: 32), containerName: "/fuzz")
    let wire = LogentriesWire(token: token, encoder: EventEncoder(info: info, tag: "fuzz", attrs: [("k", "v")],
                                                                  format: lineOnly ? .rawLine : .json))
    var records: [UInt8] = []
    var nonEmpty = 0
    let stdout: StaticString = "stdout"
    for f in fields(input[1...]) {
        var line: [UInt8] = []
        for b in f { if b == 0xFF { line += repeatElement(UInt8(ascii: "x"), count: 20_000) } else { line.append(b) } }
        if !line.isEmpty { nonEmpty += 1 }
        line.withUnsafeBytes { l in
            LineRecord.append(line: l, source: UnsafeRawBufferPointer(start: stdout.utf8Start, count: stdout.utf8CodeUnitCount),
                              timeNano: 1_700_000_000_000_000_000, partial: false, to: &records)
        }
    }
    var out: [UInt8] = []
    var scratch: [UInt8] = []
    let n = records.withUnsafeBytes { wire.append(records: $0, to: &out, scratch: &scratch) }
    let prefix = Array((token + " ").utf8)
    var lines = 0
    for l in out.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
        lines += 1
        fuzzCheck(l.count + 1 <= LogentriesWire.maxLineBytes, "a wire line of \(l.count + 1) bytes")
        fuzzCheck(l.starts(with: prefix), "a wire line without the token prefix")
        let payload = Array(l.dropFirst(prefix.count))
        if lineOnly {
            fuzzCheck(!payload.isEmpty, "an empty line-only line was sent")
            fuzzCheck(String(validating: payload, as: UTF8.self) != nil && !payload.contains(0x0D), "line-only text not clean")
        } else {
            fuzzCheck(JSONValidator.isValid(payload), "not valid JSON: \(String(decoding: payload.prefix(200), as: UTF8.self).debugDescription)")
        }
    }
    fuzzCheck(out.isEmpty || out.last == 0x0A, "output does not end with a newline")
    fuzzCheck(lines == n, "\(n) lines reported, \(lines) written")
    if lineOnly { fuzzCheck(n >= nonEmpty, "fewer wire lines than non-empty lines") }
    return 0
}
