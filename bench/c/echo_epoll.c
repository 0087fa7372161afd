/*
 * echo_epoll -- minimal single-threaded epoll reference server for the
 * csockserver benchmark (the practical upper bound of this machine).
 *
 *   echo_epoll --mode {echo,line,udp,http} [--host 127.0.0.1] [--port 0]
 *              [--unix PATH]
 *
 * echo/line: echo bytes back on persistent connections; when the peer sends
 *            EOF, flush pending output and close.
 * udp:       echo each datagram to its sender (AF_INET dgram, or AF_UNIX
 *            dgram with --unix; the client must bind an address).
 * http:      for each request (headers up to \r\n\r\n, plus a Content-Length
 *            body if any) reply "HTTP/1.1 200 OK ... ok"; an HTTP/1.0 request
 *            without keep-alive (or any request with "Connection: close")
 *            gets its response and then the connection is closed.
 *
 * When ready prints one JSON line: {"address": ["127.0.0.1", port]} or
 * {"address": "/path"}.  Exits cleanly on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { M_ECHO, M_LINE, M_UDP, M_HTTP };

#define SCRATCH 65536
#define MAX_REQ_BUF (1 << 20)
#define MAX_EVENTS 256

typedef struct {
    int fd;
    int peer_eof;    /* read returned 0 */
    int close_after; /* close once outbuf is flushed */
    int want_out;    /* currently registered for EPOLLOUT instead of EPOLLIN */
    char *out;
    size_t out_len, out_off, out_cap;
    char *in; /* http request accumulation */
    size_t in_len, in_cap;
} conn_t;

static int g_mode = M_ECHO;
static int g_ep = -1;
static int g_is_tcp = 0;
static conn_t **g_conns = NULL;
static size_t g_nconns = 0;
static char g_scratch[SCRATCH];

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void usage(void) {
    fprintf(stderr, "usage: echo_epoll --mode {echo,line,udp,http} [--host H] "
                    "[--port P] [--unix PATH]\n");
    exit(2);
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *data,
                      size_t n) {
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

static void conn_close(conn_t *c) {
    /* close() drops the fd from the epoll set: no EPOLL_CTL_DEL needed. */
    close(c->fd);
    if ((size_t)c->fd < g_nconns)
        g_conns[c->fd] = NULL;
    free(c->out);
    free(c->in);
    free(c);
}

static void conn_set_out(conn_t *c, int want_out) {
    if (c->want_out == want_out)
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = want_out ? EPOLLOUT : EPOLLIN;
    ev.data.fd = c->fd;
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

/* Try to flush pending output.  Returns -1 if the connection was closed. */
static int conn_flush(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_out(c, 1);
            return 0;
        }
        conn_close(c);
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->close_after || c->peer_eof) {
        conn_close(c);
        return -1;
    }
    conn_set_out(c, 0);
    return 0;
}

