// A small HTTP/1.1 server on a unix socket (the daemon's plugin calls) or TCP (metrics).
// One poll thread owns the listener and every connection, and answers quick requests
// inline; requests marked slow (StartLogging: it reads files and compiles patterns) run on a
// small pool of worker threads, and their connection waits for the answer while every other
// connection is served. Nothing a client does can hold the loop: a connection that goes
// quiet is closed after the idle timeout, a request must arrive whole within the read
// deadline and its answer be taken within the write deadline, and at the connection cap (or
// out of fds) the connection idle the longest is closed for the new one, so a restarted
// daemon always gets in. A spare fd kept open is given up to accept-and-close when even
// that is impossible, so the listener never spins.
import CSystem
import Glibc
import Synchronization

public struct HTTPReply: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var contentType: String
    public init(status: Int, body: [UInt8], contentType: String = "application/vnd.docker.plugins.v1.2+json") {
        self.status = status
        self.body = body
        self.contentType = contentType
    }
}

public final class HTTPServer: Sendable {
    /// Timeouts and sizes; the environment may shorten them (tests).
    public struct Limits: Sendable {
        /// A connection with nothing in flight is closed after this long (the daemon reconnects).
        public var idleNs = Environment.nanoseconds("LOGRELAY_API_IDLE_TIMEOUT", default: 120_000_000_000)
        /// From a request's first byte to its last, and for an answer to be taken by the client.
        public var ioNs = Environment.nanoseconds("LOGRELAY_API_IO_TIMEOUT", default: 10_000_000_000)
        public var maxConnections = 512
        public var workers = 4
        public init() {}
    }

    private struct Connection {
        var parser = HTTPRequestParser()
        var out: [UInt8] = []
        var outOff = 0
        var closeAfterWrite = false
        /// A request of this connection is with a worker: read nothing more until it answers.
        var waiting = false
        var waitingKeepAlive = true
        var lastActivity: Int64
        /// When the first byte of a request not yet complete arrived.
        var readingSince: Int64?
        /// When an answer started waiting for the client to take it.
        var writingSince: Int64?
        init(now: Int64) { lastActivity = now }
    }

    private struct Job: Sendable {
        var fd: Int32
        var generation: UInt64
        var request: HTTPRequest
    }

    private struct Done: Sendable {
        var fd: Int32
        var generation: UInt64
        var reply: HTTPReply
    }

    private let listenFD: Int32
    private let handler: @Sendable (HTTPRequest) -> HTTPReply
    /// Which requests go to the workers; nil: none (and no worker threads).
    private let isSlow: (@Sendable (HTTPRequest) -> Bool)?
    private let limits: Limits
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    private let jobs = Mutex<[Job]>([])
    private let jobSignal = Wakeup()
    private let done = Mutex<[Done]>([])

    public init(path: String, limits: Limits = Limits(), handler: @escaping @Sendable (HTTPRequest) -> HTTPReply,
                isSlow: (@Sendable (HTTPRequest) -> Bool)? = nil) throws(SystemError) {
        listenFD = try UnixSocket.listen(path: path)
        self.handler = handler
        self.isSlow = isSlow
        self.limits = limits
    }

    /// Serves on a listening socket opened elsewhere (the TCP metrics listener).
    public init(listening fd: Int32, limits: Limits = Limits(), handler: @escaping @Sendable (HTTPRequest) -> HTTPReply,
                isSlow: (@Sendable (HTTPRequest) -> Bool)? = nil) {
        listenFD = fd
        self.handler = handler
        self.isSlow = isSlow
        self.limits = limits
    }

    /// Stops accepting; the loop returns.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    public func run() {
        for i in 0..<(isSlow == nil ? 0 : limits.workers) {
            startThread(name: "api-worker\(i)") { [self] in work() }
        }
        var conns: [Int32: Connection] = [:]
        // fds are reused: a worker's answer for a connection that was closed meanwhile must
        // not reach the next connection with the same fd.
        var generations: [Int32: UInt64] = [:]
        var nextGeneration: UInt64 = 1
        var readBuf = [UInt8](repeating: 0, count: 64 * 1024)
        var spare = FD.openSpare()
        var acceptPausedUntil: Int64 = 0
        var lastAcceptWarning: Int64 = 0
        func pauseAccepting(_ why: String, now: Int64) {
            acceptPausedUntil = now + 100_000_000
            // Once a minute at most: a client holding every fd must not fill the plugin's log.
            if lastAcceptWarning == 0 || now - lastAcceptWarning > 60_000_000_000 {
                lastAcceptWarning = now
                Log.warn("api: \(why); pausing accept for 100 ms at a time")
            }
        }

