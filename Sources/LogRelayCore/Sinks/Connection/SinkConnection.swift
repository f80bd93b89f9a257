// The connection shell that both sinks share. One thread per connection owns the socket
// and everything about its lifecycle: attaching and reaping streams, the reconnect loop over
// a server pool with one backoff policy, closing when no stream is left, the status that
// /metrics shows and the rate-limited error log. A sink brings only its protocol
// (SinkProtocol): the handshake, the session, and what "confirmed" means. The streams wake
// the connection thread through its Wakeup, which writes its eventfd only when no wake-up is
// pending already.
import Glibc
import Synchronization

/// Why a session ended.
public enum SessionEnd: Sendable {
    /// The connection failed; the next attempt follows the backoff policy.
    case failed(String)
    /// The server asked us to go elsewhere (NATS lame duck): reconnect at once.
    case redirected(String)
    /// Nothing to send for a while: closed, opened again when lines come.
    case idle
    /// No streams left: the connection closes for good.
    case unused
    case stopped
}

/// An error that names its cause (a server's auth refusal, say): logged once per cause until
/// a connection succeeds, instead of every 10 s while the reconnect loop meets it again.
public protocol CausedError: Error {
    var cause: String? { get }
}

/// A sink's protocol over one connection.
public protocol SinkProtocol: Sendable {
    /// What the protocol needs per stream (subject, token, encoder).
    associatedtype Route: Sendable
    associatedtype Address: PoolAddress & CustomStringConvertible
    /// A connected, handshaken transport.
    associatedtype Link
    /// What the connection thread keeps from one session to the next.
    associatedtype Carry

    /// "nats", "logentries": the prefix of the log lines.
    static var kind: String { get }
    var pool: ServerPool<Address> { get }
    /// Connect only while lines are waiting (the peer closes idle connections itself).
    var connectsOnlyWhenBusy: Bool { get }
    func makeCarry() -> Carry
    /// Lines held in `carry` that no stream buffer holds any more.
    func carriedLines(_ carry: Carry) -> Int
    /// Connects and completes the handshake within its own deadline.
    func open(_ server: ServerPool<Address>.Server, on shell: SinkConnection<Self>) throws -> Link
    /// Runs the session until it ends; unconfirmed lines are rewound by the shell afterwards.
    func run(_ link: Link, on shell: SinkConnection<Self>, pool: inout ServerPool<Address>, carry: inout Carry) -> SessionEnd
    func close(_ link: Link)
}

/// A stream's attachment to a connection.
public final class SinkAttachment<Route: Sendable>: Sendable {
    public let buffer: EventBuffer
    public let name: String              // container name, for the plugin's log
    public let route: Route
    let finishedAt = Atomic<Int64>(0)    // monotonic ns of the stream's EOF, 0 while it runs

    public init(buffer: EventBuffer, name: String, route: Route) {
        self.buffer = buffer
        self.name = name
        self.route = route
    }

    var isFinished: Bool { finishedAt.load(ordering: .acquiring) != 0 }
}

public struct ConnectionStatus: Sendable {
    public enum State: String, Sendable { case idle, connecting, connected, disconnected, closed }
    public var state: State
    public var server = ""
    public var connects = 0
    public var reconnects = 0           // connections lost (not counting idle closes)
    public var resentLines = 0          // confirmed lines sent again after a failure
    public var lastError = ""
}

enum ConnectionTimings {
    /// No streams for this long: the connection closes and leaves the registry.
    /// LOGRELAY_UNUSED_CLOSE_SECONDS overrides it (tests).
    static let unusedCloseNs = Environment.nanoseconds("LOGRELAY_UNUSED_CLOSE_SECONDS", default: 30_000_000_000)
    /// A stream that ended and could not be delivered for this long while the sink is down
    /// is given up (counted as dropped): memory stays bounded as containers come and go.
    static let finishedKeepNs: Int64 = 600_000_000_000
}

public final class SinkConnection<P: SinkProtocol>: Sendable {
    public typealias Attachment = SinkAttachment<P.Route>

    public let proto: P
    private let attachments = Mutex<[Attachment]>([])
    /// Signalled by the streams (new lines, EOF) and by stop().
    public let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let statusBox: Mutex<ConnectionStatus>
    private let carried = Atomic<Int>(0)
    private let onUnused: @Sendable (SinkConnection<P>) -> Bool
    private let errorLog = RateLimitedLog(intervalNanos: 10_000_000_000)
    /// Causes already logged since the last successful connection (bounded).
    private let loggedCauses = Mutex<Set<String>>([])
    static var maxLoggedCauses: Int { 64 }

