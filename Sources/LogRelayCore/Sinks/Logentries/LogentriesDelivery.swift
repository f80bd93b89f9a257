// When is a Logentries line delivered? The endpoint never answers (wire doc B5), so the
// best evidence is the peer's TCP stack: a batch counts as delivered once every byte of it
// has been acknowledged (Linux: TCP_INFO's tcpi_bytes_acked against the batch's end offset
// in the connection, taken as SIOCOUTQ + bytes acked right after the batch was written).
// Acknowledged lines are released from the stream's buffer at once (so the stream reads
// on), but the connection keeps their raw copy until the endpoint's application has read
// them: an endpoint that dies with bytes still unread in its socket makes its kernel answer
// with RST, and those lines are then sent again, ahead of everything else. What it has read
// is estimated from the window it advertises (tcpi_snd_wnd shrinks by what waits unread in
// its receive buffer, against the largest window seen); on kernels that do not report the
// window, a fixed grace period stands in. The window tells nothing in a connection's first
// seconds, while it still grows: an endpoint dying just after its kernel accepted the
// connection (a killed server's accept queue) acknowledges bytes nobody ever reads, with a
// growing window. So a young connection keeps its latest copies (up to a small cap) whatever
// the window says. Copies are bounded by bytes and by age, so an endpoint that stops reading
// costs memory only up to a cap. Lines not yet acknowledged are rewound in their buffers and
// sent again too (at-least-once; a duplicate is possible, a loss only if the endpoint's host
// dies after its application read the bytes, or a copy was let go at the cap).
import CSystem

/// Batches written to one connection, oldest first: in flight until acknowledged, then
/// retained for the grace period (and within a byte cap).
struct DeliveryTracker<Piece> {
    struct Batch {
        var pieces: [Piece]
        var endOffset: Int64        // connection offset just past the batch's last byte
        var bytes: Int              // what retaining it costs
        var ackedAt: Int64 = 0
    }

    let graceNs: Int64
    let retainMaxBytes: Int
    let maxRetainNs: Int64
    private var inFlight: [Batch] = []
    private var inFlightHead = 0
    private var retained: [Batch] = []
    private var retainedHead = 0
    private(set) var retainedBytes = 0

    init(graceNs: Int64, retainMaxBytes: Int, maxRetainNs: Int64 = 30_000_000_000) {
        self.graceNs = graceNs
        self.retainMaxBytes = retainMaxBytes
        self.maxRetainNs = maxRetainNs
    }

    /// Nothing written and unacknowledged.
    var isEmpty: Bool { inFlightHead == inFlight.count }
    var hasRetained: Bool { retainedHead < retained.count }
    var inFlightCount: Int { inFlight.count - inFlightHead }
    var retainedCount: Int { retained.count - retainedHead }

    mutating func add(_ pieces: [Piece], bytes: Int, endOffset: Int64) {
        guard !pieces.isEmpty else { return }
        inFlight.append(Batch(pieces: pieces, endOffset: endOffset, bytes: bytes))
    }

    /// The peer has acknowledged `acked` bytes (seen at `now`) and, when known, its application
    /// has read up to `read`: returns the pieces of the newly acknowledged batches, oldest first,
    /// and forgets retained batches that were read and are older than `graceNs` (the tracker's
    /// own when not given) while more than `keepBytes` are retained, or that are beyond the age
    /// or byte cap.
    mutating func update(acked: Int64, read: Int64? = nil, graceNs: Int64? = nil, keepBytes: Int = 0, now: Int64) -> [Piece] {
        var done: [Piece] = []
        while inFlightHead < inFlight.count && inFlight[inFlightHead].endOffset <= acked {
            var b = inFlight[inFlightHead]
            inFlight[inFlightHead].pieces = []
            inFlightHead += 1
            done += b.pieces
            b.ackedAt = now
            retainedBytes += b.bytes
            retained.append(b)
        }
        Self.compact(&inFlight, &inFlightHead)
        let grace = graceNs ?? self.graceNs
        while retainedHead < retained.count {
            let b = retained[retainedHead]
            let age = now - b.ackedAt
            let isRead = age >= grace && read.map { b.endOffset <= $0 } ?? true
            guard (isRead && retainedBytes > keepBytes) || age >= maxRetainNs || retainedBytes > retainMaxBytes else { break }
            retainedBytes -= b.bytes
            retained[retainedHead].pieces = []
            retainedHead += 1
        }
        Self.compact(&retained, &retainedHead)
        return done
    }

