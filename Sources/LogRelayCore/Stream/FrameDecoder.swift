// Decodes the stream dockerd writes into a logging plugin's FIFO: frames of
// [UInt32 big-endian N][N bytes of protobuf LogEntry] (protocol doc §4.1, §4.2).
//
// Pure and incremental: feed it whatever read() returned, get one callback per entry.
// Frames wholly inside a chunk are decoded in place (zero copy); only an incomplete
// tail is copied into an internal buffer, which is later completed with exactly the
// bytes it still needs. The stream has no delimiters, so on corruption (N too large)
// the decoder scans for the next plausible frame start instead of giving up.
import Glibc

/// One decoded LogEntry. The buffers point into the decoder's or the caller's memory
/// and are valid only during the callback that receives the view.
public struct LogEntryView {
    public var source: UnsafeRawBufferPointer
    public var timeNano: Int64
    public var line: UnsafeRawBufferPointer
    public var partial: Bool
    public var hasPartialMetadata: Bool
    public var partialLast: Bool
    public var partialID: UnsafeRawBufferPointer
    public var partialOrdinal: Int32

    public init(
        source: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        timeNano: Int64 = 0,
        line: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        partial: Bool = false,
        hasPartialMetadata: Bool = false,
        partialLast: Bool = false,
        partialID: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        partialOrdinal: Int32 = 0
    ) {
        self.source = source
        self.timeNano = timeNano
        self.line = line
        self.partial = partial
        self.hasPartialMetadata = hasPartialMetadata
        self.partialLast = partialLast
        self.partialID = partialID
        self.partialOrdinal = partialOrdinal
    }
}

public struct FrameDecoder: Sendable {
    public let maxFrameSize: Int
    /// Frames dropped: bad protobuf, or N > maxFrameSize.
    public private(set) var corruptFrames = 0
    /// Bytes skipped while resynchronising, plus the bytes of dropped frames.
    public private(set) var discardedBytes = 0
    /// Bytes held waiting for the rest of a frame (or of a resync candidate).
    public var bufferedBytes: Int { buffer.count }

    /// Holds an incomplete frame (or, while scanning, an incomplete candidate start).
    private var buffer: [UInt8] = []
    /// True while looking for a plausible frame start instead of trusting the next 4 bytes.
    private var scanning = false

    /// A buffer grown beyond this by an unusually large frame is released once the frame is done,
    /// so one big frame does not pin memory for the life of the stream.
    private static let retainedCapacity = 64 * 1024

    public init(maxFrameSize: Int = 1 << 20) {
        precondition(maxFrameSize >= 0, "maxFrameSize must not be negative")
        self.maxFrameSize = maxFrameSize
    }

    /// Makes the next feed scan for a plausible frame start before decoding
    /// (after re-attaching to a FIFO mid-stream).
    public mutating func resynchronize() {
        scanning = true
    }

    /// Decodes every complete frame in `chunk` (plus bytes kept from earlier calls);
    /// keeps an incomplete tail for the next call. If `onEntry` throws, that entry counts
    /// as consumed and the rest of `chunk` is kept for the next call.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, _ onEntry: (LogEntryView) throws -> Void) rethrows {
        var pos = 0

        // 1. Finish what the buffer holds, pulling from `chunk` only the bytes it needs.
        while !buffer.isEmpty {
            if scanning {
                if !scanBuffered(chunk, &pos) { return }
                continue
            }
            if buffer.count < 4 {
                take(chunk, &pos, upTo: 4)
                if buffer.count < 4 { return }
            }
            let n = buffer.withUnsafeBytes { Self.readLength($0, 0) }
            if n > maxFrameSize {
                // No delimiter to skip to: look for the next plausible start, one byte on.
                corruptFrames += 1
                discardedBytes += 1
                dropBufferPrefix(1)
                scanning = true
                continue
            }
            let total = 4 + n
            if buffer.count < total {
                take(chunk, &pos, upTo: total)
                if buffer.count < total { return }
            }
            let decoded: Bool
            do {
                decoded = try buffer.withUnsafeBytes { b in
                    guard let entry = Self.decodeEntry(UnsafeRawBufferPointer(rebasing: b[4..<total])) else { return false }
                    try onEntry(entry)
                    return true
                }
            } catch {
                dropBufferPrefix(total)
                stash(chunk, from: pos)
                throw error
            }
            if !decoded { countDropped(total) }
            dropBufferPrefix(total)
        }

