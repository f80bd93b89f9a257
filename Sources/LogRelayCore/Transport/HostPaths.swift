// TLS file options are host paths, as users write them in `docker run`. Inside the
// managed plugin one host directory is visible, read-only and without its submounts, under a
// mount (config.json's "hostfs": /etc/logrelay on the host, at /host in the plugin); the
// operator may point it elsewhere with `docker plugin set ALIAS hostfs.source=DIR`. A host
// path under that directory is read under the mount (its source prefix, read from
// /proc/self/mountinfo, replaced by the mount point); any other path fails StartLogging with
// a message naming the directory and the setting.
// Outside a plugin (LOGRELAY_HOST_ROOT unset) paths are used as given.
import Glibc

public struct HostPaths: Sendable {
    /// Where the host's files are mounted, e.g. "/host"; nil outside a plugin.
    public let mountPoint: String?
    /// The host directory shown at the mount point ("/" unless narrowed).
    public let source: String

    public init(mountPoint: String?, source: String = "/") {
        self.mountPoint = mountPoint
        self.source = source
    }

    /// From the environment and the mount table of this process.
    public static func fromEnvironment() -> HostPaths {
        guard let p = getenv("LOGRELAY_HOST_ROOT").map({ String(cString: $0) }), !p.isEmpty else {
            return HostPaths(mountPoint: nil)
        }
        return HostPaths(mountPoint: p, source: mountSource(of: p) ?? "/")
    }

    /// The path at which the plugin reads host path `hostPath`.
    public func resolve(_ hostPath: String, option: String) throws(OptionError) -> String {
        guard hostPath.hasPrefix("/") else {
            throw OptionError("\(option) must be an absolute path on the Docker host, not \(hostPath.debugDescription)")
        }
        guard let mount = mountPoint else { return hostPath }
        // "dir/../x" would leave the shared directory by name (and land in the plugin's own files).
        guard !hostPath.split(separator: "/").contains("..") else {
            throw OptionError("\(option) \(hostPath.debugDescription) must not contain \"..\"")
        }
        if source == "/" { return mount + hostPath }
        let prefix = source.hasSuffix("/") ? String(source.dropLast()) : source
        if hostPath == prefix { return mount }
        guard hostPath.hasPrefix(prefix + "/") else {
            throw OptionError("\(option) \(hostPath.debugDescription) is outside \(prefix), the only host directory the plugin can read: put the file under \(prefix), or change the directory with docker plugin set ALIAS hostfs.source=DIR (while the plugin is disabled)")
        }
        return mount + hostPath.dropFirst(prefix.count)
    }

    /// The "root" field of the mountinfo line whose mount point is `point`.
    static func mountSource(of point: String) -> String? {
        guard let f = fopen("/proc/self/mountinfo", "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        var found: String? = nil
        while getline(&line, &cap, f) > 0, let l = line {
            let fields = String(cString: l).split(separator: " ")
            if fields.count > 4 && unescape(fields[4]) == point { found = unescape(fields[3]) }
        }
        return found
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ s: Substring) -> String {
        var out = [UInt8]()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C && i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
