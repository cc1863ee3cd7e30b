
/*
 * wsload: bench/run's load generator for JSON-RPC calls over WebSocket
 * (RFC 6455), and over HTTP/1.1 keepalive for a comparison made with the
 * same tool.  One thread, epoll, non-blocking sockets.
 *
 *   wsload ws   -c CONNS -d SECONDS HOST PORT PATH
 *   wsload http -c CONNS -d SECONDS HOST PORT PATH
 *   wsload idle -c CONNS HOST PORT PATH
 *   wsload sub  -c CONNS -d SECONDS HOST PORT PATH
 *
 * ws, http: all CONNS connections are opened (and the WebSocket handshake
 * done) first; then for SECONDS each connection sends a call, waits for its
 * answer and sends the next, one in flight per connection as wrk does with
 * keepalive.  The call is bench/bodies/single.json with an id of its own:
 *   {"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":N}
 * sent in one masked text frame (a new random mask per frame) or one POST.
 * Every answer must be one unmasked text frame with FIN set (ws) or a 200
 * with Content-Length (http), holding "id":N and a "result"; anything else
 * is an error and closes that connection.  Pings are answered with pongs.
 * At the end every WebSocket sends a close frame (1000) and waits up to 2 s
 * for the gateway's echo and its end of the TCP connection; a connection
 * that does not get both is an error.  Output, as bench/rpc.lua's:
 *   RESULT calls calls/s p50-ms p99-ms errors
 *
 * idle: opens CONNS WebSockets (at most 128 handshakes under way at once),
 * prints "open N" and waits for a line on stdin; then sends one call on
 * every connection (64 in flight at once), prints "called N" and waits for
 * a line; then closes them all as above and prints
 *   RESULT opened answered closed errors
 * so that bench/run can read the gateway's memory at each step.
 *
 * sub: opens CONNS WebSockets as idle does, subscribes each to newHeads
 *   {"jsonrpc":"2.0","id":N,"method":"eth_subscribe","params":["newHeads"]}
 * (64 in flight at once; the answer must be "result":"0x..."), prints
 * "subscribed N" and waits for a line on stdin (bench/run then has the
 * node emit events); then for SECONDS counts the events each connection
 * gets: a text frame holding "subscription":"<its own id>" and the node's
 * "sent":MS (Unix time in ms, t/js/wsnode.js), whose latency is the wall
 * clock at its arrival less MS.  Then prints "ran N" and waits for a line
 * (the node can be stopped, and the events queued drain); then closes them
 * all as above and prints
 *   RESULT events events/s p50-ms p99-ms errors
 *
 * Errors are counted and the first few described on stderr.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>


#define WSL_RBUF         4096
#define WSL_WBUF         1024
#define WSL_HIST         1000000          /* latency buckets of 1 us */
#define WSL_IDLE_OPEN    128
#define WSL_IDLE_CALLS   64
#define WSL_CLOSE_WAIT   2000000000LL     /* ns */
#define WSL_GUID         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


typedef enum {
    WSL_WS = 0,
    WSL_HTTP,
    WSL_IDLE,
    WSL_SUB
} wsl_mode_e;

typedef enum {
    WSL_CONNECTING = 0,   /* TCP connect under way */
    WSL_HANDSHAKE,        /* upgrade request sent, waiting for the 101 */
    WSL_READY,            /* open, nothing in flight */
    WSL_CALL,             /* a call in flight */
    WSL_CLOSING,          /* close frame sent, waiting for echo and EOF */
    WSL_DONE              /* socket closed */
} wsl_state_e;

typedef enum {
    WSL_SETUP = 0,        /* opening the connections */
    WSL_RUN,              /* ws, http: the measured calls */
    WSL_HELD,             /* idle: all open, waiting for stdin */
    WSL_CALLS,            /* idle: one call on every connection; sub: a
                             subscribe on every connection */
    WSL_HELD_AGAIN,       /* idle: called, waiting for stdin */
    WSL_CLOSE             /* closing everything */
} wsl_phase_e;

typedef struct {
    int             fd;
    wsl_state_e     state;
    unsigned        echoed:1;     /* the close frame came back */
    unsigned        answered:1;   /* idle: its call was answered */
    uint64_t        id;           /* of the call in flight */
    char            sub[35];      /* sub: its subscription id, "0x..." */
    int64_t         sent;         /* ns, when that call left */
    char            key[25];      /* Sec-WebSocket-Key */
    size_t          rlen;
    size_t          wpos;
    size_t          wlen;
    unsigned char  *rbuf;
    unsigned char  *wbuf;
} wsl_conn_t;


