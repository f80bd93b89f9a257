// Small wrappers over POSIX: clocks, threads and the environment (the system layer's
// non-fd part; file descriptors are in Socket.swift).
import CSystem
import Glibc

public enum Clock {
    public static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    public static func wallNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// Starts a detached OS thread. The plugin uses a fixed, small set of threads
/// (API loop, stream loop, one per sink connection), never one per line or request.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ b: @escaping @Sendable () -> Void, _ n: String) { body = b; name = n }
    }
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    var tid = pthread_t()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let rc = pthread_create(&tid, &attr, { arg in
        let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        let short = String(b.name.prefix(15))
        logrelay_set_thread_name(short)
        b.body()
        return nil
    }, box)
    pthread_attr_destroy(&attr)
    precondition(rc == 0, "pthread_create failed: \(rc)")
}

/// Tuning knobs read from the environment once (tests shorten timers with them).
public enum Environment {
    /// `name` as a number of seconds (fractions allowed), in ns; `default` when unset or invalid.
    public static func nanoseconds(_ name: String, default value: Int64) -> Int64 {
        guard let v = getenv(name), let s = Double(String(cString: v)), s > 0, s < 1e9 else { return value }
        return Int64(s * 1e9)
    }
}
