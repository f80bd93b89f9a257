// The system layer: the one place that calls POSIX socket and fd functions. Everything
// above it speaks in IOResult values and typed errors, and never sees errno or EINTR.
import CSystem
import Glibc
import Synchronization

/// A failed call: its name (with what it was about) and the real cause. `code` 0 means the
/// cause is already in `call` (resolver errors have no errno).
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let code: Int32
    public init(_ call: String, _ code: Int32 = errno) { self.call = call; self.code = code }
    public var description: String { code == 0 ? call : "\(call): \(String(cString: strerror(code)))" }
}

/// Calls `body` until it does not fail with EINTR; a negative result is returned with errno intact.
@inline(__always)
public func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let r = body()
        if r >= 0 || errno != EINTR { return r }
    }
}

/// An owned file descriptor: closed exactly once, when its owner lets it go.
public struct FileDescriptor: ~Copyable, Sendable {
    public let raw: Int32
    public init(_ raw: Int32) { self.raw = raw }
    deinit { if raw >= 0 { _ = Glibc.close(raw) } }
}

public enum IOResult: Equatable {
    case bytes(Int)
    case wouldBlock
    case eof
}

public enum FD {
    public static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    public static func setCloseOnExec(_ fd: Int32) {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// An fd held in reserve (on /dev/null): closed to make room for one accept when the
    /// process is out of fds. -1 if even this cannot be opened.
    public static func openSpare() -> FileDescriptor {
        FileDescriptor(retryingEINTR { open("/dev/null", O_RDONLY | O_CLOEXEC) })
    }

    /// The soft RLIMIT_NOFILE now (it may be lowered while the process runs).
    public static func openFileLimit() -> Int {
        var r = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &r) == 0 else { return 1024 }
        return r.rlim_cur > UInt64(Int32.max) ? Int(Int32.max) : Int(r.rlim_cur)
    }

    /// One read. Errors other than EAGAIN are reported as `SystemError`.
    public static func read(_ fd: Int32, into p: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult {
        let n = retryingEINTR { Glibc.read(fd, p.baseAddress, p.count) }
        if n > 0 { return .bytes(n) }
        if n == 0 { return .eof }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
        throw SystemError("read", e)
    }

    /// One send without SIGPIPE.
    public static func send(_ fd: Int32, _ p: UnsafeRawBufferPointer) throws(SystemError) -> IOResult {
        let n = retryingEINTR { Glibc.send(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL)) }
        if n >= 0 { return .bytes(n) }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
        throw SystemError("send", e)
    }

    /// Writes all of `p` to a blocking fd (the plugin's own log, state files); false on error.
    public static func writeAll(_ fd: Int32, _ p: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        while off < p.count {
            let n = retryingEINTR { Glibc.write(fd, p.baseAddress! + off, p.count - off) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// Waits for `events` on one fd; returns revents (0 on timeout).
    public static func poll1(_ fd: Int32, events: Int16, timeoutMs: Int32) -> Int16 {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let r = retryingEINTR { Glibc.poll(&p, 1, timeoutMs) }
        if r >= 0 { return r == 0 ? 0 : p.revents }
        return Int16(POLLERR)
    }

    /// Waits on several fds (revents filled in); 0 on timeout. EINTR counts as a timeout.
    public static func poll(_ fds: inout [pollfd], timeoutMs: Int32) throws(SystemError) -> Int32 {
        let r = Glibc.poll(&fds, nfds_t(fds.count), timeoutMs)
        if r >= 0 { return r }
        let e = errno
        if e == EINTR { return 0 }
        throw SystemError("poll", e)
    }
}

/// A listening unix stream socket (the plugin API).
public enum UnixSocket {
    public static func listen(path: String, backlog: Int32 = 128) throws(SystemError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("socket") }
        unlink(path)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            FD.close(fd)
            throw SystemError("bind \(path) (path too long)", ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            p.copyBytes(from: bytes)
            p[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 { let e = errno; FD.close(fd); throw SystemError("bind \(path)", e) }
        if Glibc.listen(fd, backlog) != 0 { let e = errno; FD.close(fd); throw SystemError("listen", e) }
        FD.setNonBlocking(fd)
        return fd
    }

    /// Accepts one pending connection (non-blocking fd); nil when none is pending, an error
    /// otherwise (EMFILE: out of fds).
    public static func accept(_ listenFD: Int32) throws(SystemError) -> Int32? {
        let fd = retryingEINTR { logrelay_accept(listenFD) }
        if fd >= 0 { return fd }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == ECONNABORTED { return nil }
        throw SystemError("accept", e)
    }
}

/// Outgoing TCP connections with a deadline (the sinks' transport), and the metrics listener.
public enum TCPSocket {
    /// A non-blocking listening socket on `host` (an address: the listener must not depend
    /// on a resolver) and `port` (0: any free port). Returns the fd and the bound port.
    public static func listen(host: String, port: Int, backlog: Int32 = 64) throws(SystemError) -> (fd: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &res)
        if rc != 0 {
            throw SystemError("listen on \(host):\(port): \(String(cString: gai_strerror(rc)))", 0)
        }
        defer { freeaddrinfo(res) }
        guard let a = res else { throw SystemError("listen on \(host):\(port): no address", 0) }
        let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), a.pointee.ai_protocol)
        if fd < 0 { throw SystemError("socket") }
        // A restarted plugin rebinds at once, without waiting for TIME_WAIT connections.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) != 0 {
            let e = errno; FD.close(fd); throw SystemError("bind \(host):\(port)", e)
        }
        if Glibc.listen(fd, backlog) != 0 { let e = errno; FD.close(fd); throw SystemError("listen", e) }
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        var boundPort = port
        if bound == 0 {
            boundPort = withUnsafeBytes(of: &addr) { p in
                // sin_port and sin6_port sit at the same offset, in network byte order.
                Int(p[2]) << 8 | Int(p[3])
            }
        }
        return (fd, boundPort)
    }

