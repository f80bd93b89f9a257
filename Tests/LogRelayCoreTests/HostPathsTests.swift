import XCTest
@testable import LogRelayCore

/// TLS file options are host paths; inside the plugin they are read under the hostfs mount.
final class HostPathsTests: XCTestCase {
    func testOutsideAPluginPathsAreUsedAsGiven() throws {
        XCTAssertEqual(try HostPaths(mountPoint: nil).resolve("/etc/ssl/ca.pem", option: "nats-tls-ca-cert"), "/etc/ssl/ca.pem")
    }

    func testTheWholeHostMountedAtHost() throws {
        let p = HostPaths(mountPoint: "/host", source: "/")
        XCTAssertEqual(try p.resolve("/etc/ssl/ca.pem", option: "nats-tls-ca-cert"), "/host/etc/ssl/ca.pem")
    }

    func testANarrowedSourceMapsOnlyPathsBelowIt() throws {
        let p = HostPaths(mountPoint: "/host", source: "/etc/logrelay/")
        XCTAssertEqual(try p.resolve("/etc/logrelay/tls/ca.pem", option: "x"), "/host/tls/ca.pem")
        XCTAssertEqual(try p.resolve("/etc/logrelay", option: "x"), "/host")
        for outside in ["/etc/logrelayx/ca.pem", "/etc/passwd", "/etc"] {
            XCTAssertThrowsError(try p.resolve(outside, option: "nats-tls-key")) { e in
                let m = (e as? OptionError)?.message ?? ""
                XCTAssertTrue(m.contains("nats-tls-key") && m.contains(outside) && m.contains("hostfs.source"), m)
            }
        }
    }

    func testRelativePathsAreRefused() {
        XCTAssertThrowsError(try HostPaths(mountPoint: "/host").resolve("ca.pem", option: "logentries-tls-ca-cert")) { e in
            XCTAssertTrue(((e as? OptionError)?.message ?? "").contains("absolute"))
        }
    }

    func testMountinfoEscapesAreDecoded() {
        XCTAssertEqual(HostPaths.unescape("/a\\040b\\011c\\134d"), "/a b\tc\\d")
    }
}
