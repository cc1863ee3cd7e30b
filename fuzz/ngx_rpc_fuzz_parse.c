
/*
 * libFuzzer target for ngx_rpc_parse.c, linked with nginx's own core
 * objects and yajl (see "fuzz" in the Makefile).  Built twice: the request
 * parser as ngx_rpc_handler.c sets it up, and, with NGX_RPC_FUZZ_REPLY,
 * the reply parser as ngx_rpc_upstream.c sets it up.
 *
 * An input is a header, then the body:
 *   byte 0 & 0x80    the body goes in pieces of (byte 0 & 0x3f) + 1 bytes
 *   else             (byte 0 & 0x0f) cut points follow, 2 bytes each
 *                    (little endian, taken modulo the body length)
 *   byte 0 & 0x40    the pieces lie end to end in one buffer, as nginx
 *                    reads into the free end of a buffer; else every piece
 *                    is a buffer of its own malloc'd to its exact size, so
 *                    that ASan sees a read past any of them
 *   reply only: one more byte, the number of calls answered (% 101)
 *
 * The body is parsed in one piece and in those pieces.  The two parses
 * must agree: the same error, or the
 * same messages with the same ranges, types, methods and ids.  Every
 * range recorded (each message, each member) is taken out with
 * ngx_rpc_parse_copy() and ngx_rpc_parse_slice(), must hold the bytes of
 * the body there, and must parse alone, with a fresh parser, as the JSON
 * type recorded; a message that is an object must give the same message.
 * And the parser must accept exactly what a small JSON checker here
 * (RFC 8259; UTF-8 as RFC 3629 has it) accepts within the limits
 * of depth and batch size.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_rpc.h"


#define ngx_rpc_fuzz_check(cond, what)                                     \
    if (!(cond)) {                                                         \
        ngx_rpc_fuzz_fail(what, #cond, __LINE__);                          \
    }


typedef struct {
    u_char              *pos;
    u_char              *end;
    ngx_uint_t           max_depth;
    ngx_uint_t           depth;
    ngx_uint_t           top;
    ngx_uint_t           elts;
} ngx_rpc_fuzz_json_t;


typedef struct {
    ngx_pool_t          *pool;
    ngx_rpc_parser_t     parser;
    ngx_int_t            rc;
} ngx_rpc_fuzz_parse_t;


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_rpc_fuzz_parse(ngx_rpc_fuzz_parse_t *fp, u_char **piece,
    size_t *len, ngx_uint_t n, ngx_uint_t ncalls);
static void ngx_rpc_fuzz_init(ngx_rpc_parser_t *p, ngx_pool_t *pool,
    ngx_uint_t ncalls);
static void ngx_rpc_fuzz_same(ngx_rpc_fuzz_parse_t *a,
    ngx_rpc_fuzz_parse_t *b);
static void ngx_rpc_fuzz_same_msg(ngx_rpc_msg_t *a, ngx_rpc_msg_t *b,
    off_t shift);
static void ngx_rpc_fuzz_ranges(ngx_rpc_fuzz_parse_t *fp, u_char *body,
    size_t len);
static void ngx_rpc_fuzz_member(ngx_rpc_fuzz_parse_t *fp,
    ngx_rpc_range_t *params, u_char *body);
static void ngx_rpc_fuzz_value(ngx_rpc_fuzz_parse_t *fp,
    ngx_rpc_range_t *range, ngx_uint_t type, ngx_rpc_msg_t *msg,
    u_char *body, size_t len);
static ngx_int_t ngx_rpc_fuzz_json(u_char *body, size_t len,
    ngx_rpc_parser_t *p);
static ngx_int_t ngx_rpc_fuzz_json_value(ngx_rpc_fuzz_json_t *j);
static ngx_int_t ngx_rpc_fuzz_json_string(ngx_rpc_fuzz_json_t *j);
static ngx_int_t ngx_rpc_fuzz_json_number(ngx_rpc_fuzz_json_t *j);
static void ngx_rpc_fuzz_json_space(ngx_rpc_fuzz_json_t *j);
static void ngx_rpc_fuzz_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);
static void ngx_rpc_fuzz_fail(const char *what, const char *cond,
    int line);


static char  *lit[] = { "true", "false", "null" };

static ngx_uint_t       ngx_rpc_fuzz_known_trailing;
static ngx_uint_t       ngx_rpc_fuzz_known_ff;
static ngx_open_file_t  ngx_rpc_fuzz_file;
static ngx_log_t        ngx_rpc_fuzz_log;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char  *known;

    /* what ngx_os_init() and main() set up, as far as the parser needs */

    ngx_pagesize = getpagesize();
    for (ngx_pagesize_shift = 0;
         (ngx_uint_t) (1 << ngx_pagesize_shift) < ngx_pagesize;
         ngx_pagesize_shift++)
    {
        /* void */
    }

    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    ngx_pid = ngx_getpid();

    ngx_time_init();

    /*
     * debug logging runs too: lines are made, and dropped by a writer that
     * saves a write() each, unless NGX_RPC_FUZZ_LOG asks for them on stderr
     */

    ngx_rpc_fuzz_file.fd = ngx_stderr;
    ngx_rpc_fuzz_log.file = &ngx_rpc_fuzz_file;
    ngx_rpc_fuzz_log.log_level = NGX_LOG_DEBUG | NGX_LOG_DEBUG_HTTP;

    if (getenv("NGX_RPC_FUZZ_LOG") == NULL) {
        ngx_rpc_fuzz_log.writer = ngx_rpc_fuzz_writer;
    }

    /*
     * NGX_RPC_FUZZ_KNOWN="trailing,ff": let known faults pass, to look for
     * others in a parser that still has them.  trailing: bytes after a
     * complete value are let through when yajl waits for the end of a
     * token begun there (9").  ff: a body with a form feed or vertical tab
     * is refused with -32700 in one piece, but with -32007 when a piece
     * before the one with it completes a batch too large.
     */

    known = getenv("NGX_RPC_FUZZ_KNOWN");

    if (known) {
        ngx_rpc_fuzz_known_trailing = (strstr(known, "trailing") != NULL);
        ngx_rpc_fuzz_known_ff = (strstr(known, "ff") != NULL);
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                 len, *plen, step, cut[16], c, t;
    u_char                *body, **piece;
    ngx_int_t              rc;
    ngx_uint_t             i, j, n, ncuts, ncalls, adjacent;
    ngx_rpc_fuzz_parse_t   one, split;

    if (size == 0) {
        return 0;
    }

    step = 0;
    ncuts = 0;
    adjacent = data[0] & 0x40;

    if (data[0] & 0x80) {
        step = (data[0] & 0x3f) + 1;
        data++;
        size--;

    } else {
        ncuts = ngx_min((ngx_uint_t) (data[0] & 0x0f), (size - 1) / 2);
        data++;
        size--;

        for (i = 0; i < ncuts; i++) {
            cut[i] = data[0] | (data[1] << 8);
            data += 2;
            size -= 2;
        }
    }

    ncalls = 0;

#if (NGX_RPC_FUZZ_REPLY)
    if (size == 0) {
        return 0;
    }

    ncalls = data[0] % 101;
    data++;
    size--;
#endif

    len = size;

    body = malloc(len ? len : 1);
    piece = malloc((len + 1) * sizeof(u_char *));
    plen = malloc((len + 1) * sizeof(size_t));

    if (body == NULL || piece == NULL || plen == NULL) {
        abort();
    }

    ngx_memcpy(body, data, len);

    /* the pieces: cut points sorted, repeated ones and 0 dropped */

    if (len) {
        for (i = 0; i < ncuts; i++) {
            cut[i] %= len;
        }

        for (i = 1; i < ncuts; i++) {
            for (j = i; j > 0 && cut[j - 1] > cut[j]; j--) {
                c = cut[j];
                cut[j] = cut[j - 1];
                cut[j - 1] = c;
            }
        }
    }

    n = 0;
    c = 0;
    j = 0;

    while (c < len) {
        if (step) {
            t = ngx_min(c + step, len);

        } else {
            while (j < ncuts && cut[j] <= c) {
                j++;
            }

            t = (j < ncuts) ? cut[j] : len;
        }

        plen[n] = t - c;

        if (adjacent) {
            piece[n] = body + c;

        } else {
            piece[n] = malloc(plen[n]);
            if (piece[n] == NULL) {
                abort();
            }

            ngx_memcpy(piece[n], body + c, plen[n]);
        }

        n++;
        c = t;
    }

    /* in one piece */

    ngx_rpc_fuzz_parse(&one, &body, &len, len ? 1 : 0, ncalls);

    /* in pieces */

    ngx_rpc_fuzz_parse(&split, piece, plen, n, ncalls);

    if (ngx_rpc_fuzz_known_ff
        && one.rc != split.rc
        && (one.rc == NGX_RPC_PARSE_ERROR || one.rc == NGX_RPC_BATCH_TOO_LARGE)
        && (split.rc == NGX_RPC_PARSE_ERROR
            || split.rc == NGX_RPC_BATCH_TOO_LARGE)
        && (ngx_strlchr(body, body + len, '\f') != NULL
            || ngx_strlchr(body, body + len, '\v') != NULL))
    {
        /* a known fault, see LLVMFuzzerInitialize() */
        one.rc = split.rc;
    }

    ngx_rpc_fuzz_same(&one, &split);

    rc = ngx_rpc_fuzz_json(body, len, &one.parser);

    if (rc == NGX_OK) {
        ngx_rpc_fuzz_check(one.rc == NGX_OK, "valid JSON rejected");

    } else if (rc == NGX_DECLINED && ngx_rpc_fuzz_known_trailing) {
        /* a known fault, see LLVMFuzzerInitialize() */

    } else {
        ngx_rpc_fuzz_check(one.rc != NGX_OK, "invalid JSON accepted");
    }

    if (one.rc == NGX_OK) {
        ngx_rpc_fuzz_ranges(&one, body, len);
        ngx_rpc_fuzz_ranges(&split, body, len);
    }

    ngx_destroy_pool(one.pool);
    ngx_destroy_pool(split.pool);

    for (i = 0; !adjacent && i < n; i++) {
        free(piece[i]);
    }

    free(piece);
    free(plen);
    free(body);

    return 0;
}


