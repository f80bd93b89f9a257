// How lines go on the NATS wire: a route's constant bytes (built once per container) and the
// encoding of buffered records into PUB / HPUB messages.
import FoundationEssentials

public struct NATSRoute: Sendable {
    public let subject: String
    let pubPrefix: [UInt8]               // "PUB <subject> "
    let hpubPrefix: [UInt8]              // "HPUB <subject> "
    /// "NATS/1.0\r\nNats-Msg-Id: <container id>-": the header block up to the line's identity.
    let msgIDPrefix: [UInt8]
    /// "Logrelay-Container-Id: …\r\nLogrelay-Container-Name: …\r\n"
    let containerHeaders: [UInt8]
    /// Per source (stdout, stderr, other): what follows the line's identity in the header block,
    /// built once: CRLF, the container headers, "Logrelay-Source: <source>" CRLF.
    let headerTails: [[UInt8]]
    let encoder: EventEncoder

    public init(subject: String, encoder: EventEncoder, containerID: String = "", containerName: String = "") {
        self.subject = subject
        self.encoder = encoder
        pubPrefix = Array("PUB \(subject) ".utf8)
        hpubPrefix = Array("HPUB \(subject) ".utf8)
        let id = NATSRoute.headerValue(containerID)
        msgIDPrefix = Array("NATS/1.0\r\nNats-Msg-Id: \(id)-".utf8)
        let name = NATSRoute.headerValue(containerName.hasPrefix("/") ? String(containerName.dropFirst()) : containerName)
        containerHeaders = Array("Logrelay-Container-Id: \(id)\r\nLogrelay-Container-Name: \(name)\r\n".utf8)
        headerTails = ["stdout", "stderr", "other"].map { [containerHeaders] source in
            Array("\r\n".utf8) + containerHeaders + Array("Logrelay-Source: \(source)\r\n".utf8)
        }
    }

    /// A header value cannot hold CR, LF or other control bytes (Docker's ids and names never do).
    static func headerValue(_ s: String) -> String {
        String(decoding: s.utf8.map { $0 < 0x20 || $0 == 0x7F ? 0x5F : $0 }, as: UTF8.self)
    }

    /// The longest header block a line of this route can get (a cut line's piece suffix included).
    func headerBound(extra: Int) -> Int {
        // "-" time (≤ 20) "-" source (≤ 6) "-" ordinal (≤ 10) "-" piece (≤ 10) CRLF, the
        // container headers, "Logrelay-Source: " source CRLF, the extra headers, CRLF.
        msgIDPrefix.count + 20 + 1 + 6 + 1 + 10 + 1 + 10 + 2 + containerHeaders.count + 17 + 6 + 2 + extra + 2
    }
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
        var i = 0
        while i < records.count {
            let (rec, next) = LineRecord.read(records, at: i)
            i = next
            let recordEnd = startOffset + Int64(next)
            events.removeAll(keepingCapacity: true)
            if maxEvent > 0 {
                route.encoder.append(line: rec.line, source: rec.source, timeNano: rec.timeNano, partial: rec.partial,
                                     maxEventBytes: maxEvent, to: &events)
            }
            events.withUnsafeBytes { ev in
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
                    let payload = UnsafeRawBufferPointer(rebasing: ev[(j + 4)..<(j + 4 + n)])
                    let before = out.count
                    out.append(contentsOf: framing.headers ? route.hpubPrefix : route.pubPrefix)
                    if useWindow {
                        // The reply names the sequence number the entry gets below, once the
                        // message's wire size is known.
                        out.append(contentsOf: framing.inbox)
                        appendDecimal(Int(window.nextSeq), to: &out)
                        out.append(0x20)
                    }
                    if framing.headers {
                        // The header block goes straight into `out`: its length is counted first.
                        let hlen = headerLength(rec, piece: pieces > 1 ? piece : nil, route: route, extra: framing.extraHeaders)
                        appendDecimal(hlen, to: &out)
                        out.append(0x20)
                        appendDecimal(hlen + n, to: &out)
                        out.append(0x0D); out.append(0x0A)
                        appendHeaders(rec, piece: pieces > 1 ? piece : nil, route: route, extra: framing.extraHeaders, to: &out)
                    } else {
                        appendDecimal(n, to: &out)
                        out.append(0x0D); out.append(0x0A)
                    }
                    out.append(contentsOf: payload)
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

    /// The header block of one message: a Nats-Msg-Id that names the line the same way on
    /// every replay (container id, time_nano, source, position among lines of that time and
    /// source, and the piece of a cut line), the container headers, the source, the extras.
    @inline(__always)
    static func appendHeaders(_ rec: LineRecord.View, piece: Int?, route: NATSRoute, extra: [UInt8], to h: inout [UInt8]) {
        let k = sourceIndex(rec.source)
        h.append(contentsOf: route.msgIDPrefix)
        if rec.timeNano < 0 { h.append(0x6E) }     // "n": ids stay one token of digits and letters
        appendDecimal(Int(rec.timeNano.magnitude), to: &h)
        h.append(0x2D)
        if k == 2 { h.append(contentsOf: otherSource) } else { h.append(contentsOf: rec.source) }
        h.append(0x2D)
        appendDecimal(Int(rec.ordinal), to: &h)
        if let p = piece {
            h.append(0x2D)
            appendDecimal(p, to: &h)
        }
        h.append(contentsOf: route.headerTails[k])
        if !extra.isEmpty { h.append(contentsOf: extra) }
        h.append(0x0D); h.append(0x0A)
    }

    /// The length of what appendHeaders writes.
    @inline(__always)
    static func headerLength(_ rec: LineRecord.View, piece: Int?, route: NATSRoute, extra: [UInt8]) -> Int {
        let k = sourceIndex(rec.source)
        var n = route.msgIDPrefix.count + (rec.timeNano < 0 ? 1 : 0) + decimalDigits(Int(rec.timeNano.magnitude))
        n += 1 + (k == 2 ? otherSource.count : rec.source.count) + 1 + decimalDigits(Int(rec.ordinal))
        if let p = piece { n += 1 + decimalDigits(p) }
        return n + route.headerTails[k].count + extra.count + 2
    }

    /// 0 stdout, 1 stderr, 2 anything else (LineRecord gives the daemon's two names or "").
    @inline(__always)
    static func sourceIndex(_ source: UnsafeRawBufferPointer) -> Int {
        guard source.count == 6 else { return 2 }
        return source[3] == 0x6F ? 0 : 1
    }

    private static let otherSource = Array("other".utf8)
}

@inline(__always)
func decimalDigits(_ value: Int) -> Int {
    var v = value, n = 1
    while v >= 10 { v /= 10; n += 1 }
    return n
}

@inline(__always)
func appendDecimal(_ value: Int, to out: inout [UInt8]) {
    if value < 10 { out.append(UInt8(48 + value)); return }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var v = value
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
        while v > 0 { d[n] = UInt8(48 + v % 10); v /= 10; n += 1 }
        while n > 0 { n -= 1; out.append(d[n]) }
    }
}
