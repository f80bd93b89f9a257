// How lines go on the NATS wire: a route's constant bytes (built once per container) and the
// encoding of buffered records into PUB / HPUB messages. Per message, the command line and
// the header block are composed with pointer writes in one scratch buffer and reach the
// write buffer in one append, the event in a second: no array is touched per line.
import FoundationEssentials

/// A class: the sink reads it per stream and batch, and a struct of arrays and strings would be
/// retained field by field on every copy.
public final class NATSRoute: Sendable {
    public let subject: String
    let encoder: EventEncoder
    /// The route's constant pieces, back to back (see `Piece`).
    let wire: [UInt8]
    let pieces: [Range<Int>]
    /// The longest header block a line of this route can get, without the session's extra
    /// headers (see headerBound).
    private let headerBlockBound: Int

    /// What `wire` holds, in this order.
    enum Piece: Int, CaseIterable {
        /// "PUB <subject> ", "HPUB <subject> "
        case pub, hpub
        /// "NATS/1.0\r\nNats-Msg-Id: <container id>-": the header block up to the line's identity.
        case msgID
        /// Per source (stdout, stderr, other): what follows the line's identity in the header
        /// block: CRLF, "Logrelay-Container-Id: …" CRLF "Logrelay-Container-Name: …" CRLF,
        /// "Logrelay-Source: <source>" CRLF.
        case stdoutTail, stderrTail, otherTail
        /// The source's name in the id of a line that is neither stdout nor stderr.
        case other
    }

    public init(subject: String, encoder: EventEncoder, containerID: String = "", containerName: String = "") {
        self.subject = subject
        self.encoder = encoder
        let id = NATSRoute.headerValue(containerID)
        let name = NATSRoute.headerValue(containerName.hasPrefix("/") ? String(containerName.dropFirst()) : containerName)
        let containerHeaders = "Logrelay-Container-Id: \(id)\r\nLogrelay-Container-Name: \(name)\r\n"
        let texts: [Piece: String] = [
            .pub: "PUB \(subject) ", .hpub: "HPUB \(subject) ",
            .msgID: "NATS/1.0\r\nNats-Msg-Id: \(id)-",
            .stdoutTail: "\r\n\(containerHeaders)Logrelay-Source: stdout\r\n",
            .stderrTail: "\r\n\(containerHeaders)Logrelay-Source: stderr\r\n",
            .otherTail: "\r\n\(containerHeaders)Logrelay-Source: other\r\n",
            .other: "other",
        ]
        var wire: [UInt8] = []
        var pieces: [Range<Int>] = []
        for p in Piece.allCases {
            let start = wire.count
            wire += Array(texts[p]!.utf8)
            pieces.append(start..<wire.count)
        }
        self.wire = wire
        self.pieces = pieces
        // "n" time (≤ 20) "-" source (≤ 6) "-" ordinal (≤ 10) "-" piece (≤ 10), the longest
        // tail, CRLF.
        let tail = [Piece.stdoutTail, .stderrTail, .otherTail].map { pieces[$0.rawValue].count }.max()!
        headerBlockBound = pieces[Piece.msgID.rawValue].count + 20 + 1 + 6 + 1 + 10 + 1 + 10 + tail + 2
    }

    /// A header value cannot hold CR, LF or other control bytes (Docker's ids and names never do).
    static func headerValue(_ s: String) -> String {
        String(decoding: s.utf8.map { $0 < 0x20 || $0 == 0x7F ? 0x5F : $0 }, as: UTF8.self)
    }

    /// The longest header block a line of this route can get (a cut line's piece suffix included).
    func headerBound(extra: Int) -> Int { headerBlockBound + extra }
}

