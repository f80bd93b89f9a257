/*
 * loadgen: plays dockerd's side of K logging FIFOs at full speed (and, as `loadgen read`,
 * a plain reader that drains FIFOs, for the machine's baseline).
 *
 *   loadgen write --lines N --size S [--mode frame|batch] [--batch BYTES] [--io poll|threads]
 *                 [--rate LINES_PER_SEC] [--stamp 1] FIFO...
 *   loadgen read FIFO...
 *   loadgen pub --port P --lines N --size S --rate LINES_PER_SEC
 *
 * write: opens every FIFO O_RDWR like dockerd (the FIFOs already exist: the orchestrator made
 * them), encodes N LogEntry frames per FIFO (source "stdout", time_nano, line; encoded like
 * gogo, see docs/docker-log-plugin-protocol.md §4.2) BEFORE timing, prints "ready", waits for
 * a line on stdin, then writes every frame: one frame per write() like dockerd (--mode frame)
 * or ~BYTES per write() cut at frame boundaries (--mode batch). One thread per FIFO with
 * blocking writes (--io threads, the default for one FIFO) or one epoll loop over
 * non-blocking fds (--io poll, the default for several). Then it prints
 *   done <start_ns> <end_ns> <bytes> <writes> <frames> <cpu_us>
 * (CLOCK_MONOTONIC, the generator's own user+sys CPU) plus, when paced, <max_behind_us> (how far
 * the writer fell behind its schedule at worst), and waits for another line on stdin before
 * closing its fds (dockerd closes only after StopLogging answered).
 *
 * --rate R paces the writes like a daemon that forwards lines as they come: R lines/s in
 * total over all FIFOs (round-robin: the k-th line goes to FIFO k mod K), one frame per
 * write() (blocking), from one thread. A token bucket on CLOCK_MONOTONIC: the writer writes
 * every line that is due, then sleeps (clock_nanosleep, absolute) until the next one is due,
 * at least 100 us at a time, so at rates above 10 k/s a wake-up writes several lines at once,
 * as a busy daemon does. A writer that fell behind (descheduled) catches up at once.
 * --stamp 1 puts the write time in each line: its first 19 bytes are CLOCK_REALTIME in ns
 * (zero-padded decimal), written into the pre-encoded frame just before its write(); the
 * subscriber subtracts it from its own receive time (needs --size >= 20).
 *
 * pub: the latency floor without the plugin: connects to nats-server on 127.0.0.1:P, then
 * publishes N events (the plugin's event shape, the line stamped like --stamp 1) to subject
 * bench.floor at the --rate pace (TCP_NODELAY): at each wake-up, every line then due in one
 * write(), stamped just before it (the least a sender can add at that pace); prints "ready", waits for a line on stdin, publishes, prints the
 * same "done" line as write (bytes = PUB bytes).
 *
 * read: opens every FIFO O_RDONLY|O_NONBLOCK (the writer must already hold it), enlarges the
 * pipe to 1 MiB (as logrelay does), prints "ready", reads 1 MiB at a time with epoll until
 * every FIFO is at EOF, then prints
 *   done <end_ns> <bytes> <cpu_us>
 * After a round that found less than 256 KiB it naps --nap µs (default 200) before waiting
 * again: a reader that is faster than the writer otherwise wakes up for every frame, and the
 * wake-ups make the pair slower than a busy plugin that reads big chunks (measured: a plain
 * reader without the nap was slower than logrelay on per-frame writes). With the nap the
 * reader takes what accumulated (< 1 MiB at any generator speed) and the writer never blocks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000ull + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000ull + (uint64_t)ru.ru_stime.tv_usec;
}

static void wait_stdin_line(void) {
    char buf[64];
    if (!fgets(buf, sizeof buf, stdin)) {
        /* orchestrator went away: carry on, closing is harmless */
    }
}

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* ---------------------------------------------------------------- writer */

struct stream {
    int fd;
    uint8_t *buf;     /* every frame of this FIFO, back to back */
    size_t len;
    size_t *cuts;     /* write boundaries: write i is buf[cuts[i] .. cuts[i+1]) */
    size_t ncuts;     /* number of writes */
    size_t next;      /* next write index (poll mode) */
    size_t off;       /* bytes of write `next` already written (poll mode, partial writes) */
    uint64_t writes;  /* write() calls that wrote something */
};