static void wsl_usage(void);
static int wsl_open(wsl_conn_t *c);
static void wsl_connected(wsl_conn_t *c);
static void wsl_write(wsl_conn_t *c);
static int wsl_send(wsl_conn_t *c, const void *data, size_t len);
static void wsl_read(wsl_conn_t *c);
static int wsl_handshake(wsl_conn_t *c);
static int wsl_frames(wsl_conn_t *c);
static int wsl_responses(wsl_conn_t *c);
static int wsl_answer(wsl_conn_t *c, const unsigned char *p, size_t len);
static int wsl_subscribed(wsl_conn_t *c, const unsigned char *p, size_t len);
static int wsl_event(wsl_conn_t *c, const unsigned char *p, size_t len);
static void wsl_call(wsl_conn_t *c);
static int wsl_frame(wsl_conn_t *c, int opcode, const unsigned char *data,
    size_t len);
static void wsl_close(wsl_conn_t *c);
static void wsl_fail(wsl_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void wsl_end(wsl_conn_t *c);
static void wsl_watch(wsl_conn_t *c, uint32_t events);
static const char *wsl_header(const unsigned char *h, size_t len,
    const char *name, size_t *vlen);
static void wsl_sha1(const unsigned char *data, size_t len,
    unsigned char out[20]);
static size_t wsl_base64(const unsigned char *in, size_t len, char *out);
static uint64_t wsl_random(void);
static int64_t wsl_now(void);
static int64_t wsl_wall_us(void);
static double wsl_percentile(double p);


static wsl_mode_e           wsl_mode;
static wsl_phase_e          wsl_phase;
static const char          *wsl_host;
static const char          *wsl_path;
static struct sockaddr_in   wsl_addr;
static int                  wsl_ep;
static int                  wsl_nconns;
static wsl_conn_t          *wsl_conns;

static int                  wsl_started;     /* connections begun */
static int                  wsl_opened;      /* ... that got ready */
static int                  wsl_settled;     /* ... ready or failed */
static int                  wsl_live;        /* sockets not yet closed */
static int                  wsl_inflight;
static int                  wsl_next;        /* idle: next to call */
static uint64_t             wsl_ids;
static uint64_t             wsl_calls;       /* answers counted */
static uint64_t             wsl_answered;    /* idle: answers */
static uint64_t             wsl_closed;      /* closes echoed, EOF seen */
static uint64_t             wsl_errors;
static uint64_t             wsl_seed;
static uint32_t            *wsl_hist;


#define wsl_call_fmt                                                          \
    "{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],"      \
    "\"id\":%llu}"

#define wsl_subscribe_fmt                                                     \
    "{\"jsonrpc\":\"2.0\",\"method\":\"eth_subscribe\","                    \
    "\"params\":[\"newHeads\"],\"id\":%llu}"


int
main(int argc, char **argv)
{
    int                  i, n, o, stdin_open;
    double               secs, elapsed;
    int64_t              start, end, deadline, now;
    struct epoll_event   ev, evs[256];
    char                 line[256];

    secs = 5;

    if (argc < 2) {
        wsl_usage();
    }

    if (strcmp(argv[1], "ws") == 0) {
        wsl_mode = WSL_WS;

    } else if (strcmp(argv[1], "http") == 0) {
        wsl_mode = WSL_HTTP;

    } else if (strcmp(argv[1], "idle") == 0) {
        wsl_mode = WSL_IDLE;

    } else if (strcmp(argv[1], "sub") == 0) {
        wsl_mode = WSL_SUB;

    } else {
        wsl_usage();
    }

    optind = 2;

    while ((o = getopt(argc, argv, "c:d:")) != -1) {
        switch (o) {
        case 'c':
            wsl_nconns = atoi(optarg);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        default:
            wsl_usage();
        }
    }

    if (argc - optind != 3 || wsl_nconns < 1) {
        wsl_usage();
    }

    wsl_host = argv[optind];
    wsl_path = argv[optind + 2];

    memset(&wsl_addr, 0, sizeof(wsl_addr));
    wsl_addr.sin_family = AF_INET;
    wsl_addr.sin_port = htons(atoi(argv[optind + 1]));

    if (inet_pton(AF_INET, wsl_host, &wsl_addr.sin_addr) != 1) {
        fprintf(stderr, "wsload: %s: not an IPv4 address\n", wsl_host);
        return 2;
    }

    wsl_seed = (uint64_t) wsl_now() ^ ((uint64_t) getpid() << 32);
    wsl_hist = calloc(WSL_HIST + 1, sizeof(uint32_t));
    wsl_conns = calloc(wsl_nconns, sizeof(wsl_conn_t));
    wsl_ep = epoll_create1(0);

    if (wsl_hist == NULL || wsl_conns == NULL || wsl_ep == -1) {
        perror("wsload");
        return 1;
    }

    for (i = 0; i < wsl_nconns; i++) {
        wsl_conns[i].fd = -1;
        wsl_conns[i].rbuf = malloc(WSL_RBUF + WSL_WBUF);

        if (wsl_conns[i].rbuf == NULL) {
            perror("wsload");
            return 1;
        }

        wsl_conns[i].wbuf = wsl_conns[i].rbuf + WSL_RBUF;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    wsl_phase = WSL_SETUP;
    stdin_open = 0;
    start = end = deadline = 0;

    for ( ;; ) {

        /* open connections: all at once, or a few at a time for idle */

        while (wsl_phase == WSL_SETUP && wsl_started < wsl_nconns
               && ((wsl_mode != WSL_IDLE && wsl_mode != WSL_SUB)
                   || wsl_started - wsl_settled < WSL_IDLE_OPEN))
        {
            wsl_open(&wsl_conns[wsl_started++]);
        }

        now = wsl_now();

        switch (wsl_phase) {

        case WSL_SETUP:
            if (wsl_settled < wsl_nconns) {
                break;
            }

            if (wsl_mode == WSL_IDLE) {
                printf("open %d\n", wsl_opened);
                ev.events = EPOLLIN;
                ev.data.ptr = NULL;
                epoll_ctl(wsl_ep, EPOLL_CTL_ADD, 0, &ev);
                stdin_open = 1;
                wsl_phase = WSL_HELD;
                break;
            }

            if (wsl_mode == WSL_SUB) {
                wsl_phase = WSL_CALLS;
                break;
            }

            wsl_phase = WSL_RUN;
            start = now;
            end = start + (int64_t) (secs * 1e9);

            for (i = 0; i < wsl_nconns; i++) {
                if (wsl_conns[i].state == WSL_READY) {
                    wsl_call(&wsl_conns[i]);
                }
            }

            break;

        case WSL_RUN:
            if (now < end) {
                break;
            }

            end = now;

            if (wsl_mode == WSL_SUB) {
                printf("ran %llu\n", (unsigned long long) wsl_calls);
                wsl_phase = WSL_HELD_AGAIN;
                break;
            }

            goto close;

        case WSL_CALLS:
            while (wsl_inflight < WSL_IDLE_CALLS && wsl_next < wsl_nconns) {
                if (wsl_conns[wsl_next].state == WSL_READY) {
                    wsl_call(&wsl_conns[wsl_next]);
                }

                wsl_next++;
            }

            if (wsl_inflight == 0 && wsl_next == wsl_nconns) {
                if (wsl_mode == WSL_SUB) {
                    printf("subscribed %llu\n",
                           (unsigned long long) wsl_answered);
                    ev.events = EPOLLIN;
                    ev.data.ptr = NULL;
                    epoll_ctl(wsl_ep, EPOLL_CTL_ADD, 0, &ev);
                    stdin_open = 1;
                    wsl_phase = WSL_HELD;
                    break;
                }

                printf("called %llu\n", (unsigned long long) wsl_answered);
                wsl_phase = WSL_HELD_AGAIN;
            }

            break;

        case WSL_CLOSE:
            if (wsl_live > 0 && now < deadline) {
                break;
            }

            for (i = 0; i < wsl_nconns; i++) {
                if (wsl_conns[i].state != WSL_DONE) {
                    wsl_fail(&wsl_conns[i], "close not completed in 2 s "
                             "(close frame %s)",
                             wsl_conns[i].echoed ? "echoed" : "not echoed");
                }
            }

            if (wsl_mode == WSL_IDLE) {
                printf("RESULT %d %llu %llu %llu\n", wsl_opened,
                       (unsigned long long) wsl_answered,
                       (unsigned long long) wsl_closed,
                       (unsigned long long) wsl_errors);
                return 0;
            }

            elapsed = (double) (end - start) / 1e9;
            printf("RESULT %llu %.1f %.3f %.3f %llu\n",
                   (unsigned long long) wsl_calls, wsl_calls / elapsed,
                   wsl_percentile(0.5), wsl_percentile(0.99),
                   (unsigned long long) wsl_errors);
            return 0;

        default:
            break;
        }

        n = epoll_wait(wsl_ep, evs, 256, 10);

        if (n == -1 && errno != EINTR) {
            perror("wsload: epoll_wait");
            return 1;
        }

        for (i = 0; i < n; i++) {
            wsl_conn_t  *c = evs[i].data.ptr;

            if (c == NULL) {
                /* stdin: a line (or its end) says go on */

                if (read(0, line, sizeof(line)) <= 0) {
                    epoll_ctl(wsl_ep, EPOLL_CTL_DEL, 0, NULL);
                    stdin_open = 0;
                }

                if (wsl_phase == WSL_HELD && wsl_mode == WSL_SUB) {
                    wsl_phase = WSL_RUN;
                    start = wsl_now();
                    end = start + (int64_t) (secs * 1e9);

                } else if (wsl_phase == WSL_HELD) {
                    wsl_phase = WSL_CALLS;

                } else if (wsl_phase == WSL_HELD_AGAIN) {
                    goto close;
                }

                continue;
            }

            if (c->state == WSL_DONE) {
                continue;
            }

            if (c->state == WSL_CONNECTING) {
                wsl_connected(c);
                continue;
            }

            if (evs[i].events & EPOLLOUT) {
                wsl_write(c);
            }

            if (c->state != WSL_DONE
                && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            {
                wsl_read(c);
            }
        }

        continue;

    close:

        if (stdin_open) {
            epoll_ctl(wsl_ep, EPOLL_CTL_DEL, 0, NULL);
            stdin_open = 0;
        }

        wsl_phase = WSL_CLOSE;
        deadline = wsl_now() + WSL_CLOSE_WAIT;

        for (i = 0; i < wsl_nconns; i++) {
            wsl_close(&wsl_conns[i]);
        }
    }
}


static void
wsl_usage(void)
{
    fprintf(stderr,
            "usage: wsload ws|http -c CONNS -d SECONDS HOST PORT PATH\n"
            "       wsload idle -c CONNS HOST PORT PATH\n"
            "       wsload sub -c CONNS -d SECONDS HOST PORT PATH\n");
    exit(2);
}


static int
wsl_open(wsl_conn_t *c)
{
    int  fd, one;

    c->state = WSL_CONNECTING;
    c->rlen = 0;
    c->wpos = c->wlen = 0;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    if (fd == -1) {
        wsl_fail(c, "socket: %s", strerror(errno));
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    c->fd = fd;
    wsl_live++;

    if (connect(fd, (struct sockaddr *) &wsl_addr, sizeof(wsl_addr)) == -1
        && errno != EINPROGRESS)
    {
        wsl_fail(c, "connect: %s", strerror(errno));
        return -1;
    }

    wsl_watch(c, EPOLLOUT);

    return 0;
}


static void
wsl_connected(wsl_conn_t *c)
{
    int            err, len;
    socklen_t      slen;
    char           req[512];
    unsigned char  raw[16];
    uint64_t       r;

    err = 0;
    slen = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &slen);

    if (err) {
        wsl_fail(c, "connect: %s", strerror(err));
        return;
    }

    wsl_watch(c, EPOLLIN);

    if (wsl_mode == WSL_HTTP) {
        c->state = WSL_READY;
        wsl_opened++;
        wsl_settled++;
        return;
    }

    r = wsl_random();
    memcpy(raw, &r, 8);
    r = wsl_random();
    memcpy(raw + 8, &r, 8);
    wsl_base64(raw, 16, c->key);

    len = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s:%d\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n",
                   wsl_path, wsl_host, ntohs(wsl_addr.sin_port), c->key);

    c->state = WSL_HANDSHAKE;
    wsl_send(c, req, len);
}


static void
wsl_write(wsl_conn_t *c)
{
    ssize_t  n;

    while (c->wpos < c->wlen) {
        n = write(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos);

        if (n == -1) {
            if (errno == EAGAIN) {
                return;
            }

            wsl_fail(c, "write: %s", strerror(errno));
            return;
        }

        c->wpos += n;
    }

    c->wpos = c->wlen = 0;
    wsl_watch(c, EPOLLIN);
}


/* writes at once what the socket takes, keeps the rest for EPOLLOUT */

static int
wsl_send(wsl_conn_t *c, const void *data, size_t len)
{
    ssize_t  n;

    n = 0;

    if (c->wlen == 0) {
        n = write(c->fd, data, len);

        if (n == -1) {
            if (errno != EAGAIN) {
                wsl_fail(c, "write: %s", strerror(errno));
                return -1;
            }

            n = 0;
        }

        if ((size_t) n == len) {
            return 0;
        }
    }

    if (c->wlen + len - n > WSL_WBUF) {
        wsl_fail(c, "output buffer full");
        return -1;
    }

    memcpy(c->wbuf + c->wlen, (const char *) data + n, len - n);
    c->wlen += len - n;
    wsl_watch(c, EPOLLIN | EPOLLOUT);

    return 0;
}


static void
wsl_read(wsl_conn_t *c)
{
    int      rc;
    ssize_t  n;

    if (c->rlen == WSL_RBUF) {
        wsl_fail(c, "input buffer full");
        return;
    }

    n = read(c->fd, c->rbuf + c->rlen, WSL_RBUF - c->rlen);

    if (n == -1) {
        if (errno != EAGAIN) {
            wsl_fail(c, "read: %s", strerror(errno));
        }

        return;
    }

    if (n == 0) {
        if (c->state == WSL_CLOSING && c->echoed) {
            wsl_closed++;
            wsl_end(c);
            return;
        }

        wsl_fail(c, "connection closed by the gateway%s",
                 c->state == WSL_CLOSING ? " without echoing the close frame"
                                         : "");
        return;
    }

    c->rlen += n;

    if (c->state == WSL_HANDSHAKE) {
        rc = wsl_handshake(c);

        if (rc != 1) {
            return;
        }
    }

    if (wsl_mode == WSL_HTTP) {
        wsl_responses(c);

    } else {
        wsl_frames(c);
    }
}


/* 1: done (frames may follow in the buffer), 0: more to read, -1: failed */

static int
wsl_handshake(wsl_conn_t *c)
{
    size_t          hlen, vlen;
    const char     *v;
    unsigned char  *p, sha[20];
    char            src[64], accept[32];

    p = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);

    if (p == NULL) {
        return 0;
    }

    hlen = p + 4 - c->rbuf;

    if (c->rlen < 13 || memcmp(c->rbuf, "HTTP/1.1 101 ", 13) != 0) {
        wsl_fail(c, "handshake: %.*s",
                 (int) ((unsigned char *) memchr(c->rbuf, '\r', hlen)
                        - c->rbuf),
                 c->rbuf);
        return -1;
    }

    v = wsl_header(c->rbuf, hlen, "upgrade", &vlen);

    if (v == NULL || vlen != 9 || strncasecmp(v, "websocket", 9) != 0) {
        wsl_fail(c, "handshake: no Upgrade: websocket");
        return -1;
    }

    memcpy(src, c->key, 24);
    memcpy(src + 24, WSL_GUID, 36);
    wsl_sha1((unsigned char *) src, 60, sha);
    wsl_base64(sha, 20, accept);

    v = wsl_header(c->rbuf, hlen, "sec-websocket-accept", &vlen);

    if (v == NULL || vlen != 28 || memcmp(v, accept, 28) != 0) {
        wsl_fail(c, "handshake: Sec-WebSocket-Accept is %.*s, not %s",
                 v ? (int) vlen : 1, v ? v : "-", accept);
        return -1;
    }

    c->rlen -= hlen;
    memmove(c->rbuf, c->rbuf + hlen, c->rlen);
    c->state = WSL_READY;
    wsl_opened++;
    wsl_settled++;

    return 1;
}


static int
wsl_frames(wsl_conn_t *c)
{
    int             op, fin;
    size_t          hlen, rest;
    uint64_t        len;
    unsigned char  *p, *end, *data;

    p = c->rbuf;
    end = p + c->rlen;

    while (end - p >= 2) {
        fin = p[0] & 0x80;
        op = p[0] & 0x0f;
        len = p[1] & 0x7f;
        hlen = 2;

        if (p[1] & 0x80) {
            wsl_fail(c, "masked frame from the gateway");
            return -1;
        }

        if (p[0] & 0x70) {
            wsl_fail(c, "frame with RSV bits 0x%02x", p[0] & 0x70);
            return -1;
        }

        if (len == 126) {
            if (end - p < 4) {
                break;
            }

            len = (uint64_t) p[2] << 8 | p[3];
            hlen = 4;

        } else if (len == 127) {
            if (end - p < 10) {
                break;
            }

            len = 0;

            for (hlen = 2; hlen < 10; hlen++) {
                len = len << 8 | p[hlen];
            }
        }

        if (len > WSL_RBUF - hlen) {
            wsl_fail(c, "frame of %llu bytes (opcode %d)",
                     (unsigned long long) len, op);
            return -1;
        }

        if ((uint64_t) (end - p) < hlen + len) {
            break;
        }

        data = p + hlen;
        p += hlen + len;

        if (!fin) {
            wsl_fail(c, "frame without FIN (opcode %d)", op);
            return -1;
        }

        switch (op) {

        case 1:
            if (c->state == WSL_CLOSING) {
                break;              /* the answer to a call in flight */
            }

            if (wsl_mode == WSL_SUB && c->state == WSL_CALL) {
                if (wsl_subscribed(c, data, len) != 0) {
                    return -1;
                }

                break;
            }

            if (wsl_mode == WSL_SUB) {
                if (wsl_event(c, data, len) != 0) {
                    return -1;
                }

                break;
            }

            if (c->state != WSL_CALL) {
                wsl_fail(c, "text frame with no call in flight: %.*s",
                         (int) len, data);
                return -1;
            }

            if (wsl_answer(c, data, len) != 0) {
                return -1;
            }

            break;

        case 8:
            if (c->state != WSL_CLOSING) {
                wsl_fail(c, "closed by the gateway with %d",
                         len >= 2 ? data[0] << 8 | data[1] : -1);
                return -1;
            }

            if (len < 2 || (data[0] << 8 | data[1]) != 1000) {
                wsl_fail(c, "close frame 1000 echoed as %d",
                         len >= 2 ? data[0] << 8 | data[1] : -1);
                return -1;
            }

            c->echoed = 1;
            break;

        case 9:
            if (c->state != WSL_CLOSING && wsl_frame(c, 10, data, len) != 0)
            {
                return -1;
            }

            break;

        case 10:
            break;

        default:
            wsl_fail(c, "frame with opcode %d", op);
            return -1;
        }

        if (c->state == WSL_DONE) {
            return -1;
        }
    }

    rest = end - p;
    memmove(c->rbuf, p, rest);
    c->rlen = rest;

    return 0;
}


static int
wsl_responses(wsl_conn_t *c)
{
    size_t          hlen, vlen, blen, rest;
    const char     *v;
    unsigned char  *p, *end, *h;

    p = c->rbuf;
    end = p + c->rlen;

    for ( ;; ) {
        h = memmem(p, end - p, "\r\n\r\n", 4);

        if (h == NULL) {
            break;
        }

        hlen = h + 4 - p;

        if (hlen < 13 || memcmp(p, "HTTP/1.1 200 ", 13) != 0) {
            wsl_fail(c, "status: %.*s",
                     (int) ((unsigned char *) memchr(p, '\r', hlen) - p), p);
            return -1;
        }

        v = wsl_header(p, hlen, "content-length", &vlen);

        if (v == NULL) {
            wsl_fail(c, "a response without Content-Length");
            return -1;
        }

        blen = strtoul(v, NULL, 10);

        if (blen > WSL_RBUF / 2) {
            wsl_fail(c, "a response body of %zu bytes", blen);
            return -1;
        }

        if ((size_t) (end - p) < hlen + blen) {
            break;
        }

        if (c->state != WSL_CALL) {
            wsl_fail(c, "a response with no call in flight");
            return -1;
        }

        if (wsl_answer(c, p + hlen, blen) != 0) {
            return -1;
        }

        p += hlen + blen;
    }

    rest = end - p;
    memmove(c->rbuf, p, rest);
    c->rlen = rest;

    return 0;
}


/* checks an answer, counts it and sends the next call */

static int
wsl_answer(wsl_conn_t *c, const unsigned char *p, size_t len)
{
    int64_t         us;
    uint64_t        id;
    const unsigned char  *v, *end;

    end = p + len;
    v = memmem(p, len, "\"id\":", 5);

    if (v == NULL || memmem(p, len, "\"result\":", 9) == NULL
        || memmem(p, len, "\"error\":", 8) != NULL)
    {
        wsl_fail(c, "answer to call %llu: %.*s", (unsigned long long) c->id,
                 (int) len, p);
        return -1;
    }

    id = 0;

    for (v += 5; v < end && *v >= '0' && *v <= '9'; v++) {
        id = id * 10 + (*v - '0');
    }

    if (id != c->id) {
        wsl_fail(c, "answer with id %llu to call %llu: %.*s",
                 (unsigned long long) id, (unsigned long long) c->id,
                 (int) len, p);
        return -1;
    }

    c->state = WSL_READY;
    wsl_inflight--;

    if (wsl_mode == WSL_IDLE) {
        c->answered = 1;
        wsl_answered++;
        return 0;
    }

    wsl_calls++;
    us = (wsl_now() - c->sent) / 1000;
    wsl_hist[us < WSL_HIST ? us : WSL_HIST]++;

    if (wsl_phase == WSL_RUN) {
        wsl_call(c);
    }

    return 0;
}


/* sub: the answer to the subscribe, "result":"0x..." kept as its id */

static int
wsl_subscribed(wsl_conn_t *c, const unsigned char *p, size_t len)
{
    size_t                n;
    const unsigned char  *v, *q;

    v = memmem(p, len, "\"result\":\"0x", 12);

    if (v == NULL) {
        wsl_fail(c, "answer to subscribe %llu: %.*s",
                 (unsigned long long) c->id, (int) len, p);
        return -1;
    }

    v += 10;
    q = memchr(v, '"', p + len - v);
    n = q ? (size_t) (q - v) : 0;

    if (n < 3 || n >= sizeof(c->sub)) {
        wsl_fail(c, "subscription id: %.*s", (int) len, p);
        return -1;
    }

    memcpy(c->sub, v, n);
    c->sub[n] = '\0';
    c->state = WSL_READY;
    c->answered = 1;
    wsl_inflight--;
    wsl_answered++;

    return 0;
}


/* sub: an event for this connection's subscription; counted while the
 * run lasts, with its latency since the node's "sent" */

static int
wsl_event(wsl_conn_t *c, const unsigned char *p, size_t len)
{
    size_t                n;
    int64_t               us, sent, frac, digits;
    char                  want[64];
    const unsigned char  *v, *end;

    n = snprintf(want, sizeof(want), "\"subscription\":\"%s\"", c->sub);

    if (c->state != WSL_READY || memmem(p, len, want, n) == NULL) {
        wsl_fail(c, "not an event of subscription %s: %.*s", c->sub,
                 (int) len, p);
        return -1;
    }

    if (wsl_phase != WSL_RUN) {
        return 0;
    }

    v = memmem(p, len, "\"sent\":", 7);

    if (v == NULL) {
        wsl_fail(c, "an event without \"sent\": %.*s", (int) len, p);
        return -1;
    }

    end = p + len;
    sent = frac = 0;
    digits = 1;

    for (v += 7; v < end && *v >= '0' && *v <= '9'; v++) {
        sent = sent * 10 + (*v - '0');
    }

    if (v < end && *v == '.') {
        for (v++; v < end && *v >= '0' && *v <= '9' && digits < 1000; v++) {
            frac = frac * 10 + (*v - '0');
            digits *= 10;
        }
    }

    us = wsl_wall_us() - (sent * 1000 + frac * 1000 / digits);
    wsl_hist[us < 0 ? 0 : us < WSL_HIST ? us : WSL_HIST]++;
    wsl_calls++;

    return 0;
}


static void
wsl_call(wsl_conn_t *c)
{
    int   len, hlen;
    char  body[160], req[512];

    c->id = ++wsl_ids;
    len = snprintf(body, sizeof(body),
                   wsl_mode == WSL_SUB ? wsl_subscribe_fmt : wsl_call_fmt,
                   (unsigned long long) c->id);

    c->state = WSL_CALL;
    c->sent = wsl_now();
    wsl_inflight++;

    if (wsl_mode != WSL_HTTP) {
        wsl_frame(c, 1, (unsigned char *) body, len);
        return;
    }

    hlen = snprintf(req, sizeof(req),
                    "POST %s HTTP/1.1\r\n"
                    "Host: %s:%d\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: %d\r\n"
                    "\r\n%s",
                    wsl_path, wsl_host, ntohs(wsl_addr.sin_port), len, body);

    wsl_send(c, req, hlen);
}


/* a masked frame with FIN set; a new random mask for each */

static int
wsl_frame(wsl_conn_t *c, int opcode, const unsigned char *data, size_t len)
{
    size_t          i, h;
    uint32_t        r;
    unsigned char   f[4 + 4 + 125 + 256], *mask;

    if (len > sizeof(f) - 8) {
        wsl_fail(c, "frame of %zu bytes to send", len);
        return -1;
    }

    f[0] = 0x80 | opcode;

    if (len < 126) {
        f[1] = 0x80 | len;
        h = 2;

    } else {
        f[1] = 0x80 | 126;
        f[2] = len >> 8;
        f[3] = len & 0xff;
        h = 4;
    }

    r = (uint32_t) wsl_random();
    mask = f + h;
    memcpy(mask, &r, 4);
    h += 4;

    for (i = 0; i < len; i++) {
        f[h + i] = data[i] ^ mask[i & 3];
    }

    return wsl_send(c, f, h + len);
}


/* the end of a run: a close frame on each WebSocket, plain close for HTTP */

static void
wsl_close(wsl_conn_t *c)
{
    static const unsigned char  code[2] = { 1000 >> 8, 1000 & 0xff };

    if (c->state == WSL_DONE) {
        return;
    }

    if (wsl_mode == WSL_HTTP || c->state == WSL_CONNECTING
        || c->state == WSL_HANDSHAKE)
    {
        wsl_end(c);
        return;
    }

    if (c->state == WSL_CALL) {
        wsl_inflight--;
    }

    c->state = WSL_CLOSING;
    wsl_frame(c, 8, code, 2);
}


static void
wsl_fail(wsl_conn_t *c, const char *fmt, ...)
{
    va_list  args;

    if (wsl_errors++ < 5) {
        fprintf(stderr, "wsload: connection %d: ", (int) (c - wsl_conns));
        va_start(args, fmt);
        vfprintf(stderr, fmt, args);
        va_end(args);
        fputc('\n', stderr);
    }

    if (c->state == WSL_CONNECTING || c->state == WSL_HANDSHAKE) {
        wsl_settled++;

    } else if (c->state == WSL_CALL) {
        wsl_inflight--;
    }

    wsl_end(c);
}


static void
wsl_end(wsl_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
        wsl_live--;
    }

    c->state = WSL_DONE;
}


