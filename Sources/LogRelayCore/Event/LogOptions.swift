// The container's --log-opt map (Info.Config), parsed and validated in one place.
// This is the only file that knows option key names. Everything that can be wrong
// fails here, at StartLogging, so `docker run` fails at once with an actionable
// message; secret values are never echoed.

public struct OptionError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }

    /// A value quoted so a message stays on one line, and cut after 200 characters so it stays readable.
    static func quote<S: StringProtocol>(_ s: S) -> String {
        JSONText.quoted(s, style: .oneLine, maxCharacters: 200)
    }

    /// Strips ASCII spaces and tabs at both ends.
    static func trim(_ s: Substring) -> Substring {
        var s = s
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}

/// The plugin-level `DRIVER` setting.
public enum DriverSetting: String, Sendable { case auto, nats, logentries }

public enum DriverKind: String, Sendable { case nats, logentries }

public enum BufferFullPolicy: String, Sendable, CaseIterable {
    case dropOldest = "drop-oldest", dropNewest = "drop-newest", block
}

public struct CommonOptions: Sendable {
    public var tag: TagTemplate
    public var labels: [String]
    public var labelsRegex: String?
    public var env: [String]
    public var envRegex: String?
    public var bufferSize: Int
    public var bufferFull: BufferFullPolicy
    public var partialMerge: Bool
    /// nil: every line is its own event.
    public var multiline: MultilineOptions?

    public init(tag: TagTemplate = .defaultTag, labels: [String] = [], labelsRegex: String? = nil,
                env: [String] = [], envRegex: String? = nil, bufferSize: Int = LogOptions.defaultBufferSize,
                bufferFull: BufferFullPolicy = .dropOldest, partialMerge: Bool = true, multiline: MultilineOptions? = nil) {
        self.tag = tag
        self.labels = labels
        self.labelsRegex = labelsRegex
        self.env = env
        self.envRegex = envRegex
        self.bufferSize = bufferSize
        self.bufferFull = bufferFull
        self.partialMerge = partialMerge
        self.multiline = multiline
    }
}

/// multiline-pattern / multiline-datetime-format and their limits.
public struct MultilineOptions: Sendable {
    /// A line that matches starts a new event.
    public var start: LinearRegex
    public var maxEventBytes: Int
    /// The last event of a source is sent once no line was added to it for this long.
    public var flushIntervalNs: Int64

    public static let defaultMaxEventBytes = 256 << 10
    public static let defaultFlushIntervalNs: Int64 = 2_000_000_000
    /// The pattern is matched against every line on the stream thread, and matching time
    /// grows with program size: smaller limits than labels-regex's.
    public static let maxPatternBytes = 1024
    public static let maxInstructions = 2000

    public init(start: LinearRegex, maxEventBytes: Int = defaultMaxEventBytes, flushIntervalNs: Int64 = defaultFlushIntervalNs) {
        self.start = start
        self.maxEventBytes = maxEventBytes
        self.flushIntervalNs = flushIntervalNs
    }
}

/// Everything that decides which server a NATS connection talks to and as whom:
/// containers with equal keys can share one connection.
public struct NATSConnectionKey: Hashable, Sendable, CustomStringConvertible {
    public let servers: [NATSServerURL]
    public let user: String?
    public let pass: String?
    public let token: String?
    public let tlsCACert: String?
    public let tlsCert: String?
    public let tlsKey: String?
    public let tlsSkipVerify: Bool
    public let maxReconnect: Int
    public let creds: String?
    public let nkey: String?
    public let jetstream: Bool
    public let expectedStream: String?
    public let tlsFirst: Bool

    /// Redacted, for logs and metrics labels.
    public var description: String {
        var s = servers.map(\.description).joined(separator: ",")
        if let user { s += " user=\(user)" }
        if token != nil { s += " token=***" }
        if tlsSkipVerify { s += " tls-skip-verify" }
        if tlsFirst { s += " tls-first" }
        if jetstream { s += " jetstream" }
        return s
    }
}

