// A small HTTP/1.1 server on a unix socket, for the Docker daemon's plugin calls.
// One thread, poll() over the listener and every connection; handlers are quick
// (nothing here waits on the network), so one thread serves many keep-alive clients.
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
    private struct Connection {
        var parser = HTTPRequestParser()
        var out: [UInt8] = []
        var outOff = 0
        var closeAfterWrite = false
    }

    private let listenFD: Int32
    private let handler: @Sendable (HTTPRequest) -> HTTPReply
    private let wakeup = Wakeup()
    private let stopping = Atomic<Bool>(false)
    static let maxConnections = 1024

    public init(path: String, handler: @escaping @Sendable (HTTPRequest) -> HTTPReply) throws(SystemError) {
        listenFD = try UnixSocket.listen(path: path)
        self.handler = handler
    }

    /// Serves on a listening socket opened elsewhere (the TCP metrics listener).
    public init(listening fd: Int32, handler: @escaping @Sendable (HTTPRequest) -> HTTPReply) {
        listenFD = fd
        self.handler = handler
    }

    /// Stops accepting; the loop returns.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    public func run() {
        var conns: [Int32: Connection] = [:]
        var readBuf = [UInt8](repeating: 0, count: 64 * 1024)

        var acceptPausedUntil: Int64 = 0
        while !stopping.load(ordering: .relaxed) {
            let accepting = Clock.monotonicNanos() >= acceptPausedUntil
            var fds = [pollfd(fd: listenFD, events: accepting ? Int16(POLLIN) : 0, revents: 0),
                       pollfd(fd: wakeup.fd, events: Int16(POLLIN), revents: 0)]
            for (fd, c) in conns {
                let ev = c.outOff < c.out.count ? Int16(POLLOUT) : Int16(POLLIN)
                fds.append(pollfd(fd: fd, events: ev, revents: 0))
            }
            let r = (try? FD.poll(&fds, timeoutMs: accepting ? 1000 : 100)) ?? 0
            if r <= 0 { continue }
            if fds[1].revents != 0 { wakeup.drain() }
            if fds[0].revents & Int16(POLLIN) != 0 {
                while true {
                    let accepted: Int32?
                    do { accepted = try UnixSocket.accept(listenFD) } catch {
                        // Out of fds: stop polling the listener for a moment instead of spinning.
                        Log.warn("api: \(error); not accepting for 100 ms")
                        acceptPausedUntil = Clock.monotonicNanos() + 100_000_000
                        break
                    }
                    guard let fd = accepted else { break }
                    if conns.count >= HTTPServer.maxConnections {
                        Log.warn("api: too many connections (\(HTTPServer.maxConnections)); refusing one")
                        FD.close(fd)
                        continue
                    }
                    conns[fd] = Connection()
                }
            }
            for p in fds.dropFirst(2) where p.revents != 0 {
                let fd = p.fd
                guard var c = conns[fd] else { continue }
                var keep = true
                if p.revents & Int16(POLLOUT) != 0 {
                    keep = flush(fd, &c)
                } else if p.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    keep = readAndServe(fd, &c, &readBuf)
                }
                if keep { conns[fd] = c } else { conns[fd] = nil; FD.close(fd) }
            }
        }
        for fd in conns.keys { FD.close(fd) }
        FD.close(listenFD)
    }

    /// Reads what is there, answers every complete request. False: close the connection.
    private func readAndServe(_ fd: Int32, _ c: inout Connection, _ buf: inout [UInt8]) -> Bool {
        var sawEOF = false
        readLoop: while true {
            let res: IOResult
            do { res = try buf.withUnsafeMutableBytes { p throws(SystemError) in try FD.read(fd, into: p) } } catch { return false }
            switch res {
            case .wouldBlock: break readLoop
            case .eof: sawEOF = true; break readLoop
            case .bytes(let n):
                buf.withUnsafeBytes { c.parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if n < buf.count { break readLoop }
            }
        }
        serve: while !c.closeAfterWrite {
            switch c.parser.next() {
            case .needMore:
                break serve
            case .failure(let status, let message):
                Log.warn("api: bad request: \(message)")
                queue(&c, HTTPReply(status: status, body: HTTPServer.errorBody(message), contentType: "application/json"), keepAlive: false)
            case .request(let req):
                let reply = handler(req)
                queue(&c, reply, keepAlive: req.keepAlive)
            }
        }
        if c.outOff < c.out.count { return flush(fd, &c) }
        return !sawEOF && !c.closeAfterWrite
    }

    private func queue(_ c: inout Connection, _ reply: HTTPReply, keepAlive: Bool) {
        c.out.append(contentsOf: HTTPResponse.serialize(status: reply.status, body: reply.body, contentType: reply.contentType, keepAlive: keepAlive))
        if !keepAlive { c.closeAfterWrite = true }
    }

    private func flush(_ fd: Int32, _ c: inout Connection) -> Bool {
        while c.outOff < c.out.count {
            let res: IOResult
            do {
                res = try c.out.withUnsafeBytes { p throws(SystemError) in try FD.send(fd, UnsafeRawBufferPointer(rebasing: p[c.outOff...])) }
            } catch { return false }
            switch res {
            case .bytes(let n): c.outOff += n
            case .wouldBlock: return true
            case .eof: return false
            }
        }
        c.out.removeAll(keepingCapacity: true)
        c.outOff = 0
        return !c.closeAfterWrite
    }

    public static func errorBody(_ message: String) -> [UInt8] {
        Array("{\"Err\":\(JSONText.quote(message))}".utf8)
    }
}
