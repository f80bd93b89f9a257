// libFuzzer target: the FIFO frame decoder (Sources/LogRelayCore/Stream/FrameDecoder.swift).
//
// Input byte 0 chooses the mode:
//   even: the rest is a raw byte stream. It is decoded in one piece, in small pieces, and in
//         small pieces with a callback that throws now and then; all three must agree
//         (entries, corrupt-frame and discarded-byte counts, bytes held back).
//   odd:  the rest describes log entries; the target encodes them as the daemon does
//         (protocol doc §4.1/§4.2), may put a corrupt length prefix between two frames, feeds
//         the stream in small pieces and requires every entry back, exactly, in order, with
//         one corrupt frame counted per corrupt prefix.
// Always: no out-of-bounds access (ASan), no entry longer than the frame limit, the held-back
// bytes bounded, every byte accounted for as decoded, discarded or held back.

struct Entry: Equatable {
    var source: [UInt8]
    var timeNano: Int64
    var line: [UInt8]
    var partial: Bool
    var hasMeta: Bool
    var last: Bool
    var id: [UInt8]
    var ordinal: Int32

    init(_ v: LogEntryView) {
        source = Array(v.source)
        timeNano = v.timeNano
        line = Array(v.line)
        partial = v.partial
        hasMeta = v.hasPartialMetadata
        last = v.partialLast
        id = Array(v.partialID)
        ordinal = v.partialOrdinal
    }

    init(source: [UInt8], timeNano: Int64, line: [UInt8], partial: Bool, hasMeta: Bool, last: Bool, id: [UInt8], ordinal: Int32) {
        self.source = source
        self.timeNano = timeNano
        self.line = line
        self.partial = partial
        self.hasMeta = hasMeta
        self.last = last
        self.id = id
        self.ordinal = ordinal
    }
}

struct Thrown: Error {}

struct Outcome: Equatable {
    var entries: [Entry] = []
    var corrupt = 0
    var discarded = 0
    var buffered = 0
}

/// Feeds `pieces` of `bytes`; with `throwEvery` > 0 the callback throws on every n-th entry
/// and the decoder is fed an empty chunk until it has caught up (the documented contract).
func run(_ bytes: [UInt8], pieces: [Int], maxFrameSize: Int, resync: Bool, throwEvery: Int = 0) -> Outcome {
    var decoder = FrameDecoder(maxFrameSize: maxFrameSize)
    if resync { decoder.resynchronize() }
    var out = Outcome()
    var calls = 0
    let empty = UnsafeRawBufferPointer(start: nil, count: 0)
    bytes.withUnsafeBytes { all in
        var pos = 0
        for n in pieces {
            let chunk = UnsafeRawBufferPointer(rebasing: all[pos..<(pos + n)])
            pos += n
            var current = chunk
            var rounds = 0
            while true {
                do {
                    try decoder.feed(current) { e in
                        fuzzCheck(e.line.count <= maxFrameSize, "entry line longer than the frame limit")
                        fuzzCheck(e.source.count <= maxFrameSize && e.partialID.count <= maxFrameSize, "field longer than the frame limit")
                        out.entries.append(Entry(e))
                        calls += 1
                        if throwEvery > 0 && calls % throwEvery == 0 { throw Thrown() }
                    }
                    break
                } catch {
                    current = empty  // the rest of the chunk was kept: continue with nothing new
                    rounds += 1
                    fuzzCheck(rounds <= bytes.count + 1, "decoder makes no progress after a throwing callback")
                }
            }
            // Held back: at most one incomplete frame (or an incomplete resync candidate).
            fuzzCheck(decoder.bufferedBytes <= max(4 + maxFrameSize, 12), "decoder holds \(decoder.bufferedBytes) bytes")
            fuzzCheck(decoder.bufferedBytes <= pos, "decoder holds more than it was fed")
            fuzzCheck(decoder.discardedBytes + decoder.bufferedBytes <= pos, "discarded + held back exceeds the input")
        }
    }
    out.corrupt = decoder.corruptFrames
    out.discarded = decoder.discardedBytes
    out.buffered = decoder.bufferedBytes
    return out
}

// MARK: - Encoding (as the daemon's gogo encoder writes a LogEntry)

