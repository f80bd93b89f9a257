// Groups the lines of one message (a stack trace, pretty-printed JSON) into one event, as
// Docker's awslogs driver does with awslogs-multiline-pattern: a line that matches the start
// pattern begins a new event, any other line continues the current one (lines before the
// first match form an event of their own). Lines are joined with "\n"; the event keeps the
// first line's time.
//
// Like PartialMerger it is a pure state machine fed by the stream thread: lines in, events
// out, with `flush(olderThan:)` for the last event of a source that went quiet. stdout and
// stderr are grouped separately, so an interleaved stderr line never splits a stdout trace.
// An event that would outgrow `maxEventBytes` is cut: every piece of it is marked partial.

public struct MultilineGrouper: Sendable {
    /// Receives (event, source, timeNano, partial); the buffers are valid only during the call.
    public typealias Emit = PartialMerger.Emit

    public let start: LinearRegex
    public let maxEventBytes: Int

    /// One event being collected, for one source.
    private struct Pending: SourceSlot {
        var source: [UInt8] = []
        var event: [UInt8] = []
        var timeNano: Int64 = 0       // the first line's
        var updated: Int64 = 0        // monotonic ns of the last line, for flush(olderThan:)
        var partial = false           // cut by the size cap, or made of a piece of a split line
        var open = false
    }

    /// One slot per source seen (SourceSlots.swift).
    private var slots: [Pending] = []
    private var scratch = RegexScratch()
    /// Buffers grown past this by a huge event are released when the event is done.
    private static let retainedCapacity = 64 * 1024
    private static let newline: [UInt8] = [0x0A]

    public init(start: LinearRegex, maxEventBytes: Int) {
        precondition(maxEventBytes > 0, "maxEventBytes must be positive")
        self.start = start
        self.maxEventBytes = maxEventBytes
    }

    /// Bytes held in unfinished events.
    public var pendingBytes: Int {
        var total = 0
        for slot in slots where slot.open { total += slot.event.count }
        return total
    }

    /// Adds one line (as PartialMerger emits it). A piece of a split line (`partial`) cannot
    /// be matched or joined meaningfully: it ends the source's event and passes through.
    public mutating func add(_ line: UnsafeRawBufferPointer, source: UnsafeRawBufferPointer, timeNano: Int64,
                             partial: Bool, now: Int64, _ emit: Emit) {
        let i = claimSlot(for: source, now: now, emit)
        if partial {
            if slots[i].open { emitAndClose(i, emit) }
            emit(line, source, timeNano, true)
            return
        }
        if slots[i].open && start.matches(line, using: &scratch) {
            emitAndClose(i, emit)
        }
        slots[i].updated = now
        if !slots[i].open {
            begin(i, line, timeNano: timeNano, emit)
            return
        }
        // A continuation line: joined with "\n", unless that outgrows the cap. Then what is
        // held goes as one piece and the line starts the next piece of the same event.
        let separator = slots[i].event.isEmpty ? 0 : 1
        if slots[i].event.count + separator + line.count <= maxEventBytes {
            if separator == 1 { slots[i].event.append(contentsOf: Self.newline) }
            slots[i].event.append(contentsOf: line)
            return
        }
        if !slots[i].event.isEmpty { emitHeld(i, partial: true, emit) }
        slots[i].event.removeAll(keepingCapacity: true)
        slots[i].partial = true
        if line.count > maxEventBytes {
            // Too big even alone: passed on as its own piece rather than held.
            slots[i].source.withUnsafeBytes { emit(line, $0, slots[i].timeNano, true) }
        } else {
            slots[i].event.append(contentsOf: line)
        }
    }

    /// Emits events not extended since before `olderThan` (monotonic ns); Int64.max flushes all
    /// (EOF, StopLogging). An event that went quiet is complete, not partial.
    public mutating func flush(olderThan: Int64, _ emit: Emit) {
        for i in slots.indices where slots[i].open && (olderThan == .max || slots[i].updated < olderThan) {
            emitAndClose(i, emit)
        }
    }

