// TLS over OpenSSL for the sinks: client side only, verification on by default
// (system CAs or a given CA file, hostname or IP SAN check, SNI for DNS names),
// optional client certificate. Non-blocking, behind the ByteStream interface.
import COpenSSL
import Glibc
import Synchronization

public struct TLSConfig: Hashable, Sendable {
    public var caFile: String?          // paths as the plugin sees them (already mapped)
    public var certFile: String?
    public var keyFile: String?
    public var skipVerify = false
    public var labels = Labels()

    /// How error messages name each file (e.g. the log option and the user's path).
    public struct Labels: Hashable, Sendable {
        public var ca = "CA certificate", cert = "client certificate", key = "client key"
        public init() {}
        public init(ca: String, cert: String, key: String) { self.ca = ca; self.cert = cert; self.key = key }
    }

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, skipVerify: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.skipVerify = skipVerify
    }
}

public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }

    /// The OpenSSL error queue as text (and emptied), after `what`.
    static func fromQueue(_ what: String) -> TLSError {
        var parts: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(e, &buf, buf.count)
            parts.append(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return TLSError(parts.isEmpty ? what : "\(what): \(parts.joined(separator: "; "))")
    }
}

/// An SSL_CTX built once per configuration and shared by its connections.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let config: TLSConfig

    /// The most a CA, certificate or key file may hold (a CA bundle is ~200 KiB).
    public static let maxFileBytes = 1 << 20
    /// How long reading one file may take (it is a regular file: this only bounds a slow disk).
    public static let fileDeadlineNs: Int64 = 5_000_000_000

    /// Loads the CA, certificate and key now, so a bad file fails StartLogging, not a later
    /// connect. Each file is read into memory by `Files.readRegularFile` (never a FIFO or a
    /// device, never more than `maxFileBytes`), and OpenSSL parses the bytes, so nothing here
    /// can block on a path a container chose.
    public init(_ config: TLSConfig) throws(TLSError) {
        self.config = config
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("SSL_CTX_new") }
        self.ctx = ctx
        _ = logrelay_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        _ = logrelay_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        if config.skipVerify {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if let ca = config.caFile {
                let certs = try TLSContext.certificates(in: TLSContext.read(ca, what: config.labels.ca), what: config.labels.ca, kind: "CA certificate")
                let store = SSL_CTX_get_cert_store(ctx)
                for x in certs {
                    defer { X509_free(x) }
                    // OpenSSL 1.1.1+ accepts the same CA twice in one bundle.
                    if X509_STORE_add_cert(store, x) != 1 {
                        throw TLSError.fromQueue("\(config.labels.ca): cannot use the CA certificate")
                    }
                }
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                throw TLSError.fromQueue("cannot load the system CA certificates")
            }
        }
        if let cert = config.certFile {
            let chain = try TLSContext.certificates(in: TLSContext.read(cert, what: config.labels.cert), what: config.labels.cert, kind: "certificate")
            defer { chain.forEach { X509_free($0) } }
            if SSL_CTX_use_certificate(ctx, chain[0]) != 1 {
                throw TLSError.fromQueue("\(config.labels.cert): cannot use the certificate")
            }
            // The intermediates that follow the leaf (SSL_CTX_add1_chain_cert is a macro).
            for x in chain.dropFirst() where SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, UnsafeMutableRawPointer(x)) != 1 {
                throw TLSError.fromQueue("\(config.labels.cert): cannot use a chain certificate")
            }
            let keyPEM = try TLSContext.read(config.keyFile ?? cert, what: config.keyFile == nil ? config.labels.cert : config.labels.key)
            let key = try TLSContext.privateKey(in: keyPEM, what: config.labels.key)
            defer { EVP_PKEY_free(key) }
            if SSL_CTX_use_PrivateKey(ctx, key) != 1 {
                throw TLSError.fromQueue("\(config.labels.key): cannot use the private key")
            }
            if SSL_CTX_check_private_key(ctx) != 1 {
                throw TLSError.fromQueue("\(config.labels.key) does not match \(config.labels.cert)")
            }
        } else if config.keyFile != nil {
            throw TLSError("a client key was given without a client certificate")
        }
        ERR_clear_error()
    }

    deinit { SSL_CTX_free(ctx) }

    private static func read(_ path: String, what: String) throws(TLSError) -> [UInt8] {
        do {
            return try Files.readRegularFile(path: path, maxBytes: maxFileBytes, deadline: Clock.monotonicNanos() + fileDeadlineNs)
        } catch {
            throw TLSError("\(what): cannot read the file: \(error)")
        }
    }

    /// Every PEM certificate in `pem`, in order (at least one). The caller frees them.
    private static func certificates(in pem: [UInt8], what: String, kind: String) throws(TLSError) -> [OpaquePointer] {
        var certs: [OpaquePointer] = []
        let parsed = pem.withUnsafeBytes { p -> Bool in
            guard let bio = BIO_new_mem_buf(p.baseAddress, Int32(p.count)) else { return false }
            defer { BIO_free(bio) }
            ERR_clear_error()
            while let x = PEM_read_bio_X509(bio, nil, { _, _, _, _ in 0 }, nil) { certs.append(x) }
            // The loop ends with "no start line" at the end of the data: only an error before
            // any certificate, or in the middle of one, is a bad file.
            let e = ERR_peek_last_error()
            if ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE { ERR_clear_error(); return true }
            return e == 0
        }
        if !parsed || certs.isEmpty {
            certs.forEach { X509_free($0) }
            throw TLSError.fromQueue("\(what): not a PEM \(kind)")
        }
        return certs
    }

    /// The first PEM private key in `pem`; encrypted keys are refused (no passphrase prompt).
    private static func privateKey(in pem: [UInt8], what: String) throws(TLSError) -> OpaquePointer {
        let key = pem.withUnsafeBytes { p -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(p.baseAddress, Int32(p.count)) else { return nil }
            defer { BIO_free(bio) }
            ERR_clear_error()
            // OpenSSL's default passphrase callback reads the terminal; this one answers "none".
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let key else { throw TLSError.fromQueue("\(what): not a PEM private key (or an encrypted one)") }
        return key
    }
}

