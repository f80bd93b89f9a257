// GET /metrics: Prometheus text format. Labels carry container names and ids and
// redacted server addresses only; secrets never appear here.
public enum Metrics {
    public static func render(streams: [LogStream], connections: [NATSConnection], logentries: [LogentriesConnection] = []) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ rows: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in rows { out += "\(name){\(labels)} \(value)\n" }
        }
        let sorted = streams.sorted { $0.containerName < $1.containerName }
        let rows = sorted.map { s in (labels(s), s.sink.buffer.counters) }
        family("logrelay_lines_received_total", "counter", "Log lines read from the container's stream.", rows.map { ($0.0, "\($0.1.receivedLines)") })
        family("logrelay_bytes_received_total", "counter", "Bytes of log lines read from the container's stream.", rows.map { ($0.0, "\($0.1.receivedBytes)") })
        family("logrelay_events_published_total", "counter", "Events confirmed by the sink.", rows.map { ($0.0, "\($0.1.publishedLines)") })
        family("logrelay_bytes_published_total", "counter", "Event bytes confirmed by the sink.", rows.map { ($0.0, "\($0.1.publishedBytes)") })
        family("logrelay_events_dropped_total", "counter", "Lines dropped: the buffer was full, the sink gave up, or the line cannot fit what the server accepts.", rows.map { ($0.0, "\($0.1.droppedLines)") })
        family("logrelay_bytes_dropped_total", "counter", "Bytes of dropped lines.", rows.map { ($0.0, "\($0.1.droppedBytes)") })
        family("logrelay_lines_rejected_total", "counter", "Lines the server refused (permissions, invalid subject).", rows.map { ($0.0, "\($0.1.rejectedLines)") })
        family("logrelay_bytes_rejected_total", "counter", "Bytes of rejected lines.", rows.map { ($0.0, "\($0.1.rejectedBytes)") })
        family("logrelay_events_resent_total", "counter", "Events sent again after a connection failed (possible duplicates).", rows.map { ($0.0, "\($0.1.resentLines)") })
        family("logrelay_buffer_bytes", "gauge", "Bytes held for the sink.", rows.map { ($0.0, "\($0.1.bufferedBytes)") })
        family("logrelay_buffer_lines", "gauge", "Lines held for the sink (received = published + dropped + rejected + buffered).", rows.map { ($0.0, "\($0.1.bufferedLines)") })
        family("logrelay_corrupt_frames_total", "counter", "Corrupt frames discarded from the stream.", sorted.map { (labels($0), "\($0.corruptFrames)") })

        let conns = connections.map { ($0, $0.status) }
        family("logrelay_nats_connected", "gauge", "1 when the NATS connection is up.", conns.map { (connLabels($0.1), $0.1.state == .connected ? "1" : "0") })
        family("logrelay_nats_reconnects_total", "counter", "Times the NATS connection was lost.", conns.map { (connLabels($0.1), "\($0.1.reconnects)") })
        family("logrelay_nats_streams", "gauge", "Streams sharing the NATS connection.", conns.map { (connLabels($0.1), "\($0.0.attachmentCount)") })
        family("logrelay_nats_last_error_info", "gauge", "The last error of the NATS connection, as a label.", conns.filter { !$0.1.lastError.isEmpty }.map { (connLabels($0.1) + ",error=\"\(escape($0.1.lastError))\"", "1") })

        // Logentries connections: endpoint and state only, never a token.
        let le = logentries.map { ($0, $0.status) }.sorted { $0.1.server < $1.1.server }
        family("logrelay_logentries_connected", "gauge", "1 when the Logentries connection is up.", le.map { (leLabels($0), $0.1.state == .connected ? "1" : "0") })
        family("logrelay_logentries_reconnects_total", "counter", "Times the Logentries connection was lost.", le.map { (leLabels($0), "\($0.1.reconnects)") })
        family("logrelay_logentries_lines_resent_total", "counter", "Acknowledged lines sent again because the Logentries connection failed within the grace period (possible duplicates).", le.map { (leLabels($0), "\($0.1.resentLines)") })
        family("logrelay_logentries_streams", "gauge", "Streams sharing the Logentries connection.", le.map { (leLabels($0), "\($0.0.attachmentCount)") })
        family("logrelay_logentries_last_error_info", "gauge", "The last error of the Logentries connection, as a label.", le.filter { !$0.1.lastError.isEmpty }.map { (leLabels($0) + ",error=\"\(escape($0.1.lastError))\"", "1") })
        return out
    }

    private static func labels(_ s: LogStream) -> String {
        "container=\"\(escape(s.containerName))\",file=\"\(escape(String((s.file.split(separator: "/").last ?? "").prefix(12))))\""
    }

    private static func connLabels(_ st: ConnectionStatus) -> String {
        "server=\"\(escape(st.server))\",state=\"\(st.state.rawValue)\""
    }

    private static func leLabels(_ c: (LogentriesConnection, ConnectionStatus)) -> String {
        "endpoint=\"\(escape(c.1.server))\",tls=\"\(c.0.proto.key.tls)\",state=\"\(c.1.state.rawValue)\""
    }

    static func escape(_ s: String) -> String {
        var o = ""
        for c in s {
            switch c {
            case "\\": o += "\\\\"
            case "\"": o += "\\\""
            case "\n": o += "\\n"
            default: o.append(c)
            }
        }
        return o
    }
}
