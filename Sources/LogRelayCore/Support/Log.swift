// The plugin's own log: one logfmt line per message (`level=warn msg="…" container="…"`),
// on stderr for errors and warnings and stdout otherwise; dockerd copies both into its log
// with the plugin's id. Values are quoted and escaped, so a container name or a server's
// error text cannot break a parser or start a line of its own. Never pass a secret to it.
import Synchronization

public enum LogLevel: Int, Sendable, Comparable {
    case error = 0, warn, info, debug

    public init?(name: String) {
        switch name.lowercased() {
        case "error": self = .error
        case "warn", "warning": self = .warn
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }

    var label: String {
        switch self {
        case .error: return "error"
        case .warn: return "warn"
        case .info: return "info"
        case .debug: return "debug"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

public enum Log {
    private static let level = Atomic<Int>(LogLevel.info.rawValue)
    private static let writeLock = Mutex(())

    public static func setLevel(_ l: LogLevel) { level.store(l.rawValue, ordering: .relaxed) }
    public static func enabled(_ l: LogLevel) -> Bool { l.rawValue <= level.load(ordering: .relaxed) }

    /// `container` names the container the message is about (a `container=` field).
    public static func error(_ message: @autoclosure () -> String, container: String? = nil) { write(.error, message, container) }
    public static func warn(_ message: @autoclosure () -> String, container: String? = nil) { write(.warn, message, container) }
    public static func info(_ message: @autoclosure () -> String, container: String? = nil) { write(.info, message, container) }
    public static func debug(_ message: @autoclosure () -> String, container: String? = nil) { write(.debug, message, container) }

    private static func write(_ l: LogLevel, _ message: () -> String, _ container: String?) {
        guard enabled(l) else { return }
        var line = "level=\(l.label) msg="
        appendQuoted(message(), to: &line)
        if let container {
            line += " container="
            appendQuoted(container, to: &line)
        }
        line += "\n"
        // dockerd logs a plugin's stderr at error level and its stdout at info level.
        let fd: Int32 = l <= .warn ? 2 : 1
        writeLock.withLock { _ in
            let bytes = Array(line.utf8)
            _ = bytes.withUnsafeBytes { FD.writeAll(fd, $0) }
        }
    }

    /// A logfmt value: quoted so that it stays on its line.
    static func appendQuoted(_ value: String, to out: inout String) {
        out += JSONText.quoted(value, style: .oneLine)
    }
}

/// Logs at most one message per `interval` for a key; counts what it suppressed.
/// Used for per-container drop warnings so a flood of drops is one line a few seconds.
public final class RateLimitedLog: Sendable {
    private let interval: Int64
    private let state = Mutex<(last: Int64, suppressed: Int)>((Int64.min / 2, 0))

    public init(intervalNanos: Int64 = 5_000_000_000) { interval = intervalNanos }

    /// Calls `emit` with the number of suppressed calls since the last emission, when allowed.
    public func attempt(_ emit: (Int) -> Void) {
        let now = Clock.monotonicNanos()
        let go: Int? = state.withLock { s in
            if now - s.last >= interval {
                let n = s.suppressed
                s = (now, 0)
                return n
            }
            s.suppressed += 1
            return nil
        }
        if let n = go { emit(n) }
    }
}
