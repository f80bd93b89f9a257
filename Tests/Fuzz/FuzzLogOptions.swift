// libFuzzer target: the --log-opt parser (Sources/LogRelayCore/Event/LogOptions.swift and
// NATSServerURL.swift) and the one invariant that matters most: no error message ever holds a
// password or token.
//
// Input: byte 0 picks the DRIVER setting; the rest is fields split at 0x00, each a key
// (its first byte picks one of the known keys, or a made-up one) and a value. Secrets are
// the harness's, never the fuzzer's: nats-pass, nats-token and logentries-token get a secret
// built from the field, and nats-servers gets URLs that carry one in their credentials, in
// the shapes users get wrong (no host, a comma or "@" or "/" inside the password, a token
// without "@"). Every secret starts with a marker that the fuzzer's other text never holds,
// and the check is that the marker never appears in the message.

let marker = "Zq9"
let keys = ["tag", "labels", "labels-regex", "env", "env-regex", "buffer-size", "buffer-full", "partial-merge",
            "nats-servers", "nats-subject", "nats-max-reconnect", "nats-user", "nats-pass", "nats-token",
            "nats-tls-ca-cert", "nats-tls-cert", "nats-tls-key", "nats-tls-skip-verify", "logentries-token",
            "line-only", "logentries-address", "logentries-region", "logentries-tls", "logentries-tls-ca-cert",
            "mode", "max-size", "bogus-key"]

/// Fuzzer text with the marker taken out, so only the harness's secrets hold it.
func plain(_ s: ArraySlice<UInt8>) -> String {
    String(decoding: s, as: UTF8.self).replacing(marker, with: "Zq-9")
}

func secretValue(_ s: ArraySlice<UInt8>) -> String { marker + plain(s) }

/// A nats-servers entry with a secret in its credentials; `f` is split at 0x01 into the
/// parts the shape uses.
func serverURL(_ f: ArraySlice<UInt8>) -> String {
    guard let shape = f.first else { return "nats://u:\(marker)x@h" }
    let parts = f.dropFirst().split(separator: 1, omittingEmptySubsequences: false).map(plain)
    func part(_ i: Int, _ d: String) -> String { i < parts.count ? parts[i] : d }
    let scheme = ["nats://", "tls://", "", "NATS://"][Int(shape & 3)]
    let user = part(0, "u"), pass = marker + part(1, ""), host = part(2, "h:4222"), more = part(3, "")
    switch (shape >> 2) % 7 {
    case 0: return "\(scheme)\(user):\(pass)@\(host)"
    case 1: return "\(scheme)\(user):\(pass)"                       // no host
    case 2: return "\(scheme)\(user):\(pass),\(more)@\(host)"       // a comma in the password
    // A token holds no ":" (with one it is a user, shown, and a password).
    case 3: return "\(scheme)\(pass.replacing(":", with: ""))@\(host)"   // a token
    case 4: return "\(scheme)\(user):\(pass)/\(more)@\(host)"       // a slash in the password
    case 5: return "\(host),\(scheme)\(user):\(pass)@\(more)"       // a second entry
    default: return "\(user):\(pass)\(scheme)\(host)"               // credentials before the scheme
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLogOptions(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let setting: DriverSetting = [.auto, .nats, .logentries][Int(input[0] % 3)]
    var config: [String: String] = [:]
    for f in fields(input[1...]) where !f.isEmpty {
        let key = keys[Int(f.first!) % keys.count]
        let v = f.dropFirst()
        switch key {
        case "nats-pass", "nats-token", "logentries-token": config[key] = secretValue(v)
        case "nats-servers": config[key] = v.split(separator: 2).map(serverURL).joined(separator: ",")
        default: config[key] = plain(v)
        }
    }
    do {
        let options = try LogOptions.parse(config, driver: setting)
        // What the plugin logs about a connection must be redacted too.
        if let n = options.nats {
            for s in n.servers { fuzzCheck(!s.description.contains(marker), "server description \(s.description) holds a secret") }
        }
    } catch {
        fuzzCheck(!error.message.isEmpty, "an error without a message")
        fuzzCheck(!error.message.contains(marker), "secret in the message: \(error.message.debugDescription) for \(config)")
    }
    return 0
}
