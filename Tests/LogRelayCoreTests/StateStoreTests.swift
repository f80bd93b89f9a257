import Glibc
import XCTest
@testable import LogRelayCore

final class StateStoreTests: XCTestCase {
    var dir = ""

    override func setUp() {
        var template = Array("/tmp/logrelay-state-XXXXXX".utf8CString)
        dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    override func tearDown() {
        for name in (try? FileManagerless.list(dir)) ?? [] { unlink(dir + "/" + name) }
        rmdir(dir + "/nested/deeper"); rmdir(dir + "/nested"); rmdir(dir)
    }

    let fifo = "/run/docker/logging/" + String(repeating: "ab", count: 32)

    func testSavedBodiesAreLoadedAgainAndRemovedWhenTheStreamEnds() {
        let store = StateStore(directory: dir)
        XCTAssertNil(store.save(file: fifo, body: Array(#"{"File":"x"}"#.utf8)))
        XCTAssertNil(store.save(file: fifo + "2", body: Array("second".utf8)))
        XCTAssertEqual(Set(StateStore(directory: dir).load()), [Array(#"{"File":"x"}"#.utf8), Array("second".utf8)])
        store.remove(file: fifo)
        XCTAssertEqual(store.load(), [Array("second".utf8)])
    }

    func testSavingAgainReplacesTheBodyAtomically() {
        let store = StateStore(directory: dir)
        XCTAssertNil(store.save(file: fifo, body: Array("old".utf8)))
        XCTAssertNil(store.save(file: fifo, body: Array("new".utf8)))
        XCTAssertEqual(store.load(), [Array("new".utf8)])
        XCTAssertEqual(try FileManagerless.list(dir).filter { $0.hasSuffix(".tmp") }, [])
    }

    func testAFileNameThatCannotNameAStateFileIsAnError() {
        let store = StateStore(directory: dir)
        // The state file is named after the FIFO's id: anything but a plain id is refused.
        for file in ["/run/docker/logging/..", "/run/docker/logging/a;b", "/", "/run/" + String(repeating: "a", count: 129)] {
            XCTAssertNotNil(store.save(file: file, body: [1]), file)
        }
        XCTAssertEqual(store.load(), [])
    }

    func testNestedDirectoriesAreMadeAndAnUnwritableDirectoryPersistsNothing() {
        let nested = StateStore(directory: dir + "/nested/deeper")
        XCTAssertNotNil(nested.directory)
        XCTAssertNil(nested.save(file: fifo, body: [1]))
        unlink(dir + "/nested/deeper/" + String(repeating: "ab", count: 32) + ".json")
        let none = StateStore(directory: nil)
        XCTAssertNil(none.save(file: fifo, body: [1]), "not persisting is not a failure")
        XCTAssertEqual(none.load(), [])
        XCTAssertNil(StateStore(directory: "/proc/no-such-dir").directory)
    }
}

/// Directory listing without Foundation's FileManager (not in FoundationEssentials).
enum FileManagerless {
    static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
