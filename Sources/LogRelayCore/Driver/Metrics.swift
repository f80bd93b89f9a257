// GET /metrics (the plugin socket, and METRICS_ADDRESS over TCP): Prometheus text format.
//
// Labels, and so the number of series, are bounded by what runs on the host:
//   per container  — container (name), container_id (12 hex), driver (nats|logentries);
//   per connection — driver, connection (the configured servers, redacted: never a
//                    password or token), plus server / state / error on the info metrics;
//   process        — none (build_info: version).
// A container's series exist while it logs through the plugin. Secrets never appear here.
public enum Metrics {
    public static func render(streams: [LogStream], connections: [NATSConnection], logentries: [LogentriesConnection] = [],
                              logentriesHTTP: [LogentriesHTTPConnection] = [],
                              process: ProcessStats = .current(), now: Double = Double(Clock.wallNanos()) / 1e9) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ rows: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in rows { out += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(labels)} \(value)\n" }
        }

        // Per container. A restarted container can have its old stream still ending while the
        // new one starts: one series set per container, summed, so no series is duplicated.
        var byContainer: [String: ContainerRow] = [:]
        for s in streams {
            let key = "container=\"\(escape(s.containerName))\",container_id=\"\(escape(s.containerID))\",driver=\"\(s.driver)\""
            byContainer[key, default: ContainerRow()].add(s)
        }
        let rows = byContainer.sorted { $0.key < $1.key }
        func perContainer(_ name: String, _ type: String, _ help: String, _ value: (ContainerRow) -> Int) {
            family(name, type, help, rows.map { ($0.key, "\(value($0.value))") })
        }
        perContainer("logrelay_container_lines_received_total", "counter",
                     "Log lines read from the container (with multiline grouping: events).") { $0.c.receivedLines }
        perContainer("logrelay_container_bytes_received_total", "counter", "Bytes of the lines read from the container.") { $0.c.receivedBytes }
        perContainer("logrelay_container_lines_published_total", "counter", "Lines the sink confirmed (NATS: flushed and PONGed; Logentries: TCP-acknowledged).") { $0.c.publishedLines }
        perContainer("logrelay_container_bytes_published_total", "counter", "Bytes of the lines the sink confirmed.") { $0.c.publishedBytes }
        perContainer("logrelay_container_lines_dropped_total", "counter",
                     "Lines lost: the buffer was full, the sink gave up, or the line cannot fit what the server accepts.") { $0.c.droppedLines }
        perContainer("logrelay_container_bytes_dropped_total", "counter", "Bytes of the dropped lines.") { $0.c.droppedBytes }
        perContainer("logrelay_container_lines_rejected_total", "counter", "Lines the server refused (permissions, invalid subject).") { $0.c.rejectedLines }
        perContainer("logrelay_container_bytes_rejected_total", "counter", "Bytes of the rejected lines.") { $0.c.rejectedBytes }
        perContainer("logrelay_container_lines_resent_total", "counter",
                     "Lines sent again after a connection failed before confirming them (possible duplicates).") { $0.c.resentLines }
        perContainer("logrelay_container_lines_duplicate_total", "counter",
                     "Published lines a JetStream stream already held and did not store again (replays after a reconnect).") { $0.c.duplicateLines }
        perContainer("logrelay_container_buffer_bytes", "gauge", "Bytes held for the sink (the lines and a few bytes of framing each).") { $0.c.bufferedBytes }
        perContainer("logrelay_container_buffer_lines", "gauge",
                     "Lines held for the sink (received = published + dropped + rejected + buffered).") { $0.c.bufferedLines }
        perContainer("logrelay_container_buffer_limit_bytes", "gauge", "The buffer's size (buffer-size).") { $0.limit }
        perContainer("logrelay_container_corrupt_frames_total", "counter", "Corrupt frames discarded from the container's log stream.") { $0.corruptFrames }

        // Per connection.
        var conns: [ConnectionRow] = connections.map {
            ConnectionRow(driver: "nats", connection: $0.proto.pool.explicit.map { "\($0.address)" }.joined(separator: ","),
                          status: $0.status, streams: $0.attachmentCount)
        }
        conns += logentries.map {
            ConnectionRow(driver: "logentries", connection: ($0.proto.key.tls ? "tls://" : "tcp://") + $0.proto.pool.explicit.map { "\($0.address)" }.joined(separator: ","),
                          status: $0.status, streams: $0.attachmentCount)
        }
        conns += logentriesHTTP.map {
            ConnectionRow(driver: "logentries", connection: $0.proto.endpointLabel, status: $0.status, streams: $0.attachmentCount)
        }
        conns.sort { ($0.driver, $0.connection) < ($1.driver, $1.connection) }
        // Connections differing only in what labels never show (a password, a certificate)
        // would repeat a label set: later ones are numbered.
        var seen: [String: Int] = [:]
        for i in conns.indices {
            let n = seen[conns[i].labels, default: 0] + 1
            seen[conns[i].labels] = n
            if n > 1 { conns[i].connection += " #\(n)" }
        }
        func perConnection(_ name: String, _ type: String, _ help: String, _ value: (ConnectionRow) -> Int) {
            family(name, type, help, conns.map { ($0.labels, "\(value($0))") })
        }
        perConnection("logrelay_connection_up", "gauge", "1 while the connection to the server is up.") { $0.status.state == .connected ? 1 : 0 }
        family("logrelay_connection_state", "gauge",
               "1 for the connection's current state (idle: closed with nothing to send; connecting; connected; disconnected: waiting to retry; closed).",
               conns.flatMap { c in ConnectionStatus.State.allStates.map { ("\(c.labels),state=\"\($0.rawValue)\"", c.status.state == $0 ? "1" : "0") } })
        perConnection("logrelay_connection_connects_total", "counter", "Connections established (handshake completed).") { $0.status.connects }
        perConnection("logrelay_connection_reconnects_total", "counter", "Times an established connection was lost (idle closes not counted).") { $0.status.reconnects }
        perConnection("logrelay_connection_lines_resent_total", "counter",
                      "Confirmed lines sent again because the connection failed within the grace period (possible duplicates).") { $0.status.resentLines }
        perConnection("logrelay_connection_streams", "gauge", "Container streams sharing the connection.") { $0.streams }
        family("logrelay_connection_server_info", "gauge", "The server the connection uses now, as a label.",
               conns.filter { !$0.status.server.isEmpty }.map { ("\($0.labels),server=\"\(escape($0.status.server))\"", "1") })
        family("logrelay_connection_last_error_info", "gauge", "The connection's last error (cut at 200 characters), as a label.",
               conns.filter { !$0.status.lastError.isEmpty }.map { ("\($0.labels),error=\"\(escape(String($0.status.lastError.prefix(200))))\"", "1") })

        // The process.
        family("logrelay_build_info", "gauge", "The plugin's version, as a label.", [("version=\"\(escape(logrelayVersion))\"", "1")])
        family("logrelay_containers", "gauge", "Container streams being read.", [("", "\(streams.count)")])
        family("logrelay_connections", "gauge", "Open sink connections.",
               [("driver=\"nats\"", "\(connections.count)"), ("driver=\"logentries\"", "\(logentries.count + logentriesHTTP.count)")])
        family("process_cpu_seconds_total", "counter", "User and system CPU time of the plugin process, in seconds.", [("", seconds(process.cpuSeconds))])
        family("process_resident_memory_bytes", "gauge", "Resident memory of the plugin process.", [("", "\(process.residentBytes)")])
        family("process_virtual_memory_bytes", "gauge", "Virtual memory of the plugin process.", [("", "\(process.virtualBytes)")])
        family("process_open_fds", "gauge", "Open file descriptors of the plugin process.", [("", "\(process.openFDs)")])
        family("process_max_fds", "gauge", "The plugin process's limit on open file descriptors.", [("", "\(process.maxFDs)")])
        family("process_threads", "gauge", "Threads of the plugin process.", [("", "\(process.threads)")])
        family("process_start_time_seconds", "gauge", "When the plugin process started, in Unix seconds.", [("", seconds(process.startTimeSeconds))])
        family("logrelay_uptime_seconds", "gauge", "Seconds since the plugin process started.",
               [("", seconds(process.startTimeSeconds > 0 ? max(0, now - process.startTimeSeconds) : 0))])
        return out
    }

    private struct ContainerRow {
        var c = EventBuffer.Counters()
        var limit = 0
        var corruptFrames = 0

        mutating func add(_ s: LogStream) {
            let n = s.sink.buffer.counters
            c.receivedLines += n.receivedLines; c.receivedBytes += n.receivedBytes
            c.publishedLines += n.publishedLines; c.publishedBytes += n.publishedBytes
            c.droppedLines += n.droppedLines; c.droppedBytes += n.droppedBytes
            c.rejectedLines += n.rejectedLines; c.rejectedBytes += n.rejectedBytes
            c.resentLines += n.resentLines; c.duplicateLines += n.duplicateLines
            c.bufferedBytes += n.bufferedBytes; c.bufferedLines += n.bufferedLines
            limit += s.sink.buffer.limit
            corruptFrames += s.corruptFrames
        }
    }

    private struct ConnectionRow {
        let driver: String
        var connection: String
        let status: ConnectionStatus
        let streams: Int
        var labels: String { "driver=\"\(driver)\",connection=\"\(Metrics.escape(connection))\"" }
    }

    private static func seconds(_ v: Double) -> String {
        let ms = (v * 1000).rounded()
        return "\(Int(ms) / 1000).\(String(Int(ms) % 1000 + 1000).dropFirst())"
    }

    /// A label value: backslash, double quote and line feed escaped (the format's only escapes).
    static func escape(_ s: String) -> String {
        var o = ""
        for u in s.unicodeScalars {
            switch u {
            case "\\": o += "\\\\"
            case "\"": o += "\\\""
            case "\n": o += "\\n"
            default: o.unicodeScalars.append(u)
            }
        }
        return o
    }
}

