/*
 * loadgen -- single-threaded, epoll-driven, non-blocking load generator for
 * the csockserver benchmark.
 *
 *   loadgen --mode MODE (--host H --port P | --unix PATH) [--conns C=16]
 *           [--size S=64] [--duration D=2.0] [--warmup W=0.5]
 *           [--timeout T=2.0] [--inflight N=16] [--busy-poll 1]
 *
 * --busy-poll 1 (default) spins on epoll_wait(timeout 0) instead of sleeping:
 * on VMs, waking an idle vCPU costs tens of microseconds (ms in the tail), which
 * would otherwise dominate the client's latency.  client_cpu_s is then ~1.0 by
 * construction; client_work_s (wall time spent handling ready events) is the
 * useful "how busy is the load generator" figure.  --busy-poll 0 sleeps.
 *
 * Modes:
 *   persistent  C connections; send S bytes, wait for the S-byte echo, repeat
 *   conn        connection per request: connect, send S bytes, half-close,
 *               read S bytes + EOF, close (C in flight)
 *   line        persistent; message is S-1 bytes + '\n', reply is one line
 *   linecpr     line, connection per request (half-close, reply read to EOF)
 *   udp         datagrams of S (>= 8) bytes, at most N outstanding, sequence
 *               number in the first 8 bytes; unanswered after T = lost
 *   http10      connection per request "GET / HTTP/1.0", read to EOF,
 *               response must start with "HTTP/1."
 *   http11      C keep-alive connections "GET / HTTP/1.1", Content-Length
 *               framed responses
 *
 * Only requests completed in [W, W+D) count.  Latency is measured from the
 * start of the request (including connect for connection-per-request modes)
 * into a log-linear histogram (~1.6% resolution).  Prints one JSON line.
 *
 * Persistent modes (persistent/line/http11): if the server closes an idle
 * kept-alive connection (EOF/reset before any reply byte of the next request)
 * the request is retried once on a fresh connection and counted in
 * "reconnects" instead of "errors"; its latency includes the failed attempt.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { M_PERSIST, M_CONN, M_LINE, M_LINECPR, M_UDP, M_HTTP10, M_HTTP11 };
static const char *MODE_NAMES[] = {"persistent", "conn", "line", "linecpr",
                                   "udp", "http10", "http11"};

enum { ST_IDLE, ST_CONNECTING, ST_ACTIVE };

#define SCAN_NS 10000000ULL /* timeout / retry scan period: 10 ms */
#define HDR_MAX 16384
#define LINE_MAX_REPLY (1 << 20)
#define MAX_EVENTS 512

typedef struct {
    int fd;
    uint32_t gen;
    int state;
    uint64_t start_ns;   /* latency base of the current request */
    uint64_t op_ns;      /* timeout base (connect start or request start) */
    size_t sent, rcvd;
    int reused;     /* completed >= 1 request on this connection */
    int retried;    /* current request already retried once */
    int keep_start; /* next request keeps start_ns (retry) */
    int shut;       /* write side half-closed */
    int saw_nl;     /* linecpr */
    char head[8];   /* http10: first bytes of response */
    char *hbuf;     /* http11 header accumulation */
    size_t hlen;
    int hdr_done, close_after;
    long long body_left;
} slot_t;

typedef struct {
    int state; /* 0 free/needs send, 1 outstanding */
    uint64_t seq, send_ns;
} uslot_t;

/* ---- configuration / global state ---- */
static int g_mode = -1;
static int g_conns = 16, g_inflight = 16;
static size_t g_size = 64;
static int g_busy = 1;
static int g_spread_src = 0; /* AF_INET target in 127/8 */
static double g_duration = 2.0, g_warmup = 0.5, g_timeout = 2.0;
static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static int g_family;
static int g_ep;
static char *g_req;
static size_t g_req_len;
static uint64_t g_ws, g_we, g_timeout_ns; /* window start/end (absolute ns) */
static char g_scratch[65536];