    /// The connection failed: every retained and in-flight piece, oldest first; forgets them.
    mutating func takeAll() -> (retained: [Piece], inFlight: [Piece]) {
        let r = retained[retainedHead...].flatMap(\.pieces)
        let f = inFlight[inFlightHead...].flatMap(\.pieces)
        reset()
        return (r, f)
    }

    mutating func reset() {
        inFlight.removeAll(keepingCapacity: true)
        inFlightHead = 0
        retained.removeAll(keepingCapacity: true)
        retainedHead = 0
        retainedBytes = 0
    }

    private static func compact(_ a: inout [Batch], _ head: inout Int) {
        if head == a.count {
            a.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 256 && head * 2 > a.count {
            a.removeFirst(head)
            head = 0
        }
    }
}

/// What the peer's application has read, from the window its kernel advertises: the window is
/// its free receive buffer times the share Linux offers of it (0.5 and up), so what waits
/// unread is at most twice the largest window seen minus the current one (measured on loopback
/// with a 512 KiB SO_RCVBUF: 950 KiB unread against a 772 KiB largest window).
struct PeerReading {
    private var largestWindow: Int64 = 0

    /// The connection offset read so far; nil when the kernel does not report the window.
    /// A receiver announces a larger window only once it grew by about a segment, so after a
    /// quiet moment (`quiet`: nothing sent for a second) a shortfall under two segments is
    /// what reading left unannounced, not data waiting.
    mutating func readOffset(acked: Int64, window: Int64, mss: Int64, quiet: Bool) -> Int64? {
        guard window >= 0, acked >= 0 else { return nil }
        largestWindow = max(largestWindow, window)
        let shortfall = largestWindow - window
        if quiet && shortfall <= 2 * max(mss, 0) { return acked }
        return acked - 2 * shortfall
    }
}

/// The kernel's view of a TCP connection's sent bytes.
enum TCPProgress {
    struct Sample {
        var acked: Int64
        /// The peer's advertised window (-2: not reported by this kernel).
        var window: Int64
        var rttNs: Int64
        var mss: Int64
    }

    static func sample(_ fd: Int32) -> Sample {
        let p = logrelay_tcp_progress(fd)
        return Sample(acked: acked(fd, reported: p.bytes_acked), window: p.peer_window, rttNs: max(p.rtt_us, 0) * 1000, mss: p.mss)
    }

    /// Bytes of the connection the peer has acknowledged. Kernels without tcpi_bytes_acked
    /// (< 4.1): everything once the send queue is empty (Int64.max), else nothing (-1).
    static func acked(_ fd: Int32) -> Int64 { acked(fd, reported: logrelay_tcp_bytes_acked(fd)) }

    private static func acked(_ fd: Int32, reported a: Int64) -> Int64 {
        if a >= 0 { return a }
        return logrelay_tcp_outq(fd) == 0 ? Int64.max : -1
    }

    /// The connection offset just past the last byte written so far: bytes acknowledged plus
    /// the send queue, read as one snapshot (an acknowledgement between the two calls would
    /// shift bytes from one to the other, so the pair is read again until it holds still; if
    /// it never does, the larger sum: a later confirmation, never an early one).
    static func endOffset(_ fd: Int32) -> Int64 {
        var a = logrelay_tcp_bytes_acked(fd)
        var q = logrelay_tcp_outq(fd)
        for _ in 0..<8 {
            let again = logrelay_tcp_bytes_acked(fd)
            if again == a { break }
            a = again
            q = logrelay_tcp_outq(fd)
        }
        if a < 0 { return 0 }              // old kernel: `acked` decides by the empty queue
        if q < 0 { return Int64.max }      // cannot tell: never confirmed, the stall check reconnects
        return a + Int64(q)
    }

    /// Everything written has been acknowledged (the send queue is empty).
    static func allAcknowledged(_ fd: Int32) -> Bool { logrelay_tcp_outq(fd) == 0 }
}
