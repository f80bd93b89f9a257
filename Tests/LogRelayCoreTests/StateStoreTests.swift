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

    func request(_ file: String, env: [String] = []) -> StartLoggingRequest {
        StartLoggingRequest(file: file, info: ContainerInfo(containerID: String(repeating: "c", count: 64), containerEnv: env))
    }

    func loadedFiles(_ store: StateStore) -> Set<String> {
        Set(store.load().compactMap { try? StartLoggingRequest.parse($0).file })
    }

    func testSavedRequestsAreLoadedAgainAndRemovedWhenTheStreamEnds() {
        let store = StateStore(directory: dir)
        XCTAssertNil(store.save(request(fifo), options: CommonOptions()))
        XCTAssertNil(store.save(request(fifo + "2"), options: CommonOptions()))
        XCTAssertEqual(loadedFiles(StateStore(directory: dir)), [fifo, fifo + "2"])
        store.remove(file: fifo)
        XCTAssertEqual(loadedFiles(store), [fifo + "2"])
    }

    func testOnlyTheSelectedEnvironmentIsKept() throws {
        let store = StateStore(directory: dir)
        let options = CommonOptions(env: ["KEEP"], envRegex: "^APP_")
        XCTAssertNil(store.save(request(fifo, env: ["KEEP=1", "SECRET=hunter2", "APP_X=2", "NOVALUE"]), options: options))
        let saved = try StartLoggingRequest.parse(XCTUnwrap(store.load().first))
        XCTAssertEqual(saved.info.containerEnv, ["KEEP=1", "APP_X=2"])
    }

    func testSavingAgainReplacesTheStateAtomically() {
        let store = StateStore(directory: dir)
        XCTAssertNil(store.save(request(fifo, env: ["A=1"]), options: CommonOptions(env: ["A"])))
        XCTAssertNil(store.save(request(fifo, env: ["A=2"]), options: CommonOptions(env: ["A"])))
        XCTAssertEqual(store.load().compactMap { try? StartLoggingRequest.parse($0).info.containerEnv }, [["A=2"]])
        XCTAssertEqual(try FileManagerless.list(dir).filter { $0.hasSuffix(".tmp") }, [])
    }

    func testAFileNameThatCannotNameAStateFileIsAnError() {
        let store = StateStore(directory: dir)
        // The state file is named after the FIFO's id: anything but a plain id is refused.
        for file in ["/run/docker/logging/..", "/run/docker/logging/a;b", "/", "/run/" + String(repeating: "a", count: 129)] {
            XCTAssertNotNil(store.save(request(file), options: CommonOptions()), file)
        }
        XCTAssertEqual(store.load(), [])
    }

    func testNestedDirectoriesAreMadeAndAnUnwritableDirectoryPersistsNothing() {
        let nested = StateStore(directory: dir + "/nested/deeper")
        XCTAssertNotNil(nested.directory)
        XCTAssertNil(nested.save(request(fifo), options: CommonOptions()))
        unlink(dir + "/nested/deeper/" + String(repeating: "ab", count: 32) + ".json")
        let none = StateStore(directory: nil)
        XCTAssertNil(none.save(request(fifo), options: CommonOptions()), "not persisting is not a failure")
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