static void encode_stream(struct stream *s, int k, long lines, long size, int batch_mode, long batch, int stamp) {
    size_t line_room = (size_t)size;
    /* 4 prefix + 8 source + 1+10 time + 1+10 len + line */
    size_t max_frame = 4 + 8 + 11 + 11 + line_room;
    s->buf = malloc(max_frame * (size_t)lines);
    s->cuts = malloc(sizeof(size_t) * ((size_t)lines + 1));
    if (!s->buf || !s->cuts) die("malloc");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint8_t *line = malloc(line_room + 1);
    size_t off = 0, ncuts = 0, batch_start = 0;
    s->cuts[ncuts++] = 0;
    for (long i = 0; i < lines; i++) {
        int h = stamp ? snprintf((char *)line, line_room + 1, "%019d c%d l%ld ", 0, k, i)
                      : snprintf((char *)line, line_room + 1, "c%d l%ld ", k, i);
        if (h < 0) h = 0;
        if ((size_t)h > line_room) h = (int)line_room;
        memset(line + h, 'x', line_room - (size_t)h);
        uint8_t *f = s->buf + off;
        size_t p = 4;
        f[p++] = 0x0a; f[p++] = 6; memcpy(f + p, "stdout", 6); p += 6;
        f[p++] = 0x10; p += put_varint(f + p, t0 + (uint64_t)i);
        if (line_room > 0) {
            f[p++] = 0x1a; p += put_varint(f + p, line_room);
            memcpy(f + p, line, line_room); p += line_room;
        }
        uint32_t n = (uint32_t)(p - 4);
        f[0] = (uint8_t)(n >> 24); f[1] = (uint8_t)(n >> 16); f[2] = (uint8_t)(n >> 8); f[3] = (uint8_t)n;
        size_t end = off + p;
        if (!batch_mode) {
            s->cuts[ncuts++] = end;
        } else if (end - batch_start > (size_t)batch && off > batch_start) {
            /* this frame would overflow the batch: cut before it */
            s->cuts[ncuts++] = off;
            batch_start = off;
        }
        off = end;
    }
    if (batch_mode && off > batch_start) s->cuts[ncuts++] = off;
    free(line);
    s->len = off;
    s->ncuts = ncuts - 1;
    /* touch every page now, so page faults are not timed */
    for (size_t i = 0; i < s->len; i += 4096) ((volatile uint8_t *)s->buf)[i];
}

static void *write_all_blocking(void *arg) {
    struct stream *s = arg;
    for (size_t i = 0; i < s->ncuts; i++) {
        size_t a = s->cuts[i], b = s->cuts[i + 1];
        while (a < b) {
            ssize_t w = write(s->fd, s->buf + a, b - a);
            if (w < 0) {
                if (errno == EINTR) continue;
                die("write");
            }
            a += (size_t)w;
            s->writes++;
        }
    }
    return NULL;
}

/* the line of a frame is its last field: frame i's line starts `size` bytes before its end */
static void put_stamp(uint8_t *p) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t v = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    for (int d = 18; d >= 0; d--) { p[d] = (uint8_t)('0' + v % 10); v /= 10; }
}

static void write_frame_blocking(struct stream *s, size_t i, long size, int stamp) {
    size_t a = s->cuts[i], b = s->cuts[i + 1];
    if (stamp) put_stamp(s->buf + b - (size_t)size);
    while (a < b) {
        ssize_t w = write(s->fd, s->buf + a, b - a);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        a += (size_t)w;
        s->writes++;
    }
}