static void
wsl_watch(wsl_conn_t *c, uint32_t events)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.ptr = c;

    if (epoll_ctl(wsl_ep, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
        epoll_ctl(wsl_ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
}


/* the value of a header, by name in lower case, spaces around it trimmed */

static const char *
wsl_header(const unsigned char *h, size_t len, const char *name, size_t *vlen)
{
    size_t       n;
    const char  *p, *end, *eol, *v;

    p = (const char *) h;
    end = p + len;
    n = strlen(name);

    for ( ;; ) {
        p = memmem(p, end - p, "\r\n", 2);

        if (p == NULL) {
            return NULL;
        }

        p += 2;
        eol = memmem(p, end - p, "\r\n", 2);

        if (eol == NULL) {
            return NULL;
        }

        if ((size_t) (eol - p) > n && p[n] == ':'
            && strncasecmp(p, name, n) == 0)
        {
            for (v = p + n + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
                /* void */
            }

            while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t')) {
                eol--;
            }

            *vlen = eol - v;
            return v;
        }
    }
}


#define wsl_rol(x, n)  (((x) << (n)) | ((x) >> (32 - (n))))

static void
wsl_sha1(const unsigned char *data, size_t len, unsigned char out[20])
{
    size_t          i, j, total;
    uint32_t        h[5], w[80], a, b, c, d, e, f, k, t;
    unsigned char   block[64];
    uint64_t        bits;

    h[0] = 0x67452301;
    h[1] = 0xefcdab89;
    h[2] = 0x98badcfe;
    h[3] = 0x10325476;
    h[4] = 0xc3d2e1f0;

    bits = (uint64_t) len * 8;
    total = (len + 9 + 63) / 64 * 64;

    for (i = 0; i < total; i += 64) {
        for (j = 0; j < 64; j++) {
            if (i + j < len) {
                block[j] = data[i + j];

            } else if (i + j == len) {
                block[j] = 0x80;

            } else if (i + j >= total - 8) {
                block[j] = (unsigned char) (bits >> (8 * (total - 1 - i - j)));

            } else {
                block[j] = 0;
            }
        }

        for (j = 0; j < 16; j++) {
            w[j] = (uint32_t) block[4 * j] << 24 | block[4 * j + 1] << 16
                   | block[4 * j + 2] << 8 | block[4 * j + 3];
        }

        for (j = 16; j < 80; j++) {
            w[j] = wsl_rol(w[j - 3] ^ w[j - 8] ^ w[j - 14] ^ w[j - 16], 1);
        }

        a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];

        for (j = 0; j < 80; j++) {
            if (j < 20) {
                f = (b & c) | (~b & d);
                k = 0x5a827999;

            } else if (j < 40) {
                f = b ^ c ^ d;
                k = 0x6ed9eba1;

            } else if (j < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8f1bbcdc;

            } else {
                f = b ^ c ^ d;
                k = 0xca62c1d6;
            }

            t = wsl_rol(a, 5) + f + e + k + w[j];
            e = d;
            d = c;
            c = wsl_rol(b, 30);
            b = a;
            a = t;
        }

        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }

    for (i = 0; i < 20; i++) {
        out[i] = (unsigned char) (h[i / 4] >> (24 - 8 * (i % 4)));
    }
}


