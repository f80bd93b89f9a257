// libFuzzer target: the NKey and credentials decoders and the JetStream PubAck parser
// (Sources/LogRelayCore/Sinks/NATS/NKeys.swift, NATSPubAck in NATSProtocol.swift).
//
// Input byte 0 picks what the rest is fed to. Checked: no out-of-bounds access or overflow
// (a trap is a crash); a seed that decodes encodes back to the same text; base32 and
// base64url round-trip; a parsed credentials file has a 32-byte seed and its errors never
// quote a line of the input that looks like a seed; a PubAck's description stays bounded.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNKeys(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let bytes = Array(input[1...])
    switch input[0] % 5 {
    case 0, 1:
        let creds = input[0] % 5 == 0
        do throws(NKeyError) {
            let c = creds ? try NATSUserCredentials.parseCreds(bytes) : try NATSUserCredentials.parseSeedFile(bytes)
            fuzzCheck(c.seed.count == 32, "a seed of \(c.seed.count) bytes")
            fuzzCheck(!creds || c.jwt != nil, "a creds file without a JWT was accepted")
        } catch {
            for line in bytes.split(separator: 0x0A) where line.count >= 20 && line.first == 0x53 {
                let text = String(decoding: line.prefix(20), as: UTF8.self)
                fuzzCheck(!error.message.contains(text), "the error quotes a seed-like line")
            }
        }
    case 2:
        if let seed = try? NKeys.decodeUserSeed(bytes) {
            fuzzCheck(seed.count == 32, "a seed of \(seed.count) bytes")
            fuzzCheck(Array(NKeys.encodeUserSeed(seed).utf8) == bytes, "a decoded seed does not encode back to its text")
        }
    case 3:
        switch NATSPubAck.parse(bytes) {
        case .error(let code, let errCode, let text)?:
            fuzzCheck(code >= 0 && errCode >= 0 && text.utf8.count <= 4 * 300, "an unbounded PubAck error")
        case .stored?, nil: break
        }
    default:
        fuzzCheck(NKeys.base32Decode(NKeys.base32Encode(bytes)) == bytes, "base32 does not round-trip")
        fuzzCheck(NKeys.base64URLDecode(Array(NKeys.base64URL(bytes).utf8)) == bytes, "base64url does not round-trip")
        _ = NKeys.crc16(bytes)
        _ = NATSUserCredentials.expiry(ofJWT: String(decoding: bytes, as: UTF8.self))
    }
    return 0
}