/* --rate: one thread, one frame per write, R lines/s in total, round-robin over the FIFOs */
static uint64_t write_paced(struct stream *ss, int k, long lines, long size, double rate, int stamp) {
    uint64_t total = (uint64_t)lines * (uint64_t)k, sent = 0, behind_max = 0;
    double ns_per_line = 1e9 / rate;
    uint64_t t0 = mono_ns();
    while (sent < total) {
        uint64_t now = mono_ns();
        uint64_t due = (uint64_t)((double)(now - t0) / ns_per_line) + 1; /* line 0 is due at t0 */
        if (due > total) due = total;
        if (due <= sent) {
            uint64_t next = t0 + (uint64_t)((double)sent * ns_per_line);
            if (next < now + 100000) next = now + 100000;
            struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
            continue;
        }
        uint64_t sched = t0 + (uint64_t)((double)sent * ns_per_line);
        if (now > sched && now - sched > behind_max) behind_max = now - sched;
        while (sent < due) {
            struct stream *s = &ss[sent % (uint64_t)k];
            write_frame_blocking(s, (size_t)(sent / (uint64_t)k), size, stamp);
            sent++;
        }
    }
    return behind_max / 1000;
}

static void write_poll(struct stream *ss, int k) {
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    int left = 0;
    for (int i = 0; i < k; i++) {
        int fl = fcntl(ss[i].fd, F_GETFL);
        fcntl(ss[i].fd, F_SETFL, fl | O_NONBLOCK);
        if (ss[i].ncuts == 0) continue;
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &ev) < 0) die("epoll_ctl");
        left++;
    }
    struct epoll_event evs[128];
    while (left > 0) {
        int n = epoll_wait(ep, evs, 128, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            struct stream *s = &ss[evs[e].data.u32];
            /* write until the pipe is full (or this FIFO is done) */
            while (s->next < s->ncuts) {
                size_t a = s->cuts[s->next] + s->off, b = s->cuts[s->next + 1];
                ssize_t w = write(s->fd, s->buf + a, b - a);
                if (w < 0) {
                    if (errno == EAGAIN) break;
                    if (errno == EINTR) continue;
                    die("write");
                }
                s->writes++;
                if ((size_t)w == b - a) {
                    s->next++;
                    s->off = 0;
                } else {
                    s->off += (size_t)w;
                }
            }
            if (s->next == s->ncuts) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                left--;
            }
        }
    }
    close(ep);
    for (int i = 0; i < k; i++) {
        int fl = fcntl(ss[i].fd, F_GETFL);
        fcntl(ss[i].fd, F_SETFL, fl & ~O_NONBLOCK);
    }
}

static int cmd_write(int argc, char **argv) {
    long lines = 100000, size = 100, batch = 65536;
    double rate = 0;
    int batch_mode = 0, io = -1, stamp = 0; /* io: -1 auto, 0 threads, 1 poll */
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') break;
        if (i + 1 >= argc) { fprintf(stderr, "loadgen: %s needs a value\n", a); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--lines")) lines = atol(v);
        else if (!strcmp(a, "--size")) size = atol(v);
        else if (!strcmp(a, "--batch")) batch = atol(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--stamp")) stamp = atoi(v) != 0;
        else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "frame")) batch_mode = 0;
            else if (!strcmp(v, "batch")) batch_mode = 1;
            else { fprintf(stderr, "loadgen: --mode frame|batch\n"); return 2; }
        } else if (!strcmp(a, "--io")) {
            if (!strcmp(v, "threads")) io = 0;
            else if (!strcmp(v, "poll")) io = 1;
            else { fprintf(stderr, "loadgen: --io poll|threads\n"); return 2; }
        } else { fprintf(stderr, "loadgen: unknown option %s\n", a); return 2; }
    }
    int k = argc - i;
    if (k <= 0 || lines < 0 || size < 0 || batch <= 0 || rate < 0 || (stamp && size < 20)) {
        fprintf(stderr, "usage: loadgen write --lines N --size S [--mode frame|batch] [--batch BYTES] [--io poll|threads] [--rate LINES_PER_SEC] [--stamp 1] FIFO...\n");
        return 2;
    }
    if (rate > 0) batch_mode = 0; /* paced: one frame per write */
    if (io < 0) io = k > 1;
    struct stream *ss = calloc((size_t)k, sizeof *ss);
    if (!ss) die("calloc");
    for (int j = 0; j < k; j++) {
        ss[j].fd = open(argv[i + j], O_RDWR | O_CLOEXEC);   /* like dockerd (containerd/fifo) */
        if (ss[j].fd < 0) die(argv[i + j]);
    }
    for (int j = 0; j < k; j++) encode_stream(&ss[j], j, lines, size, batch_mode, batch, stamp);
    printf("ready\n");
    fflush(stdout);
    wait_stdin_line();

    uint64_t cpu0 = cpu_us();
    uint64_t t0 = mono_ns();
    long long behind_us = -1;
    if (rate > 0) {
        behind_us = (long long)write_paced(ss, k, lines, size, rate, stamp);
    } else if (io == 1) {
        write_poll(ss, k);
    } else if (k == 1) {
        write_all_blocking(&ss[0]);
    } else {
        pthread_t *th = calloc((size_t)k, sizeof *th);
        for (int j = 0; j < k; j++)
            if (pthread_create(&th[j], NULL, write_all_blocking, &ss[j]) != 0) die("pthread_create");
        for (int j = 0; j < k; j++) pthread_join(th[j], NULL);
        free(th);
    }
    uint64_t t1 = mono_ns();
    uint64_t cpu1 = cpu_us();
    uint64_t bytes = 0, writes = 0;
    for (int j = 0; j < k; j++) { bytes += ss[j].len; writes += ss[j].writes; }
    printf("done %llu %llu %llu %llu %llu %llu %lld\n", (unsigned long long)t0, (unsigned long long)t1,
           (unsigned long long)bytes, (unsigned long long)writes,
           (unsigned long long)((uint64_t)lines * (uint64_t)k), (unsigned long long)(cpu1 - cpu0), behind_us);
    fflush(stdout);
    wait_stdin_line();
    for (int j = 0; j < k; j++) close(ss[j].fd);
    return 0;
}