public final class TLSStream: ByteStream {
    public let fd: Int32
    private let ssl: OpaquePointer
    private var closed = false

    /// Runs the client handshake on a connected non-blocking socket before `deadline` (monotonic ns).
    /// `serverName` is checked against the certificate (DNS name or IP address) and sent as SNI if a name.
    /// On failure the fd is closed. (Once `ssl` is set, a throw runs deinit, which frees it:
    /// the failure paths must not free it themselves.)
    public init(fd: Int32, context: TLSContext, serverName: String, deadline: Int64) throws(TLSError) {
        self.fd = fd
        guard let ssl = SSL_new(context.ctx) else { FD.close(fd); throw TLSError.fromQueue("SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        let isIP = TLSStream.isIPAddress(serverName)
        if !isIP { _ = logrelay_SSL_set_tlsext_host_name(ssl, serverName) }
        if !context.config.skipVerify {
            let param = SSL_get0_param(ssl)
            X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            let ok = isIP ? X509_VERIFY_PARAM_set1_ip_asc(param, serverName) : X509_VERIFY_PARAM_set1_host(param, serverName, 0)
            if ok != 1 { closed = true; FD.close(fd); throw TLSError.fromQueue("cannot set the expected server name \(serverName)") }
        }
        while true {
            ERR_clear_error()
            let r = SSL_connect(ssl)
            if r == 1 { break }
            let err = SSL_get_error(ssl, r)
            let left = (deadline - Clock.monotonicNanos()) / 1_000_000
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && left > 0 {
                let ev = err == SSL_ERROR_WANT_READ ? Int16(POLLIN) : Int16(POLLOUT)
                _ = FD.poll1(fd, events: ev, timeoutMs: Int32(min(left, 1000)))
                continue
            }
            let verify = SSL_get_verify_result(ssl)
            var message: String
            if verify != X509_V_OK {
                message = "TLS handshake with \(serverName) failed: certificate verification failed: \(String(cString: X509_verify_cert_error_string(verify)))"
                ERR_clear_error()
            } else if left <= 0 {
                message = "TLS handshake with \(serverName) timed out"
            } else {
                message = TLSError.fromQueue("TLS handshake with \(serverName) failed").message
                if err == SSL_ERROR_SYSCALL { message += " (connection closed during handshake)" }
            }
            closed = true
            FD.close(fd)
            throw TLSError(message)
        }
    }

    deinit {
        if !closed { close() }
        SSL_free(ssl)
    }

    public func read(into p: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult {
        ERR_clear_error()
        let n = SSL_read(ssl, p.baseAddress, Int32(min(p.count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL:
            let e = errno
            ERR_clear_error()
            if e == 0 { return .eof }
            throw SystemError("TLS read", e)
        default:
            // OpenSSL 3 reports the peer's TCP FIN without close_notify as an error; for us it
            // is the end of the stream like any other (a reset still shows as ECONNRESET).
            if TLSStream.errorReason(ERR_peek_error()) == TLSStream.unexpectedEOFWhileReading {
                ERR_clear_error()
                return .eof
            }
            throw SystemError("TLS read: \(TLSError.fromQueue("protocol error").message)", EPROTO)
        }
    }

    /// SSL_R_UNEXPECTED_EOF_WHILE_READING (openssl/sslerr.h), and ERR_GET_REASON, a macro Swift
    /// does not import.
    static let unexpectedEOFWhileReading: UInt = 294
    static func errorReason(_ code: UInt) -> UInt { code & 0x7F_FFFF }

    public func write(_ p: UnsafeRawBufferPointer) throws(SystemError) -> IOResult {
        if p.isEmpty { return .bytes(0) }
        ERR_clear_error()
        let n = SSL_write(ssl, p.baseAddress, Int32(min(p.count, 1 << 20)))
        if n > 0 { return .bytes(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL:
            let e = errno
            ERR_clear_error()
            throw SystemError("TLS write", e == 0 ? EPIPE : e)
        default:
            throw SystemError("TLS write: \(TLSError.fromQueue("protocol error").message)", EPROTO)
        }
    }

    public var hasBufferedInput: Bool { SSL_pending(ssl) > 0 }

    public func close() {
        guard !closed else { return }
        closed = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)     // best effort close_notify; never wait for the peer's
        ERR_clear_error()
        FD.close(fd)
    }

    static func isIPAddress(_ s: String) -> Bool {
        var a4 = in_addr()
        var a6 = in6_addr()
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1
    }
}

/// TLS with the system CAs (the bundle shipped in the plugin's rootfs), verified: made once,
/// when first needed, and shared by every connection that uses it.
public final class SystemTLS: Sendable {
    private let made = Mutex<TLSContext?>(nil)

    public init() {}

    public func context() throws(TLSError) -> TLSContext {
        try made.withLock { (c: inout TLSContext?) throws(TLSError) -> TLSContext in
            if let c { return c }
            let new = try TLSContext(TLSConfig())
            c = new
            return new
        }
    }
}