extension NATSSink {
    /// Encodes a stream's records into PUBs (HPUBs with headers). Events are cut to the
    /// server's max_payload (less the header block) here, so a smaller limit learned on a
    /// reconnect applies to everything still buffered; a line whose event cannot fit at all
    /// is dropped and counted. With JetStream, every message gets the reply subject of its
    /// sequence number in `window`.
    static func encode(_ records: UnsafeRawBufferPointer, endingAt endOffset: Int64, for a: NATSAttachment, framing: Framing,
                       into out: inout [UInt8], events: inout [UInt8], mark: inout Mark,
                       window: inout PubAckWindow, useWindow: Bool, slot: Int, now: Int64,
                       tooSmall: inout (name: String, needs: Int)?) {
        let route = a.route
        let headerRoom = framing.headers ? route.headerBound(extra: framing.extraHeaders.count) : 0
        let maxEvent = framing.maxPayload - headerRoom
        let startOffset = endOffset - Int64(records.count)
        MessageHead.with(route: route, framing: framing, blockRoom: headerRoom) { head in
            // A local array (the caller's storage, swapped in and back): reading it per record
            // then costs no retain and release, as reading the captured inout one did.
            var scratch: [UInt8] = []
            swap(&scratch, &events)
            defer { swap(&scratch, &events) }
            var i = 0
            while i < records.count {
                let (rec, next) = LineRecord.read(records, at: i)
                i = next
                let recordEnd = startOffset + Int64(next)
                scratch.removeAll(keepingCapacity: true)
                if maxEvent > 0 {
                    route.encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano, partial: rec.partial,
                                         maxEventBytes: maxEvent, to: &scratch)
                }
                scratch.withUnsafeBytes { ev in
                    var largest = 0
                    var pieces = 0
                    var j = 0
                    while j + 4 <= ev.count {
                        let n = EventBuffer.recordLength(ev, at: j)
                        largest = max(largest, n)
                        pieces += 1
                        j += 4 + n
                    }
                    if pieces == 0 || largest > maxEvent {
                        mark.unpublished.droppedLines += 1
                        mark.unpublished.droppedBytes += rec.line.count
                        if tooSmall == nil { tooSmall = (a.name, largest + headerRoom) }
                        if useWindow { window.add(stream: slot, end: recordEnd, lineBytes: rec.line.count, wireBytes: 0, state: .dropped, now: now) }
                        return
                    }
                    j = 0
                    var piece = 0
                    while j + 4 <= ev.count {
                        let n = EventBuffer.recordLength(ev, at: j)
                        let before = out.count
                        // The reply names the sequence number the window entry gets below.
                        out.append(contentsOf: head.compose(rec, piece: pieces > 1 ? piece : nil,
                                                            reply: useWindow ? window.nextSeq : nil, payload: n))
                        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: ev[(j + 4)..<(j + 4 + n)]))
                        out.append(0x0D); out.append(0x0A)
                        if useWindow {
                            let last = piece == pieces - 1
                            window.add(stream: slot, end: last ? recordEnd : -1, lineBytes: last ? rec.line.count : 0,
                                       wireBytes: out.count - before, now: now)
                        }
                        j += 4 + n
                        piece += 1
                        mark.events += 1
                    }
                    mark.lines += 1
                    mark.lineBytes += rec.line.count
                }
            }
        }
    }
}

/// Composes one message's command line and header block in a scratch buffer that also holds
/// a copy of the route's and the session's constant bytes. The header block is written at
/// `blockAt` and the command line backwards from there, since it states the block's length.
struct MessageHead {
    private let base: UnsafeMutablePointer<UInt8>
    private let headers: Bool
    private let verb: Range<Int>, msgID: Range<Int>, inbox: Range<Int>, extra: Range<Int>, other: Range<Int>
    private let tails: (Range<Int>, Range<Int>, Range<Int>)
    private let blockAt: Int