static size_t
wsl_base64(const unsigned char *in, size_t len, char *out)
{
    size_t       i, n;
    uint32_t     v;
    static const char  t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    n = 0;

    for (i = 0; i < len; i += 3) {
        v = (uint32_t) in[i] << 16;

        if (i + 1 < len) {
            v |= in[i + 1] << 8;
        }

        if (i + 2 < len) {
            v |= in[i + 2];
        }

        out[n++] = t[v >> 18 & 63];
        out[n++] = t[v >> 12 & 63];
        out[n++] = i + 1 < len ? t[v >> 6 & 63] : '=';
        out[n++] = i + 2 < len ? t[v & 63] : '=';
    }

    out[n] = '\0';

    return n;
}


/* xorshift64*: masks and keys need to be unpredictable to a proxy, not
 * to an attacker; this is a load tool */

static uint64_t
wsl_random(void)
{
    wsl_seed ^= wsl_seed >> 12;
    wsl_seed ^= wsl_seed << 25;
    wsl_seed ^= wsl_seed >> 27;

    return wsl_seed * 0x2545f4914f6cdd1dULL;
}


static int64_t
wsl_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static int64_t
wsl_wall_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* ms, from the histogram of 1 us buckets */

static double
wsl_percentile(double p)
{
    uint64_t  want, seen;
    size_t    i;

    if (wsl_calls == 0) {
        return 0;
    }

    want = (uint64_t) (p * wsl_calls);
    seen = 0;

    for (i = 0; i <= WSL_HIST; i++) {
        seen += wsl_hist[i];

        if (seen > want) {
            break;
        }
    }

    return (i + 0.5) / 1000.0;
}
