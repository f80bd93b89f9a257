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
    public let hostPaths: HostPaths
    public let nats = NATSRegistry()
    public let logentries = LogentriesRegistry()
    public let logentriesHTTP = LogentriesHTTPRegistry()
    /// The system CAs, loaded once when a sink first needs them.
    public let systemTLS = SystemTLS()
    public let loop: StreamLoop
    public let state: StateStore

    public init(setting: DriverSetting, hostname: String, hostPaths: HostPaths = HostPaths(mountPoint: nil), stateDir: String? = nil) {
        self.setting = setting
        self.hostname = hostname
        self.hostPaths = hostPaths
        let state = StateStore(directory: stateDir)
        self.state = state
        loop = StreamLoop(onEnded: { s in
            state.remove(file: s.file)
            Log.info("stopped logging", container: s.containerName)
        })
        loop.start()
    }

    /// Re-attaches to the streams a previous process of the plugin was reading (after a crash
    /// or restart): FIFOs that are gone are forgotten; the others are read again from the next
    /// frame boundary.
    public func reattach() {
        for body in state.load() {
            guard let req = try? StartLoggingRequest.parse(body) else { continue }
            switch startLogging(body, reattaching: true) {
            case .ok:
                Log.info("re-attached to the log stream", container: req.info.containerName)
            case .badRequest(let m), .refused(let m):
                Log.info("not re-attaching \(req.file): \(m)")
                state.remove(file: req.file)
            }
        }
    }

    public func startLogging(_ body: [UInt8], reattaching: Bool = false) -> StartResult {
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
            let buffer = EventBuffer(limit: options.common.bufferSize, policy: options.common.bufferFull, budget: loop.budget)
            // Everything is validated before the FIFO is opened and the stream attached.
            let attach: () -> StreamSink
            let target: String
            switch options.driver {
            case .nats:
                guard let n = options.nats else { throw OptionError("internal error: NATS options missing") }
                let subject = try n.subject.map { try $0.render(info, hostname: hostname) } ?? tag
                do { try NATSSubject.validate(subject) } catch {
                    let key = n.subject == nil ? "tag" : "nats-subject"
                    throw OptionError("\(key) renders to \(subject.debugDescription), which is not a valid NATS subject: \(error.message)")
                }
                let tls = try natsTLS(n)
                let userKey = try natsUserKey(n)
                let route = NATSRoute(subject: subject, encoder: EventEncoder(info: info, tag: tag, attrs: attrs, format: .json),
                                      containerID: info.containerID, containerName: info.containerName)
                let systemTLS = self.systemTLS
                attach = { [nats] in
                    let a = NATSAttachment(buffer: buffer, name: name, route: route)
                    return ConnectionSink(attachment: a, connection: nats.attach(a, key: n.connectionKey) {
                        NATSSink(options: n, userKey: userKey, tls: tls, systemTLS: systemTLS)
                    })
                }
                target = "NATS subject \(subject) via \(n.servers.map(\.description).joined(separator: ","))"
            case .logentries:
                guard let l = options.logentries else { throw OptionError("internal error: Logentries options missing") }
                let tls = try logentriesTLS(l)
                let encoder = EventEncoder(info: info, tag: tag, attrs: attrs, format: l.lineOnly ? .rawLine : .json)
                if let endpoint = l.http, let key = l.httpConnectionKey {
                    let route = LogentriesHTTPRoute(path: endpoint.path, encoder: encoder)
                    attach = { [logentriesHTTP] in
                        let a = LogentriesHTTPAttachment(buffer: buffer, name: name, route: route)
                        return ConnectionSink(attachment: a, connection: logentriesHTTP.attach(a, key: key) {
                            LogentriesHTTPSink(key: key, tls: tls)
                        })
                    }
                    if !endpoint.tls && !endpoint.isLoopback {
                        Log.warn("logentries-url is http://: the log token and the lines cross the network in clear text", container: name)
                    }
                    // Never the path: it holds the token.
                    target = "Logentries webhook at \(endpoint.redacted) (HTTP POST, \(l.lineOnly ? "raw lines" : "JSON events"))"
                } else {
                    let wire = LogentriesWire(token: l.token, encoder: encoder)
                    attach = { [logentries] in
                        let a = LogentriesAttachment(buffer: buffer, name: name, route: wire)
                        return ConnectionSink(attachment: a, connection: logentries.attach(a, key: l.connectionKey) {
                            LogentriesSink(key: l.connectionKey, tls: tls)
                        })
                    }
                    target = "Logentries at \(l.hostPort) (\(l.tls ? "TLS" : "plain TCP"), \(l.lineOnly ? "raw lines" : "JSON events"))"
                }
            }
            // A restart: what the previous process spooled at shutdown goes first, in order.
            let spool = reattaching ? state.takeSpool(file: req.file, maxBytes: buffer.limit + (1 << 20)) : nil
            let fd: Int32
            do { fd = try openFIFO(req.file) } catch {
                guard let spool else { throw error }
                // The container ended while the plugin was down: deliver the spool, then forget it.
                let sink = attach()
                let lines = deliverSpool(spool, into: sink)
                sink.finish()
                state.remove(file: req.file)
                Log.info("the log stream is gone; delivering the \(lines) spooled line(s) to \(target)", container: name)
                return .ok
            }
            if !reattaching, let failure = state.save(req, options: options.common) {
                FD.close(fd)
                throw OptionError("cannot save the stream's state for re-attaching after a restart: \(failure)")
            }
            let sink = attach()
            if let spool {
                let lines = deliverSpool(spool, into: sink)
                Log.info("sending \(lines) line(s) spooled at the last shutdown first", container: name)
            }
            loop.add(LogStream(file: req.file, fd: fd, containerName: name, containerID: String(info.containerID.prefix(12)),
                               driver: options.driver.rawValue, sink: sink, partialMerge: options.common.partialMerge,
                               multiline: options.common.multiline, resynchronize: reattaching))
            Log.info("started logging to \(target)", container: name)
            return .ok
        } catch let e as OptionError {
            Log.warn("refused StartLogging: \(e.message)", container: name)
            return .refused("logrelay: \(e.message)")
        } catch {
            Log.warn("refused StartLogging: \(error)", container: name)
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

    /// The nats-creds or nats-nkey file, read and decoded once now so that a bad one fails
    /// StartLogging (the message names the option and the host path, never the contents);
    /// the connection reads it again for every handshake.
    private func natsUserKey(_ n: NATSOptions) throws(OptionError) -> NATSUserKeyFile? {
        let chosen: (NATSUserKeyFile.Kind, String)? = n.creds.map { (.creds, $0) } ?? n.nkey.map { (.nkey, $0) }
        guard let (kind, hostPath) = chosen else { return nil }
        let file = NATSUserKeyFile(kind: kind, path: try hostPaths.resolve(hostPath, option: kind.rawValue), shownPath: hostPath)
        do { _ = try file.load() } catch { throw OptionError(error.message) }
        return file
    }

    /// The TLS context the NATS options ask for (nil: plain, unless a server demands TLS).
    /// Files are loaded now so that a missing or invalid one fails StartLogging.
    private func natsTLS(_ n: NATSOptions) throws(OptionError) -> TLSContext? {
        let wanted = n.servers.contains { $0.scheme == .tls } || n.tlsCACert != nil || n.tlsCert != nil || n.tlsKey != nil || n.tlsSkipVerify
            || n.tlsFirst
        guard wanted else { return nil }
        var config = TLSConfig(
            caFile: try n.tlsCACert.map { p throws(OptionError) in try hostPaths.resolve(p, option: "nats-tls-ca-cert") },
            certFile: try n.tlsCert.map { p throws(OptionError) in try hostPaths.resolve(p, option: "nats-tls-cert") },
            keyFile: try n.tlsKey.map { p throws(OptionError) in try hostPaths.resolve(p, option: "nats-tls-key") },
            skipVerify: n.tlsSkipVerify)
        // Errors name the option and the host path the user wrote, not the path inside the plugin.
        config.labels = TLSConfig.Labels(
            ca: "nats-tls-ca-cert \((n.tlsCACert ?? "").debugDescription)",
            cert: "nats-tls-cert \((n.tlsCert ?? "").debugDescription)",
            key: "nats-tls-key \((n.tlsKey ?? "").debugDescription)")
        if config.keyFile != nil && config.certFile == nil {
            throw OptionError("nats-tls-key needs nats-tls-cert")
        }
        if config.certFile != nil && config.keyFile == nil {
            throw OptionError("nats-tls-cert needs nats-tls-key")
        }
        do { return try TLSContext(config) } catch {
            throw OptionError(error.message)
        }
    }

    /// The TLS context for a Logentries endpoint (nil: plain TCP): the system CAs, shared,
    /// or the given CA file (a host path), loaded now so a bad file fails StartLogging.
    private func logentriesTLS(_ l: LogentriesOptions) throws(OptionError) -> TLSContext? {
        guard l.tls else { return nil }
        guard let ca = l.caCert else {
            do { return try systemTLS.context() } catch {
                throw OptionError("cannot load the system CA certificates: \(error.message)")
            }
        }
        var config = TLSConfig(caFile: try hostPaths.resolve(ca, option: "logentries-tls-ca-cert"))
        config.labels = TLSConfig.Labels(ca: "logentries-tls-ca-cert \(ca.debugDescription)", cert: "client certificate", key: "client key")
        do { return try TLSContext(config) } catch {
            throw OptionError(error.message)
        }
    }

    /// Opens the daemon's FIFO for reading without blocking, and enlarges the pipe to absorb bursts.
    private func openFIFO(_ path: String) throws(OptionError) -> Int32 {
        do { return try Files.openFIFO(path: path, pipeBytes: 1 << 20) } catch {
            throw OptionError("cannot open the log stream \(path): \(error)")
        }
    }

    /// Waits (up to `timeoutNs` from now) until every buffer is delivered; what is not by then
    /// is spooled to the state dir per stream (sent first after the restart), or counted as
    /// dropped where it cannot be. True when everything was delivered.
    public func drain(timeoutNs: Int64) -> Bool {
        let deadline = Clock.monotonicNanos() + timeoutNs
        loop.readAll(timeoutNs: timeoutNs / 2)
        while Clock.monotonicNanos() < deadline {
            let busy = loop.streams.contains { !$0.sink.buffer.isEmpty } || nats.all.contains { $0.hasUndelivered }
                || logentries.all.contains { $0.hasUndelivered } || logentriesHTTP.all.contains { $0.hasUndelivered }
            if !busy { return true }
            usleep(20_000)
        }
        spoolUndelivered()
        return false
    }

    /// The shutdown spool: each running stream's unconfirmed lines, written beside its state.
    /// Streams that already ended have no state to come back to: their lines are counted as
    /// dropped, with the count in the log.
    private func spoolUndelivered() {
        let running = Set(loop.streams.map { ObjectIdentifier($0.sink.buffer) })
        for s in loop.streams {
            let (records, lines) = s.sink.buffer.unconfirmed()
            guard lines > 0 else { continue }
            if let failure = state.saveSpool(file: s.file, records: records) {
                s.sink.buffer.dropAll()
                Log.error("cannot spool \(lines) undelivered line(s) at shutdown (\(failure)); they are dropped", container: s.containerName)
            } else {
                Log.warn("spooled \(lines) undelivered line(s) at shutdown; they are sent first when the plugin starts again", container: s.containerName)
            }
        }
        let ended = nats.all.flatMap { $0.current.map(\.buffer) } + logentries.all.flatMap { $0.current.map(\.buffer) }
        for buffer in ended where !running.contains(ObjectIdentifier(buffer)) {
            let lines = buffer.dropAll()
            if lines > 0 { Log.error("dropped \(lines) undelivered line(s) of an ended container at shutdown") }
        }
    }

    /// Puts spooled records into a new stream's buffer, ahead of anything read from its FIFO.
    private func deliverSpool(_ records: [UInt8], into sink: StreamSink) -> Int {
        let lines = records.withUnsafeBytes { p in
            var i = 0, n = 0
            while i + 4 <= p.count { i += 4 + EventBuffer.recordLength(p, at: i); n += 1 }
            return n
        }
        records.withUnsafeBytes { _ = sink.buffer.append(records: $0, lines: lines, lineBytes: 0) }
        sink.notify()
        return lines
    }

    public func metricsText() -> String {
        Metrics.render(streams: loop.streams, connections: nats.all, logentries: logentries.all, logentriesHTTP: logentriesHTTP.all)
    }
}
