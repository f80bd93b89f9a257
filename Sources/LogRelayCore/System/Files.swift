// Files. Those a container's options name (TLS CAs, certificates, keys) are the user's, so
// nothing may block or be steered into a device: opened non-blocking (a FIFO does not wait
// for a writer) without becoming a controlling tty, regular files only, size-capped, read
// whole into memory under a deadline. The daemon's log FIFOs, and the plugin's own state
// files (written atomically, readable by the plugin's user only).
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

    /// Opens the daemon's FIFO at `path` for reading without blocking, with its pipe enlarged
    /// to `pipeBytes` (best effort) to absorb bursts. Anything else at `path` is looked at
    /// (O_PATH), never opened. O_NOATIME where we own the FIFO (the daemon runs as the same
    /// user): otherwise every read after a write dirties the inode (relatime), ~10 % of the
    /// plugin's CPU when many containers trickle.
    public static func openFIFO(path: String, pipeBytes: Int32) throws(SystemError) -> Int32 {
        let pathFD = retryingEINTR { open(path, LOGRELAY_O_PATH | O_CLOEXEC) }
        if pathFD < 0 { throw SystemError("open", errno) }
        let handle = FileDescriptor(pathFD)
        var st = stat()
        if fstat(handle.raw, &st) != 0 { throw SystemError("fstat", errno) }
        guard st.st_mode & S_IFMT == S_IFIFO else { throw SystemError("not a FIFO (\(kind(st.st_mode)))", 0) }
        let reopen = "/proc/self/fd/\(handle.raw)"
        var raw = retryingEINTR { open(reopen, O_RDONLY | O_NONBLOCK | O_CLOEXEC | LOGRELAY_O_NOATIME) }
        if raw < 0 && errno == EPERM { raw = retryingEINTR { open(reopen, O_RDONLY | O_NONBLOCK | O_CLOEXEC) } }
        if raw < 0 { throw SystemError("open", errno) }
        _ = logrelay_set_pipe_size(raw, pipeBytes)
        return raw
    }

    /// Writes `bytes` to `path` through a temp file, fsync and rename (mode 0600): a reader
    /// sees the old content or the new, never a torn one.
    public static func writeAtomically(path: String, _ bytes: [UInt8]) throws(SystemError) {
        let tmp = path + ".tmp"
        let raw = retryingEINTR { open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        if raw < 0 { throw SystemError("open \(tmp)", errno) }
        do throws(SystemError) {
            let fd = FileDescriptor(raw)
            if !bytes.withUnsafeBytes({ FD.writeAll(fd.raw, $0) }) { throw SystemError("write \(tmp)", errno) }
            if fsync(fd.raw) != 0 { throw SystemError("fsync \(tmp)", errno) }
        } catch {
            _ = unlink(tmp)
            throw error
        }
        if rename(tmp, path) != 0 {
            let e = errno
            _ = unlink(tmp)
            throw SystemError("rename \(tmp)", e)
        }
    }

    /// The content of one of the plugin's own files, nil when it is missing, unreadable or
    /// larger than `maxBytes`.
    public static func readOwnFile(path: String, maxBytes: Int) -> [UInt8]? {
        let raw = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard raw >= 0 else { return nil }
        let fd = FileDescriptor(raw)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { p in retryingEINTR { read(fd.raw, p.baseAddress, p.count) } }
            if n < 0 { return nil }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
            if out.count > maxBytes { return nil }
        }
    }

    public static func remove(path: String) { _ = unlink(path) }

    /// Creates `path` and its missing parents (mode `mode`); true when it exists afterwards.
    public static func makeDirectories(path: String, mode: mode_t) -> Bool {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, mode) != 0 && errno != EEXIST { return false }
        }
        return true
    }

    /// Sets the mode of an existing directory or file; true when done.
    public static func setMode(path: String, _ mode: mode_t) -> Bool { chmod(path, mode) == 0 }

    /// The names in directory `path` ending in `suffix` (none when it cannot be read).
    public static func names(in path: String, endingIn suffix: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { p in
                String(decoding: p.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasSuffix(suffix) { names.append(name) }
        }
        return names
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
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
