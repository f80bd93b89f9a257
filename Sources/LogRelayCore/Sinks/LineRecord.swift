// How a log line waits in an EventBuffer:
// [UInt32 BE length][meta][Int64 BE time_nano][UInt32 BE ordinal][line].
// Lines are stored raw and encoded by the sink when it sends them, so the sink's
// current limits (NATS max_payload, the Logentries line limit) always apply. The ordinal is
// the line's position among the lines of its source with the same time_nano, counted where
// the stream is read: with the container, time and source it names the line the same way
// on every replay (the NATS Nats-Msg-Id).
public enum LineRecord {
    /// Bytes of a record's body before the line: meta (source, partial) + time + ordinal.
    public static let bodyOverhead = 13

    private static let stdout: StaticString = "stdout"
    private static let stderr: StaticString = "stderr"

    public struct View {
        public var source: UnsafeRawBufferPointer
        public var timeNano: Int64
        public var partial: Bool
        public var ordinal: UInt32
        public var line: UnsafeRawBufferPointer
    }

    @inline(__always)
    public static func append(line: UnsafeRawBufferPointer, source: UnsafeRawBufferPointer, timeNano: Int64, partial: Bool,
                              ordinal: UInt32 = 0, to out: inout [UInt8]) {
        let n = line.count + bodyOverhead
        var meta: UInt8 = 2     // 0 stdout, 1 stderr, 2 anything else (never sent by Docker)
        if source.count == 6 && source[0] == 0x73 && source[1] == 0x74 && source[2] == 0x64 {   // "std"
            if source[3] == 0x6F && source[4] == 0x75 && source[5] == 0x74 { meta = 0 }          // "out"
            else if source[3] == 0x65 && source[4] == 0x72 && source[5] == 0x72 { meta = 1 }     // "err"
        }
        if partial { meta |= 0x80 }
        // The 17 bytes before the line, written at once.
        var head: (UInt64, UInt64, UInt8) = (0, 0, 0)
        withUnsafeMutableBytes(of: &head) { h in
            h.storeBytes(of: UInt32(truncatingIfNeeded: n).bigEndian, toByteOffset: 0, as: UInt32.self)
            h[4] = meta
            h.storeBytes(of: UInt64(bitPattern: timeNano).bigEndian, toByteOffset: 5, as: UInt64.self)
            h.storeBytes(of: ordinal.bigEndian, toByteOffset: 13, as: UInt32.self)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: h[0..<17]))
        }
        out.append(contentsOf: line)
    }

    /// The record at `offset` and the offset of the next one.
    @inline(__always)
    public static func read(_ p: UnsafeRawBufferPointer, at offset: Int) -> (View, Int) {
        let n = EventBuffer.recordLength(p, at: offset)
        precondition(offset + 4 + n <= p.count && n >= bodyOverhead, "not a LineRecord")
        let meta = p[offset + 4]
        let t = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: offset + 5, as: UInt64.self))
        let ordinal = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: offset + 13, as: UInt32.self))
        let src: StaticString
        switch meta & 0x7F {
        case 0: src = stdout
        case 1: src = stderr
        default: src = ""
        }
        let view = View(source: UnsafeRawBufferPointer(start: src.utf8Start, count: src.utf8CodeUnitCount),
                        timeNano: Int64(bitPattern: t),
                        partial: meta & 0x80 != 0,
                        ordinal: ordinal,
                        line: UnsafeRawBufferPointer(rebasing: p[(offset + 4 + bodyOverhead)..<(offset + 4 + n)]))
        return (view, offset + 4 + n)
    }

    /// Counts lines of equal time per source (stdout, stderr, other): each source's lines come
    /// from one reader of the daemon in time order, so the count is the same on every read.
    public struct OrdinalCounter {
        private var last: (Int64, Int64, Int64) = (.min, .min, .min)
        private var count: (UInt32, UInt32, UInt32) = (0, 0, 0)
        public init() {}

        public mutating func next(source: UnsafeRawBufferPointer, timeNano: Int64) -> UInt32 {
            let slot = source.count == 6 && source[3] == 0x6F ? 0 : source.count == 6 && source[3] == 0x65 ? 1 : 2
            func step(_ l: inout Int64, _ c: inout UInt32) -> UInt32 {
                if l == timeNano { c &+= 1 } else { l = timeNano; c = 0 }
                return c
            }
            switch slot {
            case 0: return step(&last.0, &count.0)
            case 1: return step(&last.1, &count.1)
            default: return step(&last.2, &count.2)
            }
        }
    }
}