    /// Runs `body` with a MessageHead for messages of `route` in a session framed by `framing`,
    /// whose header blocks take at most `blockRoom` bytes (the route's headerBound; 0 without headers).
    static func with(route: NATSRoute, framing: NATSSink.Framing, blockRoom: Int, _ body: (MessageHead) -> Void) {
        // Command line: verb and subject, the reply (inbox + 20 digits), hlen and tlen (≤ 20 each), spaces, CRLF.
        let lineRoom = route.wire.count + framing.inbox.count + 3 * 20 + 8
        let constants = route.wire.count + framing.inbox.count + framing.extraHeaders.count
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: constants + lineRoom + blockRoom) { buf in
            let base = buf.baseAddress!
            var at = 0
            func copy(_ bytes: [UInt8]) -> Range<Int> {
                bytes.withUnsafeBufferPointer { (base + at).update(from: $0.baseAddress!, count: $0.count) }
                at += bytes.count
                return (at - bytes.count)..<at
            }
            let wire = copy(route.wire)
            func piece(_ p: NATSRoute.Piece) -> Range<Int> {
                let r = route.pieces[p.rawValue]
                return (wire.lowerBound + r.lowerBound)..<(wire.lowerBound + r.upperBound)
            }
            let inbox = copy(framing.inbox)
            let extra = copy(framing.extraHeaders)
            body(MessageHead(base: base, headers: framing.headers, verb: piece(framing.headers ? .hpub : .pub),
                             msgID: piece(.msgID), inbox: inbox, extra: extra, other: piece(.other),
                             tails: (piece(.stdoutTail), piece(.stderrTail), piece(.otherTail)),
                             blockAt: constants + lineRoom))
        }
    }

    /// "HPUB <subject> [<inbox><reply>] <hlen> <hlen + payload>\r\n<header block>" (PUB without
    /// headers) for a message whose event has `payload` bytes. Valid until the next call.
    @inline(__always)
    func compose(_ rec: LineRecord.View, piece: Int?, reply: UInt64?, payload: Int) -> UnsafeRawBufferPointer {
        var end = blockAt
        @inline(__always) func put(_ r: Range<Int>) {
            (base + end).update(from: base + r.lowerBound, count: r.count)
            end += r.count
        }
        @inline(__always) func put(_ byte: UInt8) { base[end] = byte; end += 1 }
        @inline(__always) func put(decimal v: UInt64) { end += DecimalDigits.write(v, at: base + end) }
        var blockLength = 0
        if headers {
            // The Nats-Msg-Id names the line the same way on every replay: container id,
            // time_nano, source, position among the lines of that time and source, and the
            // piece of a cut line.
            put(msgID)
            if rec.timeNano < 0 { put(0x6E) }     // "n": ids stay one token of digits and letters
            put(decimal: rec.timeNano.magnitude)
            put(0x2D)
            let k = NATSSink.sourceIndex(rec.source)
            if k == 2 { put(other) } else {
                (base + end).update(from: rec.source.baseAddress!.assumingMemoryBound(to: UInt8.self), count: rec.source.count)
                end += rec.source.count
            }
            put(0x2D)
            put(decimal: UInt64(rec.ordinal))
            if let p = piece {
                put(0x2D)
                put(decimal: UInt64(p))
            }
            put(k == 0 ? tails.0 : k == 1 ? tails.1 : tails.2)
            put(extra)
            put(0x0D); put(0x0A)
            blockLength = end - blockAt
        }
        var start = blockAt
        @inline(__always) func prepend(_ r: Range<Int>) {
            start -= r.count
            (base + start).update(from: base + r.lowerBound, count: r.count)
        }
        @inline(__always) func prepend(_ byte: UInt8) { start -= 1; base[start] = byte }
        @inline(__always) func prepend(decimal v: UInt64) { start -= DecimalDigits.writeBackwards(v, endingAt: base + start) }
        prepend(0x0A); prepend(0x0D)
        prepend(decimal: UInt64(blockLength + payload))
        if headers {
            prepend(0x20)
            prepend(decimal: UInt64(blockLength))
        }
        if let seq = reply {
            prepend(0x20)
            prepend(decimal: seq)
            prepend(inbox)
        }
        prepend(verb)
        return UnsafeRawBufferPointer(start: base + start, count: end - start)
    }
}

extension NATSSink {
    /// 0 stdout, 1 stderr, 2 anything else (LineRecord gives the daemon's two names or "").
    @inline(__always)
    static func sourceIndex(_ source: UnsafeRawBufferPointer) -> Int {
        guard source.count == 6 else { return 2 }
        return source[3] == 0x6F ? 0 : 1
    }
}