static void
ngx_rpc_fuzz_parse(ngx_rpc_fuzz_parse_t *fp, u_char **piece, size_t *len,
    ngx_uint_t n, ngx_uint_t ncalls)
{
    ngx_uint_t         i;
    ngx_rpc_parser_t  *p;

    ngx_memzero(fp, sizeof(ngx_rpc_fuzz_parse_t));

    /*
     * the smallest pool: almost every allocation is a "large" one, a
     * malloc() of its own that ASan watches
     */

    fp->pool = ngx_create_pool(NGX_MIN_POOL_SIZE, &ngx_rpc_fuzz_log);
    if (fp->pool == NULL) {
        abort();
    }

    p = &fp->parser;

#if (NGX_RPC_FUZZ_REPLY)

    /* an upstream retry parses the next reply with the same parser */

    ngx_rpc_fuzz_init(p, fp->pool, ncalls);

    for (i = 0; i < n; i++) {
        (void) ngx_rpc_parse_feed(p, piece[i], len[i]);
    }

#endif

    ngx_rpc_fuzz_init(p, fp->pool, ncalls);

    /* as ngx_rpc_handler.c and ngx_rpc_upstream.c: on after an error too */

    for (i = 0; i < n; i++) {
        (void) ngx_rpc_parse_feed(p, piece[i], len[i]);
    }

    if (ngx_rpc_parse_finish(p) == NGX_OK) {
        ngx_rpc_fuzz_check(p->error == 0 && p->done, "finish");
        fp->rc = NGX_OK;

    } else {
        ngx_rpc_fuzz_check(p->error != 0 && !p->done, "finish failed");
        fp->rc = p->error;
    }
}


