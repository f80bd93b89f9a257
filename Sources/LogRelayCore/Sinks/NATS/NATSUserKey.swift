// The NATS client's identity from a `.creds` file (nats-creds) or a seed file (nats-nkey):
// reading the file (re-read on every connection attempt, so rotated credentials apply),
// and signing the server's nonce with Ed25519 through OpenSSL for CONNECT's `sig`.
// The seed lives in memory only while a handshake needs it; errors name the option and the
// file, never its contents.
import COpenSSL

public struct NATSUserKeyFile: Sendable, Hashable {
    public enum Kind: String, Sendable { case creds = "nats-creds", nkey = "nats-nkey" }
    public let kind: Kind
    /// The path as the plugin sees it (resolved from the host path).
    public let path: String
    /// The host path as the user wrote it, for messages.
    public let shownPath: String

    static let maxBytes = 64 * 1024
    static let readTimeoutNs: Int64 = 1_000_000_000

    public init(kind: Kind, path: String, shownPath: String) {
        self.kind = kind
        self.path = path
        self.shownPath = shownPath
    }

    /// Reads and decodes the file; a failure says which option and file, and why.
    public func load() throws(NKeyError) -> NATSUserCredentials {
        let bytes: [UInt8]
        do {
            bytes = try Files.readRegularFile(path: path, maxBytes: NATSUserKeyFile.maxBytes,
                                              deadline: Clock.monotonicNanos() + NATSUserKeyFile.readTimeoutNs)
        } catch {
            throw NKeyError("\(kind.rawValue) \(shownPath.debugDescription): cannot read it: \(error)")
        }
        do throws(NKeyError) {
            let creds = kind == .creds ? try NATSUserCredentials.parseCreds(bytes) : try NATSUserCredentials.parseSeedFile(bytes)
            // A seed OpenSSL refuses is refused here too, not at the first handshake.
            _ = try NATSSigner(seed: creds.seed)
            return creds
        } catch {
            throw NKeyError("\(kind.rawValue) \(shownPath.debugDescription): \(error.message)")
        }
    }
}

/// An Ed25519 key made from a 32-byte seed; signs nonces.
struct NATSSigner: ~Copyable {
    private let key: OpaquePointer

    init(seed: [UInt8]) throws(NKeyError) {
        guard seed.count == 32,
              let k = seed.withUnsafeBufferPointer({ EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32) }) else {
            throw NKeyError("OpenSSL refused the Ed25519 seed")
        }
        key = k
    }

    deinit { EVP_PKEY_free(key) }

    /// The public user key in text form (`U…`).
    var publicKey: String {
        var raw = [UInt8](repeating: 0, count: 32)
        var len = 32
        _ = raw.withUnsafeMutableBufferPointer { EVP_PKEY_get_raw_public_key(key, $0.baseAddress, &len) }
        return NKeys.encodeUserPublicKey(raw)
    }

    /// The base64url (no padding) Ed25519 signature of the nonce's bytes as the server sent them.
    func sign(_ message: [UInt8]) throws(NKeyError) -> String {
        guard let ctx = EVP_MD_CTX_new() else { throw NKeyError("OpenSSL: out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, nil, nil, key) == 1 else { throw NKeyError("OpenSSL: Ed25519 sign init failed") }
        var sig = [UInt8](repeating: 0, count: 64)
        var sigLen = 64
        let ok = sig.withUnsafeMutableBufferPointer { s in
            message.withUnsafeBufferPointer { m in EVP_DigestSign(ctx, s.baseAddress, &sigLen, m.baseAddress, m.count) }
        }
        guard ok == 1, sigLen == 64 else { throw NKeyError("OpenSSL: Ed25519 signing failed") }
        return NKeys.base64URL(sig)
    }
}