    /// `onUnused` is asked (with the registry's lock) whether a connection without streams may close.
    init(proto: P, onUnused: @escaping @Sendable (SinkConnection<P>) -> Bool) {
        self.proto = proto
        self.onUnused = onUnused
        statusBox = Mutex(ConnectionStatus(state: proto.connectsOnlyWhenBusy ? .idle : .connecting,
                                           server: proto.pool.explicit.first.map { "\($0.address)" } ?? ""))
    }

    func start() {
        startThread(name: "\(P.kind)-conn") { [self] in run() }
    }

    public var status: ConnectionStatus { statusBox.withLock { $0 } }
    public var attachmentCount: Int { attachments.withLock { $0.count } }
    public var hasUndelivered: Bool {
        carried.load(ordering: .relaxed) > 0 || attachments.withLock { $0.contains { !$0.buffer.isEmpty } }
    }

    func attach(_ a: Attachment) {
        attachments.withLock { $0.append(a) }
        wakeup.signal()
    }

    /// New lines are waiting.
    public func notify() { wakeup.signal() }

    /// The stream reached EOF: it detaches once its buffer has been delivered.
    public func finish(_ a: Attachment) {
        a.finishedAt.store(max(Clock.monotonicNanos(), 1), ordering: .releasing)
        wakeup.signal()
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Called with the registry lock held: may this connection without streams close?
    func isUnused() -> Bool { attachments.withLock { $0.isEmpty } }

    // MARK: - For the protocols (connection thread only)

    public var current: [Attachment] { attachments.withLock { $0 } }
    public var hasUnsent: Bool { attachments.withLock { $0.contains { $0.buffer.hasUnsent } } }

    /// Takes unsent records of every stream, fairly (a rotating start, an equal share each),
    /// up to `budget` bytes, and hands each stream's records to `body` outside the buffer's
    /// lock, so the streams never wait for encoding. When the budget runs out before every
    /// stream had its share, the next call starts with the first stream left out: with many
    /// backlogged streams, each one's turn comes every streams ÷ shares-per-call calls (a start
    /// moving by one would leave a stream unserved for most of a full turn of starts, long
    /// enough for its buffer to count its sink as stalled).
    public func gatherFairly(budget: Int, rotation: inout Int, scratch: inout [UInt8],
                             _ body: (Attachment, UnsafeRawBufferPointer, Int64) -> Void) -> Int {
        let list = current
        guard !list.isEmpty else { return 0 }
        var left = budget
        let startAt = rotation % list.count
        rotation = startAt + 1
        for k in 0..<list.count {
            guard left > 0 else {
                rotation = startAt + k    // the budget ran out before this stream: the next call starts with it
                break
            }
            let a = list[(startAt + k) % list.count]
            let share = max(left / (list.count - k), SinkConnection.minimumShare)
            scratch.removeAll(keepingCapacity: true)
            guard let offset = a.buffer.copyUnsent(maxBytes: share, into: &scratch) else { continue }
            left -= scratch.count
            scratch.withUnsafeBytes { body(a, $0, offset) }
        }
        return budget - left
    }

    /// The smallest share of a gather a stream gets (a few dozen lines at least).
    static var minimumShare: Int { 16 * 1024 }

    /// Detaches finished streams that are delivered (or given up); true when the connection
    /// has had no streams for a while and the registry let it go.
    public func reapAndCheckUnused(_ since: inout Int64?) -> Bool {
        let now = Clock.monotonicNanos()
        var abandoned: [Attachment] = []
        let down = status.state != .connected
        let empty: Bool = attachments.withLock { list in
            list.removeAll { a in
                let t = a.finishedAt.load(ordering: .acquiring)
                guard t != 0 else { return false }
                if a.buffer.isEmpty { return true }
                if down && now - t > ConnectionTimings.finishedKeepNs { abandoned.append(a); return true }
                return false
            }
            return list.isEmpty
        }
        for a in abandoned {
            let lines = a.buffer.dropAll()
            Log.warn("\(P.kind): gave up on \(lines) undelivered line(s) of stopped container \(a.name) after \(ConnectionTimings.finishedKeepNs / 60_000_000_000) min (\(status.server): \(status.lastError))")
        }
        guard empty else { since = nil; return false }
        if let s = since { return now - s > ConnectionTimings.unusedCloseNs && onUnused(self) }
        since = now
        return false
    }

    /// The session has sent what `carry` held.
    public func noteCarried(_ lines: Int) { carried.store(lines, ordering: .relaxed) }

    public func addResent(_ lines: Int) {
        if lines > 0 { statusBox.withLock { $0.resentLines += lines } }
    }

    /// Records the error for metrics and logs it, at most once per 10 s unless `always`.
    /// Messages name servers (redacted) and options, never a secret.
    /// With a `cause`, the text is logged the first time the cause is seen (until the next
    /// successful connection) and never again in between.
    public func noteError(_ text: String, always: Bool = false, cause: String? = nil) {
        statusBox.withLock { $0.lastError = text }
        if let cause {
            let first = loggedCauses.withLock { set in
                guard !set.contains(cause) else { return false }
                if set.count >= SinkConnection.maxLoggedCauses { set.removeAll() }
                set.insert(cause)
                return true
            }
            if first { Log.warn("\(P.kind): \(text)") }
            return
        }
        if always {
            Log.warn("\(P.kind): \(text)")
            return
        }
        errorLog.attempt { suppressed in
            Log.warn("\(P.kind): \(text)" + (suppressed > 0 ? " (\(suppressed) similar messages suppressed)" : ""))
        }
    }

    // MARK: - The connection thread

    private func run() {
        var pool = proto.pool
        var backoff = Backoff()
        var carry = proto.makeCarry()
        var unusedSince: Int64? = nil
        var gaveUp = false

        while !isStopping {
            let carrying = proto.carriedLines(carry) > 0
            if !carrying && reapAndCheckUnused(&unusedSince) { break }
            if pool.isEmpty {
                // Given up (nats-max-reconnect): drop what streams still send, counted, until they are gone.
                if !gaveUp {
                    gaveUp = true
                    statusBox.withLock { $0.state = .closed; $0.lastError = "gave up: every server used up its connection attempts" }
                    Log.error("\(P.kind): no server left to try; dropping buffered lines (\(status.lastError))")
                }
                for a in current { a.buffer.dropAll() }
                _ = wakeup.wait(timeoutMs: 1000)
                continue
            }
            if proto.connectsOnlyWhenBusy && !carrying && !hasUnsent {
                _ = wakeup.wait(timeoutMs: 1000)
                continue
            }
            let delay = backoff.delay()
            if delay > 0 {
                wakeup.sleep(ns: delay) { isStopping }
                if isStopping { break }
            }

            // One pass over the pool.
            var connected: (P.Link, ServerPool<P.Address>.Server)? = nil
            for id in pool.passOrder where connected == nil && !isStopping {
                guard let server = pool.server(id) else { continue }
                statusBox.withLock { $0.state = .connecting }
                do {
                    connected = (try proto.open(server, on: self), server)
                } catch {
                    pool.failed(id)
                    noteError("\(server.address): \(error)", cause: (error as? CausedError)?.cause)
                }
            }
            guard let (link, server) = connected else {
                backoff.failed()
                statusBox.withLock { $0.state = .disconnected }
                continue
            }
            pool.connected(server.identity)
            loggedCauses.withLock { $0.removeAll() }
            let name = "\(server.address)"
            statusBox.withLock { $0.state = .connected; $0.server = name; $0.connects += 1 }
            Log.info("\(P.kind): connected to \(name)")

            let started = Clock.monotonicNanos()
            let end = proto.run(link, on: self, pool: &pool, carry: &carry)
            proto.close(link)
            for a in current { a.buffer.rewind() }
            carried.store(proto.carriedLines(carry), ordering: .relaxed)
            let lived = Clock.monotonicNanos() - started
            switch end {
            case .stopped:
                break
            case .unused:
                Log.debug("\(P.kind): closing the unused connection to \(name)")
                statusBox.withLock { $0.state = .closed }
                return
            case .idle:
                backoff.reset()
                statusBox.withLock { $0.state = .idle }
                Log.debug("\(P.kind): closed the idle connection to \(name); it opens again when lines come")
            case .redirected(let reason):
                backoff.reset()
                statusBox.withLock { $0.state = .disconnected; $0.reconnects += 1 }
                noteError("left \(name): \(reason); reconnecting", always: true)
            case .failed(let reason):
                backoff.sessionEnded(livedNs: lived)
                statusBox.withLock { $0.state = .disconnected; $0.reconnects += 1 }
                // A connection that worked for a while is news; one that fails at once is a
                // pattern, logged at most every 10 s.
                noteError("connection to \(name) lost: \(reason); reconnecting", always: lived >= Backoff.healthyNs)
            }
        }
        statusBox.withLock { $0.state = .closed }
    }
}