/* ---------------------------------------------------------------- pub (latency floor) */

static int cmd_pub(int argc, char **argv) {
    long lines = 100000, size = 100, port = 4222;
    double rate = 0;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--lines")) lines = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--port")) port = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else { fprintf(stderr, "loadgen: unknown option %s\n", argv[i]); return 2; }
    }
    if (rate <= 0 || size < 20 || lines <= 0) {
        fprintf(stderr, "usage: loadgen pub --port P --lines N --size S --rate LINES_PER_SEC\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char info[4096];
    if (read(fd, info, sizeof info) <= 0) die("read INFO");
    const char *hello = "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"bench-floor\"}\r\n";
    if (write(fd, hello, strlen(hello)) < 0) die("write CONNECT");
    /* one PUB per line, the line's stamp at a known offset */
    struct stream s = {.fd = fd};
    char *line = malloc((size_t)size + 1);
    size_t max_msg = 512 + (size_t)size;
    s.buf = malloc(max_msg * (size_t)lines);
    s.cuts = malloc(sizeof(size_t) * ((size_t)lines + 1));
    size_t *stamp_at = malloc(sizeof(size_t) * (size_t)lines);
    if (!line || !s.buf || !s.cuts || !stamp_at) die("malloc");
    size_t off = 0;
    s.cuts[0] = 0;
    for (long i = 0; i < lines; i++) {
        int h = snprintf(line, (size_t)size + 1, "%019d c0 l%ld ", 0, i);
        if (h > size) h = (int)size;
        memset(line + h, 'x', (size_t)(size - h));
        line[size] = 0;
        char ev[1024 + 4096];
        int evn = snprintf(ev, sizeof ev,
                           "{\"time\":\"2026-11-23T08:00:09.215590730Z\",\"source\":\"stdout\",\"log\":\"%s\","
                           "\"tag\":\"bench.c0\",\"container_id\":\"%064d\",\"container_name\":\"/bench-c0\","
                           "\"image_id\":\"sha256:%064d\",\"image_name\":\"alpine\"}", line, 0, 0);
        int hn = sprintf((char *)s.buf + off, "PUB bench.floor %d\r\n", evn);
        char *logp = strstr(ev, "\"log\":\"");
        stamp_at[i] = off + (size_t)hn + (size_t)(logp - ev) + 7;
        memcpy(s.buf + off + hn, ev, (size_t)evn);
        memcpy(s.buf + off + hn + evn, "\r\n", 2);
        off += (size_t)hn + (size_t)evn + 2;
        s.cuts[i + 1] = off;
    }
    s.len = off;
    s.ncuts = (size_t)lines;
    printf("ready\n");
    fflush(stdout);
    wait_stdin_line();
    uint64_t cpu0 = cpu_us(), t0 = mono_ns(), sent = 0, behind_max = 0;
    double ns_per_line = 1e9 / rate;
    while (sent < (uint64_t)lines) {
        uint64_t now = mono_ns();
        uint64_t due = (uint64_t)((double)(now - t0) / ns_per_line) + 1;
        if (due > (uint64_t)lines) due = (uint64_t)lines;
        if (due <= sent) {
            uint64_t next = t0 + (uint64_t)((double)sent * ns_per_line);
            if (next < now + 100000) next = now + 100000;
            struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
            continue;
        }
        uint64_t sched = t0 + (uint64_t)((double)sent * ns_per_line);
        if (now > sched && now - sched > behind_max) behind_max = now - sched;
        /* every line due now in one write (the cheapest a sender can be at this pace) */
        for (uint64_t j = sent; j < due; j++) put_stamp(s.buf + stamp_at[j]);
        {
            size_t a = s.cuts[sent], b = s.cuts[due];
            sent = due;
            while (a < b) {
                ssize_t w = write(fd, s.buf + a, b - a);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    die("write");
                }
                a += (size_t)w;
                s.writes++;
            }
        }
    }
    uint64_t t1 = mono_ns(), cpu1 = cpu_us();
    printf("done %llu %llu %llu %llu %llu %llu %lld\n", (unsigned long long)t0, (unsigned long long)t1,
           (unsigned long long)s.len, (unsigned long long)s.writes, (unsigned long long)lines,
           (unsigned long long)(cpu1 - cpu0), (long long)(behind_max / 1000));
    fflush(stdout);
    wait_stdin_line();
    close(fd);
    return 0;
}