        func close(_ fd: Int32) {
            conns[fd] = nil
            generations[fd] = nil
            FD.close(fd)
        }
        /// Closes the connection that has been idle the longest (nothing in flight); false if none is.
        func evictOldestIdle() -> Bool {
            let idle = conns.filter { !$0.value.waiting && $0.value.out.isEmpty && $0.value.readingSince == nil }
            // Connections accepted in one batch share a time: the earlier accept goes first, so
            // the newest (a daemon that just connected) is the last to go.
            guard let oldest = idle.min(by: {
                ($0.value.lastActivity, generations[$0.key] ?? 0) < ($1.value.lastActivity, generations[$1.key] ?? 0)
            }) else { return false }
            close(oldest.key)
            return true
        }

        while !stopping.load(ordering: .relaxed) {
            var now = Clock.monotonicNanos()
            let accepting = now >= acceptPausedUntil
            var fds = [pollfd(fd: listenFD, events: accepting ? Int16(POLLIN) : 0, revents: 0),
                       pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0)]
            // A connection waiting for a worker is left out: even a hang-up would wake poll at once.
            for (fd, c) in conns where !c.waiting {
                let ev = c.outOff < c.out.count ? Int16(POLLOUT) : Int16(POLLIN)
                fds.append(pollfd(fd: fd, events: ev, revents: 0))
            }
            _ = try? FD.poll(&fds, timeoutMs: accepting ? 1000 : 100)
            now = Clock.monotonicNanos()
            if fds[1].revents != 0 { wakeup.drain() }

            // Answers from the workers.
            for d in done.withLock({ q in defer { q.removeAll() }; return q }) {
                guard generations[d.fd] == d.generation, var c = conns[d.fd] else { continue }
                c.waiting = false
                queue(&c, d.reply, keepAlive: c.waitingKeepAlive, now: now)
                // Requests pipelined behind the slow one were left in the parser.
                serve(d.fd, &c, generation: d.generation, keepAliveAllowed: c.waitingKeepAlive, now: now)
                conns[d.fd] = c
            }

            if fds[0].revents & Int16(POLLIN) != 0 {
                acceptLoop: while true {
                    // A quarter of the fds at most: the rest are for FIFOs and sink connections.
                    let cap = min(limits.maxConnections, max(8, FD.openFileLimit() / 4))
                    if conns.count >= cap && !evictOldestIdle() {
                        pauseAccepting("\(conns.count) connections, all busy", now: now)
                        break
                    }
                    let accepted: Int32?
                    do { accepted = try UnixSocket.accept(listenFD) } catch {
                        // Out of fds: make room by closing the longest-idle connection; if every
                        // connection is busy, take the pending one with the spare fd and close it
                        // (so the listener does not stay readable and spin), then pause.
                        if error.code == EMFILE || error.code == ENFILE {
                            if evictOldestIdle() { continue acceptLoop }
                            if spare.raw >= 0 {
                                spare = FileDescriptor(-1)
                                if let fd = try? UnixSocket.accept(listenFD) { FD.close(fd) }
                                spare = FD.openSpare()
                            }
                        }
                        pauseAccepting("\(error)", now: now)
                        break
                    }
                    guard let fd = accepted else { break }
                    conns[fd] = Connection(now: now)
                    generations[fd] = nextGeneration
                    nextGeneration += 1
                }
            }

