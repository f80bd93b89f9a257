// The thread that drains every container FIFO: one epoll set, one read buffer,
// large reads. A FIFO is always drained (unless its stream uses buffer-full=block
// and its buffer is full); StopLogging only marks a stream, which ends at EOF.
import CSystem
import Glibc
import Synchronization

public final class StreamLoop: Sendable {
    private enum Command { case add(LogStream), stop(String), readAll(Int) }

    private let epfd: Int32
    private let wakeup = Wakeup()
    private let inbox = Mutex<[Command]>([])
    private let active = Mutex<[String: LogStream]>([:])
    private let onEnded: @Sendable (LogStream) -> Void
    private let readAllDone = Atomic<Int>(0)

    static let readChunk = 256 * 1024
    static let staleNs: Int64 = 2_000_000_000
    /// A stopped stream whose writer never closes (leaked by the daemon) is closed after this.
    static let stopGraceNs: Int64 = 60_000_000_000

    public init(onEnded: @escaping @Sendable (LogStream) -> Void) {
        epfd = logrelay_epoll_create()
        self.onEnded = onEnded
        _ = logrelay_epoll_add(epfd, wakeup.fd)
    }

    public func start() {
        startThread(name: "streams") { [self] in run() }
    }

    public func add(_ s: LogStream) {
        active.withLock { $0[s.file] = s }
        inbox.withLock { $0.append(.add(s)) }
        wakeup.signal()
    }

    public func stop(file: String) {
        inbox.withLock { $0.append(.stop(file)) }
        wakeup.signal()
    }

    /// Reads every FIFO until it is empty (for shutdown: what the daemon wrote before
    /// SIGTERM gets into the buffers). Waits up to `timeoutNs` for the loop to do it.
    public func readAll(timeoutNs: Int64) {
        let ticket = Int(Clock.monotonicNanos())
        inbox.withLock { $0.append(.readAll(ticket)) }
        wakeup.signal()
        let deadline = Clock.monotonicNanos() + timeoutNs
        while readAllDone.load(ordering: .acquiring) < ticket && Clock.monotonicNanos() < deadline {
            usleep(5_000)
        }
    }

    public func isActive(_ file: String) -> Bool { active.withLock { $0[file] != nil } }
    public var activeCount: Int { active.withLock { $0.count } }
    public var streams: [LogStream] { active.withLock { Array($0.values) } }

    private func run() {
        var byFD: [Int32: StreamReader] = [:]
        var paused: [StreamReader] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: StreamLoop.readChunk, alignment: 16)
        var ready = [Int32](repeating: 0, count: 64)
        var lastStaleCheck = Clock.monotonicNanos()
        var scratch = [UInt8]()
        scratch.reserveCapacity(StreamLoop.readChunk)

        func end(_ s: StreamReader) {
            s.flushAll(scratch: &scratch)
            _ = logrelay_epoll_del(epfd, s.fd)
            byFD[s.fd] = nil
            paused.removeAll { $0 === s }
            FD.close(s.fd)
            s.stream.sink.finish()
            active.withLock { $0[s.stream.file] = nil }
            onEnded(s.stream)
        }

        func watch(_ s: StreamReader) {
            _ = logrelay_epoll_add(epfd, s.fd)
        }

        /// Reads until the FIFO is empty (bounded per turn for fairness). Returns false at EOF.
        func drain(_ s: StreamReader) -> Bool {
            var budget = 4 * StreamLoop.readChunk
            while budget > 0 {
                if s.mustPause {
                    s.paused = true
                    _ = logrelay_epoll_del(epfd, s.fd)
                    paused.append(s)
                    return true
                }
                let r: IOResult
                do { r = try FD.read(s.fd, into: buffer) } catch {
                    Log.error("reading the log stream: \(error)", container: s.name)
                    return false
                }
                switch r {
                case .eof: return false
                case .wouldBlock: return true
                case .bytes(let n):
                    s.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), now: Clock.monotonicNanos(), scratch: &scratch)
                    budget -= n
                }
            }
            return true
        }

        while true {
            let timeout: Int32 = paused.isEmpty ? 1000 : 1
            let n = logrelay_epoll_wait(epfd, &ready, Int32(ready.count), timeout)
            let now = Clock.monotonicNanos()

            for cmd in inbox.withLock({ let c = $0; $0.removeAll(); return c }) {
                switch cmd {
                case .add(let stream):
                    let s = StreamReader(stream)
                    byFD[s.fd] = s
                    watch(s)
                    if !drain(s) { end(s) }
                case .stop(let file):
                    if let s = byFD.values.first(where: { $0.stream.file == file }) {
                        s.stopRequestedAt = s.stopRequestedAt ?? now
                    }
                case .readAll(let ticket):
                    for s in Array(byFD.values) where !s.paused {
                        var open = true
                        for _ in 0..<64 where open && !s.paused { open = drain(s) }
                        if !open { end(s) }
                    }
                    readAllDone.store(ticket, ordering: .releasing)
                }
            }

            if n > 0 {
                for i in 0..<Int(n) {
                    let fd = ready[i]
                    if fd == wakeup.fd { wakeup.drain(); continue }
                    guard let s = byFD[fd] else { continue }
                    if !drain(s) { end(s) }
                }
            }

            // Resume blocked streams whose sink caught up.
            if !paused.isEmpty {
                for s in paused where !s.mustPause {
                    if s.stream.sink.buffer.isFull && s.stream.sink.buffer.policy != .block {
                        Log.debug("sink made no progress for \(EventBuffer.stallNanos / 1_000_000) ms; reading on, the buffer-full policy applies", container: s.name)
                    }
                    s.paused = false
                    paused.removeAll { $0 === s }
                    watch(s)
                    if !drain(s) { end(s) }
                }
            }

            if now - lastStaleCheck > 500_000_000 {
                lastStaleCheck = now
                for s in Array(byFD.values) {
                    s.flushStale(now: now, scratch: &scratch)
                    if let t = s.stopRequestedAt, now - t > StreamLoop.stopGraceNs {
                        Log.warn("no EOF \(StreamLoop.stopGraceNs / 1_000_000_000) s after StopLogging; closing the stream", container: s.name)
                        _ = drain(s)
                        end(s)
                    }
                }
            }
        }
    }
}