extension ConnectionStatus.State {
    static let allStates: [ConnectionStatus.State] = [.idle, .connecting, .connected, .disconnected, .closed]
}

/// The METRICS_ADDRESS listener: the same text as the plugin socket's GET /metrics, over TCP,
/// so Prometheus can scrape it (the plugin shares the host's network). Nothing else is
/// served there.
public enum MetricsEndpoint {
    /// Listens on "ip:port" or "[ipv6]:port" (port 0: any free port); returns the server and
    /// the address it is bound to.
    public static func listen(address: String, driver: PluginDriver) throws(OptionError) -> (server: HTTPServer, address: String) {
        let hp = try HostPortParser.split(address)
        guard let port = hp.port else { throw OptionError("needs a port, like 127.0.0.1:9464") }
        let bound: (fd: Int32, port: Int)
        do { bound = try TCPSocket.listen(host: hp.host, port: port) } catch {
            throw OptionError("\(error) (the host must be an IP address, like 127.0.0.1 or 0.0.0.0)")
        }
        let server = HTTPServer(listening: bound.fd) { req in handle(req, driver: driver) }
        return (server, (hp.host.contains(":") ? "[\(hp.host)]" : hp.host) + ":\(bound.port)")
    }

    static func handle(_ req: HTTPRequest, driver: PluginDriver) -> HTTPReply {
        switch (req.method, req.path) {
        case ("GET", "/metrics"):
            return HTTPReply(status: 200, body: Array(driver.metricsText().utf8), contentType: "text/plain; version=0.0.4")
        case (_, "/metrics"):
            return HTTPReply(status: 405, body: Array("only GET is allowed on /metrics\n".utf8), contentType: "text/plain")
        default:
            return HTTPReply(status: 404, body: Array("not found: this port serves only GET /metrics\n".utf8), contentType: "text/plain")
        }
    }
}
