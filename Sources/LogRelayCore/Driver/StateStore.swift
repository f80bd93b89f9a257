// Active streams survive a plugin crash: Docker restarts the plugin but never repeats
// StartLogging, so each stream's StartLogging request (File + Info) is kept in the state
// dir, written atomically, and replayed when the plugin starts. A stream's file is
// removed when the stream ends. Only what re-attaching needs is kept: the container's
// environment is cut down to the variables its env / env-regex options select, and the
// directory and files are readable by the plugin's user only (0700 / 0600).
import FoundationEssentials
import Glibc

public final class StateStore: Sendable {
    public let directory: String?

    /// `directory` nil or not writable: streams are not persisted (logged once).
    public init(directory: String?) {
        guard let dir = directory, !dir.isEmpty else { self.directory = nil; return }
        // An existing directory keeps its mode otherwise (a state dir made by an older version).
        var ok = StateStore.makeDirectories(dir) && chmod(dir, 0o700) == 0
        if ok {
            let probe = dir + "/.probe"
            let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd); unlink(probe) } else { ok = false }
        }
        if !ok { Log.warn("state dir \(dir) is not writable: streams will not be re-attached after a crash") }
        self.directory = ok ? dir : nil
    }

    /// Saves what re-attaching to a stream needs (atomic: temp file, fsync, rename): the
    /// request with only the env variables that `options` copy into events. Returns why it
    /// failed, nil when saved (or when streams are not persisted at all).
    public func save(_ request: StartLoggingRequest, options: CommonOptions) -> String? {
        guard directory != nil else { return nil }
        let file = request.file
        guard let path = path(for: file) else { return "the stream's file name \(file.debugDescription) cannot name a state file" }
        struct Saved: Encodable { var File: String; var Info: ContainerInfo }
        var info = request.info
        // The options were validated before this is called, so the regex compiles.
        let regex = options.envRegex.flatMap { try? LogOptions.compileRegex($0, key: "env-regex") }
        info.containerEnv = info.containerEnv.filter { entry in
            let name = String(entry.prefix { $0 != "=" })
            return entry.contains("=") && (options.env.contains(name) || regex?.matches(name) == true)
        }
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(Saved(File: file, Info: info))) } catch {
            return "cannot encode the stream's state: \(error)"
        }
        return StateStore.writeAtomically(path, body)
    }

    /// Saves what a stream could not deliver before a shutdown: its undelivered LineRecords,
    /// beside its state (atomic), to be sent first when the plugin starts again. Returns why it
    /// failed, nil when saved.
    public func saveSpool(file: String, records: [UInt8]) -> String? {
        guard directory != nil else { return "no state directory" }
        guard let path = path(for: file, suffix: ".spool") else { return "the stream's file name \(file.debugDescription) cannot name a spool file" }
        return StateStore.writeAtomically(path, records)
    }

    /// The spooled records of a stream (at most `maxBytes`), removed from disk as they are taken.
    public func takeSpool(file: String, maxBytes: Int) -> [UInt8]? {
        guard let path = path(for: file, suffix: ".spool") else { return nil }
        defer { unlink(path) }
        return StateStore.readFile(path, maxBytes: maxBytes)
    }

    /// Temp file, fsync, rename: a reader sees the old content or the new, never a torn one.
    private static func writeAtomically(_ path: String, _ bytes: [UInt8]) -> String? {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "\(SystemError("open \(tmp)"))" }
        var failure: String? = nil
        if !bytes.withUnsafeBytes({ FD.writeAll(fd, $0) }) { failure = "\(SystemError("write \(tmp)"))" }
        else if fsync(fd) != 0 { failure = "\(SystemError("fsync \(tmp)"))" }
        close(fd)
        if failure == nil && rename(tmp, path) != 0 { failure = "\(SystemError("rename \(tmp)"))" }
        if failure != nil { unlink(tmp) }
        return failure
    }

    public func remove(file: String) {
        if let path = path(for: file) { unlink(path) }
        if let path = path(for: file, suffix: ".spool") { unlink(path) }
    }

    /// Every saved StartLogging body.
    public func load() -> [[UInt8]] {
        guard let dir = directory, let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var bodies: [[UInt8]] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { p in
                String(decoding: p.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasSuffix(".json") else { continue }
            if let body = StateStore.readFile(dir + "/" + name, maxBytes: 16 << 20) { bodies.append(body) }
        }
        return bodies
    }

    /// One state file (and spool) per FIFO, named after the FIFO's id (64 hex chars from the daemon).
    private func path(for file: String, suffix: String = ".json") -> String? {
        guard let dir = directory else { return nil }
        let id = file.split(separator: "/").last.map(String.init) ?? ""
        let safe = id.unicodeScalars.allSatisfy { ($0.value >= 48 && $0.value <= 57) || ($0.value >= 65 && $0.value <= 90) || ($0.value >= 97 && $0.value <= 122) || $0 == "-" || $0 == "_" }
        guard !id.isEmpty, safe, id.count <= 128 else { return nil }
        return dir + "/" + id + suffix
    }

    private static func readFile(_ path: String, maxBytes: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { p in retryingEINTR { read(fd, p.baseAddress, p.count) } }
            if n < 0 { return nil }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
            if out.count > maxBytes { return nil }
        }
    }

    private static func makeDirectories(_ path: String) -> Bool {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { return false }
        }
        return true
    }
}