public struct NATSOptions: Sendable {
    public var servers: [NATSServerURL]
    /// nil: publish to the rendered `tag`.
    public var subject: TagTemplate?
    /// -1 = retry forever.
    public var maxReconnect: Int
    public var user: String?
    public var pass: String?
    public var token: String?
    public var tlsCACert: String?
    public var tlsCert: String?
    public var tlsKey: String?
    public var tlsSkipVerify: Bool
    /// Host paths of a `.creds` file (user JWT + seed) or a seed file; at most one is set.
    public var creds: String?
    public var nkey: String?
    /// Publish with a reply subject and release lines on the stream's PubAck.
    public var jetstream: Bool
    /// Sent as Nats-Expected-Stream: a PubAck from another stream is an error.
    public var expectedStream: String?
    /// TLS handshake before the server's INFO (servers with `handshake_first`).
    public var tlsFirst: Bool

    public init(servers: [NATSServerURL] = [NATSServerURL(host: "localhost")], subject: TagTemplate? = nil,
                maxReconnect: Int = -1, user: String? = nil, pass: String? = nil, token: String? = nil,
                tlsCACert: String? = nil, tlsCert: String? = nil, tlsKey: String? = nil, tlsSkipVerify: Bool = false,
                creds: String? = nil, nkey: String? = nil, jetstream: Bool = false, expectedStream: String? = nil,
                tlsFirst: Bool = false) {
        self.servers = servers
        self.subject = subject
        self.maxReconnect = maxReconnect
        self.user = user
        self.pass = pass
        self.token = token
        self.tlsCACert = tlsCACert
        self.tlsCert = tlsCert
        self.tlsKey = tlsKey
        self.tlsSkipVerify = tlsSkipVerify
        self.creds = creds
        self.nkey = nkey
        self.jetstream = jetstream
        self.expectedStream = expectedStream
        self.tlsFirst = tlsFirst
    }

    public var connectionKey: NATSConnectionKey {
        NATSConnectionKey(servers: servers, user: user, pass: pass, token: token, tlsCACert: tlsCACert,
                          tlsCert: tlsCert, tlsKey: tlsKey, tlsSkipVerify: tlsSkipVerify, maxReconnect: maxReconnect,
                          creds: creds, nkey: nkey, jetstream: jetstream, expectedStream: expectedStream, tlsFirst: tlsFirst)
    }
}

/// How lines reach Logentries: token TCP (one line per token, never answered) or HTTP
/// POSTs to the webhook ingestion (each batch answered: a confirmed delivery).
public enum LogentriesTransport: String, Sendable { case tcp, http }

/// The URL that HTTP batches are POSTed to. Its path holds the log token: only `redacted`
/// (scheme, host, port) is ever shown.
public struct LogentriesHTTPEndpoint: Hashable, Sendable {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// The request target, token included ("/v1/noformat/<token>").
    public var path: String