static uint64_t g_requests, g_errors, g_timeouts, g_lost, g_reconnects;
static uint64_t g_max_ns;
static uint64_t g_work_ns; /* wall time spent handling events in window */

/* ---- histogram: values < 128 ns exact, then 64 sub-buckets per octave ---- */
#define HBUCKETS (128 + 57 * 64)
static uint64_t g_hist[HBUCKETS];

static int hist_index(uint64_t v) {
    if (v < 128)
        return (int)v;
    int e = 63 - __builtin_clzll(v); /* >= 7 */
    int sub = (int)((v >> (e - 6)) & 63);
    return 128 + (e - 7) * 64 + sub;
}

static double hist_value(int idx) { /* bucket midpoint */
    if (idx < 128)
        return idx;
    int e = (idx - 128) / 64 + 7, sub = (idx - 128) % 64;
    double w = (double)(1ULL << (e - 6)); /* bucket width */
    return (double)(64 + sub) * w + w / 2.0;
}

static double hist_pct(double p) {
    double r = p * (double)g_requests;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++; /* ceil without libm */
    if (rank < 1)
        rank = 1;
    uint64_t acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += g_hist[i];
        if (acc >= rank) {
            double v = hist_value(i);
            return v > (double)g_max_ns ? (double)g_max_ns : v;
        }
    }
    return (double)g_max_ns;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int in_window(uint64_t t) { return t >= g_ws && t < g_we; }

static void record(uint64_t start, uint64_t t) {
    if (!in_window(t))
        return;
    uint64_t lat = t > start ? t - start : 0;
    g_requests++;
    g_hist[hist_index(lat)]++;
    if (lat > g_max_ns)
        g_max_ns = lat;
}

static int is_cpr(void) {
    return g_mode == M_CONN || g_mode == M_LINECPR || g_mode == M_HTTP10;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode {persistent,conn,line,linecpr,udp,http10,"
            "http11} (--host H --port P | --unix PATH) [--conns C=16] "
            "[--size S=64] [--duration D=2.0] [--warmup W=0.5] "
            "[--timeout T=2.0] [--inflight N=16] [--busy-poll 0|1]\n");
    exit(2);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "loadgen: hard deadline reached\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

/* ======================= stream modes ======================= */
static slot_t *g_slots;

static void slot_close(slot_t *s) {
    if (s->fd >= 0) {
        close(s->fd); /* also removes it from the epoll set */
        s->fd = -1;
    }
    s->state = ST_IDLE;
}

static void req_begin(slot_t *s, uint64_t t) {
    if (!s->keep_start)
        s->start_ns = t;
    s->keep_start = 0;
    s->op_ns = s->start_ns;
    s->sent = s->rcvd = 0;
    s->shut = s->saw_nl = 0;
    s->hlen = 0;
    s->hdr_done = s->close_after = 0;
    s->body_left = 0;
    memset(s->head, 0, sizeof s->head);
}

/* Open a new connection for slot s (state becomes CONNECTING or ACTIVE, or
 * IDLE on immediate failure, to be retried by the next scan). */
static void slot_open(slot_t *s, uint64_t t) {
    s->reused = 0;
    s->gen++;
    int fd = socket(g_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (in_window(t))
            g_errors++;
        s->state = ST_IDLE;
        return;
    }
    if (g_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (g_spread_src && is_cpr()) {
        /* Connection-per-request leaves TIME_WAIT entries behind; spreading
         * source addresses over 127.0.0.0/8 keeps ephemeral-port selection
         * cheap and avoids exhaustion across back-to-back runs. */
        static uint32_t rr;
        struct sockaddr_in src;
        int one = 1;
        memset(&src, 0, sizeof src);
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000000u | (0x0a00u + (rr++ % 240u) * 256u + 10u));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        bind(fd, (struct sockaddr *)&src, sizeof src); /* best effort */
    }
    s->fd = fd;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = ((uint64_t)s->gen << 32) | (uint64_t)(s - g_slots);
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        if (in_window(t))
            g_errors++;
        slot_close(s);
        return;
    }
    /* connection-per-request: latency includes connect */
    if (is_cpr()) {
        req_begin(s, t);
    } else if (!s->keep_start) {
        s->start_ns = t;
    }
    s->op_ns = is_cpr() || s->keep_start ? s->start_ns : t;
    int rc = connect(fd, (struct sockaddr *)&g_addr, g_addrlen);
    if (rc == 0) {
        s->state = ST_ACTIVE;
        if (!is_cpr())
            req_begin(s, t);
        return; /* the EPOLLOUT edge reported on ADD drives it */
    }
    if (errno == EINPROGRESS) {
        s->state = ST_CONNECTING;
        return;
    }
    /* refused, or AF_UNIX backlog full (EAGAIN): error, retry on next scan */
    if (in_window(t))
        g_errors++;
    slot_close(s);
}