static void
ngx_rpc_fuzz_init(ngx_rpc_parser_t *p, ngx_pool_t *pool, ngx_uint_t ncalls)
{
    ngx_int_t  rc;

#if (NGX_RPC_FUZZ_REPLY)
    /* ngx_rpc_upstream_filter_init() */
    rc = ngx_rpc_parse_init(p, pool, &ngx_rpc_fuzz_log, 1024, ncalls + 64,
                            ngx_max(ncalls, 1));
#else
    /* ngx_rpc_handler(), with the defaults of rpc_max_depth, rpc_max_batch */
    rc = ngx_rpc_parse_init(p, pool, &ngx_rpc_fuzz_log, 32, 100, 4);
#endif

    ngx_rpc_fuzz_check(rc == NGX_OK, "init");
}


static void
ngx_rpc_fuzz_same(ngx_rpc_fuzz_parse_t *a, ngx_rpc_fuzz_parse_t *b)
{
    ngx_uint_t      i;
    ngx_rpc_msg_t  *ma, *mb;

    ngx_rpc_fuzz_check(a->rc == b->rc,
                       "one piece and pieces end differently");

    if (a->rc != NGX_OK) {
        return;
    }

    ngx_rpc_fuzz_check(a->parser.top == b->parser.top, "top type differs");
    ngx_rpc_fuzz_check(a->parser.total == b->parser.total, "total differs");
    ngx_rpc_fuzz_check(a->parser.msgs.nelts == b->parser.msgs.nelts,
                       "number of messages differs");

    ma = a->parser.msgs.elts;
    mb = b->parser.msgs.elts;

    for (i = 0; i < a->parser.msgs.nelts; i++) {
        ngx_rpc_fuzz_same_msg(&ma[i], &mb[i], 0);
    }
}