        // 2. Decode in place straight from `chunk`.
        while pos < chunk.count {
            if scanning {
                if !scanInPlace(chunk, &pos) { return }
                continue
            }
            let remaining = chunk.count - pos
            if remaining < 4 {
                stash(chunk, from: pos)
                return
            }
            let n = Self.readLength(chunk, pos)
            if n > maxFrameSize {
                corruptFrames += 1
                discardedBytes += 1
                pos += 1
                scanning = true
                continue
            }
            let total = 4 + n
            if remaining < total {
                buffer.reserveCapacity(total)
                stash(chunk, from: pos)
                return
            }
            let next = pos + total
            if let entry = Self.decodeEntry(UnsafeRawBufferPointer(rebasing: chunk[(pos + 4)..<next])) {
                do {
                    try onEntry(entry)
                } catch {
                    stash(chunk, from: next)
                    throw error
                }
            } else {
                countDropped(total)
            }
            pos = next
        }
    }

    // MARK: - Buffer handling

    /// Appends chunk bytes until the buffer holds `target` bytes or the chunk is used up.
    private mutating func take(_ chunk: UnsafeRawBufferPointer, _ pos: inout Int, upTo target: Int) {
        let k = min(target - buffer.count, chunk.count - pos)
        guard k > 0 else { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[pos..<(pos + k)]))
        pos += k
    }

    private mutating func stash(_ chunk: UnsafeRawBufferPointer, from pos: Int) {
        guard pos < chunk.count else { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[pos...]))
    }

    private mutating func dropBufferPrefix(_ k: Int) {
        if k >= buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacity)
        } else {
            buffer.removeFirst(k)  // only after a corrupt header or a throwing callback
        }
    }

    private mutating func countDropped(_ frameBytes: Int) {
        corruptFrames += 1
        discardedBytes += frameBytes
    }

    // MARK: - Resynchronisation

    /// Scans `chunk` from `pos` for a plausible frame start. Returns true when one was found
    /// (pos moved to it, scanning off); false when the chunk is used up (an incomplete
    /// candidate at the end is kept in the buffer).
    private mutating func scanInPlace(_ chunk: UnsafeRawBufferPointer, _ pos: inout Int) -> Bool {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        var k = pos
        while k < chunk.count {
            // Skip fast to the next offset whose byte +4 is 0x0a (field 1, LEN); only the last
            // four offsets, whose +4 lies beyond the chunk, are checked one by one.
            if k + 4 < chunk.count {
                let from = chunk.baseAddress! + k + 4
                if let hit = memchr(from, 0x0a, chunk.count - k - 4) {
                    k += UnsafeRawPointer(hit) - from
                } else {
                    k = chunk.count - 4
                }
            }
            switch Self.candidate(UnsafeRawBufferPointer(rebasing: chunk[k...]), none, maxFrameSize: maxFrameSize) {
            case .match:
                discardedBytes += k - pos
                pos = k
                scanning = false
                return true
            case .needMore:
                discardedBytes += k - pos
                stash(chunk, from: k)
                pos = chunk.count
                return false
            case .no:
                k += 1
            }
        }
        discardedBytes += chunk.count - pos
        pos = chunk.count
        return false
    }

    /// Scans the buffered bytes (continued by `chunk[pos...]`) for a plausible frame start.
    /// Returns false when the chunk has been used up and the caller should return.
    private mutating func scanBuffered(_ chunk: UnsafeRawBufferPointer, _ pos: inout Int) -> Bool {
        let rest = UnsafeRawBufferPointer(rebasing: chunk[pos...])
        let max = maxFrameSize
        let (offset, result): (Int, Candidate) = buffer.withUnsafeBytes { buf in
            for k in 0..<buf.count {
                let c = Self.candidate(UnsafeRawBufferPointer(rebasing: buf[k...]), rest, maxFrameSize: max)
                if c != .no { return (k, c) }
            }
            return (buf.count, .no)
        }
        discardedBytes += offset
        dropBufferPrefix(offset)
        switch result {
        case .match:
            scanning = false
            return true
        case .needMore:
            // Fewer than 12 bytes in all: keep them together and wait.
            stash(chunk, from: pos)
            pos = chunk.count
            return false
        case .no:
            return true  // buffer now empty: continue scanning in place
        }
    }

    enum Candidate { case match, needMore, no }

    /// Whether the bytes `a` followed by `b` start like a frame the daemon writes:
    /// 8 ≤ N ≤ maxFrameSize, then field 1 (source) = "stdout" or "stderr".
    static func candidate(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, maxFrameSize: Int) -> Candidate {
        let available = a.count + b.count
        var n = 0
        var nineth: UInt8 = 0
        for j in 0..<12 {
            if j >= available { return .needMore }
            let c = j < a.count ? a[j] : b[j - a.count]
            let ok: Bool
            switch j {
            case 0...3:
                // Reject as soon as even the smallest N these bytes allow is too large.
                n = n << 8 | Int(c)
                ok = n << (8 * (3 - j)) <= maxFrameSize && (j < 3 || n >= 8)
            case 4: ok = c == 0x0a  // field 1, LEN
            case 5: ok = c == 0x06  // length 6
            case 6: ok = c == UInt8(ascii: "s")
            case 7: ok = c == UInt8(ascii: "t")
            case 8: ok = c == UInt8(ascii: "d")
            case 9:
                nineth = c
                ok = c == UInt8(ascii: "o") || c == UInt8(ascii: "e")
            case 10: ok = c == (nineth == UInt8(ascii: "o") ? UInt8(ascii: "u") : UInt8(ascii: "r"))
            default: ok = c == (nineth == UInt8(ascii: "o") ? UInt8(ascii: "t") : UInt8(ascii: "r"))
            }
            if !ok { return .no }
        }
        return .match
    }

    // MARK: - Protobuf

    @inline(__always)
    static func readLength(_ p: UnsafeRawBufferPointer, _ i: Int) -> Int {
        Int(p[i]) << 24 | Int(p[i + 1]) << 16 | Int(p[i + 2]) << 8 | Int(p[i + 3])
    }

    /// Reads a varint at `i` (at most 10 bytes); nil if truncated or too long.
    @inline(__always)
    static func readVarint(_ p: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
        // Tags and short lengths are one byte: keep that case tiny.
        if i < p.count, p[i] < 0x80 {
            i += 1
            return UInt64(p[i - 1])
        }
        return readLongVarint(p, &i)
    }

    static func readLongVarint(_ p: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while i < p.count {
            let byte = p[i]
            i += 1
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    /// Reads a LEN field's payload at `i`; nil if it runs past the end.
    @inline(__always)
    static func readBytes(_ p: UnsafeRawBufferPointer, _ i: inout Int) -> UnsafeRawBufferPointer? {
        guard let len = readVarint(p, &i), len <= UInt64(p.count - i) else { return nil }
        let start = i
        i += Int(len)
        return UnsafeRawBufferPointer(rebasing: p[start..<i])
    }

    /// Decodes one LogEntry message; nil if it is malformed (the frame is then dropped).
    /// Accepts what gogo's Unmarshal accepts: any order, last scalar wins, field 5 merges,
    /// unknown fields skipped.
    static func decodeEntry(_ p: UnsafeRawBufferPointer) -> LogEntryView? {
        var entry = LogEntryView()
        var i = 0
        while i < p.count {
            guard let tag = readVarint(p, &i) else { return nil }
            // Switch on the whole tag (field << 3 | wire type): one compare per known field.
            switch tag {
            case 1 << 3 | 2:
                guard let v = readBytes(p, &i) else { return nil }
                entry.source = v
            case 2 << 3 | 0:
                guard let v = readVarint(p, &i) else { return nil }
                entry.timeNano = Int64(bitPattern: v)
            case 3 << 3 | 2:
                guard let v = readBytes(p, &i) else { return nil }
                entry.line = v
            case 4 << 3 | 0:
                guard let v = readVarint(p, &i) else { return nil }
                entry.partial = v != 0
            case 5 << 3 | 2:
                guard let v = readBytes(p, &i), decodeMetadata(v, into: &entry) else { return nil }
                entry.hasPartialMetadata = true
            default:
                // Field 0 is invalid; a known field with the wrong wire type is rejected by gogo too.
                let field = tag >> 3
                guard field > 5 else { return nil }
                guard skipField(p, &i, field: field, wireType: tag & 7, depth: 0) else { return nil }
            }
        }
        return entry
    }

    /// Decodes PartialLogEntryMetadata, merging into what earlier field-5 occurrences set.
    static func decodeMetadata(_ p: UnsafeRawBufferPointer, into entry: inout LogEntryView) -> Bool {
        var i = 0
        while i < p.count {
            guard let tag = readVarint(p, &i) else { return false }
            switch tag {
            case 1 << 3 | 0:
                guard let v = readVarint(p, &i) else { return false }
                entry.partialLast = v != 0
            case 2 << 3 | 2:
                guard let v = readBytes(p, &i) else { return false }
                entry.partialID = v
            case 3 << 3 | 0:
                guard let v = readVarint(p, &i) else { return false }
                entry.partialOrdinal = Int32(truncatingIfNeeded: v)  // int32 is sign-extended on the wire
            default:
                let field = tag >> 3
                guard field > 3 else { return false }
                guard skipField(p, &i, field: field, wireType: tag & 7, depth: 0) else { return false }
            }
        }
        return true
    }

    /// Skips an unknown field's value. Groups (3 … 4) are skipped to their matching end,
    /// with nesting bounded so hostile input cannot recurse deeply.
    static func skipField(_ p: UnsafeRawBufferPointer, _ i: inout Int, field: UInt64, wireType: UInt64, depth: Int) -> Bool {
        switch wireType {
        case 0:
            return readVarint(p, &i) != nil
        case 1, 5:
            let size = wireType == 1 ? 8 : 4
            guard p.count - i >= size else { return false }
            i += size
            return true
        case 2:
            return readBytes(p, &i) != nil
        case 3:
            guard depth < 32 else { return false }
            while i < p.count {
                guard let tag = readVarint(p, &i) else { return false }
                let innerField = tag >> 3
                let innerType = tag & 7
                guard innerField != 0 else { return false }
                if innerType == 4 { return innerField == field }
                guard skipField(p, &i, field: innerField, wireType: innerType, depth: depth + 1) else { return false }
            }
            return false  // group never ended
        default:
            return false  // 4: end group without a start; 6, 7: invalid
        }
    }
}