static void slot_fail(slot_t *s, uint64_t t) {
    if (in_window(t))
        g_errors++;
    slot_close(s); /* reopened by the next scan (bounded retry rate) */
    s->keep_start = 0;
    s->retried = 0;
}

/* Peer closed (EOF) or reset before a persistent-mode request completed. */
static void slot_peer_gone(slot_t *s, uint64_t t) {
    if (!is_cpr() && s->rcvd == 0 && s->hlen == 0 && s->reused && !s->retried) {
        if (in_window(t))
            g_reconnects++;
        slot_close(s);
        s->retried = 1;
        s->keep_start = 1;
        slot_open(s, t);
        return;
    }
    slot_fail(s, t);
}

/* Request completed successfully. Returns 1 if the slot continues on the same
 * connection (caller keeps driving it), 0 otherwise. */
static int slot_complete(slot_t *s, uint64_t t) {
    record(s->start_ns, t);
    s->retried = 0;
    s->reused = 1;
    if (is_cpr() || s->close_after) {
        slot_close(s);
        slot_open(s, t);
        return 0;
    }
    req_begin(s, t);
    return 1;
}

/* Feed reply bytes.  Returns 0 need more, 1 complete, -1 bad reply. */
static int feed(slot_t *s, const char *buf, size_t n) {
    switch (g_mode) {
    case M_PERSIST:
    case M_CONN:
        if (s->rcvd + n > g_req_len || memcmp(buf, g_req + s->rcvd, n) != 0)
            return -1;
        s->rcvd += n;
        return (g_mode == M_PERSIST && s->rcvd == g_req_len) ? 1 : 0;
    case M_LINE: {
        const char *nl = memchr(buf, '\n', n);
        s->rcvd += n;
        if (nl)
            return (size_t)(nl - buf) == n - 1 ? 1 : -1; /* nothing after */
        return s->rcvd > LINE_MAX_REPLY ? -1 : 0;
    }
    case M_LINECPR:
        if (memchr(buf, '\n', n))
            s->saw_nl = 1;
        s->rcvd += n;
        return 0;
    case M_HTTP10:
        if (s->rcvd < sizeof s->head) {
            size_t k = sizeof s->head - s->rcvd;
            memcpy(s->head + s->rcvd, buf, k < n ? k : n);
        }
        s->rcvd += n;
        return 0;
    case M_HTTP11:
        if (s->hdr_done) {
            s->body_left -= (long long)n;
            s->rcvd += n;
            return s->body_left == 0 ? 1 : (s->body_left < 0 ? -1 : 0);
        } else {
            if (!s->hbuf && !(s->hbuf = malloc(HDR_MAX)))
                return -1;
            if (s->hlen + n > HDR_MAX)
                return -1;
            size_t from = s->hlen > 3 ? s->hlen - 3 : 0;
            memcpy(s->hbuf + s->hlen, buf, n);
            s->hlen += n;
            char *end = memmem(s->hbuf + from, s->hlen - from, "\r\n\r\n", 4);
            if (!end)
                return 0;
            size_t hdr_len = (size_t)(end - s->hbuf) + 4;
            if (s->hlen < 7 || memcmp(s->hbuf, "HTTP/1.", 7) != 0)
                return -1;
            int is10 = s->hbuf[7] == '0';
            long long cl = -1;
            int ka = 0, cls = 0;
            char *p = memchr(s->hbuf, '\n', hdr_len);
            while (p && p < s->hbuf + hdr_len - 1) {
                p++;
                char *eol = memchr(p, '\n', (size_t)(s->hbuf + hdr_len - p));
                if (!eol)
                    break;
                if (!strncasecmp(p, "content-length:", 15))
                    cl = strtoll(p + 15, NULL, 10);
                else if (!strncasecmp(p, "connection:", 11)) {
                    size_t vl = (size_t)(eol - p) - 11;
                    if (memmem(p + 11, vl, "close", 5) ||
                        memmem(p + 11, vl, "Close", 5))
                        cls = 1;
                    if (memmem(p + 11, vl, "eep-alive", 9))
                        ka = 1;
                }
                p = eol;
            }
            if (cl < 0)
                return -1; /* chunked / close-delimited not supported */
            s->close_after = cls || (is10 && !ka);
            s->hdr_done = 1;
            s->body_left = cl - (long long)(s->hlen - hdr_len);
            return s->body_left == 0 ? 1 : (s->body_left < 0 ? -1 : 0);
        }
    }
    return -1;
}

