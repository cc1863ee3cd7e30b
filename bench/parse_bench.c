
/*
 * Cost of the request parser (ngx_rpc_parse.c) per byte, for bodies of
 * 16 KiB and 1 MiB fed in pieces of 1, 16 and 4096 bytes: "make
 * bench-parse" (built -O2, no sanitizers, with nginx's core objects and
 * the system's libyajl, as the fuzz targets are; see the Makefile).
 *
 * Every piece is a buffer of its own, malloc'd before the clock starts, as
 * nginx hands a body over in separate buffers.  Two bodies:
 *   whitespace  one call whose "id" value follows a run of white space
 *               (" \t\r\n") that fills the body
 *   batch       a batch of small calls, {"jsonrpc":"2.0","method":"sum",...}
 *               (as many as fit: rpc_max_batch is raised to take them all)
 *   string      one call whose params are one string that fills the body
 *               (ASCII and two-byte UTF-8): a token across every piece
 * A run is init, all feeds, finish; the best of 3 runs (fewer when they
 * take over 5 s) or more (half a second's worth, up to 1000) is printed.
 * A case still running at the time limit (argument 1, seconds, default
 * 60) is killed, and limit / size is printed with ">" before it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_rpc.h"


#define NGX_RPC_BENCH_BATCH   (1 << 20)


int main(int argc, char **argv);
static void ngx_rpc_bench(const char *name, u_char *body, size_t len,
    size_t step, double limit);
static double ngx_rpc_bench_run(u_char **piece, size_t *plen, ngx_uint_t n,
    size_t *fed);
static u_char *ngx_rpc_bench_whitespace(size_t len);
static u_char *ngx_rpc_bench_batch(size_t len);
static u_char *ngx_rpc_bench_string(size_t len);
static double ngx_rpc_bench_now(void);


static ngx_open_file_t  ngx_rpc_bench_file;
static ngx_log_t        ngx_rpc_bench_log;


int
main(int argc, char **argv)
{
    u_char      *body;
    double       limit;
    size_t       sizes[] = { 16 * 1024, 1024 * 1024 };
    size_t       steps[] = { 1, 16, 4096 };
    ngx_uint_t   b, i, k;

    limit = (argc > 1) ? atof(argv[1]) : 60;

    setvbuf(stdout, NULL, _IOLBF, 0);

    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    ngx_pid = ngx_getpid();
    ngx_time_init();

    ngx_rpc_bench_file.fd = open("/dev/null", O_WRONLY);
    ngx_rpc_bench_log.file = &ngx_rpc_bench_file;
    ngx_rpc_bench_log.log_level = NGX_LOG_ERR;

    printf("%-11s %8s %6s %12s %6s\n",
           "body", "size", "piece", "ns/byte", "runs");

    for (b = 0; b < 3; b++) {
        for (i = 0; i < 2; i++) {
            body = (b == 0) ? ngx_rpc_bench_whitespace(sizes[i])
                   : (b == 1) ? ngx_rpc_bench_batch(sizes[i])
                   : ngx_rpc_bench_string(sizes[i]);

            for (k = 0; k < 3; k++) {
                ngx_rpc_bench((b == 0) ? "whitespace"
                              : (b == 1) ? "batch" : "string",
                              body, sizes[i], steps[k], limit);
            }

            free(body);
        }
    }

    return 0;
}


static void
ngx_rpc_bench(const char *name, u_char *body, size_t len, size_t step,
    double limit)
{
    int           status;
    char          over[32];
    pid_t         pid;
    size_t       *plen, c, fed;
    u_char      **piece;
    double        t, best, spent, start;
    ngx_uint_t    i, n, runs;

    /*
     * a child process per case: a slow scan happens within one feed, so
     * only a kill stops it at the time limit
     */

    start = ngx_rpc_bench_now();

    pid = fork();

    if (pid == -1) {
        exit(1);
    }

    if (pid) {
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (ngx_rpc_bench_now() - start > limit) {
                kill(pid, SIGKILL);
                (void) waitpid(pid, &status, 0);

                (void) snprintf(over, sizeof(over), ">%.1f",
                                limit * 1e9 / len);

                printf("%-11s %7zuK %6zu %12s %6s  (killed after %.0f s)\n",
                       name, len / 1024, step, over, "-", limit);
                return;
            }

            usleep(10000);
        }

        return;
    }

    n = (len + step - 1) / step;

    piece = malloc(n * sizeof(u_char *));
    plen = malloc(n * sizeof(size_t));

    if (piece == NULL || plen == NULL) {
        exit(1);
    }

    for (i = 0, c = 0; i < n; i++, c += step) {
        plen[i] = ngx_min(step, len - c);
        piece[i] = malloc(plen[i]);

        if (piece[i] == NULL) {
            exit(1);
        }

        ngx_memcpy(piece[i], body + c, plen[i]);
    }

    best = -1;
    spent = 0;

    for (runs = 0;
         (runs < 3 && spent < 5) || (runs < 1000 && spent < 0.5);
         runs++)
    {
        t = ngx_rpc_bench_run(piece, plen, n, &fed);

        if (best < 0 || t < best) {
            best = t;
        }

        spent += t;
    }

    printf("%-11s %7zuK %6zu %12.1f %6lu\n", name, len / 1024, step,
           best * 1e9 / len, (unsigned long) runs);

    _exit(0);
}


