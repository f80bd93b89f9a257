// Rejoins the lines dockerd cut into 16 KiB chunks (protocol doc §4.3).
//
// A long line arrives as entries with partial=true and metadata {id, ordinal, last};
// the final chunk has last=true (possibly with an empty line). stdout and stderr are
// separate sequences that may interleave, so the state is kept per source. Whole lines
// (the hot path) pass straight through without copying; only chunks of a split line are
// copied, into per-source buffers whose capacity is reused.

public struct PartialMerger: Sendable {
    /// Receives (line, source, timeNano, partial). `partial` is true only for a piece that
    /// is not a whole line. The buffers are valid only during the call.
    public typealias Emit = (UnsafeRawBufferPointer, UnsafeRawBufferPointer, Int64, Bool) -> Void

    public let enabled: Bool
    public let maxLineBytes: Int

    /// One split line being reassembled, for one source.
    private struct Pending: SourceSlot {
        var source: [UInt8] = []
        var id: [UInt8] = []
        var line: [UInt8] = []
        var timeNano: Int64 = 0       // the first chunk's: the daemon stamps every chunk with it anyway
        var lastOrdinal: Int32 = 0
        var updated: Int64 = 0        // monotonic ns of the last chunk, for flush(olderThan:)
        var cut = false               // part of the line was already emitted, or chunks are missing
        var open = false
    }

    /// One slot per source seen (SourceSlots.swift).
    private var slots: [Pending] = []
    private var openCount = 0
    /// Buffers grown past this by a huge line are released when the line is done.
    private static let retainedCapacity = 64 * 1024

    public init(enabled: Bool, maxLineBytes: Int = 1 << 20) {
        precondition(maxLineBytes > 0, "maxLineBytes must be positive")
        self.enabled = enabled
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes held in unfinished sequences.
    public var pendingBytes: Int {
        var total = 0
        for slot in slots where slot.open { total += slot.line.count }
        return total
    }

    public mutating func add(_ entry: LogEntryView, now: Int64, _ emit: Emit) {
        if !entry.partial || !entry.hasPartialMetadata {
            // Keep per-source order: a line after an unfinished sequence ends that sequence.
            if openCount > 0, let i = slots.slot(for: entry.source), slots[i].open {
                flushSlot(i, emit)
            }
            // Whole line: zero copy. A partial without metadata is a piece we cannot rejoin.
            emit(entry.line, entry.source, entry.timeNano, entry.partial)
            return
        }

        guard enabled else {
            // A chunk of a split line is never a whole line, not even the last one.
            if entry.partialLast && entry.line.isEmpty { return }
            emit(entry.line, entry.source, entry.timeNano, true)
            return
        }

        let i = claimSlot(for: entry.source, emit)
        if slots[i].open && !slots[i].id.elementsEqual(entry.partialID) {
            flushSlot(i, emit)  // a new line began before the old one ended
        }
        if !slots[i].open {
            slots[i].open = true
            openCount += 1
            slots[i].id.removeAll(keepingCapacity: true)
            slots[i].id.append(contentsOf: entry.partialID)
            slots[i].timeNano = entry.timeNano
            slots[i].cut = entry.partialOrdinal > 1  // we missed the start (e.g. re-attached mid-line)
        } else if entry.partialOrdinal != 0 && slots[i].lastOrdinal != 0
                    && entry.partialOrdinal != slots[i].lastOrdinal &+ 1 {
            slots[i].cut = true  // a chunk went missing
        }
        slots[i].lastOrdinal = entry.partialOrdinal
        slots[i].updated = now

        if entry.partialLast && slots[i].line.isEmpty {
            // The whole remainder is in this entry: emit without copying.
            if !slots[i].cut {
                slots[i].source.withUnsafeBytes { emit(entry.line, $0, slots[i].timeNano, false) }
            } else if !entry.line.isEmpty {
                slots[i].source.withUnsafeBytes { emit(entry.line, $0, slots[i].timeNano, true) }
            }
            close(i)
            return
        }

        append(entry.line, to: i, emit)
        if entry.partialLast {
            emitHeld(i, partial: slots[i].cut, emit)
            close(i)
        }
    }

    /// Emits sequences not extended since before `olderThan` (monotonic ns) as partial pieces;
    /// pass Int64.max at EOF/StopLogging to flush all.
    public mutating func flush(olderThan: Int64, _ emit: Emit) {
        guard openCount > 0 else { return }
        for i in slots.indices where slots[i].open && (olderThan == .max || slots[i].updated < olderThan) {
            flushSlot(i, emit)
        }
    }

    // MARK: - Internals

    /// Adds a chunk to slot `i`, first emitting what is held if the line would outgrow the cap.
    private mutating func append(_ chunk: UnsafeRawBufferPointer, to i: Int, _ emit: Emit) {
        if slots[i].line.count + chunk.count > maxLineBytes {
            if !slots[i].line.isEmpty {
                emitHeld(i, partial: true, emit)
                slots[i].line.removeAll(keepingCapacity: true)
            }
            slots[i].cut = true
            if chunk.count > maxLineBytes {
                // Too big even alone: pass it on as its own piece rather than buffer it.
                slots[i].source.withUnsafeBytes { emit(chunk, $0, slots[i].timeNano, true) }
                return
            }
        }
        slots[i].line.append(contentsOf: chunk)
    }

    private func emitHeld(_ i: Int, partial: Bool, _ emit: Emit) {
        slots[i].line.withUnsafeBytes { line in
            slots[i].source.withUnsafeBytes { source in
                emit(line, source, slots[i].timeNano, partial)
            }
        }
    }

    /// Emits an unfinished sequence as a partial piece and closes it.
    private mutating func flushSlot(_ i: Int, _ emit: Emit) {
        if !slots[i].line.isEmpty { emitHeld(i, partial: true, emit) }
        close(i)
    }

    private mutating func close(_ i: Int) {
        slots[i].open = false
        openCount -= 1
        slots[i].line.removeAll(keepingCapacity: slots[i].line.capacity <= Self.retainedCapacity)
    }

    /// The slot for `source`: its own, else a closed one, else a new one; with every slot
    /// busy, the least recently extended sequence is flushed to make room.
    private mutating func claimSlot(for source: UnsafeRawBufferPointer, _ emit: Emit) -> Int {
        if let i = slots.slot(for: source) { return i }
        if let busy = slots.leastRecentIfFull() { flushSlot(busy, emit) }
        let i = slots.reuse(for: source)
        return i
    }
}