    public var redacted: String { (tls ? "https://" : "http://") + (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
    /// http:// to this host never leaves the machine (tests, a local relay).
    public var isLoopback: Bool { host == "localhost" || host.hasPrefix("127.") || host == "::1" }
}

public struct LogentriesOptions: Sendable {
    public var token: String
    public var lineOnly: Bool
    public var host: String
    public var port: Int
    public var tls: Bool
    public var caCert: String?
    public var transport: LogentriesTransport = .tcp
    /// Set with transport http.
    public var http: LogentriesHTTPEndpoint?

    public init(token: String, lineOnly: Bool = false, host: String = "data.logentries.com", port: Int = 443,
                tls: Bool = true, caCert: String? = nil) {
        self.token = token
        self.lineOnly = lineOnly
        self.host = host
        self.port = port
        self.tls = tls
        self.caCert = caCert
    }

    /// "host:port", with brackets around an IPv6 address.
    public var hostPort: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
}

public struct LogOptions: Sendable {
    public var driver: DriverKind
    public var common: CommonOptions
    public var nats: NATSOptions?
    public var logentries: LogentriesOptions?

    public init(driver: DriverKind, common: CommonOptions, nats: NATSOptions? = nil, logentries: LogentriesOptions? = nil) {
        self.driver = driver
        self.common = common
        self.nats = nats
        self.logentries = logentries
    }

    public static let defaultBufferSize = 8 << 20
    /// Smaller buffers could not hold even a few of Docker's 16 KiB line pieces.
    public static let minBufferSize = 64 << 10

    // MARK: key names

    static let commonKeys = ["tag", "labels", "labels-regex", "env", "env-regex",
                             "buffer-size", "buffer-full", "partial-merge", "multiline-pattern",
                             "multiline-datetime-format", "multiline-flush-interval", "multiline-max-bytes"]
    static let natsKeys = ["nats-servers", "nats-subject", "nats-max-reconnect", "nats-user", "nats-pass",
                           "nats-token", "nats-tls-ca-cert", "nats-tls-cert", "nats-tls-key", "nats-tls-skip-verify",
                           "nats-creds", "nats-nkey", "nats-jetstream", "nats-expected-stream", "nats-tls-first"]
    static let logentriesKeys = ["logentries-token", "line-only", "logentries-address", "logentries-region",
                                 "logentries-tls", "logentries-tls-ca-cert", "logentries-transport", "logentries-url"]
    /// Consumed by dockerd itself (protocol doc §7.2) and passed through to us.
    static let daemonKeys: Set<String> = ["mode", "max-buffer-size", "cache-disabled", "cache-max-size",
                                          "cache-max-file", "cache-compress", "max-size", "max-file", "compress"]

    public static func parse(_ config: [String: String], driver: DriverSetting) throws(OptionError) -> LogOptions {
        let kind: DriverKind
        switch driver {
        case .nats: kind = .nats
        case .logentries: kind = .logentries
        case .auto: kind = config["logentries-token"] != nil ? .logentries : .nats
        }

        let own = commonKeys + (kind == .nats ? natsKeys : logentriesKeys)
        let known = Set(own).union(daemonKeys)
        // Sorted so the message is the same every time; values are never shown (a typo'd
        // key such as "nats-password" may hold a secret).
        let unknown = config.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            let names = unknown.map { OptionError.quote($0) }.joined(separator: ", ")
            throw OptionError("unknown log option\(unknown.count > 1 ? "s" : "") \(names) for the \(kind.rawValue) log driver (valid: \(own.joined(separator: ", ")))")
        }

        let r = Reader(config: config)
        let common = try parseCommon(r)
        switch kind {
        case .nats:
            return LogOptions(driver: .nats, common: common, nats: try parseNATS(r))
        case .logentries:
            return LogOptions(driver: .logentries, common: common, logentries: try parseLogentries(r))
        }
    }

    // MARK: per-group parsing

    static func parseCommon(_ r: Reader) throws(OptionError) -> CommonOptions {
        var c = CommonOptions()
        if let tag = r["tag"] { c.tag = try TagTemplate(tag, context: "tag") }
        if let v = r["labels"] { c.labels = v.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        if let v = r["env"] { c.env = v.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        if let v = r["labels-regex"] { _ = try compileRegex(v, key: "labels-regex"); c.labelsRegex = v }
        if let v = r["env-regex"] { _ = try compileRegex(v, key: "env-regex"); c.envRegex = v }
        if let v = r["buffer-size"] {
            guard let n = parseSize(v) else {
                throw OptionError("invalid buffer-size \(OptionError.quote(v)): expected a size in bytes with an optional k, m or g suffix, like 8m")
            }
            guard n >= minBufferSize else {
                throw OptionError("buffer-size \(OptionError.quote(v)) is too small: the minimum is 64k")
            }
            c.bufferSize = n
        }
        if let v = r["buffer-full"] {
            guard let p = BufferFullPolicy(rawValue: v) else {
                throw OptionError("invalid buffer-full \(OptionError.quote(v)): expected drop-oldest, drop-newest or block")
            }
            c.bufferFull = p
        }
        if let v = r["partial-merge"] { c.partialMerge = try parseBool(v, key: "partial-merge") }
        c.multiline = try parseMultiline(r, bufferSize: c.bufferSize)
        return c
    }

    static func parseMultiline(_ r: Reader, bufferSize: Int) throws(OptionError) -> MultilineOptions? {
        let pattern = r["multiline-pattern"], format = r["multiline-datetime-format"]
        if pattern != nil && format != nil {
            throw OptionError("multiline-pattern and multiline-datetime-format both say where an event starts: set only one of them")
        }
        let start: LinearRegex
        if let v = pattern {
            start = try compileMultiline(v, key: "multiline-pattern", shown: v)
        } else if let v = format {
            do throws(OptionError) {
                start = try compileMultiline(try MultilineGrouper.startPattern(datetimeFormat: v), key: "multiline-datetime-format", shown: v)
            } catch {
                throw OptionError("invalid multiline-datetime-format \(OptionError.quote(v)): \(error.message)")
            }
        } else {
            for key in ["multiline-flush-interval", "multiline-max-bytes"] where r[key] != nil {
                throw OptionError("\(key) needs multiline-pattern or multiline-datetime-format")
            }
            return nil
        }
        var m = MultilineOptions(start: start, maxEventBytes: min(MultilineOptions.defaultMaxEventBytes, bufferSize))
        if let v = r["multiline-max-bytes"] {
            guard let n = parseSize(v), n >= 1024 else {
                throw OptionError("invalid multiline-max-bytes \(OptionError.quote(v)): expected a size of at least 1k, like 256k")
            }
            guard n <= bufferSize else {
                throw OptionError("multiline-max-bytes \(OptionError.quote(v)) is larger than buffer-size (\(bufferSize) bytes): an event must fit in the buffer")
            }
            m.maxEventBytes = n
        }
        if let v = r["multiline-flush-interval"] {
            guard let ns = parseDuration(v), ns >= 100_000_000, ns <= 600_000_000_000 else {
                throw OptionError("invalid multiline-flush-interval \(OptionError.quote(v)): expected a duration from 100ms to 10m, like 2s")
            }
            m.flushIntervalNs = ns
        }
        return m
    }

    /// Compiles a start pattern within the per-line limits. `shown` is what the user wrote.
    static func compileMultiline(_ pattern: String, key: String, shown: String) throws(OptionError) -> LinearRegex {
        if pattern.utf8.count > MultilineOptions.maxPatternBytes {
            throw OptionError("\(key) is \(pattern.utf8.count) bytes long; the limit is \(MultilineOptions.maxPatternBytes)")
        }
        let re = try compileRegex(pattern, key: key)
        if re.program.insts.count > MultilineOptions.maxInstructions {
            throw OptionError("\(key) \(OptionError.quote(shown)) compiles to \(re.program.insts.count) instructions; the limit is \(MultilineOptions.maxInstructions) (it is matched against every line)")
        }
        return re
    }

    static func parseNATS(_ r: Reader) throws(OptionError) -> NATSOptions {
        var n = NATSOptions()
        if let v = r["nats-servers"] {
            var servers: [NATSServerURL] = []
            let entries = v.split(separator: ",", omittingEmptySubsequences: false).map { OptionError.trim($0) }
            // The list is split on commas (as nats.go does), so a comma in a password or token
            // cuts its URL in two: the first half would be read as a host or port (and shown,
            // or dialled), the second as "rest@host". Refused before any entry is parsed, unquoted.
            let given = entries.filter { !$0.isEmpty }
            for i in given.indices.dropLast() where !given[i].contains("@") && given[i + 1].contains("@") && !given[i + 1].contains("://") {
                throw OptionError("invalid nats-servers: entries \(i + 1) and \(i + 2) look like one URL whose password or token holds a comma: write the comma as %2C (or, if they are two servers, give entry \(i + 2) its scheme, like nats://)")
            }
            for entry in entries {
                if entry.isEmpty { continue }
                do throws(OptionError) {
                    servers.append(try NATSServerURL(parsing: String(entry)))
                } catch {
                    throw OptionError("invalid nats-servers: \(error.message)")
                }
            }
            guard !servers.isEmpty else { throw OptionError("nats-servers has no server URL") }
            n.servers = servers
        }
        if let v = r["nats-subject"] {
            let t = try TagTemplate(v, context: "nats-subject")
            // A subject without markup can be checked now; a templated one is checked once rendered.
            if let literal = t.literalValue {
                do throws(OptionError) { try NATSSubject.validate(literal) } catch {
                    throw OptionError("invalid nats-subject: \(error.message)")
                }
            }
            n.subject = t
        }
        if let v = r["nats-max-reconnect"] {
            guard let m = Int(v), m >= -1 else {
                throw OptionError("invalid nats-max-reconnect \(OptionError.quote(v)): expected a whole number of attempts, or -1 to retry forever")
            }
            n.maxReconnect = m
        }
        n.user = r["nats-user"]
        n.pass = r["nats-pass"]
        n.token = r["nats-token"]
        if n.pass != nil && n.user == nil { throw OptionError("nats-pass needs nats-user") }
        if n.token != nil && n.user != nil {
            throw OptionError("nats-token and nats-user/nats-pass are alternatives: set only one of them")
        }
        n.tlsCACert = try absolutePath(r, "nats-tls-ca-cert")
        n.tlsCert = try absolutePath(r, "nats-tls-cert")
        n.tlsKey = try absolutePath(r, "nats-tls-key")
        if (n.tlsCert == nil) != (n.tlsKey == nil) {
            throw OptionError("nats-tls-cert and nats-tls-key must be given together")
        }
        // `--log-opt nats-tls-skip-verify` with no value means "skip".
        if let v = r.config["nats-tls-skip-verify"] {
            n.tlsSkipVerify = v.isEmpty ? true : try parseBool(v, key: "nats-tls-skip-verify")
        }
        n.creds = try absolutePath(r, "nats-creds")
        n.nkey = try absolutePath(r, "nats-nkey")
        if n.creds != nil && n.nkey != nil {
            throw OptionError("nats-creds and nats-nkey are alternatives (a .creds file holds its own seed): set only one of them")
        }
        if (n.creds != nil || n.nkey != nil) && (n.user != nil || n.token != nil) {
            throw OptionError("\(n.creds != nil ? "nats-creds" : "nats-nkey") and \(n.token != nil ? "nats-token" : "nats-user/nats-pass") are alternatives: set only one of them")
        }
        if let v = r["nats-jetstream"] { n.jetstream = try parseBool(v, key: "nats-jetstream") }
        if let v = r["nats-expected-stream"] {
            guard n.jetstream else { throw OptionError("nats-expected-stream needs nats-jetstream=true") }
            guard isStreamName(v) else {
                throw OptionError("invalid nats-expected-stream \(OptionError.quote(v)): a JetStream stream name has no spaces, dots, *, >, / or \\ and is at most 255 bytes")
            }
            n.expectedStream = v
        }
        if let v = r["nats-tls-first"] { n.tlsFirst = try parseBool(v, key: "nats-tls-first") }
        return n
    }

    static func parseLogentries(_ r: Reader) throws(OptionError) -> LogentriesOptions {
        guard let token = r["logentries-token"] else {
            throw OptionError("logentries-token is required by the logentries log driver")
        }
        guard isUUID(token) else {
            throw OptionError("logentries-token does not look like a Logentries log token (expected a UUID: 8-4-4-4-12 hex digits)")
        }
        var l = LogentriesOptions(token: token)
        if let v = r["line-only"] { l.lineOnly = try parseBool(v, key: "line-only") }
        if let v = r["logentries-transport"] {
            guard let t = LogentriesTransport(rawValue: v.lowercased()) else {
                throw OptionError("invalid logentries-transport \(OptionError.quote(v)): expected tcp (token TCP) or http (webhook POSTs, confirmed)")
            }
            l.transport = t
        }
        if l.transport == .http { return try parseLogentriesHTTP(r, l) }
        if r["logentries-url"] != nil { throw OptionError("logentries-url needs logentries-transport=http") }
        if let v = r["logentries-tls"] { l.tls = try parseBool(v, key: "logentries-tls") }
        l.caCert = try absolutePath(r, "logentries-tls-ca-cert")
        if l.caCert != nil && !l.tls {
            throw OptionError("logentries-tls-ca-cert has no effect with logentries-tls=false")
        }
        let address = r["logentries-address"], region = r["logentries-region"]
        if address != nil && region != nil {
            throw OptionError("logentries-address and logentries-region both choose the endpoint: set only one of them")
        }
        if let v = address {
            do throws(OptionError) {
                let hp = try HostPortParser.split(v)
                l.host = hp.host
                // Without a port: the documented TLS port, or the first plaintext one (wire doc B1).
                l.port = hp.port ?? (l.tls ? 443 : 80)
            } catch {
                throw OptionError("invalid logentries-address \(OptionError.quote(v)): \(error.message) (expected host:port, like data.logentries.com:443)")
            }
        } else if let v = region {
            guard isRegion(v) else {
                throw OptionError("invalid logentries-region \(OptionError.quote(v)): expected a region name like eu, us or us2")
            }
            l.host = "\(v).data.logs.insight.rapid7.com"
            l.port = l.tls ? 443 : 80
        } else if !l.tls {
            l.port = 80
        }
        return l
    }

    /// logentries-transport=http: the webhook URL from logentries-url, or from
    /// logentries-region as Rapid7 documents it. Messages never show the URL (its path holds
    /// the token).
    static func parseLogentriesHTTP(_ r: Reader, _ base: LogentriesOptions) throws(OptionError) -> LogentriesOptions {
        var l = base
        for key in ["logentries-address", "logentries-tls"] where r[key] != nil {
            throw OptionError("\(key) is for logentries-transport=tcp; with http, logentries-url or logentries-region chooses the endpoint")
        }
        let url = r["logentries-url"], region = r["logentries-region"]
        if url != nil && region != nil {
            throw OptionError("logentries-url and logentries-region both choose the endpoint: set only one of them")
        }
        let endpoint: LogentriesHTTPEndpoint
        if let v = url {
            endpoint = try parseLogentriesURL(v, token: l.token)
        } else if let v = region {
            guard isRegion(v) else {
                throw OptionError("invalid logentries-region \(OptionError.quote(v)): expected a region name like eu, us or us2")
            }
            endpoint = LogentriesHTTPEndpoint(tls: true, host: "\(v).webhook.logs.insight.rapid7.com", port: 443, path: "/v1/noformat/\(l.token)")
        } else {
            throw OptionError("logentries-transport=http needs logentries-region (like eu or us) or logentries-url")
        }
        l.caCert = try absolutePath(r, "logentries-tls-ca-cert")
        if l.caCert != nil && !endpoint.tls {
            throw OptionError("logentries-tls-ca-cert has no effect with an http:// logentries-url")
        }
        l.http = endpoint
        l.host = endpoint.host
        l.port = endpoint.port
        l.tls = endpoint.tls
        return l
    }

    /// `https://host[:port]/path` or `http://…`. A URL whose path does not hold the token gets
    /// it appended as the last path segment (so both the full webhook URL and its base work).
    /// No user info, query or fragment.
    static func parseLogentriesURL(_ v: String, token: String) throws(OptionError) -> LogentriesHTTPEndpoint {
        func bad(_ why: String) -> OptionError {
            OptionError("invalid logentries-url: \(why) (expected https://HOST[:PORT]/PATH, like https://eu.webhook.logs.insight.rapid7.com/v1/noformat/TOKEN)")
        }
        let lower = v.lowercased()
        let tls: Bool
        let rest: Substring
        if lower.hasPrefix("https://") { tls = true; rest = v.dropFirst(8) }
        else if lower.hasPrefix("http://") { tls = false; rest = v.dropFirst(7) }
        else { throw bad("the scheme must be https:// or http://") }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        var path = String(rest[slash...])
        if authority.contains("@") { throw bad("user info is not allowed (the token goes in the path)") }
        if path.contains("?") || path.contains("#") { throw bad("a query or fragment is not allowed") }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw bad("the path holds spaces or non-ASCII bytes") }
        let hp: (host: String, port: Int?)
        do throws(OptionError) { hp = try HostPortParser.split(authority) } catch { throw bad(error.message) }
        if path.isEmpty { path = "/" }
        if !path.contains(token) { path += (path.hasSuffix("/") ? "" : "/") + token }
        return LogentriesHTTPEndpoint(tls: tls, host: hp.host, port: hp.port ?? (tls ? 443 : 80), path: path)
    }

    // MARK: value parsers

    /// Empty values count as unset: daemon-wide `log-opts` can inject empty strings.
    struct Reader {
        let config: [String: String]
        subscript(_ key: String) -> String? {
            guard let v = config[key], !v.isEmpty else { return nil }
            return v
        }
    }

    static func parseBool(_ v: String, key: String) throws(OptionError) -> Bool {
        switch v.lowercased() {
        case "true", "1", "yes", "t", "on": return true
        case "false", "0", "no", "f", "off": return false
        default: throw OptionError("invalid \(key) \(OptionError.quote(v)): expected true or false")
        }
    }

    static func absolutePath(_ r: Reader, _ key: String) throws(OptionError) -> String? {
        guard let v = r[key] else { return nil }
        guard v.hasPrefix("/") else {
            throw OptionError("\(key) must be an absolute path on the host, got \(OptionError.quote(v))")
        }
        return v
    }

    /// Bytes with an optional binary suffix, as Docker's units.RAMInBytes: "512", "64k",
    /// "8m", "1.5g", "8MB", "8MiB". Returns nil for anything else, zero, or overflow.
    static func parseSize(_ text: String) -> Int? {
        var s = Substring(text.lowercased())
        s = OptionError.trim(s)
        var number = s.prefix { ($0 >= "0" && $0 <= "9") || $0 == "." }
        var unit = OptionError.trim(s.dropFirst(number.count))
        if unit.hasSuffix("b") { unit = unit.dropLast() }
        if unit.hasSuffix("i") { unit = unit.dropLast() }
        let shift: Int
        switch unit {
        case "": shift = 0
        case "k": shift = 10
        case "m": shift = 20
        case "g": shift = 30
        default: return nil
        }
        var fraction: Substring = ""
        if let dot = number.firstIndex(of: ".") {
            fraction = number[number.index(after: dot)...]
            number = number[..<dot]
            guard !fraction.isEmpty, !fraction.contains("."), fraction.count <= 9 else { return nil }
        }
        guard !number.isEmpty, let whole = Int(number) else { return nil }
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { return nil }
        var total = scaled
        if !fraction.isEmpty, let f = Int(fraction) {
            var div = 1
            for _ in 0..<fraction.count { div *= 10 }
            let (sum, overflow) = total.addingReportingOverflow((f << shift) / div)
            guard !overflow else { return nil }
            total = sum
        }
        return total > 0 ? total : nil
    }

    /// A Go-style duration of one unit: "500ms", "2s", "1.5s", "1m". nil for anything else.
    static func parseDuration(_ text: String) -> Int64? {
        let s = Substring(text)
        let number = s.prefix { ($0 >= "0" && $0 <= "9") || $0 == "." }
        let scale: Double
        switch s.dropFirst(number.count) {
        case "ms": scale = 1e6
        case "s": scale = 1e9
        case "m": scale = 60e9
        default: return nil
        }
        guard let v = Double(number), v.isFinite, v * scale < 1e18 else { return nil }
        return Int64(v * scale)
    }

    /// What nats-server accepts as a stream name (printable, no whitespace, no subject or path separators).
    static func isStreamName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        return !b.isEmpty && b.count <= 255 && b.allSatisfy { $0 > 0x20 && $0 < 0x7F && !"./\\*>".utf8.contains($0) }
    }

    /// 8-4-4-4-12 hex digits, any case (what Rapid7's own clients check before sending).
    static func isUUID(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 36 else { return false }
        for (i, c) in b.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if !HostPortParser.isHex(c) {
                return false
            }
        }
        return true
    }

    /// A lowercase DNS label such as "eu", "us2", "ap-southeast".
    static func isRegion(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...32).contains(b.count), b.first != UInt8(ascii: "-"), b.last != UInt8(ascii: "-") else { return false }
        return b.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "-")
        }
    }

    /// Compiles a labels-regex/env-regex pattern: Go regexp (RE2) syntax, as Docker's own
    /// drivers read these options, matched in linear time whatever the pattern.
    static func compileRegex(_ pattern: String, key: String) throws(OptionError) -> LinearRegex {
        do {
            return try LinearRegex(pattern)
        } catch {
            throw OptionError("invalid \(key) \(OptionError.quote(pattern)): \(error)")
        }
    }
}
