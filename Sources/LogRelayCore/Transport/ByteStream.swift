// A connected byte stream for the sinks: plain TCP now, TLS over OpenSSL later,
// behind one small interface so the NATS and Logentries clients never see which.
import Glibc

public protocol ByteStream: AnyObject {
    /// The socket, for poll(). Non-blocking.
    var fd: Int32 { get }
    func read(into p: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult
    func write(_ p: UnsafeRawBufferPointer) throws(SystemError) -> IOResult
    /// Bytes already decrypted and waiting (TLS); poll() would not report them.
    var hasBufferedInput: Bool { get }
    func close()
}

public final class PlainStream: ByteStream {
    public let fd: Int32
    private var closed = false

    public init(fd: Int32) { self.fd = fd }
    deinit { close() }

    public func read(into p: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult {
        try FD.read(fd, into: p)
    }

    public func write(_ p: UnsafeRawBufferPointer) throws(SystemError) -> IOResult {
        try FD.send(fd, p)
    }

    public var hasBufferedInput: Bool { false }

    /// Hands the fd over (to a TLSStream): this object will no longer close it.
    public func release() { closed = true }

    public func close() {
        if !closed { closed = true; FD.close(fd) }
    }
}

extension ByteStream {
    /// Writes all of `bytes` before `deadline` (monotonic ns); used for handshakes only.
    public func writeAll(_ bytes: [UInt8], deadline: Int64) throws {
        var off = 0
        while off < bytes.count {
            let r = try bytes.withUnsafeBytes { p throws(SystemError) in
                try write(UnsafeRawBufferPointer(rebasing: p[off...]))
            }
            switch r {
            case .bytes(let n): off += n
            case .eof: throw SystemError("write", EPIPE)
            case .wouldBlock:
                let left = (deadline - Clock.monotonicNanos()) / 1_000_000
                if left <= 0 { throw SystemError("write (timed out)", ETIMEDOUT) }
                _ = FD.poll1(fd, events: Int16(POLLOUT), timeoutMs: Int32(min(left, 1000)))
            }
        }
    }

    /// Reads once, waiting until `deadline` for data; returns bytes read.
    public func readSome(into p: UnsafeMutableRawBufferPointer, deadline: Int64) throws -> Int {
        while true {
            switch try read(into: p) {
            case .bytes(let n): return n
            case .eof: throw SystemError("read (connection closed by server)", ECONNRESET)
            case .wouldBlock:
                let left = (deadline - Clock.monotonicNanos()) / 1_000_000
                if left <= 0 { throw SystemError("read (timed out)", ETIMEDOUT) }
                _ = FD.poll1(fd, events: Int16(POLLIN), timeoutMs: Int32(min(left, 1000)))
            }
        }
    }
}
