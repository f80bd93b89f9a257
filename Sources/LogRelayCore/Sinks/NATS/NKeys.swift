// NKeys and credentials files, the pure part: the text form of keys (base32 without padding
// of prefix byte(s) + key + CRC-16/XMODEM little-endian), decoding a user seed to the 32-byte
// Ed25519 seed, encoding the public user key, base64url for signatures, and the `.creds`
// parser. Nothing here touches files, sockets or OpenSSL, so it is unit-tested and fuzzed.
//
// Errors never contain key material: a seed that does not decode is described by what is
// wrong with it (length, alphabet, checksum, type), never by its text.
import FoundationEssentials

public struct NKeyError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum NKeys {
    /// Prefix bytes of the key types a publisher meets (nkeys `PrefixByte*`).
    static let prefixSeed: UInt8 = 18 << 3       // 'S'
    static let prefixUser: UInt8 = 20 << 3       // 'U'
    static let prefixAccount: UInt8 = 0          // 'A'
    static let prefixOperator: UInt8 = 14 << 3   // 'O'

    static let base32Alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// CRC-16/XMODEM (polynomial 0x1021, initial value 0), as nkeys computes it.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for b in bytes {
            crc ^= UInt16(b) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }

    /// RFC 4648 base32, no padding.
    public static func base32Encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var acc: UInt32 = 0
        var bits = 0
        for b in bytes {
            acc = acc << 8 | UInt32(b)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(base32Alphabet[Int((acc >> UInt32(bits)) & 31)])
            }
            acc &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { out.append(base32Alphabet[Int((acc << UInt32(5 - bits)) & 31)]) }
        return out
    }

    /// RFC 4648 base32 without padding; nil on a character outside the alphabet or leftover
    /// bits that are not zero (a truncated or altered key).
    public static func base32Decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 5 / 8)
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            let v: UInt32
            switch c {
            case 0x41...0x5A: v = UInt32(c - 0x41)        // A-Z
            case 0x32...0x37: v = UInt32(c - 0x32 + 26)   // 2-7
            default: return nil
            }
            acc = acc << 5 | v
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        if acc != 0 { return nil }
        return out
    }

    /// The 32-byte Ed25519 seed of a user seed (`SU…`, 58 characters).
    public static func decodeUserSeed(_ text: some Collection<UInt8>) throws(NKeyError) -> [UInt8] {
        guard text.count == 58 else {
            throw NKeyError("not an NKey seed: \(text.count) characters where a user seed (SU…) has 58")
        }
        guard let raw = base32Decode(text), raw.count == 36 else {
            throw NKeyError("not an NKey seed: characters outside the base32 alphabet")
        }
        let body = raw[0..<34]
        let crc = UInt16(raw[34]) | UInt16(raw[35]) << 8
        guard crc16(body) == crc else { throw NKeyError("not an NKey seed: its checksum does not match (a typo or a truncated file?)") }
        guard raw[0] & 0xF8 == prefixSeed else { throw NKeyError("not an NKey seed: it does not start with S") }
        let type = (raw[0] & 0x07) << 5 | (raw[1] & 0xF8) >> 3
        guard type == prefixUser else {
            let kind = type == prefixAccount ? "an account seed (SA…)" : type == prefixOperator ? "an operator seed (SO…)" : "not a user seed"
            throw NKeyError("the seed is \(kind); a client connects with a user seed (SU…)")
        }
        return Array(raw[2..<34])
    }

    /// The text form (`U…`, 56 characters) of a 32-byte Ed25519 public key of a user.
    public static func encodeUserPublicKey(_ key: [UInt8]) -> String {
        var raw = [prefixUser] + key
        let crc = crc16(raw)
        raw.append(UInt8(truncatingIfNeeded: crc)); raw.append(UInt8(truncatingIfNeeded: crc >> 8))
        return String(decoding: base32Encode(raw), as: UTF8.self)
    }

    /// The text form of a user seed (`SU…`), for tests that make keys.
    public static func encodeUserSeed(_ seed: [UInt8]) -> String {
        var raw = [prefixSeed | prefixUser >> 5, (prefixUser & 31) << 3] + seed
        let crc = crc16(raw)
        raw.append(UInt8(truncatingIfNeeded: crc)); raw.append(UInt8(truncatingIfNeeded: crc >> 8))
        return String(decoding: base32Encode(raw), as: UTF8.self)
    }

    /// base64url (padding optional); nil on any other character.
    public static func base64URLDecode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            let v: UInt32
            switch c {
            case 0x41...0x5A: v = UInt32(c - 0x41)
            case 0x61...0x7A: v = UInt32(c - 0x61 + 26)
            case 0x30...0x39: v = UInt32(c - 0x30 + 52)
            case 0x2D: v = 62
            case 0x5F: v = 63
            case 0x3D: continue
            default: return nil
            }
            acc = (acc << 6 | v) & 0xFFFFFF
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }

    /// base64url without padding (RFC 4648 §5), the form nats.go sends signatures in.
    public static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for s in [18, 12, 6, 0] { out.append(alphabet[Int((v >> UInt32(s)) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let v = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out.append(alphabet[Int((v >> 18) & 63)])
            out.append(alphabet[Int((v >> 12) & 63)])
            if rest == 2 { out.append(alphabet[Int((v >> 6) & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// What a `.creds` file or a seed file holds: the user JWT (creds only) and the user seed text.
public struct NATSUserCredentials: Sendable, Equatable {
    public var jwt: String?
    /// The 32-byte Ed25519 seed. Never logged, never shown in an error.
    public var seed: [UInt8]

    /// A `.creds` file: armored blocks (`-----BEGIN NATS USER JWT-----` … `------END …------`),
    /// the first holding the JWT and the second the seed, as nkeys' `creds_utils.go` reads them.
    public static func parseCreds(_ bytes: [UInt8]) throws(NKeyError) -> NATSUserCredentials {
        let blocks = armoredBlocks(bytes)
        if blocks.count >= 2 {
            let jwt = blocks[0]
            guard isJWT(jwt) else { throw NKeyError("the first block of the credentials file is not a JWT") }
            return NATSUserCredentials(jwt: String(decoding: jwt, as: UTF8.self), seed: try NKeys.decodeUserSeed(blocks[1]))
        }
        if blocks.count == 1 {
            throw NKeyError("the credentials file has one armored block; it needs the user JWT and then the seed")
        }
        guard lines(bytes).contains(where: { $0.starts(with: [0x53, 0x55]) }) else {  // "SU"
            throw NKeyError("no credentials found: expected a user JWT block and a seed block (-----BEGIN NATS USER JWT----- …)")
        }
        throw NKeyError("the credentials file has a seed but no user JWT block; use nats-nkey for a bare seed")
    }

    /// A seed file (`nats-nkey`): the first line starting with `SU`, surrounding whitespace ignored.
    public static func parseSeedFile(_ bytes: [UInt8]) throws(NKeyError) -> NATSUserCredentials {
        let blocks = armoredBlocks(bytes)
        if let seed = blocks.first(where: { $0.starts(with: [0x53]) }) {
            return NATSUserCredentials(jwt: nil, seed: try NKeys.decodeUserSeed(seed))
        }
        for line in lines(bytes) where line.first == 0x53 {        // 'S'
            return NATSUserCredentials(jwt: nil, seed: try NKeys.decodeUserSeed(line))
        }
        throw NKeyError("no NKey seed found: expected a line with a user seed (SU…, 58 characters)")
    }

    /// The `exp` claim (Unix seconds) of a JWT, nil when it has none or does not decode.
    public static func expiry(ofJWT jwt: String) -> Int64? {
        struct Claims: Decodable { var exp: Int64? }
        let parts = jwt.utf8.split(separator: 0x2E, omittingEmptySubsequences: false)
        guard parts.count == 3, let claims = NKeys.base64URLDecode(parts[1]) else { return nil }
        return (try? JSONDecoder().decode(Claims.self, from: Data(claims)))?.exp
    }

    /// Lines with surrounding spaces, tabs and CRs trimmed, empty ones skipped.
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x0A).map(trim).filter { !$0.isEmpty }
    }

    static func trim(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var t = s
        while let f = t.first, f == 0x20 || f == 0x09 || f == 0x0D { t = t.dropFirst() }
        while let l = t.last, l == 0x20 || l == 0x09 || l == 0x0D { t = t.dropLast() }
        return t
    }

    /// The contents of `---…---` / `value` / `---…---` line triples, in order (nkeys' regex:
    /// a dash line with at least three dashes at each end, one value line of [A-Za-z0-9_.=-],
    /// a closing dash line).
    static func armoredBlocks(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        let ls = lines(bytes)
        var out: [ArraySlice<UInt8>] = []
        var i = 0
        while i + 2 < ls.count {
            if isArmor(ls[i]) && isArmor(ls[i + 2]) && ls[i + 1].allSatisfy(isValueByte) {
                out.append(ls[i + 1])
                i += 3
            } else {
                i += 1
            }
        }
        return out
    }

    static func isArmor(_ line: ArraySlice<UInt8>) -> Bool {
        line.count >= 6 && line.prefix(3).allSatisfy { $0 == 0x2D } && line.suffix(3).allSatisfy { $0 == 0x2D }
    }

    static func isValueByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x5F, 0x2D, 0x2E, 0x3D: return true
        default: return false
        }
    }

    /// Three non-empty parts separated by dots (header, claims, signature).
    static func isJWT(_ s: ArraySlice<UInt8>) -> Bool {
        let parts = s.split(separator: 0x2E, omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy { !$0.isEmpty }
    }
}