            for p in fds.dropFirst(2) where p.revents != 0 {
                let fd = p.fd
                guard var c = conns[fd] else { continue }
                var keep = true
                if p.revents & Int16(POLLOUT) != 0 {
                    keep = flush(fd, &c, now: now)
                } else if p.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    keep = readAndServe(fd, &c, &readBuf, generation: generations[fd] ?? 0, now: now)
                }
                if keep { conns[fd] = c } else { close(fd) }
            }

            // Deadlines. A connection waiting for a worker is not timed here: the daemon's own
            // request timeout covers it, and the worker's steps have their own deadlines.
            for (fd, c) in conns where !c.waiting {
                let expired = (c.readingSince.map { now - $0 > limits.ioNs } ?? false)
                    || (c.writingSince.map { now - $0 > limits.ioNs } ?? false)
                    || (c.out.isEmpty && c.readingSince == nil && now - c.lastActivity > limits.idleNs)
                if expired { close(fd) }
            }
        }
        for fd in conns.keys { FD.close(fd) }
        FD.close(listenFD)
    }

    /// A worker: takes slow requests one at a time and hands the answers back to the loop.
    private func work() {
        while !stopping.load(ordering: .relaxed) {
            let (next, more) = jobs.withLock { q in (q.isEmpty ? nil : q.removeFirst(), q.count > 1) }
            guard let job = next else {
                _ = jobSignal.wait(timeoutMs: 1000)
                continue
            }
            // One signal may have stood for several jobs: wake another worker for the rest.
            if more { jobSignal.signal() }
            let reply = handler(job.request)
            done.withLock { $0.append(Done(fd: job.fd, generation: job.generation, reply: reply)) }
            wakeup.signal()
        }
    }

    /// Reads what is there, answers every complete request. False: close the connection.
    private func readAndServe(_ fd: Int32, _ c: inout Connection, _ buf: inout [UInt8], generation: UInt64, now: Int64) -> Bool {
        var sawEOF = false
        readLoop: while true {
            let res: IOResult
            do { res = try buf.withUnsafeMutableBytes { p throws(SystemError) in try FD.read(fd, into: p) } } catch { return false }
            switch res {
            case .wouldBlock: break readLoop
            case .eof: sawEOF = true; break readLoop
            case .bytes(let n):
                c.lastActivity = now
                if c.readingSince == nil { c.readingSince = now }
                buf.withUnsafeBytes { c.parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if n < buf.count { break readLoop }
            }
        }
        serve(fd, &c, generation: generation, keepAliveAllowed: !sawEOF, now: now)
        if sawEOF {
            // A client that half-closed after its request still gets the answer.
            guard c.waiting || c.outOff < c.out.count else { return false }
            c.closeAfterWrite = true
        }
        if c.outOff < c.out.count { return flush(fd, &c, now: now) }
        return !c.closeAfterWrite || c.waiting
    }

    /// Answers the complete requests in the parser, in order, until one goes to a worker.
    private func serve(_ fd: Int32, _ c: inout Connection, generation: UInt64, keepAliveAllowed: Bool, now: Int64) {
        serve: while !c.closeAfterWrite && !c.waiting {
            switch c.parser.next() {
            case .needMore:
                break serve
            case .failure(let status, let message):
                Log.warn("api: bad request: \(message)")
                queue(&c, HTTPReply(status: status, body: HTTPServer.errorBody(message), contentType: "application/json"), keepAlive: false, now: now)
            case .request(let req):
                c.readingSince = nil
                if let isSlow, isSlow(req) {
                    c.waiting = true
                    c.waitingKeepAlive = req.keepAlive && keepAliveAllowed
                    jobs.withLock { $0.append(Job(fd: fd, generation: generation, request: req)) }
                    jobSignal.signal()
                } else {
                    queue(&c, handler(req), keepAlive: req.keepAlive, now: now)
                }
            }
        }
    }

    private func queue(_ c: inout Connection, _ reply: HTTPReply, keepAlive: Bool, now: Int64) {
        c.out.append(contentsOf: HTTPResponse.serialize(status: reply.status, body: reply.body, contentType: reply.contentType, keepAlive: keepAlive))
        if !keepAlive { c.closeAfterWrite = true }
        if c.writingSince == nil { c.writingSince = now }
    }

    private func flush(_ fd: Int32, _ c: inout Connection, now: Int64) -> Bool {
        while c.outOff < c.out.count {
            let res: IOResult
            do {
                res = try c.out.withUnsafeBytes { p throws(SystemError) in try FD.send(fd, UnsafeRawBufferPointer(rebasing: p[c.outOff...])) }
            } catch { return false }
            switch res {
            case .bytes(let n): c.outOff += n; c.lastActivity = now
            case .wouldBlock: return true
            case .eof: return false
            }
        }
        c.out.removeAll(keepingCapacity: true)
        c.outOff = 0
        c.writingSince = nil
        return !c.closeAfterWrite || c.waiting
    }

    public static func errorBody(_ message: String) -> [UInt8] {
        Array("{\"Err\":\(JSONText.quote(message))}".utf8)
    }
}