/* b is a, its ranges shift bytes further */

static void
ngx_rpc_fuzz_same_msg(ngx_rpc_msg_t *a, ngx_rpc_msg_t *b, off_t shift)
{
    ngx_uint_t  i;

    ngx_rpc_fuzz_check(a->type == b->type, "message type differs");
    ngx_rpc_fuzz_check(a->range.start == b->range.start + shift
                       && a->range.end == b->range.end + shift,
                       "message range differs");

    for (i = 0; i < NGX_RPC_M_N; i++) {
        ngx_rpc_fuzz_check(a->member[i].type == b->member[i].type,
                           "member type differs");

        if (a->member[i].type == NGX_RPC_NONE) {
            continue;
        }

        ngx_rpc_fuzz_check(
            a->member[i].range.start == b->member[i].range.start + shift
            && a->member[i].range.end == b->member[i].range.end + shift,
            "member range differs");
    }

    ngx_rpc_fuzz_check(a->method.len == b->method.len
                       && (a->method.len == 0
                           || ngx_memcmp(a->method.data, b->method.data,
                                         a->method.len) == 0),
                       "method differs");
    ngx_rpc_fuzz_check(a->num == b->num, "numeric id differs");
    ngx_rpc_fuzz_check(a->code == b->code, "error code differs");
    ngx_rpc_fuzz_check(a->version_ok == b->version_ok, "version differs");
    ngx_rpc_fuzz_check(a->duplicate == b->duplicate, "duplicate differs");
}


static void
ngx_rpc_fuzz_ranges(ngx_rpc_fuzz_parse_t *fp, u_char *body, size_t len)
{
    ngx_uint_t        i, j;
    ngx_rpc_msg_t    *msg;
    ngx_rpc_value_t  *v;

    msg = fp->parser.msgs.elts;

    for (i = 0; i < fp->parser.msgs.nelts; i++) {

        ngx_rpc_fuzz_value(fp, &msg[i].range, msg[i].type, &msg[i], body,
                           len);

        for (j = 0; j < NGX_RPC_M_N; j++) {
            v = &msg[i].member[j];

            if (v->type == NGX_RPC_NONE) {
                continue;
            }

            ngx_rpc_fuzz_check(v->range.start >= msg[i].range.start
                               && v->range.end <= msg[i].range.end,
                               "member outside its message");

            ngx_rpc_fuzz_value(fp, &v->range, v->type, NULL, body, len);
        }

        if (msg[i].member[NGX_RPC_M_PARAMS].type == NGX_RPC_OBJECT) {
            ngx_rpc_fuzz_member(fp, &msg[i].member[NGX_RPC_M_PARAMS].range,
                                body);
        }
    }
}


