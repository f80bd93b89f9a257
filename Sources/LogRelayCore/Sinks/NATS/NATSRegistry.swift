// Containers with the same connection options share one NATS connection.
import Synchronization

public final class NATSRegistry: Sendable {
    private let connections = Mutex<[NATSConnectionKey: NATSConnection]>([:])

    public init() {}

    /// The connection for these options, started in the background if new. Never blocks on the network.
    public func attach(_ publisher: NATSPublisher, options: NATSOptions, tls: TLSContext?) -> NATSConnection {
        let key = options.connectionKey
        return connections.withLock { map in
            if let c = map[key], c.status.state != .closed {
                c.attach(publisher)
                return c
            }
            let c = NATSConnection(key: key, options: options, tls: tls, onIdle: { [weak self] conn in
                guard let self else { return true }
                return self.removeIfIdle(conn)
            })
            map[key] = c
            c.attach(publisher)
            c.start()
            return c
        }
    }

    private func removeIfIdle(_ conn: NATSConnection) -> Bool {
        connections.withLock { map in
            guard conn.isIdle() else { return false }
            if map[conn.key] === conn { map[conn.key] = nil }
            return true
        }
    }

    public var all: [NATSConnection] { connections.withLock { Array($0.values) } }

    public func stopAll() {
        for c in all { c.stop() }
    }
}
