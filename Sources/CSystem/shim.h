// Linux calls that Swift's Glibc module does not expose (epoll, eventfd,
// pipe sizing, thread names, TCP send-queue progress, the sandbox: capabilities, prctl and
// the seccomp filter), wrapped so Swift never sees packed structs or kernel headers.
#ifndef LOGRELAY_CSYSTEM_SHIM_H
#define LOGRELAY_CSYSTEM_SHIM_H
// No _GNU_SOURCE here: it would change glibc's types under the Glibc module's
// feet, so the few GNU functions are declared by hand.
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <errno.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

extern int pthread_setname_np(pthread_t thread, const char *name);
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
#define LOGRELAY_F_SETPIPE_SZ 1031
// O_PATH (a handle to look at a path without opening the file) is a GNU name in glibc.
#define LOGRELAY_O_PATH 010000000
// O_NOATIME (reads leave the inode's access time alone) is a GNU name in glibc too.
#define LOGRELAY_O_NOATIME 01000000

// ThreadSanitizer's annotations (its runtime defines them; only TSAN builds call them).
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);

static inline int logrelay_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static inline int logrelay_epoll_add(int ep, int fd) {
    struct epoll_event ev = { .events = EPOLLIN, .data = { .fd = fd } };
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static inline int logrelay_epoll_del(int ep, int fd) {
    return epoll_ctl(ep, EPOLL_CTL_DEL, fd, 0);
}

/// Waits for events; stores the ready fds in `fds`. Returns the count, or -1.
static inline int logrelay_epoll_wait(int ep, int *fds, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) fds[i] = evs[i].data.fd;
    return n;
}

static inline int logrelay_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

static inline int logrelay_set_pipe_size(int fd, int size) { return fcntl(fd, LOGRELAY_F_SETPIPE_SZ, size); }

/// Accepts a connection as a non-blocking, close-on-exec fd.
static inline int logrelay_accept(int fd) { return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC); }

static inline void logrelay_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

// ---- TCP delivery progress (the Logentries sink: the endpoint never answers, so a line
// counts as delivered once the peer's TCP stack has acknowledged its bytes) ----

/// Bytes in a TCP socket's send queue that the peer has not acknowledged yet, sent or
/// not (ioctl SIOCOUTQ, 0x5411 on Linux). -1 on error.
static inline int logrelay_tcp_outq(int fd) {
    int n = 0;
    return ioctl(fd, 0x5411 /* SIOCOUTQ */, &n) == 0 ? n : -1;
}

/// Linux's struct tcp_info (linux/tcp.h, a fixed ABI that only grows) up to tcpi_snd_wnd,
/// which glibc's netinet/tcp.h does not declare: 8 one-byte fields, 24 u32s, then the rest.
struct logrelay_tcp_info {
    uint8_t bytes[8];
    uint32_t words[24];          /* words[15] is tcpi_rtt, in microseconds */
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
    uint32_t segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in, data_segs_out;
    uint64_t delivery_rate, busy_time, rwnd_limited, sndbuf_limited;
    uint32_t delivered, delivered_ce;
    uint64_t bytes_sent, bytes_retrans;
    uint32_t dsack_dups, reord_seen, rcv_ooopack, snd_wnd;
};

/// What the kernel knows of a connection's progress: bytes the peer acknowledged
/// (tcpi_bytes_acked, Linux >= 4.1), the window the peer advertises (tcpi_snd_wnd, >= 6.2:
/// it shrinks while the peer's application leaves data unread) and the smoothed RTT.
/// Fields the kernel does not report are -2; -1 on error.
struct logrelay_tcp_progress { int64_t bytes_acked; int64_t peer_window; int64_t rtt_us; int64_t mss; };

static inline struct logrelay_tcp_progress logrelay_tcp_progress(int fd) {
    struct logrelay_tcp_info ti = {0};
    socklen_t len = sizeof ti;
    struct logrelay_tcp_progress p = { -1, -1, -1, -1 };
    if (getsockopt(fd, 6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, &ti, &len) != 0) return p;
    p.rtt_us = len >= offsetof(struct logrelay_tcp_info, pacing_rate) ? (int64_t)ti.words[15] : -2;
    p.mss = len >= offsetof(struct logrelay_tcp_info, pacing_rate) ? (int64_t)ti.words[2] : -2;   /* tcpi_snd_mss */
    p.bytes_acked = len >= offsetof(struct logrelay_tcp_info, bytes_received) ? (int64_t)ti.bytes_acked : -2;
    p.peer_window = len >= sizeof ti ? (int64_t)ti.snd_wnd : -2;
    return p;
}

/// Total bytes of this connection the peer has acknowledged. -1 on error, -2 when the kernel
/// does not report it.
static inline int64_t logrelay_tcp_bytes_acked(int fd) { return logrelay_tcp_progress(fd).bytes_acked; }

// ---- The sandbox (System/Sandbox.swift decides when; these do the calls) ----

/// Empties the bounding, ambient, inheritable, permitted and effective capability sets of
/// the calling thread (the bounding set first: dropping it needs CAP_SETPCAP, still held).
/// Returns 0, or the errno of the first call that failed, with its name in *call.
static inline int logrelay_drop_capabilities(const char **call) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) break;                 // past the kernel's last capability
            // Without CAP_SETPCAP (a non-root standalone run) the bounding set stays: it only
            // limits what an exec could gain, and no_new_privs and the filter forbid that.
            if (errno == EPERM) break;
            *call = "prctl(PR_CAPBSET_DROP)"; return errno;
        }
    }
    // Ambient capabilities exist since Linux 4.3; EINVAL before that means there are none.
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        *call = "prctl(PR_CAP_AMBIENT_CLEAR_ALL)"; return errno;
    }
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(SYS_capset, &hdr, data) != 0) { *call = "capset"; return errno; }
    return 0;
}

