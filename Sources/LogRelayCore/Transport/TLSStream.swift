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

    /// Loads the CA, certificate and key now, so a bad file fails StartLogging, not a later connect.
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
                try TLSContext.checkReadable(ca, what: config.labels.ca)
                if SSL_CTX_load_verify_locations(ctx, ca, nil) != 1 {
                    throw TLSError.fromQueue("\(config.labels.ca): not a PEM CA certificate")
                }
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                throw TLSError.fromQueue("cannot load the system CA certificates")
            }
        }
        if let cert = config.certFile {
            try TLSContext.checkReadable(cert, what: config.labels.cert)
            if SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 {
                throw TLSError.fromQueue("\(config.labels.cert): not a PEM certificate")
            }
            let key = config.keyFile ?? cert
            try TLSContext.checkReadable(key, what: config.labels.key)
            if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 {
                throw TLSError.fromQueue("\(config.labels.key): not a PEM private key")
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

    private static func checkReadable(_ path: String, what: String) throws(TLSError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw TLSError("\(what): cannot read the file: \(String(cString: strerror(errno)))") }
        close(fd)
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
            throw SystemError("TLS read: \(TLSError.fromQueue("protocol error").message)", EPROTO)
        }
    }

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
