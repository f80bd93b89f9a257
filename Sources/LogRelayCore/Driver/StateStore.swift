// Active streams survive a plugin crash: Docker restarts the plugin but never repeats
// StartLogging, so each stream's StartLogging request (File + Info) is kept in the state
// dir, written atomically, and replayed when the plugin starts. A stream's file is
// removed when the stream ends. Only what re-attaching needs is kept: the container's
// environment is cut down to the variables its env / env-regex options select, and the
// directory and files are readable by the plugin's user only (0700 / 0600).
import FoundationEssentials

public final class StateStore: Sendable {
    public let directory: String?

    /// `directory` nil or not writable: streams are not persisted (logged once).
    public init(directory: String?) {
        guard let dir = directory, !dir.isEmpty else { self.directory = nil; return }
        // An existing directory keeps its mode otherwise (a state dir made by an older version).
        var ok = Files.makeDirectories(path: dir, mode: 0o700) && Files.setMode(path: dir, 0o700)
        if ok {
            let probe = dir + "/.probe"
            do { try Files.writeAtomically(path: probe, []) } catch { ok = false }
            Files.remove(path: probe)
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
        return StateStore.write(path, body)
    }

    /// Saves what a stream could not deliver before a shutdown: its undelivered LineRecords,
    /// beside its state (atomic), to be sent first when the plugin starts again. Returns why it
    /// failed, nil when saved.
    public func saveSpool(file: String, records: [UInt8]) -> String? {
        guard directory != nil else { return "no state directory" }
        guard let path = path(for: file, suffix: ".spool") else { return "the stream's file name \(file.debugDescription) cannot name a spool file" }
        return StateStore.write(path, records)
    }

    /// The spooled records of a stream (at most `maxBytes`), removed from disk as they are taken.
    public func takeSpool(file: String, maxBytes: Int) -> [UInt8]? {
        guard let path = path(for: file, suffix: ".spool") else { return nil }
        defer { Files.remove(path: path) }
        return Files.readOwnFile(path: path, maxBytes: maxBytes)
    }

    /// Writes atomically; returns why it failed, nil when written.
    private static func write(_ path: String, _ bytes: [UInt8]) -> String? {
        do { try Files.writeAtomically(path: path, bytes) } catch { return "\(error)" }
        return nil
    }

    public func remove(file: String) {
        if let path = path(for: file) { Files.remove(path: path) }
        if let path = path(for: file, suffix: ".spool") { Files.remove(path: path) }
    }

    /// Every saved StartLogging body.
    public func load() -> [[UInt8]] {
        guard let dir = directory else { return [] }
        return Files.names(in: dir, endingIn: ".json").compactMap { Files.readOwnFile(path: dir + "/" + $0, maxBytes: 16 << 20) }
    }

    /// One state file (and spool) per FIFO, named after the FIFO's id (64 hex chars from the daemon).
    private func path(for file: String, suffix: String = ".json") -> String? {
        guard let dir = directory else { return nil }
        let id = file.split(separator: "/").last.map(String.init) ?? ""
        let safe = id.unicodeScalars.allSatisfy { ($0.value >= 48 && $0.value <= 57) || ($0.value >= 65 && $0.value <= 90) || ($0.value >= 97 && $0.value <= 122) || $0 == "-" || $0 == "_" }
        guard !id.isEmpty, safe, id.count <= 128 else { return nil }
        return dir + "/" + id + suffix
    }
}
