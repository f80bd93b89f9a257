// Linux calls that Swift's Glibc module does not expose (epoll, eventfd,
// pipe sizing, thread names, TCP send-queue progress), wrapped so Swift never sees packed structs.
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

extern int pthread_setname_np(pthread_t thread, const char *name);
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
#define LOGRELAY_F_SETPIPE_SZ 1031

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

/// The head of Linux's struct tcp_info (linux/tcp.h, a fixed ABI) up to tcpi_bytes_acked,
/// which glibc's netinet/tcp.h does not declare: 8 one-byte fields, 24 u32s, then u64s.
struct logrelay_tcp_info_head {
    uint8_t bytes[8];
    uint32_t words[24];
    uint64_t pacing_rate, max_pacing_rate, bytes_acked;
};

/// Total bytes of this connection the peer has acknowledged (getsockopt TCP_INFO,
/// tcpi_bytes_acked, Linux >= 4.1). -1 on error, -2 when the kernel does not report it.
static inline int64_t logrelay_tcp_bytes_acked(int fd) {
    struct logrelay_tcp_info_head ti = {0};
    socklen_t len = sizeof ti;
    if (getsockopt(fd, 6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, &ti, &len) != 0) return -1;
    if (len < sizeof ti) return -2;
    return (int64_t)ti.bytes_acked;
}
#endif
