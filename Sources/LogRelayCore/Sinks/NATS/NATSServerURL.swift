// One entry of `nats-servers` (nats://, tls://, optional user:pass@ / token@), and the
// subject rules a publisher must enforce. Parsed at StartLogging; errors and
// `description` never contain the password or token.

public struct NATSServerURL: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable { case nats, tls }

    public var scheme: Scheme
    /// Lower-cased; IPv6 addresses without brackets.
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var token: String?

    public static let defaultPort = 4222

    public init(scheme: Scheme = .nats, host: String, port: Int = NATSServerURL.defaultPort,
                user: String? = nil, password: String? = nil, token: String? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.token = token
    }

    public init(parsing input: String) throws(OptionError) {
        var rest = OptionError.trim(input[...])
        // Shown in errors: the input with any userinfo replaced, so secrets never leak.
        let shown = OptionError.quote(NATSServerURL.redact(String(rest)))
        guard !rest.isEmpty else { throw OptionError("empty NATS server URL") }

        scheme = .nats
        if let r = rest.firstRange(of: "://") {
            let name = rest[..<r.lowerBound].lowercased()
            guard let s = Scheme(rawValue: name) else {
                // A "scheme" that is not a word may be credentials written before it (and
                // `shown` is then "***").
                let word = NATSServerURL.isSchemeWord(name[...])
                throw OptionError("unsupported scheme \(word ? OptionError.quote(name) : "(not a scheme name)") in NATS server URL \(shown) (use nats:// or tls://)")
            }
            scheme = s
            rest = rest[r.upperBound...]
        }
        // A trailing "/" is harmless; any other path, query or fragment is a mistake.
        if let cut = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            guard rest[cut...] == "/" else {
                throw OptionError("NATS server URL \(shown) must not have a path, query or fragment")
            }
            rest = rest[..<cut]
        }

        user = nil; password = nil; token = nil
        // Like Go's url.Parse: the LAST "@" ends the userinfo, so an unencoded "@" in a password still works.
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if !info.isEmpty {
                // user:pass sends user/pass, a bare user part is a token (nats.go connectProto).
                if let colon = info.firstIndex(of: ":") {
                    guard let u = NATSServerURL.percentDecode(info[..<colon]),
                          let p = NATSServerURL.percentDecode(info[info.index(after: colon)...]) else {
                        throw OptionError("invalid percent-encoding in the credentials of NATS server URL \(shown)")
                    }
                    user = u; password = p
                } else {
                    guard let t = NATSServerURL.percentDecode(info) else {
                        throw OptionError("invalid percent-encoding in the credentials of NATS server URL \(shown)")
                    }
                    token = t
                }
            }
        }

        let hp: (host: String, port: Int?)
        do throws(OptionError) {
            hp = try HostPortParser.split(String(rest))
        } catch {
            throw OptionError("invalid NATS server URL \(shown): \(error.message)")
        }
        host = hp.host
        port = hp.port ?? NATSServerURL.defaultPort
    }

    /// "host:port", with brackets around an IPv6 address.
    public var hostPort: String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }

    /// Safe for logs and error messages.
    public var description: String {
        var s = scheme.rawValue + "://"
        if let user {
            s += password != nil ? "\(user):***@" : "\(user)@"
        } else if token != nil {
            s += "***@"
        }
        return s + hostPort
    }

    /// A raw URL string as messages may show it. Credentials can sit in many places of a
    /// malformed URL, so only what cannot be one is kept: a scheme that is a word, the host
    /// after the last "@" (the userinfo becomes "***@"), and without an "@" the host and a
    /// numeric port; anything after a colon that is not a port number becomes "***" (that is
    /// where a password lands in "nats://dave:SECRET", or in the first half of a password
    /// that holds a comma, "nats://carol:S3cret,P@host", which nats-servers splits); a path
    /// becomes "/..."; text before a "://" that is not a scheme hides the whole URL.
    static func redact(_ raw: String) -> String {
        var scheme = ""
        var rest = raw[...]
        if let r = raw.firstRange(of: "://") {
            guard isSchemeWord(raw[..<r.lowerBound]) else { return "***" }
            scheme = String(raw[..<r.upperBound])
            rest = raw[r.upperBound...]
        }
        var userinfo = ""
        if let at = rest.lastIndex(of: "@") {
            userinfo = "***@"
            rest = rest[rest.index(after: at)...]
        }
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let tail = end < rest.endIndex ? "/..." : ""
        var authority = rest[..<end]
        var hostEnd = authority.startIndex
        // Brackets hide their colons only around what can be an IPv6 address.
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]"),
           authority[authority.index(after: authority.startIndex)..<close].utf8.allSatisfy({ HostPortParser.isHex($0) || $0 == 0x3A || $0 == 0x2E }) {
            hostEnd = authority.index(after: close)
        }
        if let colon = authority[hostEnd...].firstIndex(of: ":") {
            let port = authority[authority.index(after: colon)...]
            if port.isEmpty || !port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                authority = authority[...colon] + "***"
            }
        }
        return scheme + userinfo + authority + tail
    }

    /// Letters, digits, "+", "-" and "." (RFC 3986's scheme characters), at least one.
    static func isSchemeWord(_ s: Substring) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E
        }
    }

    static func percentDecode(_ s: Substring) -> String? {
        guard s.utf8.contains(UInt8(ascii: "%")) else { return String(s) }
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1]) else {
                return nil
            }
            out.append(hi << 4 | lo)
            it = it.dropFirst(2)
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// "host", "host:port", "[v6]", "[v6]:port". Shared by nats-servers and logentries-address.
enum HostPortParser {
    static func split(_ s: String) throws(OptionError) -> (host: String, port: Int?) {
        var host: Substring
        var portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw OptionError("missing \"]\" after IPv6 address") }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw OptionError("unexpected text after \"]\"") }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.contains(":"),
                  host.utf8.allSatisfy({ HostPortParser.isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else {
                throw OptionError("invalid IPv6 address")
            }
        } else {
            let colons = s.utf8.count(where: { $0 == UInt8(ascii: ":") })
            if colons > 1 { throw OptionError("an IPv6 address must be in brackets, like [::1]:4222") }
            if let colon = s.firstIndex(of: ":") {
                host = s[..<colon]
                portText = s[s.index(after: colon)...]
            } else {
                host = s[...]
            }
            guard !host.isEmpty else { throw OptionError("missing host") }
            guard host.utf8.allSatisfy({ HostPortParser.isHostByte($0) }) else {
                throw OptionError("invalid character in host name")
            }
        }
        var port: Int?
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p), portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw OptionError("port must be a number from 1 to 65535")
            }
            port = p
        }
        return (host.lowercased(), port)
    }

    static func isHex(_ b: UInt8) -> Bool { NATSServerURL.hexValue(b) != nil }

    static func isHostByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }
}

public enum NATSSubject {
    /// Rejects what the server would reject or silently route nowhere (wire doc A3):
    /// empty subjects or tokens, whitespace/control bytes (they break PUB framing),
    /// and tokens that are exactly "*" or ">" (wildcards only match wildcard subscribers).
    public static func validate(_ s: String) throws(OptionError) {
        let q = OptionError.quote(s)
        guard !s.isEmpty else { throw OptionError("NATS subject is empty") }
        if s.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw OptionError("NATS subject \(q) contains whitespace or a control character")
        }
        for token in s.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            if token.isEmpty {
                throw OptionError("NATS subject \(q) has an empty token (leading, trailing or double \".\")")
            }
            if token.elementsEqual("*".utf8) || token.elementsEqual(">".utf8) {
                throw OptionError("NATS subject \(q) contains a wildcard token (\"*\" or \">\"); publish subjects must be literal")
            }
        }
    }
}
