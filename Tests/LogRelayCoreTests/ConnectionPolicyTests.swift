import XCTest
@testable import LogRelayCore

/// The reconnect policy, the server pool and the fair gathering that both sinks' connections share.
final class ConnectionPolicyTests: XCTestCase {
    // MARK: Backoff

    func testNoWaitBeforeTheFirstAttemptOrAfterAHealthySession() {
        var b = Backoff()
        XCTAssertEqual(b.delay(), 0)
        b.failed()
        b.sessionEnded(livedNs: Backoff.healthyNs)
        XCTAssertEqual(b.delay(), 0)
    }

    func testDelayDoublesUpToTheCapWithJitterInTheUpperHalf() {
        var b = Backoff(firstNs: 100, maxNs: 1000)
        var bases: [Int64] = []
        for _ in 0..<8 {
            b.failed()
            let low = b.delay { $0.lowerBound }
            let high = b.delay { $0.upperBound }
            bases.append(high)
            XCTAssertEqual(low * 2, high, "between half and all of the base")
        }
        XCTAssertEqual(bases, [100, 200, 400, 800, 1000, 1000, 1000, 1000])
    }

    func testASessionThatDiesSoonAfterItsHandshakeCountsAsAFailure() {
        // A server that accepts and then rejects is retried like one that is down.
        var b = Backoff(firstNs: 100, maxNs: 10_000)
        for _ in 0..<5 { b.sessionEnded(livedNs: 1_000_000) }
        XCTAssertEqual(b.failures, 5)
        XCTAssertEqual(b.delay { $0.upperBound }, 1600)
    }

    func testManyFailuresNeverOverflow() {
        var b = Backoff()
        for _ in 0..<10_000 { b.failed() }
        XCTAssertEqual(b.delay { $0.upperBound }, b.maxNs)
        XCTAssertGreaterThan(b.delay { $0.lowerBound }, 0)
    }

    // MARK: ServerPool

    struct Address: PoolAddress, Equatable {
        let host: String
        let port: Int
    }

    func a(_ port: Int, _ host: String = "127.0.0.1") -> Address { Address(host: host, port: port) }

    func ports(_ pool: ServerPool<Address>) -> [Int] { pool.passOrder.map(\.port) }

    func testExplicitServersAreDeduplicatedAndComeFirstOnEveryPass() {
        var pool = ServerPool(explicit: [a(1), a(2), a(1)])
        XCTAssertEqual(ports(pool), [1, 2])
        pool.replaceDiscovered([(a(3), "n3"), (a(2), "n2"), (a(3), "n3")])
        XCTAssertEqual(ports(pool), [1, 2, 3], "explicit first, repeats and explicit ones skipped")
        XCTAssertEqual(pool.server(ServerIdentity(host: "127.0.0.1", port: 3))?.tlsName, "n3")
    }

    func testEachAnnouncementReplacesTheDiscoveredServersAndIsCapped() {
        var pool = ServerPool(explicit: [a(1)])
        for round in 0..<100 {
            // A hostile server announcing ever more servers: the pool never grows past the cap.
            pool.replaceDiscovered((0..<(round * 10)).map { (a(1000 + $0), "x") })
            XCTAssertLessThanOrEqual(pool.discovered.count, ServerPool<Address>.maxDiscovered)
        }
        pool.replaceDiscovered([(a(7), "x")])
        XCTAssertEqual(ports(pool), [1, 7])
    }

    func testFailuresRemoveDiscoveredServersButExplicitOnesOnlyWithALimit() {
        var pool = ServerPool(explicit: [a(1)])
        pool.replaceDiscovered([(a(2), "x")])
        let one = ServerIdentity(host: "127.0.0.1", port: 1)
        let two = ServerIdentity(host: "127.0.0.1", port: 2)
        for _ in 0...ServerPool<Address>.discoveredAttempts { pool.failed(two); pool.failed(one) }
        XCTAssertEqual(ports(pool), [1], "a discovered server that keeps failing leaves; nats-max-reconnect=-1 keeps explicit ones")

        var limited = ServerPool(explicit: [a(1), a(2)], maxAttempts: 2)
        for _ in 0..<3 { limited.failed(one) }
        XCTAssertEqual(ports(limited), [2])
        limited.failed(two); limited.failed(two)
        limited.connected(two)
        limited.failed(two); limited.failed(two)
        XCTAssertEqual(ports(limited), [2], "a connection resets the count")
        limited.failed(two)
        XCTAssertTrue(limited.isEmpty)
    }

    func testServersAreFoundByIdentityAfterRemovals() {
        var pool = ServerPool(explicit: [a(1), a(2), a(3)], maxAttempts: 0)
        pool.failed(ServerIdentity(host: "127.0.0.1", port: 1))
        // Positions shifted; identity still names the right server.
        XCTAssertEqual(pool.server(ServerIdentity(host: "127.0.0.1", port: 3))?.address, a(3))
        pool.connected(ServerIdentity(host: "127.0.0.1", port: 3))
        pool.failed(ServerIdentity(host: "127.0.0.1", port: 2))
        XCTAssertEqual(ports(pool), [3])
    }

    func testAnnouncedServersKeepTheirFailureCount() {
        var pool = ServerPool(explicit: [a(1)])
        pool.replaceDiscovered([(a(2), "x")])
        let two = ServerIdentity(host: "127.0.0.1", port: 2)
        for _ in 0..<ServerPool<Address>.discoveredAttempts { pool.failed(two) }
        pool.replaceDiscovered([(a(2), "x")])
        pool.failed(two)
        XCTAssertEqual(ports(pool), [1], "re-announcing does not reset a failing server")
    }

    // MARK: Gathering

    func testEveryBackloggedStreamIsServedWithinOneTurnOfShares() {
        let key = LogentriesConnectionKey(host: "127.0.0.1", port: 1, tls: false, caCert: nil)
        let shell = SinkConnection(proto: LogentriesSink(key: key, tls: nil)) { _ in false }   // never started: no thread, no socket
        let streams = 40
        let line = [UInt8](repeating: 0x78, count: 100)
        for i in 0..<streams {
            let buffer = EventBuffer(limit: 8 << 20, policy: .dropNewest)
            let records = lineRecords(Array(repeating: line, count: 2000), source: "stdout", time: 1)
            records.withUnsafeBytes { _ = buffer.append(records: $0, lines: 2000, lineBytes: 200_000) }
            shell.attach(LogentriesAttachment(buffer: buffer, name: "c\(i)",
                                              route: LogentriesWire(token: "t", encoder: EventEncoder(info: LogentriesWireTests.info, tag: "t", attrs: []))))
        }
        // Four shares per call: every stream's turn comes within streams ÷ 4 calls, again and again.
        let perCall = 4
        var rotation = 0
        var scratch: [UInt8] = []
        for turn in 0..<3 {
            var served = Set<String>()
            for _ in 0..<(streams / perCall) {
                let taken = shell.gatherFairly(budget: perCall * SinkConnection<LogentriesSink>.minimumShare,
                                               rotation: &rotation, scratch: &scratch) { a, _, _ in served.insert(a.name) }
                XCTAssertGreaterThan(taken, 0)
            }
            XCTAssertEqual(served.count, streams, "turn \(turn): streams left out: \((0..<streams).map { "c\($0)" }.filter { !served.contains($0) })")
        }
    }
}
