// When is a Logentries line delivered? The endpoint never answers (wire doc B5), so the
// best evidence is the peer's TCP stack: a batch counts as delivered once every byte of it
// has been acknowledged (Linux: TCP_INFO's tcpi_bytes_acked against the batch's end offset
// in the connection, taken as SIOCOUTQ + bytes acked right after the batch was written).
// Acknowledged lines are released from the stream's buffer at once (so the stream reads
// on), but the connection keeps their raw copy for a short grace period: an endpoint
// process that dies with bytes still unread in its socket makes its kernel answer with RST,
// and when the connection fails within the grace period those lines are sent again, ahead of
// everything else. Lines not yet acknowledged are rewound in their buffers and sent again
// too (at-least-once; a duplicate is possible, a loss only if the endpoint's host dies after
// acknowledging, or its process more than the grace period after).
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
    private var inFlight: [Batch] = []
    private var inFlightHead = 0
    private var retained: [Batch] = []
    private var retainedHead = 0
    private(set) var retainedBytes = 0

    init(graceNs: Int64, retainMaxBytes: Int) {
        self.graceNs = graceNs
        self.retainMaxBytes = retainMaxBytes
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

    /// The peer has acknowledged `acked` bytes (seen at `now`): returns the pieces of the newly
    /// acknowledged batches, oldest first, and forgets retained batches older than the grace
    /// period (or beyond the byte cap).
    mutating func update(acked: Int64, now: Int64) -> [Piece] {
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
        while retainedHead < retained.count
                && (now - retained[retainedHead].ackedAt >= graceNs || retainedBytes > retainMaxBytes) {
            retainedBytes -= retained[retainedHead].bytes
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

/// The kernel's view of a TCP connection's sent bytes.
enum TCPProgress {
    /// Bytes of the connection the peer has acknowledged. Kernels without tcpi_bytes_acked
    /// (< 4.1): everything once the send queue is empty (Int64.max), else nothing (-1).
    static func acked(_ fd: Int32) -> Int64 {
        let a = logrelay_tcp_bytes_acked(fd)
        if a >= 0 { return a }
        return logrelay_tcp_outq(fd) == 0 ? Int64.max : -1
    }

    /// The connection offset just past the last byte written so far. The send queue is read
    /// first: an acknowledgement arriving between the two calls only makes the sum larger
    /// (a later confirmation, never an early one).
    static func endOffset(_ fd: Int32) -> Int64 {
        let q = logrelay_tcp_outq(fd)
        let a = logrelay_tcp_bytes_acked(fd)
        if a < 0 { return 0 }              // old kernel: `acked` decides by the empty queue
        if q < 0 { return Int64.max }      // cannot tell: never confirmed, the stall check reconnects
        return a + Int64(q)
    }
}