/* ---------------------------------------------------------------- reader */

static int cmd_read(int argc, char **argv) {
    long nap_us = 200;
    if (argc >= 2 && !strcmp(argv[0], "--nap")) { nap_us = atol(argv[1]); argc -= 2; argv += 2; }
    if (argc <= 0) { fprintf(stderr, "usage: loadgen read [--nap US] FIFO...\n"); return 2; }
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    int *fds = calloc((size_t)argc, sizeof *fds);
    for (int j = 0; j < argc; j++) {
        fds[j] = open(argv[j], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fds[j] < 0) die(argv[j]);
        fcntl(fds[j], F_SETPIPE_SZ, 1 << 20);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)j};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[j], &ev) < 0) die("epoll_ctl");
    }
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    printf("ready\n");
    fflush(stdout);
    uint64_t cpu0 = cpu_us();
    uint64_t total = 0;
    int open_n = argc;
    struct epoll_event evs[128];
    uint64_t round_bytes = 1 << 20;
    while (open_n > 0) {
        if (nap_us > 0 && round_bytes < (256u << 10)) {
            struct timespec ts = {0, nap_us * 1000};
            nanosleep(&ts, NULL);
        }
        round_bytes = 0;
        int n = epoll_wait(ep, evs, 128, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            int j = (int)evs[e].data.u32;
            for (;;) {
                ssize_t r = read(fds[j], buf, cap);
                if (r > 0) { total += (uint64_t)r; round_bytes += (uint64_t)r; continue; }
                if (r == 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, fds[j], NULL);
                    close(fds[j]);
                    open_n--;
                    break;
                }
                if (errno == EAGAIN) break;
                if (errno == EINTR) continue;
                die("read");
            }
        }
    }
    uint64_t t1 = mono_ns();
    printf("done %llu %llu %llu\n", (unsigned long long)t1, (unsigned long long)total,
           (unsigned long long)(cpu_us() - cpu0));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "write")) return cmd_write(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "read")) return cmd_read(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "pub")) return cmd_pub(argc - 2, argv + 2);
    fprintf(stderr, "usage: loadgen write|read ... (see the comment at the top of bench/loadgen.c)\n");
    return 2;
}
