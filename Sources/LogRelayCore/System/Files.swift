// Reading small files that a container's options name (TLS CAs, certificates, keys):
// the path is the user's, so nothing here may block or be steered into a device. The file is
// opened non-blocking (a FIFO does not wait for a writer) without becoming a controlling tty,
// must be a regular file, is size-capped and read whole into memory under a deadline.
import CSystem
import Glibc

public enum Files {
    /// The bytes of the regular file at `path`, at most `maxBytes` of them, read before
    /// `deadline` (monotonic ns). Errors name the call and the cause.
    public static func readRegularFile(path: String, maxBytes: Int, deadline: Int64) throws(SystemError) -> [UInt8] {
        // O_PATH first: a device is looked at, never opened (opening one can have effects).
        let pathFD = retryingEINTR { open(path, LOGRELAY_O_PATH | O_CLOEXEC) }
        if pathFD < 0 { throw SystemError("open", errno) }
        let handle = FileDescriptor(pathFD)
        var st = stat()
        if fstat(handle.raw, &st) != 0 { throw SystemError("fstat", errno) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw SystemError("not a regular file (\(kind(st.st_mode)))", 0)
        }
        // Reopened through the checked handle, so a rename in between cannot swap the file.
        let raw = retryingEINTR { open("/proc/self/fd/\(handle.raw)", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) }
        if raw < 0 { throw SystemError("open", errno) }
        let fd = FileDescriptor(raw)
        guard Int(st.st_size) <= maxBytes else {
            throw SystemError("the file is larger than \(maxBytes / 1024) KiB (\(st.st_size) bytes)", 0)
        }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var used = 0
        // Reads ask for one byte more than the cap: a file that grew after fstat is still refused.
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if Clock.monotonicNanos() > deadline { throw SystemError("read (took too long)", ETIMEDOUT) }
            let n = chunk.withUnsafeMutableBytes { p in retryingEINTR { read(fd.raw, p.baseAddress, min(p.count, maxBytes + 1 - used)) } }
            if n < 0 {
                let e = errno
                if e == EAGAIN { throw SystemError("read (the file would block)", e) }
                throw SystemError("read", e)
            }
            if n == 0 { break }
            if used + n > out.count { out.append(contentsOf: repeatElement(0, count: used + n - out.count)) }
            out.withUnsafeMutableBytes { dst in chunk.withUnsafeBytes { src in
                (dst.baseAddress! + used).copyMemory(from: src.baseAddress!, byteCount: n)
            } }
            used += n
            if used > maxBytes { throw SystemError("the file is larger than \(maxBytes / 1024) KiB", 0) }
        }
        out.removeLast(out.count - used)
        return out
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "mode \(String(mode & S_IFMT, radix: 8))"
        }
    }
}