    // MARK: - multiline-datetime-format

    /// The start pattern for a strftime format, as Docker's awslogs driver translates
    /// awslogs-datetime-format (the same regex per directive), anchored at the line's start.
    /// Unlike awslogs, the other characters match only themselves (awslogs pastes them into
    /// the regex, so a "." there matches any character), and an unknown directive is an
    /// error instead of vanishing.
    public static func startPattern(datetimeFormat format: String) throws(OptionError) -> String {
        var out = "^"
        var chars = format.makeIterator()
        while let c = chars.next() {
            if c != "%" {
                if "\\.+*?()|[]{}^$".contains(c) { out.append("\\") }
                out.append(c)
                continue
            }
            guard let d = chars.next() else { throw OptionError("it ends with a lone %") }
            if d == "%" { out += "%"; continue }
            guard let re = strftimeRegex[d] else {
                throw OptionError("%\(d) is not a supported directive (supported: %\(strftimeRegex.keys.sorted().map(String.init).joined(separator: " %")) %%)")
            }
            out += re
        }
        return out
    }

    /// awslogs' table (moby daemon/logger/awslogs/cloudwatchlogs.go).
    static let strftimeRegex: [Character: String] = [
        "a": #"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"#,
        "A": #"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"#,
        "w": #"[0-6]"#,
        "d": #"(?:0[1-9]|[1,2][0-9]|3[0,1])"#,
        "b": #"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"#,
        "B": #"(?:January|February|March|April|May|June|July|August|September|October|November|December)"#,
        "m": #"(?:0[1-9]|1[0-2])"#,
        "Y": #"\d{4}"#,
        "y": #"\d{2}"#,
        "H": #"(?:[0,1][0-9]|2[0-3])"#,
        "I": #"(?:0[0-9]|1[0-2])"#,
        "p": #"[A,P]M"#,
        "M": #"[0-5][0-9]"#,
        "S": #"[0-5][0-9]"#,
        "f": #"\d{6}"#,
        "z": #"[+-]\d{4}"#,
        "Z": #"[A-Z]{1,4}T"#,
        "j": #"(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])"#,
        "L": #"\.\d{3}"#,
    ]

    // MARK: - Internals

    private mutating func begin(_ i: Int, _ line: UnsafeRawBufferPointer, timeNano: Int64, _ emit: Emit) {
        slots[i].open = true
        slots[i].timeNano = timeNano
        slots[i].event.removeAll(keepingCapacity: true)
        if line.count > maxEventBytes {
            // The first line alone outgrows the cap: it goes as the event's first piece.
            slots[i].partial = true
            slots[i].source.withUnsafeBytes { emit(line, $0, timeNano, true) }
        } else {
            slots[i].partial = false
            slots[i].event.append(contentsOf: line)
        }
    }

    private func emitHeld(_ i: Int, partial: Bool, _ emit: Emit) {
        slots[i].event.withUnsafeBytes { event in
            slots[i].source.withUnsafeBytes { source in
                emit(event, source, slots[i].timeNano, partial)
            }
        }
    }

    private mutating func emitAndClose(_ i: Int, _ emit: Emit) {
        // An empty held piece after a cut has nothing left to say; an empty line alone is an event.
        if !(slots[i].partial && slots[i].event.isEmpty) { emitHeld(i, partial: slots[i].partial, emit) }
        slots[i].open = false
        slots[i].partial = false
        slots[i].event.removeAll(keepingCapacity: slots[i].event.capacity <= Self.retainedCapacity)
    }

    /// The slot for `source`: its own, else a closed one, else a new one; with every slot
    /// busy, the least recently extended event is emitted to make room.
    private mutating func claimSlot(for source: UnsafeRawBufferPointer, now: Int64, _ emit: Emit) -> Int {
        if let i = slots.slot(for: source) { return i }
        if let busy = slots.leastRecentIfFull() { emitAndClose(busy, emit) }
        let i = slots.reuse(for: source)
        slots[i].updated = now
        return i
    }
}