/*
 * ngx_rpc_json_member(), as an event's params.subscription is found: the
 * value found lies inside the object, and the object with a client's id
 * spliced in its place is still one valid JSON object.
 */

static void
ngx_rpc_fuzz_member(ngx_rpc_fuzz_parse_t *fp, ngx_rpc_range_t *params,
    u_char *body)
{
    u_char                *obj, *buf, *q;
    size_t                 n;
    ngx_int_t              rc;
    ngx_str_t              name;
    ngx_rpc_range_t        r;
    ngx_rpc_fuzz_parse_t   alone;

    static u_char  id[] = "\"0x0123456789abcdef0123456789abcdef\"";

    ngx_str_set(&name, "subscription");

    obj = body + params->start;
    n = params->end - params->start;

    if (ngx_rpc_json_member(obj, obj + n, &name, &r) != NGX_OK) {
        return;
    }

    ngx_rpc_fuzz_check(r.start > 0 && r.start < r.end
                       && (size_t) r.end < n, "member outside the object");

    buf = malloc(n - (r.end - r.start) + sizeof(id) - 1);
    if (buf == NULL) {
        abort();
    }

    q = ngx_cpymem(buf, obj, r.start);
    q = ngx_cpymem(q, id, sizeof(id) - 1);
    q = ngx_cpymem(q, obj + r.end, n - r.end);

    ngx_memzero(&alone, sizeof(ngx_rpc_fuzz_parse_t));

    alone.pool = ngx_create_pool(NGX_MIN_POOL_SIZE, &ngx_rpc_fuzz_log);
    if (alone.pool == NULL) {
        abort();
    }

    rc = ngx_rpc_parse_init(&alone.parser, alone.pool, &ngx_rpc_fuzz_log,
                            fp->parser.max_depth, 1, 1);

    if (rc == NGX_OK) {
        rc = ngx_rpc_parse_feed(&alone.parser, buf, q - buf);
    }

    if (rc == NGX_OK) {
        rc = ngx_rpc_parse_finish(&alone.parser);
    }

    ngx_rpc_fuzz_check(rc == NGX_OK && alone.parser.error == 0
                       && alone.parser.top == NGX_RPC_OBJECT,
                       "spliced object is not valid");

    ngx_destroy_pool(alone.pool);
    free(buf);
}