/// PR_SET_NO_NEW_PRIVS and PR_SET_DUMPABLE 0. Same return convention.
static inline int logrelay_no_new_privs_not_dumpable(const char **call) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { *call = "prctl(PR_SET_NO_NEW_PRIVS)"; return errno; }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) { *call = "prctl(PR_SET_DUMPABLE)"; return errno; }
    return 0;
}

#if defined(__x86_64__)
#define LOGRELAY_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define LOGRELAY_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/// The system calls the plugin makes: the Swift runtime, glibc, OpenSSL and our own code,
/// measured with `strace -f -c` under the integration and e2e suites (README, Privileges),
/// plus the calls those libraries make on paths the suites may not reach (marked "margin").
/// Names, not numbers, so the list is right on each architecture it is built for; the
/// calls that aarch64 never had (open, stat, poll, ...) are x86_64 only.
static const int logrelay_allowed_syscalls[] = {
    // fds and files
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_close, SYS_openat, SYS_fstat,
    SYS_newfstatat, SYS_statx, SYS_lseek, SYS_fcntl, SYS_dup, SYS_dup3, SYS_pipe2,
    SYS_getdents64, SYS_mkdirat, SYS_unlinkat, SYS_renameat, SYS_fsync, SYS_fdatasync,
    SYS_ftruncate, SYS_faccessat, SYS_readlinkat, SYS_getcwd, SYS_eventfd2, SYS_fchmodat,
    SYS_renameat2, SYS_faccessat2, SYS_close_range,
    // waiting
    SYS_ppoll, SYS_pselect6, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_epoll_pwait2,
    SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday,
    SYS_futex, SYS_sched_yield, SYS_sched_getaffinity,
    // sockets (the API's unix socket, the sinks' TCP, the resolver's UDP/TCP and netlink)
    SYS_socket, SYS_connect, SYS_accept4, SYS_bind, SYS_listen, SYS_getsockname, SYS_getpeername,
    SYS_setsockopt, SYS_getsockopt, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg,
    SYS_sendmmsg, SYS_shutdown,
    // memory
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise, SYS_brk,
    // threads, signals, process
    SYS_clone, SYS_clone3, SYS_set_robust_list, SYS_rseq, SYS_set_tid_address, SYS_gettid,
    SYS_getpid, SYS_tgkill, SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn,
    SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_sigaltstack, SYS_prctl, SYS_exit, SYS_exit_group, SYS_getrandom,
    SYS_uname, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getrlimit, SYS_prlimit64,
    SYS_sysinfo, SYS_restart_syscall, SYS_membarrier,
#if defined(__x86_64__)
    SYS_open, SYS_stat, SYS_lstat, SYS_poll, SYS_select, SYS_epoll_wait, SYS_access, SYS_pipe,
    SYS_dup2, SYS_mkdir, SYS_unlink, SYS_rename, SYS_readlink, SYS_arch_prctl, SYS_time,
    SYS_getdents, SYS_chmod, SYS_eventfd,
    // main.swift parks the main thread in pause() while the signal thread flushes: denied, it
    // would spin on EPERM (found by strace -f -c of the plugin under the e2e suite).
    SYS_pause,
#endif
};

/// Installs the seccomp filter on every thread of the process (TSYNC): calls in the list are
/// allowed, any other fails with `deny_errno`; a call from another architecture's ABI (x32
/// or 32-bit compat on x86_64) is refused the same way, since its numbers mean other calls.
/// Returns 0 or the errno of the failed call (named in *call).
static inline int logrelay_install_seccomp(int deny_errno, const char **call) {
#ifndef LOGRELAY_AUDIT_ARCH
    *call = "seccomp (this architecture has no allow-list)"; return ENOSYS;
#else
    enum { N = sizeof logrelay_allowed_syscalls / sizeof logrelay_allowed_syscalls[0] };
    struct sock_filter f[N + 20];
    unsigned k = 0;
    unsigned deny = SECCOMP_RET_ERRNO | (deny_errno & SECCOMP_RET_DATA);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, LOGRELAY_AUDIT_ARCH, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    // x32 calls are x86_64 numbers with bit 30 set.
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
#endif
    _Static_assert(N < 250, "BPF conditional jumps reach at most 255 instructions");
    // ioctl: only the requests our code and glibc make (SIOCOUTQ, FIONREAD, FIONBIO, FIOCLEX,
    // and TCGETS, which isatty asks); never TIOCSTI and the like on an inherited terminal.
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 8);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x5411 /* SIOCOUTQ */, 5, 0);
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x541B /* FIONREAD */, 4, 0);
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x5421 /* FIONBIO */, 3, 0);
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x5451 /* FIOCLEX */, 2, 0);
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x5401 /* TCGETS */, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    for (unsigned i = 0; i < N; i++) {
        // Equal: skip to the ALLOW after the DENY that follows the last comparison.
        f[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)logrelay_allowed_syscalls[i], (unsigned char)(N - i), 0);
        k++;
    }
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = { .len = (unsigned short)k, .filter = f };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
        *call = "seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)"; return errno;
    }
    return 0;
#endif
}

/// How many system calls the filter allows (the log line at start says so).
static inline int logrelay_allowed_syscall_count(void) {
    return (int)(sizeof logrelay_allowed_syscalls / sizeof logrelay_allowed_syscalls[0]);
}
#endif
