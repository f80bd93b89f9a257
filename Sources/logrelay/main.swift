// logrelay: Docker logging plugin entry point.
//   logrelay --socket PATH [--driver auto|nats|logentries] [--state-dir DIR]
// Inside the managed plugin it listens on /run/docker/plugins/logrelay.sock and is
// PID 1, so it handles SIGTERM itself: stop accepting, flush for up to 8 s, exit 0.
// Order matters: the socket is bound, then the sandbox is applied (System/Sandbox.swift:
// capabilities, no_new_privs, seccomp; SANDBOX=off skips it), and only then does any other
// thread start or any byte get read, so every thread runs sandboxed.
import Glibc
import LogRelayCore

struct Arguments {
    var socket = "/run/docker/plugins/logrelay.sock"
    var driver: DriverSetting = .auto
    var stateDir = "/run/docker/logging/.logrelay-state"
}

func usage(_ message: String) -> Never {
    let text = "logrelay: \(message)\nusage: logrelay [--socket PATH] [--driver auto|nats|logentries] [--state-dir DIR]\n"
    var bytes = Array(text.utf8)
    _ = write(2, &bytes, bytes.count)
    exit(2)
}

func parseArguments() -> Arguments {
    var a = Arguments()
    if let d = getenv("DRIVER").map({ String(cString: $0) }), !d.isEmpty {
        guard let v = DriverSetting(rawValue: d) else { usage("DRIVER must be auto, nats or logentries, not \(d.debugDescription)") }
        a.driver = v
    }
    var args = CommandLine.arguments.dropFirst()
    while let arg = args.popFirst() {
        func value() -> String {
            guard let v = args.popFirst() else { usage("\(arg) needs a value") }
            return v
        }
        switch arg {
        case "--socket": a.socket = value()
        case "--driver":
            let v = value()
            guard let d = DriverSetting(rawValue: v) else { usage("--driver must be auto, nats or logentries, not \(v.debugDescription)") }
            a.driver = d
        case "--state-dir": a.stateDir = value()
        case "-h", "--help": usage("help")
        default: usage("unknown argument \(arg.debugDescription)")
        }
    }
    return a
}

signal(SIGPIPE, SIG_IGN)
if let l = getenv("LOG_LEVEL").map({ String(cString: $0) }), !l.isEmpty {
    if let level = LogLevel(name: l) { Log.setLevel(level) } else { Log.warn("LOG_LEVEL \(l.debugDescription) is not one of error, warn, info, debug; using info") }
}
let args = parseArguments()

// Signals are taken by one thread with sigwait; block them everywhere else first.
var sigs = sigset_t()
sigemptyset(&sigs)
sigaddset(&sigs, SIGTERM)
sigaddset(&sigs, SIGINT)
pthread_sigmask(SIG_BLOCK, &sigs, nil)

var hostBuf = [CChar](repeating: 0, count: 256)
gethostname(&hostBuf, 255)
let hostname = hostBuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }

// Up to the hard limit: each container holds a FIFO and the API must keep a spare fd.
var files = rlimit()
if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0 && files.rlim_cur < files.rlim_max {
    files.rlim_cur = files.rlim_max
    _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
}

let listenFD: Int32
do {
    listenFD = try UnixSocket.listen(path: args.socket)
} catch {
    Log.error("cannot listen on \(args.socket): \(error)")
    exit(1)
}

if Sandbox.enabledByEnvironment {
    do { try Sandbox.apply() } catch {
        Log.error("cannot apply the sandbox: \(error) (set SANDBOX=off to run without it)")
        exit(1)
    }
    Log.info("sandbox: no capabilities, no_new_privs, not dumpable, seccomp allow-list of \(Sandbox.allowedSyscallCount) system calls")
} else {
    Log.warn("SANDBOX=off: running with the capabilities and system calls the engine gave")
}

let driver = PluginDriver(setting: args.driver, hostname: hostname, hostPaths: HostPaths.fromEnvironment(), stateDir: args.stateDir)
let api = PluginAPI(driver: driver)
let server = HTTPServer(listening: listenFD, handler: api.handle, isSlow: PluginAPI.isSlow)

// METRICS_ADDRESS (off when empty): Prometheus text over TCP (inside the sandbox: a port
// from 1024 up needs no capability); a bad address stops the plugin, so it is noticed.
if let address = getenv("METRICS_ADDRESS").map({ String(cString: $0) }), !address.isEmpty {
    do {
        let metrics = try MetricsEndpoint.listen(address: address, driver: driver)
        startThread(name: "metrics") { metrics.server.run() }
        Log.info("serving metrics on http://\(metrics.address)/metrics")
    } catch {
        Log.error("cannot serve metrics on METRICS_ADDRESS \(address.debugDescription): \(error.message)")
        exit(1)
    }
}

let blocked = sigs
startThread(name: "signals") {
    var set = blocked
    var sig: Int32 = 0
    sigwait(&set, &sig)
    Log.info("received signal \(sig); flushing for up to 8 s")
    server.stop()
    let clean = driver.drain(timeoutNs: 8_000_000_000)
    Log.info(clean ? "all events delivered; exiting" : "exiting with events still undelivered")
    exit(0)
}

driver.reattach()
Log.info("logrelay \(logrelayVersion) listening on \(args.socket) (driver \(args.driver.rawValue))")
server.run()
// The signal thread exits the process after flushing.
while true { pause() }