    /// Resolves `host` and connects to the first address that answers within the deadline.
    /// The returned fd is non-blocking.
    public static func connect(host: String, port: Int, timeoutMs: Int32) throws(SystemError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &res)
        if rc != 0 {
            throw SystemError("resolve \(host): \(String(cString: gai_strerror(rc)))", 0)
        }
        defer { freeaddrinfo(res) }
        var lastError = SystemError("connect \(host):\(port)", ECONNREFUSED)
        var ai = res
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), a.pointee.ai_protocol)
            if fd < 0 { lastError = SystemError("socket"); continue }
            var r = Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if r != 0 && errno == EINPROGRESS {
                let ev = FD.poll1(fd, events: Int16(POLLOUT), timeoutMs: timeoutMs)
                if ev == 0 {
                    FD.close(fd)
                    lastError = SystemError("connect \(host):\(port) (timed out)", ETIMEDOUT)
                    continue
                }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err != 0 { errno = err; r = -1 } else { r = 0 }
            }
            if r != 0 {
                lastError = SystemError("connect \(host):\(port)", errno)
                FD.close(fd)
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        }
        throw lastError
    }
}

/// A wake-up fd for poll loops (eventfd): other threads `signal()`, the loop `drain()`s and
/// then looks at everything it is woken for. A signal writes the eventfd only when no wake-up
/// is pending since the last drain, so many signals before the loop wakes cost one write.
public final class Wakeup: Sendable {
    private let descriptor: FileDescriptor
    private let pending = Atomic<Bool>(false)
    public var fd: Int32 { descriptor.raw }
    public init() { descriptor = FileDescriptor(logrelay_eventfd()) }
    public func signal() {
        guard !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = retryingEINTR { Glibc.write(fd, &one, 8) }
    }
    /// The eventfd is read before the flag is cleared, so a signal in between either finds the
    /// flag still set (and what it signals is seen after this) or writes the eventfd again.
    public func drain() {
        var v: UInt64 = 0
        _ = retryingEINTR { Glibc.read(fd, &v, 8) }
        _ = pending.exchange(false, ordering: .acquiringAndReleasing)
    }

    /// Waits up to `timeoutMs` for a signal; true if one came.
    public func wait(timeoutMs: Int32) -> Bool {
        let r = FD.poll1(fd, events: Int16(POLLIN), timeoutMs: timeoutMs)
        drain()
        return r != 0
    }

    /// Sleeps `ns` (a backoff), returning early once `stop()` is true; signals only re-check it.
    public func sleep(ns: Int64, unless stop: () -> Bool) {
        let deadline = Clock.monotonicNanos() + ns
        while !stop() {
            let left = deadline - Clock.monotonicNanos()
            if left <= 0 { return }
            _ = wait(timeoutMs: Int32(min(left / 1_000_000 + 1, 1000)))
        }
    }
}
