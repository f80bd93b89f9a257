// The driver: turns StartLogging / StopLogging into running streams.
// StartLogging validates everything it can (options, tag, subject, the FIFO) and
// answers; connecting to the sink happens in the background.
import CSystem
import FoundationEssentials
import Glibc
import Synchronization

public enum StartResult: Equatable, Sendable {
    case ok
    case badRequest(String)   // unreadable body: 400
    case refused(String)      // the container must not start: 200 with Err
}

public final class PluginDriver: Sendable {
    public let setting: DriverSetting
    public let hostname: String
    public let nats = NATSRegistry()
    public let loop: StreamLoop

    public init(setting: DriverSetting, hostname: String) {
        self.setting = setting
        self.hostname = hostname
        loop = StreamLoop(onEnded: { s in
            Log.info("stopped logging for container \(s.containerName)")
        })
        loop.start()
    }

    public func startLogging(_ body: [UInt8]) -> StartResult {
        let req: StartLoggingRequest
        do { req = try StartLoggingRequest.parse(body) } catch {
            return .badRequest(error.message)
        }
        if loop.isActive(req.file) {
            return .ok    // our own retry or a replay: one reader per File
        }
        let info = req.info
        let name = info.containerName.isEmpty ? String(info.containerID.prefix(12)) : info.containerName
        do {
            let options = try LogOptions.parse(info.config, driver: setting)
            let tag = try options.common.tag.render(info, hostname: hostname)
            let attrs = try Attributes.extract(from: info, options: options.common)
            let buffer = EventBuffer(limit: options.common.bufferSize, policy: options.common.bufferFull)
            let sink: StreamSink
            switch options.driver {
            case .nats:
                guard let n = options.nats else { throw OptionError("internal error: NATS options missing") }
                let subject = try n.subject.map { try $0.render(info, hostname: hostname) } ?? tag
                do { try NATSSubject.validate(subject) } catch {
                    let key = n.subject == nil ? "tag" : "nats-subject"
                    throw OptionError("\(key) renders to \(subject.debugDescription), which is not a valid NATS subject: \(error.message)")
                }
                let encoder = EventEncoder(info: info, tag: tag, attrs: attrs, format: .json)
                let fd = try openFIFO(req.file)
                sink = NATSStreamSink(registry: nats, options: n, subject: subject, name: name, buffer: buffer, encoder: encoder)
                loop.add(LogStream(file: req.file, fd: fd, containerName: name, sink: sink, partialMerge: options.common.partialMerge))
                Log.info("started logging for container \(name) to NATS subject \(subject) via \(n.servers.map(\.description).joined(separator: ","))")
            case .logentries:
                throw OptionError("the logentries driver is not available in this build yet")
            }
            return .ok
        } catch let e as OptionError {
            Log.warn("refused StartLogging for container \(name): \(e.message)")
            return .refused("logrelay: \(e.message)")
        } catch {
            Log.warn("refused StartLogging for container \(name): \(error)")
            return .refused("logrelay: \(error)")
        }
    }

    public func stopLogging(_ body: [UInt8]) {
        struct Stop: Decodable { var File: String? }
        guard !body.isEmpty, let s = try? JSONDecoder().decode(Stop.self, from: Data(body)), let file = s.File else {
            return   // empty retry body or garbage: 200 {} all the same (protocol doc §3.5)
        }
        loop.stop(file: file)
    }

    /// Opens the daemon's FIFO for reading without blocking, and enlarges the pipe to absorb bursts.
    private func openFIFO(_ path: String) throws(OptionError) -> Int32 {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            throw OptionError("cannot open the log stream \(path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFIFO {
            FD.close(fd)
            throw OptionError("the log stream \(path) is not a FIFO")
        }
        _ = logrelay_set_pipe_size(fd, 1 << 20)
        return fd
    }

    /// Waits (up to `deadlineNs` from now) until every stream has ended and every buffer is delivered.
    public func drain(timeoutNs: Int64) -> Bool {
        let deadline = Clock.monotonicNanos() + timeoutNs
        while Clock.monotonicNanos() < deadline {
            let busy = loop.streams.contains { !$0.sink.buffer.isEmpty } || nats.all.contains { $0.hasUndelivered }
            if !busy { return true }
            usleep(20_000)
        }
        return false
    }

    public func metricsText() -> String {
        Metrics.render(streams: loop.streams, connections: nats.all)
    }
}
