// One container's log stream: FIFO bytes → frames → (re)joined lines → multi-line events
// (when the container asks for them) → the sink's buffer (the sink encodes them when it
// sends). `LogStream` is what other threads may see (names, the sink, counters);
// `StreamReader` is the decoding state, owned by the StreamLoop thread alone. Nothing here
// blocks.
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
    private var decoder = FrameDecoder()
    private var merger: PartialMerger
    private var ordinals = LineRecord.OrdinalCounter()
    private var grouper: MultilineGrouper?
    private let dropLog = RateLimitedLog()
    /// Set by StopLogging (through the loop's inbox).
    var stopRequestedAt: Int64? = nil
    var paused = false
    /// Bytes the last drain read: a backlog means "read again at once", little means "let frames pile up".
    var lastDrainBytes = 0
    /// The last drain left bytes in the pipe (its read room or its turn ran out): read again at once.
    var behind = false
    /// The sink's buffer, which the loop asks before every read (kept here: no existential copy each time).
    let buffer: EventBuffer

    init(_ stream: LogStream) {
        self.stream = stream
        buffer = stream.sink.buffer
        merger = PartialMerger(enabled: stream.partialMerge)
        grouper = stream.multiline.map { MultilineGrouper(start: $0.start, maxEventBytes: $0.maxEventBytes) }
        if stream.resynchronize { decoder.resynchronize() }
    }

    var fd: Int32 { stream.fd }
    var name: String { stream.containerName }

    /// Decodes a chunk read from the FIFO and hands the lines to the sink.
    /// `scratch` is the loop's reusable buffer (one for all streams).
    func consume(_ chunk: UnsafeRawBufferPointer, now: Int64, scratch: inout [UInt8]) {
        var lines = 0
        var lineBytes = 0
        let corruptBefore = decoder.corruptFrames
        decoder.feed(chunk) { entry in
            merger.add(entry, now: now) { line, source, time, partial in
                group(line, source, time, partial, now: now) { line, source, time, partial in
                    LineRecord.append(line: line, source: source, timeNano: time, partial: partial,
                                  ordinal: ordinals.next(source: source, timeNano: time), to: &scratch)
                    lines += 1
                    lineBytes += line.count
                }
            }
        }
        if decoder.corruptFrames != corruptBefore {
            stream.addCorruptFrames(decoder.corruptFrames - corruptBefore)
            Log.warn("discarded \(decoder.corruptFrames - corruptBefore) corrupt frame(s)", container: name)
        }
        deliver(lines: lines, lineBytes: lineBytes, scratch: &scratch)
    }

    /// Emits partial lines and multi-line events that stopped growing.
    func flushStale(now: Int64, scratch: inout [UInt8]) {
        flush(partialsOlderThan: now - StreamLoop.staleNs,
              eventsOlderThan: now - (stream.multiline?.flushIntervalNs ?? 0), now: now, scratch: &scratch)
    }

    /// Emits everything held (EOF, StopLogging).
    func flushAll(scratch: inout [UInt8]) {
        flush(partialsOlderThan: .max, eventsOlderThan: .max, now: Clock.monotonicNanos(), scratch: &scratch)
    }

    private func flush(partialsOlderThan: Int64, eventsOlderThan: Int64, now: Int64, scratch: inout [UInt8]) {
        guard merger.pendingBytes > 0 || (grouper?.pendingBytes ?? 0) > 0 else { return }
        var lines = 0
        var lineBytes = 0
        func record(_ line: UnsafeRawBufferPointer, _ source: UnsafeRawBufferPointer, _ time: Int64, _ partial: Bool) {
            LineRecord.append(line: line, source: source, timeNano: time, partial: partial,
                              ordinal: ordinals.next(source: source, timeNano: time), to: &scratch)
            lines += 1
            lineBytes += line.count
        }
        merger.flush(olderThan: partialsOlderThan) { line, source, time, partial in
            group(line, source, time, partial, now: now, record)
        }
        grouper?.flush(olderThan: eventsOlderThan, record)
        deliver(lines: lines, lineBytes: lineBytes, scratch: &scratch)
    }

    /// Passes a line through the multiline grouper, if the stream has one.
    @inline(__always)
    private func group(_ line: UnsafeRawBufferPointer, _ source: UnsafeRawBufferPointer, _ time: Int64, _ partial: Bool,
                       now: Int64, _ emit: PartialMerger.Emit) {
        if grouper == nil {
            emit(line, source, time, partial)
        } else {
            grouper!.add(line, source: source, timeNano: time, partial: partial, now: now, emit)
        }
    }

    private func deliver(lines: Int, lineBytes: Int, scratch: inout [UInt8]) {
        guard !scratch.isEmpty else { return }
        let sink = stream.sink
        let appended = scratch.withUnsafeBytes { sink.buffer.append(records: $0, lines: lines, lineBytes: lineBytes) }
        scratch.removeAll(keepingCapacity: true)
        if appended.wakeSink { sink.notify() }
        if appended.dropped > 0 {
            let name = self.name
            let limit = sink.buffer.limit
            let total = sink.buffer.counters.droppedLines
            dropLog.attempt { _ in
                Log.warn("buffer full (\(limit) bytes), dropped \(total) line(s) so far", container: name)
            }
        }
    }

    var mustPause: Bool { stream.mustPause }
}