func appendVarint(_ v: UInt64, _ out: inout [UInt8]) {
    var v = v
    while v >= 0x80 {
        out.append(UInt8(v & 0x7f) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
}

func encode(_ e: Entry) -> [UInt8] {
    var m: [UInt8] = []
    if !e.source.isEmpty { m.append(0x0a); appendVarint(UInt64(e.source.count), &m); m += e.source }
    if e.timeNano != 0 { m.append(0x10); appendVarint(UInt64(bitPattern: e.timeNano), &m) }
    if !e.line.isEmpty { m.append(0x1a); appendVarint(UInt64(e.line.count), &m); m += e.line }
    if e.partial { m += [0x20, 0x01] }
    if e.hasMeta {
        var meta: [UInt8] = []
        if e.last { meta += [0x08, 0x01] }
        if !e.id.isEmpty { meta.append(0x12); appendVarint(UInt64(e.id.count), &meta); meta += e.id }
        if e.ordinal != 0 { meta.append(0x18); appendVarint(UInt64(bitPattern: Int64(e.ordinal)), &meta) }
        m.append(0x2a); appendVarint(UInt64(meta.count), &m); m += meta
    }
    let n = UInt32(m.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + m
}

/// Reads entries from the fuzz input: per entry a flags byte, a length byte, then that many
/// line bytes (fewer at the end of the input).
func structuredEntries(_ d: ArraySlice<UInt8>) -> [(Entry, corruptBefore: Bool)] {
    var out: [(Entry, corruptBefore: Bool)] = []
    var i = d.startIndex
    var t: Int64 = 1_700_000_000_123_456_789
    while i + 1 < d.endIndex {
        let flags = d[i], len = Int(d[i + 1])
        i += 2
        let end = min(i + len, d.endIndex)
        let line = Array(d[i..<end])
        i = end
        t = flags & 0x40 != 0 ? 0 &- t : t &+ Int64(len) &* 1_000_003
        let hasMeta = flags & 0x04 != 0
        let e = Entry(source: Array((flags & 1 == 0 ? "stdout" : "stderr").utf8), timeNano: t, line: line,
                      partial: flags & 0x02 != 0, hasMeta: hasMeta, last: hasMeta && flags & 0x08 != 0,
                      id: hasMeta && flags & 0x10 != 0 ? Array(String(repeating: "ab", count: 32).utf8) : [],
                      ordinal: hasMeta && flags & 0x20 != 0 ? Int32(truncatingIfNeeded: Int(len) - 100) : 0)
        out.append((e, corruptBefore: flags & 0x80 != 0 && !out.isEmpty))
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let mode = input[0]
    var splitter = FuzzSplitter(seed: seed(input))

    if mode & 1 == 0 {
        let bytes = Array(input[1...])
        let maxFrameSize = [16, 64, 1024, 1 << 20][Int(mode >> 1 & 3)]
        let resync = mode & 8 != 0
        let whole = run(bytes, pieces: bytes.isEmpty ? [] : [bytes.count], maxFrameSize: maxFrameSize, resync: resync)
        let pieces = splitter.pieces(bytes.count)
        let split = run(bytes, pieces: pieces, maxFrameSize: maxFrameSize, resync: resync)
        fuzzCheck(whole == split, "one-piece and split decoding differ: \(whole.entries.count)/\(whole.corrupt)/\(whole.discarded)/\(whole.buffered) vs \(split.entries.count)/\(split.corrupt)/\(split.discarded)/\(split.buffered)")
        let throwing = run(bytes, pieces: pieces, maxFrameSize: maxFrameSize, resync: resync, throwEvery: Int(mode >> 4 & 3) + 1)
        fuzzCheck(whole == throwing, "decoding with a throwing callback differs")
        return 0
    }

    let entries = structuredEntries(Array(input)[1...])
    var stream: [UInt8] = []
    var corrupt = 0
    let bad: [[UInt8]] = [[0xff, 0xff, 0xff, 0xff], [0x00, 0x20, 0x00, 0x00], [0x7f, 0x00, 0x00, 0x01]]
    for (e, corruptBefore) in entries {
        if corruptBefore {
            stream += bad[corrupt % bad.count]  // N > 1 MiB: "drain and resynchronise"
            corrupt += 1
        }
        stream += encode(e)
    }
    let got = run(stream, pieces: splitter.pieces(stream.count), maxFrameSize: 1 << 20, resync: mode & 2 != 0)
    fuzzCheck(got.entries == entries.map { $0.0 }, "entries lost or changed: \(got.entries.count) of \(entries.count)")
    fuzzCheck(got.corrupt == corrupt, "corrupt frames \(got.corrupt), expected \(corrupt)")
    fuzzCheck(got.discarded == corrupt * 4, "discarded \(got.discarded) bytes, expected \(corrupt * 4)")
    fuzzCheck(got.buffered == 0, "bytes held back after complete frames")
    return 0
}
