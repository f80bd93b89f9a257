// Docker's logger.Info (protocol doc §2.1) and the StartLogging body that carries it.
// Control path only: decoded once per container with FoundationEssentials' JSONDecoder,
// and encoded again when the plugin persists a stream to re-attach after a restart.
import FoundationEssentials

public struct ContainerInfo: Codable, Sendable, Equatable {
    public var config: [String: String]
    public var containerID: String
    public var containerName: String
    public var containerEntrypoint: String
    public var containerArgs: [String]
    public var containerImageID: String
    public var containerImageName: String
    public var containerCreated: String
    public var containerEnv: [String]
    public var containerLabels: [String: String]
    public var logPath: String
    public var daemonName: String

    public init(config: [String: String] = [:], containerID: String = "", containerName: String = "",
                containerEntrypoint: String = "", containerArgs: [String] = [], containerImageID: String = "",
                containerImageName: String = "", containerCreated: String = "", containerEnv: [String] = [],
                containerLabels: [String: String] = [:], logPath: String = "", daemonName: String = "docker") {
        self.config = config
        self.containerID = containerID
        self.containerName = containerName
        self.containerEntrypoint = containerEntrypoint
        self.containerArgs = containerArgs
        self.containerImageID = containerImageID
        self.containerImageName = containerImageName
        self.containerCreated = containerCreated
        self.containerEnv = containerEnv
        self.containerLabels = containerLabels
        self.logPath = logPath
        self.daemonName = daemonName
    }

    enum CodingKeys: String, CodingKey {
        case config = "Config", containerID = "ContainerID", containerName = "ContainerName"
        case containerEntrypoint = "ContainerEntrypoint", containerArgs = "ContainerArgs"
        case containerImageID = "ContainerImageID", containerImageName = "ContainerImageName"
        case containerCreated = "ContainerCreated", containerEnv = "ContainerEnv"
        case containerLabels = "ContainerLabels", logPath = "LogPath", daemonName = "DaemonName"
    }

    // Go marshals nil maps/slices as null, and old daemons or hand-written test bodies
    // may omit keys: both mean "empty".
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decodeIfPresent([String: String].self, forKey: .config) ?? [:]
        containerID = try c.decodeIfPresent(String.self, forKey: .containerID) ?? ""
        containerName = try c.decodeIfPresent(String.self, forKey: .containerName) ?? ""
        containerEntrypoint = try c.decodeIfPresent(String.self, forKey: .containerEntrypoint) ?? ""
        containerArgs = try c.decodeIfPresent([String].self, forKey: .containerArgs) ?? []
        containerImageID = try c.decodeIfPresent(String.self, forKey: .containerImageID) ?? ""
        containerImageName = try c.decodeIfPresent(String.self, forKey: .containerImageName) ?? ""
        containerCreated = try c.decodeIfPresent(String.self, forKey: .containerCreated) ?? ""
        containerEnv = try c.decodeIfPresent([String].self, forKey: .containerEnv) ?? []
        containerLabels = try c.decodeIfPresent([String: String].self, forKey: .containerLabels) ?? [:]
        logPath = try c.decodeIfPresent(String.self, forKey: .logPath) ?? ""
        daemonName = try c.decodeIfPresent(String.self, forKey: .daemonName) ?? "docker"
    }
}

/// `{"File":"/run/docker/logging/<id>","Info":{...}}`.
public struct StartLoggingRequest: Sendable {
    public var file: String
    public var info: ContainerInfo

    public init(file: String, info: ContainerInfo) {
        self.file = file
        self.info = info
    }

    struct Wire: Decodable {
        var File: String?
        var Info: ContainerInfo?
    }

    public static func parse(_ body: [UInt8]) throws(OptionError) -> StartLoggingRequest {
        guard !body.isEmpty else { throw OptionError("empty StartLogging request body") }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(body))
        } catch let error as DecodingError {
            throw OptionError("invalid StartLogging request body: \(describe(error))")
        } catch {
            throw OptionError("invalid StartLogging request body")
        }
        guard let file = wire.File, !file.isEmpty else {
            throw OptionError("StartLogging request has no File")
        }
        return StartLoggingRequest(file: file, info: wire.Info ?? ContainerInfo())
    }

    /// Where and what went wrong, without quoting values (Config may hold secrets).
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty ? "the top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let ctx) where ctx.codingPath.isEmpty: return "not valid JSON"
        case .dataCorrupted(let ctx): return "bad value at \(path(ctx.codingPath))"
        case .typeMismatch(let type, let ctx): return "expected \(type) at \(path(ctx.codingPath))"
        case .valueNotFound(let type, let ctx): return "expected \(type) at \(path(ctx.codingPath)), found null"
        case .keyNotFound(let key, let ctx): return "missing key \(key.stringValue) at \(path(ctx.codingPath))"
        @unknown default: return "not a StartLogging request"
        }
    }
}
