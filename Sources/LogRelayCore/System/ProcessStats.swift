// The plugin process's own resource use, read from /proc, for the process_* metrics
// (the names Prometheus client libraries use, so existing dashboards apply).
import Glibc

public struct ProcessStats: Sendable {
    public var cpuSeconds = 0.0
    public var residentBytes = 0
    public var virtualBytes = 0
    public var threads = 0
    public var openFDs = 0
    public var maxFDs = 0
    /// Unix seconds; 0 when /proc could not tell.
    public var startTimeSeconds = 0.0

    /// Reads the current values; a field that cannot be read stays 0.
    public static func current() -> ProcessStats {
        var s = ProcessStats()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = sysconf(Int32(_SC_PAGESIZE))
        // Fields after the command name, which is in parentheses and may contain spaces.
        if let stat = readFile("/proc/self/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) {
            let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
            func field(_ n: Int) -> Int { n - 3 < fields.count ? Int(ascii: fields[n - 3]) ?? 0 : 0 }   // n as in proc(5)
            if ticks > 0 {
                s.cpuSeconds = Double(field(14) + field(15)) / ticks
                if let boot = bootTime() { s.startTimeSeconds = Double(boot) + Double(field(22)) / ticks }
            }
            s.threads = field(20)
            s.virtualBytes = field(23)
            s.residentBytes = field(24) * page
        }
        s.openFDs = countEntries("/proc/self/fd")
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { s.maxFDs = Int(clamping: limit.rlim_cur) }
        return s
    }

    /// The `btime` line of /proc/stat: boot time in Unix seconds.
    private static func bootTime() -> Int? {
        guard let text = readFile("/proc/stat") else { return nil }
        for line in text.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("btime ".utf8)) {
            return Int(ascii: line.dropFirst(6))
        }
        return nil
    }

    /// A /proc file's bytes (their size is not known in advance: read to EOF, at most 1 MiB).
    private static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { FD.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while out.count < 1 << 20 {
            let r = chunk.withUnsafeMutableBytes { p in try? FD.read(fd, into: p) }
            guard case .bytes(let n) = r else { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// Entries of a directory, without "." and "..", minus the one opendir itself holds.
    private static func countEntries(_ path: String) -> Int {
        guard let dir = opendir(path) else { return 0 }
        var n = 0
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix(3)) }
            if name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0)) { continue }
            n += 1
        }
        closedir(dir)
        return max(0, n - 1)
    }
}

private extension Int {
    /// A decimal number in ASCII bytes (what /proc writes); nil for anything else.
    init?<S: Collection>(ascii digits: S) where S.Element == UInt8 {
        guard !digits.isEmpty else { return nil }
        var v = 0
        for d in digits {
            guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(d - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            v = a
        }
        self = v
    }
}