/* EOF on the reply.  Returns 1 complete, -1 failure. */
static int feed_eof(slot_t *s) {
    switch (g_mode) {
    case M_CONN:
        return s->rcvd == g_req_len ? 1 : -1;
    case M_LINECPR:
        return s->saw_nl ? 1 : -1;
    case M_HTTP10:
        return s->rcvd >= 7 && memcmp(s->head, "HTTP/1.", 7) == 0 ? 1 : -1;
    default:
        return -1;
    }
}

static void drive(slot_t *s, uint32_t events) {
    uint64_t t;
    if (s->state == ST_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            slot_fail(s, now_ns());
            return;
        }
        s->state = ST_ACTIVE;
        if (!is_cpr())
            req_begin(s, now_ns());
    }
    if (s->state != ST_ACTIVE)
        return;
    /* Data/EOF already signalled by this event must be read in this call;
     * anything arriving later produces a new edge. */
    int must_read = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    for (;;) {
        int progress = 0, sent_all = 0;
        if (s->sent < g_req_len) {
            ssize_t n = send(s->fd, g_req + s->sent, g_req_len - s->sent,
                             MSG_NOSIGNAL);
            if (n > 0) {
                s->sent += (size_t)n;
                progress = 1;
                sent_all = s->sent == g_req_len;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR) {
                slot_peer_gone(s, now_ns());
                return;
            }
        }
        if (s->sent == g_req_len && !s->shut &&
            (g_mode == M_CONN || g_mode == M_LINECPR)) {
            shutdown(s->fd, SHUT_WR);
            s->shut = 1;
        }
        /* Request just fully sent and nothing pending to read: the reply
         * cannot be here yet, wait for the EPOLLIN edge (saves a syscall). */
        if (sent_all && !must_read)
            return;
        ssize_t n = recv(s->fd, g_scratch, sizeof g_scratch, 0);
        must_read = 0;
        if (n > 0) {
            progress = 1;
            int r = feed(s, g_scratch, (size_t)n);
            if (r < 0) {
                slot_fail(s, now_ns());
                return;
            }
            if (r > 0) {
                t = now_ns();
                if (!slot_complete(s, t))
                    return;
            }
        } else if (n == 0) {
            t = now_ns();
            if (is_cpr() && s->sent == g_req_len && feed_eof(s) > 0)
                slot_complete(s, t);
            else
                slot_peer_gone(s, t);
            return;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            slot_peer_gone(s, now_ns());
            return;
        } else if (errno != EINTR && (s->sent == g_req_len || !progress)) {
            return; /* drained; a new edge will come for more data */
        }
        if (!progress)
            return;
    }
}

