// The servers a connection may use: those the options name (explicit: always kept, tried
// first on every pass) and those the cluster announced (discovered: replaced as a whole by
// each announcement, de-duplicated and capped, so a hostile server cannot grow the pool).
// Servers are found by identity (host and port), never by a position that removals shift.
public protocol PoolAddress: Sendable {
    var host: String { get }
    var port: Int { get }
}

public struct ServerIdentity: Hashable, Sendable {
    public let host: String
    public let port: Int
}

public struct ServerPool<Address: PoolAddress>: Sendable {
    public struct Server: Sendable {
        public let address: Address
        public let explicit: Bool
        /// The name the server's certificate must carry.
        public let tlsName: String
        public internal(set) var failures = 0
        public var identity: ServerIdentity { ServerIdentity(host: address.host, port: address.port) }
    }

    public static var maxDiscovered: Int { 32 }
    /// A discovered server that failed this often in a row leaves the pool until announced again.
    public static var discoveredAttempts: Int { 3 }

    public private(set) var explicit: [Server]
    public private(set) var discovered: [Server] = []
    /// Attempts per explicit server before it is removed; -1 keeps it forever.
    public let maxAttempts: Int

    public init(explicit addresses: [Address], maxAttempts: Int = -1, tlsName: (Address) -> String = { $0.host }) {
        var seen = Set<ServerIdentity>()
        explicit = addresses.compactMap { a in
            seen.insert(ServerIdentity(host: a.host, port: a.port)).inserted ? Server(address: a, explicit: true, tlsName: tlsName(a)) : nil
        }
        self.maxAttempts = maxAttempts
    }

    public var isEmpty: Bool { explicit.isEmpty && discovered.isEmpty }
    public var count: Int { explicit.count + discovered.count }

    /// The order of one pass: every explicit server, then the discovered ones.
    public var passOrder: [ServerIdentity] { (explicit + discovered).map(\.identity) }

    public func server(_ id: ServerIdentity) -> Server? {
        explicit.first { $0.identity == id } ?? discovered.first { $0.identity == id }
    }

    public mutating func failed(_ id: ServerIdentity) {
        if let i = explicit.firstIndex(where: { $0.identity == id }) {
            explicit[i].failures += 1
            if maxAttempts >= 0 && explicit[i].failures > maxAttempts { explicit.remove(at: i) }
        } else if let i = discovered.firstIndex(where: { $0.identity == id }) {
            discovered[i].failures += 1
            let limit = maxAttempts >= 0 ? min(maxAttempts, ServerPool.discoveredAttempts) : ServerPool.discoveredAttempts
            if discovered[i].failures > limit { discovered.remove(at: i) }
        }
    }

    public mutating func connected(_ id: ServerIdentity) {
        if let i = explicit.firstIndex(where: { $0.identity == id }) { explicit[i].failures = 0 }
        if let i = discovered.firstIndex(where: { $0.identity == id }) { discovered[i].failures = 0 }
    }

    /// Replaces the discovered servers with this announcement (explicit ones and repeats
    /// skipped, at most `maxDiscovered`); servers announced again keep their failure count.
    public mutating func replaceDiscovered(_ announced: [(address: Address, tlsName: String)]) {
        var seen = Set(explicit.map(\.identity))
        var next: [Server] = []
        for (address, tlsName) in announced where next.count < ServerPool.maxDiscovered {
            let id = ServerIdentity(host: address.host, port: address.port)
            guard seen.insert(id).inserted else { continue }
            let failures = discovered.first { $0.identity == id }?.failures ?? 0
            next.append(Server(address: address, explicit: false, tlsName: tlsName, failures: failures))
        }
        discovered = next
    }
}