static void
ngx_rpc_fuzz_value(ngx_rpc_fuzz_parse_t *fp, ngx_rpc_range_t *range,
    ngx_uint_t type, ngx_rpc_msg_t *msg, u_char *body, size_t len)
{
    u_char                *copy, *q;
    size_t                 n;
    ngx_str_t              s;
    ngx_chain_t           *cl, **ll;
    ngx_rpc_fuzz_parse_t   alone;

    ngx_rpc_fuzz_check(type != NGX_RPC_NONE, "no type");
    ngx_rpc_fuzz_check(range->start >= 0 && range->start < range->end
                       && range->end <= (off_t) len, "range out of body");

    n = range->end - range->start;

    /* ngx_rpc_parse_copy(): in place, or copied from several pieces */

    ngx_rpc_fuzz_check(ngx_rpc_parse_copy(&fp->parser, range, &s) == NGX_OK,
                       "copy failed");
    ngx_rpc_fuzz_check(s.len == n
                       && ngx_memcmp(s.data, body + range->start, n) == 0,
                       "copy differs from the body");

    /* ngx_rpc_parse_slice(): buffers over the pieces */

    cl = NULL;
    ll = &cl;

    ngx_rpc_fuzz_check(ngx_rpc_parse_slice(&fp->parser, fp->pool, range, &ll)
                       == NGX_OK, "slice failed");

    copy = malloc(n);
    if (copy == NULL) {
        abort();
    }

    q = copy;

    for ( /* void */ ; cl; cl = cl->next) {
        ngx_rpc_fuzz_check(cl->buf->pos < cl->buf->last
                           && (size_t) (q - copy) + ngx_buf_size(cl->buf)
                              <= n,
                           "slice too long");

        q = ngx_cpymem(q, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    ngx_rpc_fuzz_check((size_t) (q - copy) == n
                       && ngx_memcmp(copy, body + range->start, n) == 0,
                       "slice differs from the body");

    /* alone: a fresh parser, one piece of exactly the value */

    ngx_memzero(&alone, sizeof(ngx_rpc_fuzz_parse_t));

    alone.pool = ngx_create_pool(NGX_MIN_POOL_SIZE, &ngx_rpc_fuzz_log);
    if (alone.pool == NULL) {
        abort();
    }

    ngx_rpc_fuzz_check(ngx_rpc_parse_init(&alone.parser, alone.pool,
                                          &ngx_rpc_fuzz_log,
                                          fp->parser.max_depth, n + 1, 1)
                       == NGX_OK, "init alone");

    (void) ngx_rpc_parse_feed(&alone.parser, copy, n);

    ngx_rpc_fuzz_check(ngx_rpc_parse_finish(&alone.parser) == NGX_OK,
                       "a recorded value does not parse alone");
    ngx_rpc_fuzz_check(alone.parser.top == type,
                       "a recorded value parses alone as another type");

    if (msg && type == NGX_RPC_OBJECT) {
        ngx_rpc_fuzz_check(alone.parser.msgs.nelts == 1,
                           "a message alone is not one message");
        ngx_rpc_fuzz_same_msg(msg, alone.parser.msgs.elts, range->start);
    }

    ngx_destroy_pool(alone.pool);
    free(copy);
}


/*
 * NGX_OK: valid JSON within the parser's limits: nesting up to max_depth,
 * a batch (a top-level array) of up to max_msgs elements; NGX_DECLINED:
 * such a value, and more than white space after it
 */

static ngx_int_t
ngx_rpc_fuzz_json(u_char *body, size_t len, ngx_rpc_parser_t *p)
{
    ngx_rpc_fuzz_json_t  j;

    ngx_memzero(&j, sizeof(ngx_rpc_fuzz_json_t));

    j.pos = body;
    j.end = body + len;
    j.max_depth = p->max_depth;

    ngx_rpc_fuzz_json_space(&j);

    if (ngx_rpc_fuzz_json_value(&j) != NGX_OK) {
        return NGX_ERROR;
    }

    if (j.top == NGX_RPC_ARRAY && j.elts > p->max_msgs) {
        return NGX_ERROR;
    }

    ngx_rpc_fuzz_json_space(&j);

    return (j.pos == j.end) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_rpc_fuzz_json_value(ngx_rpc_fuzz_json_t *j)
{
    u_char      close;
    ngx_uint_t  n, type;

    if (j->pos == j->end) {
        return NGX_ERROR;
    }

    switch (*j->pos) {

    case '{':
    case '[':
        type = (*j->pos == '{') ? NGX_RPC_OBJECT : NGX_RPC_ARRAY;
        close = (*j->pos == '{') ? '}' : ']';

        if (++j->depth > j->max_depth) {
            return NGX_ERROR;
        }

        if (j->depth == 1) {
            j->top = type;
        }

        j->pos++;
        ngx_rpc_fuzz_json_space(j);

        for (n = 0; /* void */ ; n++) {

            if (j->pos < j->end && *j->pos == close && n == 0) {
                break;
            }

            if (type == NGX_RPC_OBJECT) {
                if (ngx_rpc_fuzz_json_string(j) != NGX_OK) {
                    return NGX_ERROR;
                }

                ngx_rpc_fuzz_json_space(j);

                if (j->pos == j->end || *j->pos++ != ':') {
                    return NGX_ERROR;
                }

                ngx_rpc_fuzz_json_space(j);
            }

            if (ngx_rpc_fuzz_json_value(j) != NGX_OK) {
                return NGX_ERROR;
            }

            ngx_rpc_fuzz_json_space(j);

            if (j->pos == j->end) {
                return NGX_ERROR;
            }

            if (*j->pos == close) {
                n++;
                break;
            }

            if (*j->pos++ != ',') {
                return NGX_ERROR;
            }

            ngx_rpc_fuzz_json_space(j);
        }

        j->pos++;

        if (j->depth-- == 1) {
            j->elts = n;
        }

        return NGX_OK;

    case '"':
        return ngx_rpc_fuzz_json_string(j);

    case 't':
    case 'f':
    case 'n':
        for (n = 0; n < 3; n++) {
            if ((size_t) (j->end - j->pos) >= ngx_strlen(lit[n])
                && ngx_strncmp(j->pos, lit[n], ngx_strlen(lit[n])) == 0)
            {
                j->pos += ngx_strlen(lit[n]);
                return NGX_OK;
            }
        }

        return NGX_ERROR;

    default:
        return ngx_rpc_fuzz_json_number(j);
    }
}


static ngx_int_t
ngx_rpc_fuzz_json_string(ngx_rpc_fuzz_json_t *j)
{
    u_char      c, lo, hi;
    ngx_uint_t  i, n;

    if (j->pos == j->end || *j->pos++ != '"') {
        return NGX_ERROR;
    }

    while (j->pos < j->end) {
        c = *j->pos++;

        if (c == '"') {
            return NGX_OK;
        }

        if (c < 0x20) {
            return NGX_ERROR;
        }

        if (c == '\\') {
            if (j->pos == j->end) {
                return NGX_ERROR;
            }

            c = *j->pos++;

            if (c == 'u') {
                for (i = 0; i < 4; i++) {
                    if (j->pos == j->end || !isxdigit(*j->pos++)) {
                        return NGX_ERROR;
                    }
                }

            } else if (ngx_strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                return NGX_ERROR;
            }

            continue;
        }

        if (c < 0x80) {
            continue;
        }

        /* UTF-8 as RFC 3629 has it, as the parser checks it */

        lo = 0x80;
        hi = 0xbf;

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;

        } else {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            if (j->pos == j->end || *j->pos < lo || *j->pos > hi) {
                return NGX_ERROR;
            }

            j->pos++;
            lo = 0x80;
            hi = 0xbf;
        }
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_rpc_fuzz_json_number(ngx_rpc_fuzz_json_t *j)
{
    u_char  *start;

    if (j->pos < j->end && *j->pos == '-') {
        j->pos++;
    }

    if (j->pos == j->end || !isdigit(*j->pos)) {
        return NGX_ERROR;
    }

    if (*j->pos++ != '0') {
        while (j->pos < j->end && isdigit(*j->pos)) {
            j->pos++;
        }
    }

    if (j->pos < j->end && *j->pos == '.') {
        j->pos++;
        start = j->pos;

        while (j->pos < j->end && isdigit(*j->pos)) {
            j->pos++;
        }

        if (j->pos == start) {
            return NGX_ERROR;
        }
    }

    if (j->pos < j->end && (*j->pos == 'e' || *j->pos == 'E')) {
        j->pos++;

        if (j->pos < j->end && (*j->pos == '+' || *j->pos == '-')) {
            j->pos++;
        }

        start = j->pos;

        while (j->pos < j->end && isdigit(*j->pos)) {
            j->pos++;
        }

        if (j->pos == start) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_rpc_fuzz_json_space(ngx_rpc_fuzz_json_t *j)
{
    while (j->pos < j->end
           && (*j->pos == ' ' || *j->pos == '\t' || *j->pos == '\n'
               || *j->pos == '\r'))
    {
        j->pos++;
    }
}


static void
ngx_rpc_fuzz_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    /* void */
}


static void
ngx_rpc_fuzz_fail(const char *what, const char *cond, int line)
{
    fprintf(stderr, "ngx_rpc_fuzz: %s (line %d: %s)\n", what, line, cond);
    abort();
}