/* Queue data for sending (writing directly when nothing is pending). */
static int conn_write(conn_t *c, const char *data, size_t n) {
    if (c->out_len == c->out_off) {
        c->out_len = c->out_off = 0;
        while (n > 0) {
            ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
            if (w > 0) {
                data += w;
                n -= (size_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            conn_close(c);
            return -1;
        }
        if (n == 0)
            return 0;
    }
    if (buf_append(&c->out, &c->out_len, &c->out_cap, data, n) < 0) {
        conn_close(c);
        return -1;
    }
    conn_set_out(c, 1);
    return 0;
}

static const char *memmem_ci(const char *hay, size_t hlen, const char *needle) {
    size_t nlen = strlen(needle);
    if (nlen > hlen)
        return NULL;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (strncasecmp(hay + i, needle, nlen) == 0)
            return hay + i;
    return NULL;
}

/* Find header value (case-insensitive name) inside [hdr, hdr+len). */
static const char *find_header(const char *hdr, size_t len, const char *name,
                               size_t *vlen) {
    const char *p = memchr(hdr, '\n', len); /* skip request line */
    size_t nlen = strlen(name);
    while (p && (size_t)(p - hdr) + 1 < len) {
        p++;
        size_t rem = len - (size_t)(p - hdr);
        const char *eol = memchr(p, '\n', rem);
        size_t llen = eol ? (size_t)(eol - p) : rem;
        if (llen > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            const char *e = p + llen;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

static const char RESP11[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             "Content-Type: text/plain\r\n\r\nok";
static const char RESP11_CLOSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                   "Content-Type: text/plain\r\n"
                                   "Connection: close\r\n\r\nok";
static const char RESP10[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n"
                             "Content-Type: text/plain\r\n\r\nok";
static const char RESP10_KA[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n"
                                "Content-Type: text/plain\r\n"
                                "Connection: keep-alive\r\n\r\nok";

/* Process complete requests in c->in.  Returns -1 if conn closed. */
static int http_process(conn_t *c) {
    size_t pos = 0;
    while (!c->close_after) {
        char *base = c->in + pos;
        size_t avail = c->in_len - pos;
        char *end = memmem(base, avail, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hlen = (size_t)(end - base) + 4;
        size_t vlen = 0, body = 0;
        const char *v = find_header(base, hlen, "content-length", &vlen);
        if (v) {
            char tmp[32];
            if (vlen >= sizeof tmp)
                vlen = sizeof tmp - 1;
            memcpy(tmp, v, vlen);
            tmp[vlen] = 0;
            body = (size_t)strtoull(tmp, NULL, 10);
            if (body > MAX_REQ_BUF) {
                conn_close(c);
                return -1;
            }
        }
        if (avail < hlen + body)
            break; /* wait for the body */
        const char *eol = memchr(base, '\n', hlen);
        size_t rl_len = eol ? (size_t)(eol - base) : hlen;
        int is10 = memmem_ci(base, rl_len, "HTTP/1.0") != NULL;
        const char *conn_v = find_header(base, hlen, "connection", &vlen);
        int ka_hdr = conn_v && memmem_ci(conn_v, vlen, "keep-alive");
        int close_hdr = conn_v && memmem_ci(conn_v, vlen, "close");
        const char *resp;
        size_t rlen;
        if (is10) {
            if (ka_hdr && !close_hdr) {
                resp = RESP10_KA;
                rlen = sizeof RESP10_KA - 1;
            } else {
                resp = RESP10;
                rlen = sizeof RESP10 - 1;
                c->close_after = 1;
            }
        } else if (close_hdr) {
            resp = RESP11_CLOSE;
            rlen = sizeof RESP11_CLOSE - 1;
            c->close_after = 1;
        } else {
            resp = RESP11;
            rlen = sizeof RESP11 - 1;
        }
        pos += hlen + body;
        if (conn_write(c, resp, rlen) < 0)
            return -1;
    }
    if (c->close_after) {
        c->in_len = 0;
        if (c->out_off == c->out_len) {
            conn_close(c);
            return -1;
        }
        return 0;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (c->in_len > MAX_REQ_BUF) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static void conn_readable(conn_t *c) {
    for (int iter = 0; iter < 16; iter++) {
        ssize_t n = recv(c->fd, g_scratch, sizeof g_scratch, 0);
        if (n > 0) {
            if (g_mode == M_HTTP) {
                if (buf_append(&c->in, &c->in_len, &c->in_cap, g_scratch,
                               (size_t)n) < 0) {
                    conn_close(c);
                    return;
                }
                if (http_process(c) < 0)
                    return;
            } else {
                if (conn_write(c, g_scratch, (size_t)n) < 0)
                    return;
            }
            if (c->want_out || c->close_after)
                return; /* backpressure: wait until output drains */
            if ((size_t)n < sizeof g_scratch)
                return; /* probably drained; level-triggered anyway */
            continue;
        }
        if (n == 0) {
            c->peer_eof = 1;
            if (c->out_off == c->out_len)
                conn_close(c);
            else
                conn_set_out(c, 1);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        conn_close(c);
        return;
    }
}

static void accept_all(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE etc: try again on next event */
        }
        /* Only HTTP answers in pieces that Nagle could hold back; an echo
         * answers each message with one write. */
        if (g_is_tcp && g_mode == M_HTTP) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if ((size_t)fd >= g_nconns) {
            size_t nn = g_nconns ? g_nconns : 1024;
            while (nn <= (size_t)fd)
                nn *= 2;
            conn_t **nc = realloc(g_conns, nn * sizeof *nc);
            if (!nc) {
                close(fd);
                continue;
            }
            memset(nc + g_nconns, 0, (nn - g_nconns) * sizeof *nc);
            g_conns = nc;
            g_nconns = nn;
        }
        conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        g_conns[fd] = c;
    }
}

static void udp_readable(int fd) {
    for (int iter = 0; iter < 64; iter++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n =
            recvfrom(fd, g_scratch, sizeof g_scratch, 0, (struct sockaddr *)&ss, &sl);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN or transient error (e.g. ICMP) */
        }
        if (ss.ss_family == AF_UNIX && sl <= offsetof(struct sockaddr_un, sun_path))
            continue; /* unbound sender: cannot reply */
        /* If the send buffer is full the datagram is dropped (UDP). */
        sendto(fd, g_scratch, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
    }
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

int main(int argc, char **argv) {
    const char *mode = NULL, *host = "127.0.0.1", *port = "0", *upath = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        if (!strcmp(a, "--mode"))
            mode = argv[++i];
        else if (!strcmp(a, "--host"))
            host = argv[++i];
        else if (!strcmp(a, "--port"))
            port = argv[++i];
        else if (!strcmp(a, "--unix"))
            upath = argv[++i];
        else
            usage();
    }
    if (!mode)
        usage();
    if (!strcmp(mode, "echo"))
        g_mode = M_ECHO;
    else if (!strcmp(mode, "line"))
        g_mode = M_LINE;
    else if (!strcmp(mode, "udp"))
        g_mode = M_UDP;
    else if (!strcmp(mode, "http"))
        g_mode = M_HTTP;
    else
        usage();

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd");

    int stype = g_mode == M_UDP ? SOCK_DGRAM : SOCK_STREAM;
    int lfd;
    if (upath) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if (strlen(upath) >= sizeof sun.sun_path) {
            fprintf(stderr, "echo_epoll: unix path too long\n");
            return 2;
        }
        strcpy(sun.sun_path, upath);
        struct stat st;
        if (stat(upath, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(upath); /* stale socket from a previous run */
        lfd = socket(AF_UNIX, stype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0)
            die("socket");
        if (bind(lfd, (struct sockaddr *)&sun, sizeof sun) < 0)
            die("bind");
    } else {
        struct addrinfo hints, *res;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = stype;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        int rc = getaddrinfo(host, port, &hints, &res);
        if (rc != 0) {
            fprintf(stderr, "echo_epoll: %s: %s\n", host, gai_strerror(rc));
            return 2;
        }
        lfd = socket(res->ai_family, stype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0)
            die("socket");
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(lfd, res->ai_addr, res->ai_addrlen) < 0)
            die("bind");
        freeaddrinfo(res);
        g_is_tcp = stype == SOCK_STREAM;
    }
    if (stype == SOCK_STREAM && listen(lfd, SOMAXCONN) < 0)
        die("listen");
    if (g_mode == M_UDP) {
        int sz = 4 << 20;
        setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt(lfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0)
        die("epoll_create1");
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl");
    ev.data.fd = sfd;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
        die("epoll_ctl");

    if (upath) {
        fputs("{\"address\": ", stdout);
        json_string(stdout, upath);
        fputs("}\n", stdout);
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
        if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
            die("getsockname");
        if (getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof hbuf, pbuf,
                        sizeof pbuf, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            die("getnameinfo");
        printf("{\"address\": [\"%s\", %s]}\n", hbuf, pbuf);
    }
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    int running = 1;
    while (running) {
        int n = epoll_wait(g_ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == sfd) {
                running = 0;
                continue;
            }
            if (fd == lfd) {
                if (g_mode == M_UDP)
                    udp_readable(lfd);
                else
                    accept_all(lfd);
                continue;
            }
            if ((size_t)fd >= g_nconns || !g_conns[fd])
                continue; /* closed earlier in this batch */
            conn_t *c = g_conns[fd];
            uint32_t e = events[i].events;
            if (c->want_out) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    conn_flush(c);
            } else if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_readable(c);
            }
        }
    }
    for (size_t i = 0; i < g_nconns; i++)
        if (g_conns[i])
            conn_close(g_conns[i]);
    free(g_conns);
    close(lfd);
    if (upath)
        unlink(upath);
    return 0;
}