static void stream_scan(uint64_t t) {
    for (int i = 0; i < g_conns; i++) {
        slot_t *s = &g_slots[i];
        if (s->state == ST_IDLE) {
            if (t < g_we)
                slot_open(s, t);
        } else if (t - s->op_ns > g_timeout_ns) {
            if (in_window(t))
                g_timeouts++;
            slot_close(s);
            s->keep_start = 0;
            s->retried = 0;
            slot_open(s, t);
        }
    }
}

/* ======================= udp mode ======================= */
static int g_ufd = -1;
static uslot_t *g_uslots;
static char *g_ubuf;

static void udp_send(int i, uint64_t t) {
    uslot_t *u = &g_uslots[i];
    u->seq += (uint64_t)g_inflight;
    memcpy(g_ubuf, &u->seq, 8);
    ssize_t n = send(g_ufd, g_ubuf, g_size, MSG_NOSIGNAL);
    if (n == (ssize_t)g_size) {
        u->state = 1;
        u->send_ns = t;
        return;
    }
    u->state = 0; /* resent on EPOLLOUT or the next scan */
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        if (in_window(t))
            g_errors++;
}

static void udp_send_pending(uint64_t t) {
    for (int i = 0; i < g_inflight; i++)
        if (g_uslots[i].state == 0)
            udp_send(i, t);
}

static void udp_readable(void) {
    for (;;) {
        ssize_t n = recv(g_ufd, g_scratch, sizeof g_scratch, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && in_window(now_ns()))
                g_errors++; /* e.g. ECONNREFUSED from ICMP */
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            continue;
        }
        uint64_t t = now_ns();
        if (n < 8)
            continue;
        uint64_t seq;
        memcpy(&seq, g_scratch, 8);
        int i = (int)(seq % (uint64_t)g_inflight);
        uslot_t *u = &g_uslots[i];
        if (u->state != 1 || u->seq != seq)
            continue; /* late reply to a datagram already counted lost */
        if ((size_t)n != g_size) {
            if (in_window(t))
                g_errors++;
        } else {
            record(u->send_ns, t);
        }
        u->state = 0;
        if (t < g_we)
            udp_send(i, t);
    }
}

static void udp_scan(uint64_t t) {
    for (int i = 0; i < g_inflight; i++) {
        uslot_t *u = &g_uslots[i];
        if (u->state == 1 && t - u->send_ns > g_timeout_ns) {
            if (in_window(t))
                g_lost++;
            u->state = 0;
        }
    }
    if (t < g_we)
        udp_send_pending(t);
}

static void udp_setup(void) {
    g_ufd = socket(g_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g_ufd < 0) {
        perror("socket");
        exit(2);
    }
    int sz = 4 << 20;
    setsockopt(g_ufd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (g_family == AF_UNIX) {
        /* autobind to an abstract-namespace address so the server can reply */
        struct sockaddr_un me;
        memset(&me, 0, sizeof me);
        me.sun_family = AF_UNIX;
        if (bind(g_ufd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0) {
            perror("bind");
            exit(2);
        }
    }
    if (connect(g_ufd, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
        perror("connect");
        exit(2);
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u64 = UINT64_MAX;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, g_ufd, &ev) < 0) {
        perror("epoll_ctl");
        exit(2);
    }
    if (g_size < 8)
        g_size = 8;
    g_ubuf = malloc(g_size);
    g_uslots = calloc((size_t)g_inflight, sizeof *g_uslots);
    if (!g_ubuf || !g_uslots)
        exit(2);
    for (size_t k = 0; k < g_size; k++)
        g_ubuf[k] = (char)('a' + k % 26);
    for (int i = 0; i < g_inflight; i++)
        g_uslots[i].seq = (uint64_t)i; /* seq % N == slot index, always */
}

/* ======================= main ======================= */
static double parse_double(const char *s, const char *name) {
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= 0)) {
        fprintf(stderr, "loadgen: bad %s: %s\n", name, s);
        exit(2);
    }
    return v;
}

static long parse_long(const char *s, const char *name, long min) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < min) {
        fprintf(stderr, "loadgen: bad %s: %s\n", name, s);
        exit(2);
    }
    return v;
}

