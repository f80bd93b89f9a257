// swift-tools-version:6.0
import PackageDescription

// logrelay: a Docker logging plugin (NATS and Logentries sinks).
// No package dependencies: Foundation(Essentials), Dispatch, Glibc and OpenSSL only.
let package = Package(
    name: "logrelay",
    targets: [
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        .target(
            name: "LogRelayCore",
            dependencies: ["COpenSSL", "CSystem"],
            path: "Sources/LogRelayCore"
        ),
        .executableTarget(
            name: "logrelay",
            dependencies: ["LogRelayCore"],
            path: "Sources/logrelay"
        ),
        .testTarget(
            name: "LogRelayCoreTests",
            dependencies: ["LogRelayCore"],
            path: "Tests/LogRelayCoreTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
