// The hot path: one Docker log line → one JSON event (or, for Logentries `line-only`,
// the cleaned raw line), framed as [UInt32 big-endian length][bytes] and appended to
// the caller's buffer. Everything constant per container (tag, ids, names, attrs) is
// escaped once in init; per line we format the time by hand and escape the line in one
// pass (8 plain ASCII bytes at a time) into a stack buffer that reaches `out` in few
// large appends. Any input bytes give valid JSON in valid UTF-8.

public enum EventFormat: Sendable { case json, rawLine }

public final class EventEncoder: Sendable {
    public let format: EventFormat
    /// `","tag":"…","container_id":…,"image_name":"…"` plus `,"attrs":{…}` when there are attrs:
    /// everything after the log text except the closing brace.
    let suffix: [UInt8]

    public init(info: ContainerInfo, tag: String, attrs: [(key: String, value: String)], format: EventFormat = .json) {
        self.format = format
        var s: [UInt8] = []
        func field(_ key: StaticString, _ value: String) {
            EventEncoder.put(key, &s)
            s += EventEncoder.escaped(value)
        }
        field(#"","tag":""#, tag)
        field(#"","container_id":""#, info.containerID)
        field(#"","container_name":""#, info.containerName)
        field(#"","image_id":""#, info.containerImageID)
        field(#"","image_name":""#, info.containerImageName)
        EventEncoder.put("\"", &s)
        if !attrs.isEmpty {
            EventEncoder.put(#","attrs":{"#, &s)
            for (n, a) in attrs.enumerated() {
                if n > 0 { EventEncoder.put(",", &s) }
                EventEncoder.put("\"", &s)
                s += EventEncoder.escaped(a.key)
                EventEncoder.put("\":\"", &s)
                s += EventEncoder.escaped(a.value)
                EventEncoder.put("\"", &s)
            }
            EventEncoder.put("}", &s)
        }
        suffix = s
    }

    /// Appends one or more records to `out`, each `[UInt32 big-endian length][event bytes]`.
    /// An event longer than `maxEventBytes` (the length prefix not counted) is cut at character
    /// boundaries, never inside an escape, into several records, each marked partial
    /// (`rawLine`: just cut). Every record holds at least one character of the line, so a
    /// limit smaller than the fixed overhead still makes progress (those records exceed it).
    /// An empty line gives one record. Returns the number of records appended.
    @discardableResult
    public func append(line: UnsafeRawBufferPointer, source: UnsafeRawBufferPointer, timeNano: Int64,
                       partial: Bool, maxEventBytes: Int, to out: inout [UInt8]) -> Int {
        // A negative limit means "as small as possible"; clamping keeps the arithmetic safe.
        let limit = max(maxEventBytes, 0)
        // ≤ 1 KiB so the buffer lives on the stack.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Sink.capacity) { tmp in
            var sink = Sink(base: tmp.baseAddress!)
            let records: Int
            switch format {
            case .json: records = appendJSON(line, source, timeNano, partial, limit, &sink, &out)
            case .rawLine: records = appendRaw(line, limit, &sink, &out)
            }
            sink.flush(&out)
            return records
        }
    }

    /// `2023-11-14T22:13:20.123456789Z` for 1700000000123456789.
    public static func formatTime(_ nanos: Int64) -> String {
        var b: [UInt8] = []
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Sink.capacity) { tmp in
            var sink = Sink(base: tmp.baseAddress!)
            appendTime(nanos, &sink, &b)
            sink.flush(&b)
        }
        return String(decoding: b, as: UTF8.self)
    }

    // MARK: records

    private func appendJSON(_ line: UnsafeRawBufferPointer, _ source: UnsafeRawBufferPointer, _ time: Int64,
                            _ partial: Bool, _ maxBytes: Int, _ sink: inout Sink, _ out: inout [UInt8]) -> Int {
        let n = line.count
        let partialClose: StaticString = #","partial":true}"#
        var i = 0
        var records = 0
        repeat {
            let recordStart = sink.position(out)
            sink.put("\0\0\0\0", &out)
            let eventStart = sink.position(out)
            sink.put(#"{"time":""#, &out)
            EventEncoder.appendTime(time, &sink, &out)
            sink.put(#"","source":""#, &out)
            var unlimited = Int.max
            _ = EventEncoder.escapeJSON(source, from: 0, room: &unlimited, forceOne: false, &sink, &out)
            sink.put(#"","log":""#, &out)

            // Room for the text if this piece has to carry the longer, partial close.
            let fixed = sink.position(out) - eventStart + suffix.count
            var room = maxBytes - fixed - partialClose.utf8CodeUnitCount
            var next = EventEncoder.escapeJSON(line, from: i, room: &room, forceOne: true, &sink, &out)
            var isPartial = true
            if next == n {
                isPartial = partial || records > 0
            } else if !partial && records == 0 && room >= 0 {
                // The rest may still fit in the bytes a plain "}" saves.
                let mark = sink.position(out)
                var extra = room + partialClose.utf8CodeUnitCount - 1
                let rest = EventEncoder.escapeJSON(line, from: next, room: &extra, forceOne: false, &sink, &out)
                if rest == n {
                    next = n
                    isPartial = false
                } else {
                    sink.rewind(to: mark, &out)
                }
            }
            i = next
            suffix.withUnsafeBufferPointer { sink.write($0.baseAddress!, $0.count, &out) }
            sink.put(isPartial ? partialClose : "}", &out)
            sink.flush(&out)
            EventEncoder.patchLength(&out, at: recordStart)
            records += 1
        } while i < n
        return records
    }

    private func appendRaw(_ line: UnsafeRawBufferPointer, _ maxBytes: Int, _ sink: inout Sink, _ out: inout [UInt8]) -> Int {
        var i = 0
        var records = 0
        repeat {
            let recordStart = sink.position(out)
            sink.put("\0\0\0\0", &out)
            var room = maxBytes
            i = EventEncoder.copyRawLine(line, from: i, room: &room, forceOne: true, &sink, &out)
            sink.flush(&out)
            EventEncoder.patchLength(&out, at: recordStart)
            records += 1
        } while i < line.count
        return records
    }

    static func patchLength(_ out: inout [UInt8], at start: Int) {
        let len = UInt32(truncatingIfNeeded: out.count - start - 4)
        out.withUnsafeMutableBufferPointer { b in
            b[start] = UInt8(truncatingIfNeeded: len >> 24)
            b[start + 1] = UInt8(truncatingIfNeeded: len >> 16)
            b[start + 2] = UInt8(truncatingIfNeeded: len >> 8)
            b[start + 3] = UInt8(truncatingIfNeeded: len)
        }
    }

    /// For init only; the hot path writes through a Sink.
    static func put(_ s: StaticString, _ out: inout [UInt8]) {
        // withUTF8Buffer also covers the single-scalar representation of one-character literals.
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    static func escaped(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var s = s
        s.withUTF8 { buf in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Sink.capacity) { tmp in
                var sink = Sink(base: tmp.baseAddress!)
                var room = Int.max
                _ = escapeJSON(UnsafeRawBufferPointer(buf), from: 0, room: &room, forceOne: false, &sink, &out)
                sink.flush(&out)
            }
        }
        return out
    }

    /// A write buffer in front of `out` (which every method takes along, so the caller keeps
    /// exclusive access to both). Positions are absolute: `out.count + used`.
    struct Sink {
        static let capacity = 1024
        let base: UnsafeMutablePointer<UInt8>
        var used = 0

        init(base: UnsafeMutablePointer<UInt8>) { self.base = base }

        @inline(__always)
        var free: Int { Sink.capacity - used }

        @inline(__always)
        func position(_ out: [UInt8]) -> Int { out.count + used }

        @inline(__always)
        mutating func flush(_ out: inout [UInt8]) {
            if used > 0 {
                out.append(contentsOf: UnsafeBufferPointer(start: base, count: used))
                used = 0
            }
        }

        /// Makes room for `n` (≤ 64) more bytes and returns where to write them.
        @inline(__always)
        mutating func reserve(_ n: Int, _ out: inout [UInt8]) -> UnsafeMutablePointer<UInt8> {
            if n > free { flush(&out) }
            return base + used
        }

        @inline(__always)
        mutating func write(_ p: UnsafePointer<UInt8>, _ n: Int, _ out: inout [UInt8]) {
            if n > free {
                flush(&out)
                if n > Sink.capacity / 2 {
                    out.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
                    return
                }
            }
            (base + used).update(from: p, count: n)
            used += n
        }

        @inline(__always)
        mutating func put(_ s: StaticString, _ out: inout [UInt8]) {
            s.withUTF8Buffer { write($0.baseAddress!, $0.count, &out) }
        }

        /// Drops everything written after absolute position `mark`.
        mutating func rewind(to mark: Int, _ out: inout [UInt8]) {
            if mark >= out.count {
                used = mark - out.count
            } else {
                out.removeLast(out.count - mark)
                used = 0
            }
        }
    }

    // MARK: time

    /// RFC 3339, UTC, exactly 9 fractional digits. Negative times count back from 1970.
    static func appendTime(_ nanos: Int64, _ sink: inout Sink, _ out: inout [UInt8]) {
        var secs = nanos / 1_000_000_000
        var frac = nanos % 1_000_000_000
        if frac < 0 { frac += 1_000_000_000; secs -= 1 }
        var days = secs / 86_400
        var sod = secs % 86_400
        if sod < 0 { sod += 86_400; days -= 1 }
        // Howard Hinnant's civil_from_days: proleptic Gregorian, no tables, no Foundation.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)

        let template: StaticString = "0000-00-00T00:00:00.000000000Z"
        let p = sink.reserve(template.utf8CodeUnitCount, &out)
        sink.put(template, &out)
        func two(_ v: Int64, at k: Int) { DecimalDigits.putPair(Int(truncatingIfNeeded: v), at: p + k) }
        two(year / 100 % 100, at: 0)
        two(year % 100, at: 2)
        two(month, at: 5)
        two(day, at: 8)
        two(sod / 3600, at: 11)
        two(sod / 60 % 60, at: 14)
        two(sod % 60, at: 17)
        two(frac / 10_000_000, at: 20)
        two(frac / 100_000 % 100, at: 22)
        two(frac / 1000 % 100, at: 24)
        two(frac / 10 % 100, at: 26)
        p[28] = 0x30 &+ UInt8(truncatingIfNeeded: frac % 10)
    }

    // MARK: escaping

    /// One flag bit (0x80) per byte of a little-endian word that is not JSON-plain (plain:
    /// ASCII except < 0x20, `"` and `\`). The usual has-zero-byte tricks: flags above the
    /// first true one may be wrong, so only "none" and the lowest flag are used.
    @inline(__always)
    static func jsonSpecialMask(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let below20 = (w &- ones &* 0x20) & ~w
        let q = w ^ (ones &* 0x22), bs = w ^ (ones &* 0x5C)
        let quote = (q &- ones) & ~q, backslash = (bs &- ones) & ~bs
        return (w | below20 | quote | backslash) & highs
    }

    @inline(__always)
    static func jsonPlain(_ c: UInt8) -> Bool { c >= 0x20 && c < 0x80 && c != 0x22 && c != 0x5C }

    /// As jsonSpecialMask, for the raw line: flags CR, LF and non-ASCII.
    @inline(__always)
    static func rawSpecialMask(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let lf = w ^ (ones &* 0x0A), cr = w ^ (ones &* 0x0D)
        return (w | ((lf &- ones) & ~lf) | ((cr &- ones) & ~cr)) & highs
    }

    /// Length of the run of whole plain 8-byte words at `start`, up to `limit`.
    @inline(__always)
    static func plainRun(_ raw: UnsafeRawPointer, from start: Int, limit: Int, _ special: (UInt64) -> UInt64) -> Int {
        var j = start
        while j &+ 8 <= limit && special(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: j, as: UInt64.self))) == 0 {
            j &+= 8
        }
        return j &- start
    }

    /// Writes the escaped form of one non-plain ASCII byte at `d`; returns its width.
    @inline(__always)
    static func writeJSONEscape(_ c: UInt8, _ d: UnsafeMutablePointer<UInt8>) -> Int {
        d[0] = 0x5C
        switch c {
        case 0x22: d[1] = 0x22
        case 0x5C: d[1] = 0x5C
        case 0x08: d[1] = UInt8(ascii: "b")
        case 0x09: d[1] = UInt8(ascii: "t")
        case 0x0A: d[1] = UInt8(ascii: "n")
        case 0x0C: d[1] = UInt8(ascii: "f")
        case 0x0D: d[1] = UInt8(ascii: "r")
        default:
            d[1] = UInt8(ascii: "u"); d[2] = 0x30; d[3] = 0x30
            d[4] = hexDigit(c >> 4); d[5] = hexDigit(c & 0xF)
            return 6
        }
        return 2
    }

    @inline(__always)
    static func jsonEscapeWidth(_ c: UInt8) -> Int {
        switch c {
        case 0x22, 0x5C, 0x08, 0x09, 0x0A, 0x0C, 0x0D: return 2
        default: return 6
        }
    }

    /// Writes the UTF-8 sequence at p[i] (p[i] ≥ 0x80), or U+FFFD for its maximal invalid
    /// subpart, at `d`. Returns (input bytes consumed, output bytes written).
    @inline(__always)
    static func writeNonASCII(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int,
                              _ d: UnsafeMutablePointer<UInt8>) -> (consumed: Int, width: Int) {
        let (len, valid) = utf8Sequence(p, i, n)
        if valid {
            for k in 0..<len { d[k] = p[i + k] }
            return (len, len)
        }
        d[0] = 0xEF; d[1] = 0xBF; d[2] = 0xBD
        return (len, 3)
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

    /// Escapes `buf[start...]` as JSON string content while it fits in `room` bytes
    /// (decremented). Stops before the first unit (character or escape) that does not fit,
    /// except that with `forceOne` the first unit is always written. Returns the index of
    /// the next input byte.
    static func escapeJSON(_ buf: UnsafeRawBufferPointer, from start: Int, room: inout Int, forceOne: Bool,
                           _ sink: inout Sink, _ out: inout [UInt8]) -> Int {
        let n = buf.count
        guard start < n, let raw = buf.baseAddress else { return start }
        let p = raw.assumingMemoryBound(to: UInt8.self)
        var i = start
        while i < n {
            // A long plain run (most text lines) is found by scanning alone, then copied in one go.
            let run = plainRun(raw, from: i, limit: i + min(n - i, max(room, 0)), jsonSpecialMask)
            if run >= 64 {
                sink.write(p + i, run, &out)
                room -= run
                i += run
                if i == n { break }
            }

            // Fast path: a chunk whose worst case (6 output bytes per input byte, plus a UTF-8
            // sequence running up to 3 bytes past its end) fits both the room and the buffer,
            // so no per-byte checks are needed.
            if sink.free < 128 { sink.flush(&out) }
            let chunk = min(n - i, (sink.free - 24) / 6, room >= 24 ? (room - 24) / 6 : 0)
            if chunk > 0 {
                let end = i + chunk
                let d0 = sink.base + sink.used
                var d = d0
                while i < end {
                    if i &+ 8 <= end {
                        // Copy 8 bytes at once, but keep only those before the first special one.
                        let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                        UnsafeMutableRawPointer(d).storeBytes(of: w.littleEndian, as: UInt64.self)
                        let mask = jsonSpecialMask(w)
                        // Branch (predicted) rather than always adding the count: keeps the
                        // next load off the mask's dependency chain.
                        if mask == 0 {
                            d += 8
                            i &+= 8
                            continue
                        }
                        let plain = mask.trailingZeroBitCount &>> 3
                        d += plain
                        i &+= plain
                    }
                    let c = p[i]
                    if jsonPlain(c) {
                        d.pointee = c
                        d += 1
                        i &+= 1
                    } else if c < 0x80 {
                        d += writeJSONEscape(c, d)
                        i &+= 1
                    } else {
                        let (consumed, width) = writeNonASCII(p, i, n, d)
                        d += width
                        i &+= consumed
                    }
                }
                let written = d - d0
                sink.used += written
                room -= written
                continue
            }

            // Near the end of the room: one unit at a time, each checked against it.
            let c = p[i]
            let width: Int
            if c < 0x80 {
                width = jsonPlain(c) ? 1 : jsonEscapeWidth(c)
            } else {
                let (len, valid) = utf8Sequence(p, i, n)
                width = valid ? len : 3
            }
            if width > room && !(forceOne && i == start) { break }
            let d = sink.reserve(6, &out)
            if jsonPlain(c) {
                d.pointee = c
                i += 1
            } else if c < 0x80 {
                _ = writeJSONEscape(c, d)
                i += 1
            } else {
                i += writeNonASCII(p, i, n, d).consumed
            }
            sink.used += width
            room -= width
        }
        return i
    }

    /// `rawLine`: invalid UTF-8 → U+FFFD; "\r\n", "\r" and "\n" → U+2028 (Logentries splits
    /// events on newlines); everything else as is. Same room/forceOne contract as `escapeJSON`.
    static func copyRawLine(_ buf: UnsafeRawBufferPointer, from start: Int, room: inout Int, forceOne: Bool,
                            _ sink: inout Sink, _ out: inout [UInt8]) -> Int {
        let n = buf.count
        guard start < n, let raw = buf.baseAddress else { return start }
        let p = raw.assumingMemoryBound(to: UInt8.self)

        /// One unit at p[i]: (input consumed, output width), written at `d`.
        @inline(__always)
        func unit(_ i: Int, _ d: UnsafeMutablePointer<UInt8>) -> (Int, Int) {
            let c = p[i]
            if c == 0x0D || c == 0x0A {
                d[0] = 0xE2; d[1] = 0x80; d[2] = 0xA8   // U+2028
                return (c == 0x0D && i + 1 < n && p[i + 1] == 0x0A ? 2 : 1, 3)
            }
            if c < 0x80 {
                d[0] = c
                return (1, 1)
            }
            return writeNonASCII(p, i, n, d)
        }

        var i = start
        while i < n {
            let run = plainRun(raw, from: i, limit: i + min(n - i, max(room, 0)), rawSpecialMask)
            if run >= 64 {
                sink.write(p + i, run, &out)
                room -= run
                i += run
                if i == n { break }
            }

            // Fast path as in escapeJSON; the worst case here is 3 output bytes per input byte.
            if sink.free < 128 { sink.flush(&out) }
            let chunk = min(n - i, (sink.free - 12) / 3, room >= 12 ? (room - 12) / 3 : 0)
            if chunk > 0 {
                let end = i + chunk
                let d0 = sink.base + sink.used
                var d = d0
                while i < end {
                    if i &+ 8 <= end {
                        let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                        UnsafeMutableRawPointer(d).storeBytes(of: w.littleEndian, as: UInt64.self)
                        let mask = rawSpecialMask(w)
                        // Branch (predicted) rather than always adding the count: keeps the
                        // next load off the mask's dependency chain.
                        if mask == 0 {
                            d += 8
                            i &+= 8
                            continue
                        }
                        let plain = mask.trailingZeroBitCount &>> 3
                        d += plain
                        i &+= plain
                    }
                    let (consumed, width) = unit(i, d)
                    d += width
                    i &+= consumed
                }
                let written = d - d0
                sink.used += written
                room -= written
                continue
            }

            // Near the end of the room: write one unit, keep it only if it fits.
            let d = sink.reserve(4, &out)
            let (consumed, width) = unit(i, d)
            if width > room && !(forceOne && i == start) { break }
            sink.used += width
            room -= width
            i += consumed
        }
        return i
    }

    /// The UTF-8 sequence starting at p[i] (p[i] ≥ 0x80): its length if well-formed
    /// (Unicode Table 3-7: no overlongs, no surrogates, ≤ U+10FFFF), else the length of the
    /// maximal invalid subpart, which becomes one U+FFFD.
    @inline(__always)
    static func utf8Sequence(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (length: Int, valid: Bool) {
        let c = p[i]
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        let trailing: Int
        switch c {
        case 0xC2...0xDF: trailing = 1
        case 0xE0: trailing = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: trailing = 2
        case 0xED: trailing = 2; hi = 0x9F
        case 0xF0: trailing = 3; lo = 0x90
        case 0xF1...0xF3: trailing = 3
        case 0xF4: trailing = 3; hi = 0x8F
        default: return (1, false)
        }
        guard i + 1 < n, p[i + 1] >= lo, p[i + 1] <= hi else { return (1, false) }
        var k = 2
        while k <= trailing {
            guard i + k < n, p[i + k] & 0xC0 == 0x80 else { return (k, false) }
            k += 1
        }
        return (trailing + 1, true)
    }
}

/// Decimal digits for the encoders, two per step from a literal table: half the divisions
/// (each a multiply-shift on the critical path) of digit-by-digit.
enum DecimalDigits {
    private static let pairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Writes `v` (0...99) as two digits at `p`.
    @inline(__always)
    static func putPair(_ v: Int, at p: UnsafeMutablePointer<UInt8>) {
        let t = pairs.utf8Start + v &* 2
        p[0] = t[0]
        p[1] = t[1]
    }

    /// Writes `v`'s digits ending just before `end`; returns how many.
    @inline(__always)
    static func writeBackwards(_ v: UInt64, endingAt end: UnsafeMutablePointer<UInt8>) -> Int {
        var v = v
        var n = 0
        while v >= 100 {
            n &+= 2
            putPair(Int(truncatingIfNeeded: v % 100), at: end - n)
            v /= 100
        }
        if v >= 10 {
            n &+= 2
            putPair(Int(truncatingIfNeeded: v), at: end - n)
        } else {
            n &+= 1
            end[-n] = 0x30 &+ UInt8(truncatingIfNeeded: v)
        }
        return n
    }

    /// Writes `v`'s digits at `p`; returns how many. (Backwards into a scratch, then moved:
    /// cheaper than counting the digits first, one division each.)
    @inline(__always)
    static func write(_ v: UInt64, at p: UnsafeMutablePointer<UInt8>) -> Int {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { t in
            let end = t.baseAddress! + 20
            let n = writeBackwards(v, endingAt: end)
            for k in 0..<n { p[k] = end[k - n] }
            return n
        }
    }
}
