// One container's log stream: FIFO bytes → frames → (re)joined lines → multi-line events
// (when the container asks for them) → the sink's buffer (the sink encodes them when it
// sends). `LogStream` is what other threads may see (names, the sink, counters);
// `StreamReader` is the StreamLoop thread's state for it (scheduling, and the `LineDecoder`
// that turns bytes into records), owned by that thread alone. Nothing here blocks.
import Synchronization

public final class LogStream: Sendable {
    public let file: String
    public let containerName: String
    public let containerID: String
    /// "nats" or "logentries": a label of the stream's metrics.
    public let driver: String
    let fd: Int32
    let sink: StreamSink
    let partialMerge: Bool
    let multiline: MultilineOptions?
    /// Re-attached after a crash: the previous process may have stopped mid-frame.
    let resynchronize: Bool
    private let corrupt = Atomic<Int>(0)

    public init(file: String, fd: Int32, containerName: String, containerID: String = "", driver: String = "",
                sink: StreamSink, partialMerge: Bool, multiline: MultilineOptions? = nil, resynchronize: Bool = false) {
        self.file = file
        self.fd = fd
        self.containerName = containerName
        self.containerID = containerID
        self.driver = driver
        self.sink = sink
        self.partialMerge = partialMerge
        self.multiline = multiline
        self.resynchronize = resynchronize
    }

    public var corruptFrames: Int { corrupt.load(ordering: .relaxed) }
    func addCorruptFrames(_ n: Int) { corrupt.add(n, ordering: .relaxed) }

    /// True when the stream must stop reading until the sink catches up (see EventBuffer.shouldPause).
    var mustPause: Bool { sink.buffer.shouldPause(now: Clock.monotonicNanos()) }
}

/// The StreamLoop thread's state for one stream.
final class StreamReader {
    let stream: LogStream
    private var lines: LineDecoder
    private let dropLog = RateLimitedLog()
    /// Set by StopLogging (through the loop's inbox).
    var stopRequestedAt: Int64? = nil
    var paused = false
    /// Bytes the last drain read: a backlog means "read again at once", little means "let frames pile up".
    var lastDrainBytes = 0
    /// The last drain left bytes in the pipe (its read room or its turn ran out) or found a
    /// backlog (StreamLoop.busyBytes): read again at once.
    var behind = false
    /// The sink's buffer, which the loop asks before every read (kept here: no existential copy each time).
    let buffer: EventBuffer

    init(_ stream: LogStream) {
        self.stream = stream
        buffer = stream.sink.buffer
        lines = LineDecoder(stream)
    }

    var fd: Int32 { stream.fd }
    var name: String { stream.containerName }

    /// Decodes a chunk read from the FIFO and hands the lines to the sink.
    /// `scratch` is the loop's reusable buffer (one for all streams).
    func consume(_ chunk: UnsafeRawBufferPointer, now: Int64, scratch: inout [UInt8]) {
        let corruptBefore = lines.corruptFrames
        let decoded = lines.decode(chunk, now: now, into: &scratch)
        if lines.corruptFrames != corruptBefore {
            stream.addCorruptFrames(lines.corruptFrames - corruptBefore)
            Log.warn("discarded \(lines.corruptFrames - corruptBefore) corrupt frame(s)", container: name)
        }
        deliver(decoded, scratch: &scratch)
    }

    /// Emits partial lines and multi-line events that stopped growing.
    func flushStale(now: Int64, scratch: inout [UInt8]) {
        guard lines.holdsLines else { return }
        let decoded = lines.flush(partialsOlderThan: now - StreamLoop.staleNs,
                                  eventsOlderThan: now - (stream.multiline?.flushIntervalNs ?? 0), now: now, into: &scratch)
        deliver(decoded, scratch: &scratch)
    }

    /// Emits everything held (EOF, StopLogging).
    func flushAll(scratch: inout [UInt8]) {
        guard lines.holdsLines else { return }
        let decoded = lines.flush(partialsOlderThan: .max, eventsOlderThan: .max, now: Clock.monotonicNanos(), into: &scratch)
        deliver(decoded, scratch: &scratch)
    }

