// Streams with the same connection settings share one connection per sink: the registry
// finds it or starts it, and lets it go when it has had no streams for a while.
import Synchronization

public final class ConnectionRegistry<P: SinkProtocol, Key: Hashable & Sendable>: Sendable {
    private let connections = Mutex<[Key: SinkConnection<P>]>([:])

    public init() {}

    /// The connection for `key` (made by `make` and started in the background if new), with
    /// the stream attached. Never blocks on the network.
    public func attach(_ a: SinkAttachment<P.Route>, key: Key, make: () -> P) -> SinkConnection<P> {
        connections.withLock { map in
            if let c = map[key], c.status.state != .closed {
                c.attach(a)
                return c
            }
            let c = SinkConnection(proto: make(), onUnused: { [weak self] conn in
                guard let self else { return true }
                return self.removeIfUnused(conn, key: key)
            })
            map[key] = c
            c.attach(a)
            c.start()
            return c
        }
    }

    private func removeIfUnused(_ conn: SinkConnection<P>, key: Key) -> Bool {
        connections.withLock { map in
            guard conn.isUnused() else { return false }
            if map[key] === conn { map[key] = nil }
            return true
        }
    }

    public var all: [SinkConnection<P>] { connections.withLock { Array($0.values) } }

    public func stopAll() {
        for c in all { c.stop() }
    }
}

public typealias NATSRegistry = ConnectionRegistry<NATSSink, NATSConnectionKey>
public typealias LogentriesRegistry = ConnectionRegistry<LogentriesSink, LogentriesConnectionKey>
public typealias LogentriesHTTPRegistry = ConnectionRegistry<LogentriesHTTPSink, LogentriesHTTPConnectionKey>
