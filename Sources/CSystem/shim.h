// Linux calls that Swift's Glibc module does not expose (epoll, eventfd,
// pipe sizing, thread names), wrapped so Swift never sees packed structs.
#ifndef LOGRELAY_CSYSTEM_SHIM_H
#define LOGRELAY_CSYSTEM_SHIM_H
// No _GNU_SOURCE here: it would change glibc's types under the Glibc module's
// feet, so the few GNU functions are declared by hand.
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

extern int pthread_setname_np(pthread_t thread, const char *name);
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
#define LOGRELAY_F_SETPIPE_SZ 1031

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
#endif
