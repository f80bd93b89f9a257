// Streams with the same Logentries endpoint settings share one connection; each of their
// lines carries the stream's own token. Also keeps the one TLS context with the system
// CAs, so StartLogging does not parse the CA bundle for every container.
import Synchronization

public final class LogentriesRegistry: Sendable {
    private let connections = Mutex<[LogentriesConnectionKey: LogentriesConnection]>([:])
    private let systemTLS = Mutex<TLSContext?>(nil)

    public init() {}

    /// The connection for these options, started in the background if new. Never blocks on the network.
    public func attach(_ publisher: LogentriesPublisher, options: LogentriesOptions, tls: TLSContext?) -> LogentriesConnection {
        let key = options.connectionKey
        return connections.withLock { map in
            if let c = map[key], c.status.state != .closed {
                c.attach(publisher)
                return c
            }
            let c = LogentriesConnection(key: key, tls: tls, onIdle: { [weak self] conn in
                guard let self else { return true }
                return self.removeIfUnused(conn)
            })
            map[key] = c
            c.attach(publisher)
            c.start()
            return c
        }
    }

    /// TLS with the system CAs (the bundle shipped in the plugin's rootfs), verified.
    public func systemTLSContext() throws(TLSError) -> TLSContext {
        try systemTLS.withLock { (c: inout TLSContext?) throws(TLSError) -> TLSContext in
            if let c { return c }
            let made = try TLSContext(TLSConfig())
            c = made
            return made
        }
    }

    private func removeIfUnused(_ conn: LogentriesConnection) -> Bool {
        connections.withLock { map in
            guard conn.isUnused() else { return false }
            if map[conn.key] === conn { map[conn.key] = nil }
            return true
        }
    }

    public var all: [LogentriesConnection] { connections.withLock { Array($0.values) } }

    public func stopAll() {
        for c in all { c.stop() }
    }
}