static double
ngx_rpc_bench_run(u_char **piece, size_t *plen, ngx_uint_t n, size_t *fed)
{
    double             start;
    ngx_uint_t         i;
    ngx_pool_t        *pool;
    ngx_rpc_parser_t   p;

    ngx_memzero(&p, sizeof(ngx_rpc_parser_t));

    start = ngx_rpc_bench_now();

    pool = ngx_create_pool(4096, &ngx_rpc_bench_log);
    if (pool == NULL) {
        exit(1);
    }

    if (ngx_rpc_parse_init(&p, pool, &ngx_rpc_bench_log, 32,
                           NGX_RPC_BENCH_BATCH, 4)
        != NGX_OK)
    {
        exit(1);
    }

    *fed = 0;

    for (i = 0; i < n; i++) {
        if (ngx_rpc_parse_feed(&p, piece[i], plen[i]) != NGX_OK) {
            fprintf(stderr, "parse error %ld\n", (long) p.error);
            exit(1);
        }

        *fed += plen[i];
    }

    if (ngx_rpc_parse_finish(&p) != NGX_OK || p.msgs.nelts == 0) {
        fprintf(stderr, "parse error %ld\n", (long) p.error);
        exit(1);
    }

    ngx_destroy_pool(pool);

    return ngx_rpc_bench_now() - start;
}


static u_char *
ngx_rpc_bench_whitespace(size_t len)
{
    u_char      *body, *q;
    size_t       head, tail;
    ngx_uint_t   i;

    static char  h[] = "{\"jsonrpc\":\"2.0\",\"method\":\"ws\","
                       "\"params\":[1,2,3],\"id\":";
    static char  t[] = "1}";

    head = sizeof(h) - 1;
    tail = sizeof(t) - 1;

    body = malloc(len);
    if (body == NULL) {
        exit(1);
    }

    q = ngx_cpymem(body, h, head);

    for (i = 0; i < len - head - tail; i++) {
        *q++ = " \t\r\n"[i % 4];
    }

    ngx_memcpy(q, t, tail);

    return body;
}


static u_char *
ngx_rpc_bench_string(size_t len)
{
    u_char      *body, *q;
    size_t       head, tail;
    ngx_uint_t   i, n;

    static char  h[] = "{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"params\":[\"";
    static char  t[] = "\"],\"id\":1}";

    head = sizeof(h) - 1;
    tail = sizeof(t) - 1;

    body = malloc(len);
    if (body == NULL) {
        exit(1);
    }

    q = ngx_cpymem(body, h, head);
    n = len - head - tail;

    for (i = 0; i < n; i++) {
        if (i % 8 == 6 && i + 1 < n) {
            *q++ = 0xc3;
            *q++ = 0xa9;
            i++;

        } else {
            *q++ = 'a' + i % 26;
        }
    }

    ngx_memcpy(q, t, tail);

    return body;
}


static u_char *
ngx_rpc_bench_batch(size_t len)
{
    u_char      *body, *q, call[80];
    size_t       n;
    ngx_uint_t   id;

    body = malloc(len);
    if (body == NULL) {
        exit(1);
    }

    q = body;
    *q++ = '[';

    for (id = 1; /* void */ ; id++) {
        n = ngx_sprintf(call, "%s{\"jsonrpc\":\"2.0\",\"method\":\"sum\","
                        "\"params\":[%ui,2],\"id\":%ui}",
                        id == 1 ? "" : ",", id, id)
            - call;

        if ((size_t) (q - body) + n + 1 > len) {
            break;
        }

        q = ngx_cpymem(q, call, n);
    }

    *q++ = ']';

    /* white space to the exact size */

    ngx_memset(q, ' ', len - (q - body));

    return body;
}


static double
ngx_rpc_bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