    private func deliver(_ decoded: LineDecoder.Count, scratch: inout [UInt8]) {
        guard !scratch.isEmpty else { return }
        let appended = scratch.withUnsafeBytes { buffer.append(records: $0, lines: decoded.lines, lineBytes: decoded.bytes) }
        scratch.removeAll(keepingCapacity: true)
        if appended.wakeSink { stream.sink.notify() }
        if appended.dropped > 0 {
            let name = self.name
            let limit = buffer.limit
            let total = buffer.counters.droppedLines
            dropLog.attempt { _ in
                Log.warn("buffer full (\(limit) bytes), dropped \(total) line(s) so far", container: name)
            }
        }
    }

    var mustPause: Bool { stream.mustPause }
}

/// A stream's bytes → frames → rejoined lines → multi-line events → records. A value type
/// whose parts are handed to the per-line closures as inout arguments: no reference counting
/// and no runtime exclusivity check per line.
struct LineDecoder {
    private var frames = FrameDecoder()
    private var merger: PartialMerger
    private var grouper: MultilineGrouper?
    private var ordinals = LineRecord.OrdinalCounter()

    struct Count { var lines = 0, bytes = 0 }

    init(_ stream: LogStream) {
        merger = PartialMerger(enabled: stream.partialMerge)
        grouper = stream.multiline.map { MultilineGrouper(start: $0.start, maxEventBytes: $0.maxEventBytes) }
        if stream.resynchronize { frames.resynchronize() }
    }

    var corruptFrames: Int { frames.corruptFrames }
    /// Partial lines or multi-line events wait for more.
    var holdsLines: Bool { merger.pendingBytes > 0 || (grouper?.pendingBytes ?? 0) > 0 }

    /// Decodes `chunk` and appends a record per line to `records`.
    mutating func decode(_ chunk: UnsafeRawBufferPointer, now: Int64, into records: inout [UInt8]) -> Count {
        Self.decode(chunk, now: now, &frames, &merger, &grouper, &ordinals, &records)
    }

    /// Emits partial lines and multi-line events not extended since before the given times.
    mutating func flush(partialsOlderThan: Int64, eventsOlderThan: Int64, now: Int64, into records: inout [UInt8]) -> Count {
        Self.flush(partialsOlderThan, eventsOlderThan, now: now, &merger, &grouper, &ordinals, &records)
    }

    private static func decode(_ chunk: UnsafeRawBufferPointer, now: Int64, _ frames: inout FrameDecoder, _ merger: inout PartialMerger,
                               _ grouper: inout MultilineGrouper?, _ ordinals: inout LineRecord.OrdinalCounter,
                               _ records: inout [UInt8]) -> Count {
        var count = Count()
        let grouping = grouper != nil
        frames.feed(chunk) { entry in
            merger.add(entry, now: now) { line, source, time, partial in
                if grouping {
                    grouper!.add(line, source: source, timeNano: time, partial: partial, now: now) { line, source, time, partial in
                        record(line, source, time, partial, &ordinals, &records, &count)
                    }
                } else {
                    record(line, source, time, partial, &ordinals, &records, &count)
                }
            }
        }
        return count
    }

    private static func flush(_ partialsOlderThan: Int64, _ eventsOlderThan: Int64, now: Int64, _ merger: inout PartialMerger,
                              _ grouper: inout MultilineGrouper?, _ ordinals: inout LineRecord.OrdinalCounter,
                              _ records: inout [UInt8]) -> Count {
        var count = Count()
        let grouping = grouper != nil
        merger.flush(olderThan: partialsOlderThan) { line, source, time, partial in
            if grouping {
                grouper!.add(line, source: source, timeNano: time, partial: partial, now: now) { line, source, time, partial in
                    record(line, source, time, partial, &ordinals, &records, &count)
                }
            } else {
                record(line, source, time, partial, &ordinals, &records, &count)
            }
        }
        grouper?.flush(olderThan: eventsOlderThan) { line, source, time, partial in
            record(line, source, time, partial, &ordinals, &records, &count)
        }
        return count
    }

    @inline(__always)
    private static func record(_ line: UnsafeRawBufferPointer, _ source: UnsafeRawBufferPointer, _ time: Int64, _ partial: Bool,
                               _ ordinals: inout LineRecord.OrdinalCounter, _ records: inout [UInt8], _ count: inout Count) {
        LineRecord.append(line: line, source: source, timeNano: time, partial: partial,
                          ordinal: ordinals.next(source: source, timeNano: time), to: &records)
        count.lines += 1
        count.bytes += line.count
    }
}
