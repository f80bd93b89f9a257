// What the plugin gives up at start, once its socket is bound and before it reads a byte
// from anyone: every capability (it runs as root in its own root filesystem and only ever
// opens files that root owns: the daemon's FIFOs, its state dir, the shared host directory),
// new privileges through exec (no_new_privs), core dumps and ptrace by non-root (not
// dumpable), and every system call outside an allow-list (a seccomp filter, built in
// CSystem's shim.h). An exploited bug then runs with no capability and cannot exec, mount,
// ptrace, load modules or open new kinds of sockets. Applied before any thread starts
// (capabilities and no_new_privs are per thread; the filter is synchronized to all threads).
import CSystem
import Glibc

public enum Sandbox {
    /// `SANDBOX=off` in the plugin's settings (or the environment) skips it, for debugging.
    public static var enabledByEnvironment: Bool {
        guard let v = getenv("SANDBOX") else { return true }
        return String(cString: v) != "off"
    }

    /// Calls outside the allow-list fail with EPERM rather than killing the process: the
    /// plugin serves every container on the host, and a call the list missed (a rare glibc or
    /// OpenSSL path) is then one failed operation with a logged error, not every container's
    /// logging stopped. The exploited bug is refused the call all the same.
    public static let deniedErrno = EPERM

    /// Applies all of it to the calling (only) thread and the process. A failure names the call.
    public static func apply() throws(SystemError) {
        var call: UnsafePointer<CChar>? = nil
        var rc = logrelay_drop_capabilities(&call)
        if rc == 0 { rc = logrelay_no_new_privs_not_dumpable(&call) }
        if rc == 0 { rc = logrelay_install_seccomp(deniedErrno, &call) }
        if rc != 0 { throw SystemError(call.map { String(cString: $0) } ?? "sandbox", rc) }
    }

    /// How many system calls the filter lets through.
    public static var allowedSyscallCount: Int { Int(logrelay_allowed_syscall_count()) }
}
