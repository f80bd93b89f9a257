// The one reconnect policy of both sinks: capped exponential backoff with jitter. A
// connection that fails soon after its handshake counts as a failure too, so a server that
// accepts and then rejects is retried as slowly as one that is down.
public struct Backoff: Sendable, Equatable {
    public let firstNs: Int64
    public let maxNs: Int64
    /// Failures in a row since the last healthy connection.
    public private(set) var failures = 0

    /// A session that lived this long was healthy: the next attempt goes at once.
    public static let healthyNs: Int64 = 5_000_000_000

    public init(firstNs: Int64 = 200_000_000, maxNs: Int64 = 10_000_000_000) {
        self.firstNs = firstNs
        self.maxNs = maxNs
    }

    public mutating func failed() { failures = min(failures + 1, 62) }
    public mutating func reset() { failures = 0 }

    /// A session ended after `livedNs`: healthy ones reset the policy, short ones count as failures.
    public mutating func sessionEnded(livedNs: Int64) {
        if livedNs >= Backoff.healthyNs { reset() } else { failed() }
    }

    /// The wait before the next attempt: 0 after success, else between half and all of a
    /// base that doubles per failure up to `maxNs`, so restarted servers are not hit in step.
    public func delay(random: (ClosedRange<Int64>) -> Int64 = { Int64.random(in: $0) }) -> Int64 {
        guard failures > 0 else { return 0 }
        let shift = min(failures - 1, 40)
        let base = firstNs > (maxNs >> shift) ? maxNs : min(firstNs << shift, maxNs)
        return base / 2 + random(0...(base / 2))
    }
}