static void print_num_or_null(const char *key, double v, int ok) {
    if (ok)
        printf(", \"%s\": %.1f", key, v);
    else
        printf(", \"%s\": null", key);
}

int main(int argc, char **argv) {
    const char *mode = NULL, *host = NULL, *port = NULL, *upath = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = v;
        else if (!strcmp(a, "--unix"))
            upath = v;
        else if (!strcmp(a, "--conns"))
            g_conns = (int)parse_long(v, "conns", 1);
        else if (!strcmp(a, "--size"))
            g_size = (size_t)parse_long(v, "size", 1);
        else if (!strcmp(a, "--duration"))
            g_duration = parse_double(v, "duration");
        else if (!strcmp(a, "--warmup"))
            g_warmup = parse_double(v, "warmup");
        else if (!strcmp(a, "--timeout"))
            g_timeout = parse_double(v, "timeout");
        else if (!strcmp(a, "--busy-poll"))
            g_busy = (int)parse_long(v, "busy-poll", 0) != 0;
        else if (!strcmp(a, "--inflight"))
            g_inflight = (int)parse_long(v, "inflight", 1);
        else
            usage();
    }
    if (!mode)
        usage();
    for (int m = 0; m <= M_HTTP11; m++)
        if (!strcmp(mode, MODE_NAMES[m]))
            g_mode = m;
    if (g_mode < 0 || (!upath && (!host || !port)) || (upath && (host || port)))
        usage();
    if (g_duration <= 0) {
        fprintf(stderr, "loadgen: duration must be > 0\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    /* Backstop: never outlive warmup + duration + timeout + 1 s. */
    signal(SIGALRM, on_alarm);
    struct itimerval itv;
    memset(&itv, 0, sizeof itv);
    double hard = g_warmup + g_duration + g_timeout + 0.8;
    itv.it_value.tv_sec = (time_t)hard;
    itv.it_value.tv_usec = (suseconds_t)((hard - (double)(time_t)hard) * 1e6);
    setitimer(ITIMER_REAL, &itv, NULL);

    /* resolve target */
    if (upath) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&g_addr;
        memset(sun, 0, sizeof *sun);
        sun->sun_family = AF_UNIX;
        if (strlen(upath) >= sizeof sun->sun_path) {
            fprintf(stderr, "loadgen: unix path too long\n");
            return 2;
        }
        strcpy(sun->sun_path, upath);
        g_addrlen = sizeof *sun;
        g_family = AF_UNIX;
    } else {
        struct addrinfo hints, *res;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = g_mode == M_UDP ? SOCK_DGRAM : SOCK_STREAM;
        int rc = getaddrinfo(host, port, &hints, &res);
        if (rc != 0) {
            fprintf(stderr, "loadgen: %s:%s: %s\n", host, port, gai_strerror(rc));
            return 2;
        }
        memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
        g_addrlen = res->ai_addrlen;
        g_family = res->ai_family;
        if (g_family == AF_INET &&
            (ntohl(((struct sockaddr_in *)&g_addr)->sin_addr.s_addr) >> 24) == 127)
            g_spread_src = 1;
        freeaddrinfo(res);
    }

    /* request message */
    if (g_mode == M_HTTP10 || g_mode == M_HTTP11) {
        g_req = strdup(g_mode == M_HTTP10 ? "GET / HTTP/1.0\r\nHost: x\r\n\r\n"
                                          : "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        g_req_len = strlen(g_req);
    } else {
        g_req = malloc(g_size);
        if (!g_req)
            return 2;
        for (size_t k = 0; k < g_size; k++)
            g_req[k] = (char)('a' + k % 26);
        if (g_mode == M_LINE || g_mode == M_LINECPR)
            g_req[g_size - 1] = '\n';
        g_req_len = g_size;
    }

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0) {
        perror("epoll_create1");
        return 2;
    }
    uint64_t t0 = now_ns();
    g_ws = t0 + (uint64_t)(g_warmup * 1e9);
    g_we = g_ws + (uint64_t)(g_duration * 1e9);
    g_timeout_ns = (uint64_t)(g_timeout * 1e9);

    if (g_mode == M_UDP) {
        udp_setup();
        for (int i = 0; i < g_inflight; i++)
            udp_send(i, t0);
    } else {
        g_slots = calloc((size_t)g_conns, sizeof *g_slots);
        if (!g_slots)
            return 2;
        for (int i = 0; i < g_conns; i++) {
            g_slots[i].fd = -1;
            slot_open(&g_slots[i], t0);
        }
    }

    struct rusage ru0, ru1;
    int window_started = 0;
    uint64_t next_scan = t0 + SCAN_NS;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        uint64_t t = now_ns();
        if (!window_started && t >= g_ws) {
            getrusage(RUSAGE_SELF, &ru0);
            window_started = 1;
        }
        if (t >= g_we)
            break;
        if (t >= next_scan) {
            if (g_mode == M_UDP)
                udp_scan(t);
            else
                stream_scan(t);
            next_scan = t + SCAN_NS;
        }
        uint64_t wake = next_scan < g_we ? next_scan : g_we;
        if (!window_started && g_ws < wake)
            wake = g_ws;
        int ms = wake > t ? (int)((wake - t + 999999) / 1000000) : 0;
        if (g_busy)
            ms = 0; /* busy-poll: never sleep (avoids idle wake-up latency) */
        int n = epoll_wait(g_ep, events, MAX_EVENTS, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 2;
        }
        uint64_t tw = n > 0 ? now_ns() : 0;
        for (int k = 0; k < n; k++) {
            uint64_t d = events[k].data.u64;
            if (g_mode == M_UDP) {
                uint64_t tt = now_ns();
                if (events[k].events & (EPOLLIN | EPOLLERR))
                    udp_readable();
                if ((events[k].events & EPOLLOUT) && tt < g_we)
                    udp_send_pending(tt);
                continue;
            }
            uint32_t idx = (uint32_t)d, gen = (uint32_t)(d >> 32);
            if (idx >= (uint32_t)g_conns)
                continue;
            slot_t *s = &g_slots[idx];
            if (s->gen != gen || s->fd < 0)
                continue; /* stale event for a replaced connection */
            drive(s, events[k].events);
        }
        if (n > 0 && window_started && tw < g_we)
            g_work_ns += now_ns() - tw;
    }
    getrusage(RUSAGE_SELF, &ru1);
    if (!window_started)
        ru0 = ru1;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    double secs = (double)(g_we - g_ws) / 1e9;
    int have = g_requests > 0;
    printf("{\"mode\": \"%s\", \"requests\": %llu, \"seconds\": %.3f, "
           "\"rps\": %.1f",
           MODE_NAMES[g_mode], (unsigned long long)g_requests, secs,
           (double)g_requests / secs);
    print_num_or_null("p50_us", have ? hist_pct(0.50) / 1000.0 : 0, have);
    print_num_or_null("p99_us", have ? hist_pct(0.99) / 1000.0 : 0, have);
    print_num_or_null("p999_us", have ? hist_pct(0.999) / 1000.0 : 0, have);
    print_num_or_null("max_us", (double)g_max_ns / 1000.0, have);
    printf(", \"errors\": %llu, \"timeouts\": %llu, \"lost\": %llu, "
           "\"reconnects\": %llu, \"client_cpu_s\": %.3f, "
           "\"client_work_s\": %.3f, \"busy_poll\": %s, \"conns\": %d, "
           "\"size\": %zu, \"inflight\": %d}\n",
           (unsigned long long)g_errors, (unsigned long long)g_timeouts,
           (unsigned long long)g_lost, (unsigned long long)g_reconnects, cpu,
           (double)g_work_ns / 1e9, g_busy ? "true" : "false",
           g_mode == M_UDP ? 0 : g_conns, g_mode == M_UDP ? g_size : g_req_len,
           g_mode == M_UDP ? g_inflight : 0);
    fflush(stdout);
    return 0;
}
