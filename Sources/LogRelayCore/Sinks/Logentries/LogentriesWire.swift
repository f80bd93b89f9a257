// The Logentries token-TCP line format (wire doc B2–B4): `TOKEN EVENT\n`, or with
// `line-only=true` `TOKEN LINE\n`. The JSON event never holds a raw newline (it is
// escaped); the raw line has CR, LF and CRLF folded into U+2028 by the encoder. A wire
// line, token and "\n" included, stays under 64 KiB: longer events are cut by the
// encoder (JSON pieces marked "partial"), and every piece carries the token.
//
// Hot path: the event is encoded straight into the output buffer. The encoder writes
// a 4-byte length before each event; the last 4 bytes of the token prefix are written
// over it afterwards, so a line is never copied twice (only lines cut into several
// pieces, which are rare, take a slower path through a scratch buffer).

public struct LogentriesWire: Sendable {
    /// The longest wire line, "\n" included (strictly under 64 KiB).
    public static let maxLineBytes = 65535

    /// `TOKEN ` (the token, then exactly one space).
    let prefix: [UInt8]
    /// prefix without its last 4 bytes, and those 4 bytes.
    private let prefixHead: [UInt8]
    private let prefixTail: (UInt8, UInt8, UInt8, UInt8)
    let encoder: EventEncoder
    /// line-only: an empty line would be an empty Logentries event; it is not sent (edge case 36).
    let skipEmptyLines: Bool

    public init(token: String, encoder: EventEncoder) {
        let p = Array(token.utf8) + [0x20]
        prefix = p
        let cut = max(p.count - 4, 0)
        prefixHead = Array(p[0..<cut])
        let t = Array(repeating: UInt8(0x20), count: max(0, 4 - p.count)) + Array(p[cut...])
        prefixTail = (t[0], t[1], t[2], t[3])
        self.encoder = encoder
        skipEmptyLines = encoder.format == .rawLine
    }

    /// The largest event (or line piece) that fits one wire line with the token.
    public var maxEventBytes: Int { LogentriesWire.maxLineBytes - prefix.count - 1 }

    /// Appends the wire lines for a run of LineRecords to `out`; returns the number of wire
    /// lines. `scratch` is working space for lines cut into pieces.
    @discardableResult
    public func append(records: UnsafeRawBufferPointer, to out: inout [UInt8], scratch: inout [UInt8]) -> Int {
        var i = 0
        var lines = 0
        let limit = maxEventBytes
        let fast = prefix.count >= 4
        while i < records.count {
            let (rec, next) = LineRecord.read(records, at: i)
            i = next
            if skipEmptyLines && rec.line.isEmpty { continue }
            if fast {
                prefixHead.withUnsafeBufferPointer { out.append(contentsOf: $0) }
                let at = out.count
                let n = encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano,
                                       partial: rec.partial, maxEventBytes: limit, to: &out)
                if n == 1 {
                    let tail = prefixTail
                    out.withUnsafeMutableBufferPointer { b in
                        b[at] = tail.0; b[at + 1] = tail.1; b[at + 2] = tail.2; b[at + 3] = tail.3
                    }
                    out.append(0x0A)
                    lines += 1
                    continue
                }
                // Several pieces: move them aside and write each with the whole prefix.
                scratch.removeAll(keepingCapacity: true)
                scratch.append(contentsOf: out[at...])
                out.removeSubrange((at - prefixHead.count)...)
            } else {
                scratch.removeAll(keepingCapacity: true)
                encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano,
                               partial: rec.partial, maxEventBytes: limit, to: &scratch)
            }
            lines += appendFramed(scratch, to: &out)
        }
        return lines
    }

    /// `[UInt32 BE len][event]` records → `TOKEN event\n` lines.
    private func appendFramed(_ framed: [UInt8], to out: inout [UInt8]) -> Int {
        var lines = 0
        framed.withUnsafeBytes { p in
            var j = 0
            while j + 4 <= p.count {
                let n = EventBuffer.recordLength(p, at: j)
                prefix.withUnsafeBufferPointer { out.append(contentsOf: $0) }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[(j + 4)..<(j + 4 + n)]))
                out.append(0x0A)
                j += 4 + n
                lines += 1
            }
        }
        return lines
    }
}
