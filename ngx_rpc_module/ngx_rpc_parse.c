
/*
 * Streaming JSON-RPC parser on yajl.
 *
 * Bytes are fed as they sit in nginx buffers; every value of interest is
 * kept as a range of stream offsets, so the bytes are never copied.  Only
 * the decoded method name is copied, to match it against patterns, and
 * small pieces that lie apart in memory, so that a body read a byte at a
 * time does not cost a segment per byte.
 *
 * Every step costs time in proportion to the bytes it looks at, however
 * the stream is split: a segment is found by binary search, and the bytes
 * between two tokens are looked at once.
 */


#include "ngx_rpc.h"


#define ngx_rpc_msg_depth(p)  ((p)->top == NGX_RPC_ARRAY ? 2 : 1)

/* JSON white space; yajl also skips form feed and vertical tab */
#define ngx_rpc_parse_space(ch)                                              \
    ((ch) == ' ' || (ch) == '\t' || (ch) == '\r' || (ch) == '\n')

/* byte classes of the lexer's table */
#define NGX_RPC_C_PLAIN_END   1    /* of plain ASCII in a string */
#define NGX_RPC_C_BARE_END    2    /* of a bare token (number, literal) */
#define NGX_RPC_C_SPACE       4
#define NGX_RPC_C_FAULT       8    /* form feed, vertical tab */

/* lexical states, and the longest open token yajl is given in pieces */
#define NGX_RPC_LEX_OUT       0
#define NGX_RPC_LEX_STRING    1
#define NGX_RPC_LEX_ESCAPE    2
#define NGX_RPC_LEX_BARE      3

#ifndef NGX_RPC_PARSE_HOLD
#define NGX_RPC_PARSE_HOLD    1024    /* the fuzz targets make it small */
#endif

/* pieces shorter than this that do not follow the previous one are copied */
#define NGX_RPC_PARSE_SMALL   128
#define NGX_RPC_PARSE_BLOCK   2048


static int ngx_rpc_parse_null(void *ctx);
static int ngx_rpc_parse_boolean(void *ctx, int v);
static int ngx_rpc_parse_number(void *ctx, const char *s, size_t len);
static int ngx_rpc_parse_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_rpc_parse_start_map(void *ctx);
static int ngx_rpc_parse_map_key(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_rpc_parse_end_container(void *ctx);
static int ngx_rpc_parse_start_array(void *ctx);
static int ngx_rpc_parse_scalar(ngx_rpc_parser_t *p, ngx_uint_t type);
static int ngx_rpc_parse_open(ngx_rpc_parser_t *p, ngx_uint_t type);
static ngx_rpc_msg_t *ngx_rpc_parse_msg(ngx_rpc_parser_t *p,
    ngx_uint_t type, off_t start);
static ngx_uint_t ngx_rpc_parse_member(const u_char *s, size_t len);
static ngx_int_t ngx_rpc_parse_keep(ngx_rpc_parser_t *p, u_char *data,
    size_t len);
static ngx_int_t ngx_rpc_parse_after(ngx_rpc_parser_t *p, u_char *data,
    size_t len);
static ngx_int_t ngx_rpc_parse_yajl(ngx_rpc_parser_t *p, u_char *data,
    size_t len, off_t base);
static size_t ngx_rpc_parse_lex(ngx_rpc_parser_t *p, u_char *data,
    size_t n, size_t *e);
static ngx_int_t ngx_rpc_parse_hold(ngx_rpc_parser_t *p, u_char *data,
    size_t len, off_t off);
static off_t ngx_rpc_parse_start(ngx_rpc_parser_t *p, off_t end);
static ngx_uint_t ngx_rpc_parse_find(ngx_rpc_parser_t *p, off_t off);
static void ngx_rpc_parse_log(ngx_rpc_parser_t *p);
static void ngx_rpc_parse_cleanup(void *data);
static void *ngx_rpc_parse_malloc(void *ctx, size_t size);
static void *ngx_rpc_parse_realloc(void *ctx, void *ptr, size_t size);
static void ngx_rpc_parse_free(void *ctx, void *ptr);


static yajl_callbacks  ngx_rpc_parse_callbacks = {
    ngx_rpc_parse_null,
    ngx_rpc_parse_boolean,
    NULL,
    NULL,
    ngx_rpc_parse_number,
    ngx_rpc_parse_string,
    ngx_rpc_parse_start_map,
    ngx_rpc_parse_map_key,
    ngx_rpc_parse_end_container,
    ngx_rpc_parse_start_array,
    ngx_rpc_parse_end_container
};


/*
 * max_msgs: the most requests or responses recorded, more is an error; 0
 * checks one JSON value and records none of its elements
 */

ngx_int_t
ngx_rpc_parse_init(ngx_rpc_parser_t *p, ngx_pool_t *pool, ngx_log_t *log,
    ngx_uint_t max_depth, ngx_uint_t max_msgs, ngx_uint_t n)
{
    yajl_handle          yajl;
    yajl_alloc_funcs     af;
    ngx_pool_cleanup_t  *cln;

    /* an upstream retry parses a new reply with the same parser */

    yajl = p->yajl;

    if (yajl == NULL) {
        cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_rpc_parse_cleanup;
        cln->data = p;

    } else {
        yajl_free(yajl);
    }

    ngx_memzero(p, sizeof(ngx_rpc_parser_t));

    p->pool = pool;
    p->log = log;
    p->max_depth = max_depth;
    p->max_msgs = max_msgs;
    p->key = NGX_RPC_M_N;

    if (ngx_array_init(&p->segs, pool, 2, sizeof(ngx_rpc_seg_t)) != NGX_OK
        || ngx_array_init(&p->msgs, pool, n, sizeof(ngx_rpc_msg_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* yajl copies them */

    af.malloc = ngx_rpc_parse_malloc;
    af.realloc = ngx_rpc_parse_realloc;
    af.free = ngx_rpc_parse_free;
    af.ctx = pool;

    p->yajl = yajl_alloc(&ngx_rpc_parse_callbacks, &af, p);
    if (p->yajl == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_rpc_parse_feed(ngx_rpc_parser_t *p, u_char *data, size_t len)
{
    off_t   start;
    char   *fault;
    size_t  n, e, from, to, held;

    if (p->error) {
        return NGX_ERROR;
    }

    if (len == 0) {
        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, p->log, 0,
                   "rpc: parse %uz bytes at %O", len, p->total);

    if (ngx_rpc_parse_keep(p, data, len) != NGX_OK) {
        p->error = NGX_ERROR;
        return NGX_ERROR;
    }

    /*
     * yajl takes form feed and vertical tab for white space; JSON has them
     * nowhere unescaped.  yajl gets only the bytes before one, so that the
     * first fault in the stream is the one reported, however it is split.
     *
     * yajl lexes a token that spans pieces again from its start with each
     * piece: a long token open at the end of a piece is held here instead,
     * and given to yajl whole once it ends (or a form feed comes)
     */

    fault = "form feed or vertical tab";
    e = 0;

    if (p->complete) {
        for (n = 0; n < len; n++) {
            if (data[n] == '\f' || data[n] == '\v') {
                break;
            }
        }

    } else {
        n = ngx_rpc_parse_lex(p, data, len, &e);

        if (n < len && data[n] != '\f' && data[n] != '\v') {
            fault = "invalid UTF-8 in a string";
        }
    }

    from = 0;

    if (p->hold_len) {

        if (e == n && p->lex != NGX_RPC_LEX_OUT) {
            /* the held token goes on through the piece */

            if (ngx_rpc_parse_hold(p, data, n, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            if (n == len) {
                p->base = p->total;
                p->total += len;
                return NGX_OK;
            }

            from = n;

        } else if (ngx_rpc_parse_hold(p, data, e, 0) != NGX_OK) {
            return NGX_ERROR;

        } else {
            from = e;
        }

        held = p->hold_len;
        p->hold_len = 0;

        if (ngx_rpc_parse_yajl(p, p->hold, held, p->hold_off) != NGX_OK) {
            p->total += len;
            return NGX_ERROR;
        }
    }

    to = n;
    start = p->total + (off_t) from;

    if (!p->complete && n == len && p->lex != NGX_RPC_LEX_OUT
        && p->total + (off_t) n - p->token >= NGX_RPC_PARSE_HOLD)
    {
        if (p->token > start) {
            start = p->token;
        }

        to = (size_t) (start - p->total);

        if (ngx_rpc_parse_hold(p, data + to, n - to, start) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (!p->complete && to > from
        && ngx_rpc_parse_yajl(p, data + from, to - from, p->total + from)
           != NGX_OK)
    {
        p->total += len;
        return NGX_ERROR;
    }

    p->base = p->total;
    p->total += len;

    if (p->complete && ngx_rpc_parse_after(p, data, n) != NGX_OK) {
        return NGX_ERROR;
    }

    if (n < len) {
        ngx_log_error(NGX_LOG_INFO, p->log, 0,
                      "rpc: invalid JSON: %s at byte %O", fault,
                      p->base + (off_t) n);
        p->error = NGX_RPC_PARSE_ERROR;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * yajl parses bytes that start at stream offset base; nothing but white
 * space may follow the value in them
 */

static ngx_int_t
ngx_rpc_parse_yajl(ngx_rpc_parser_t *p, u_char *data, size_t len, off_t base)
{
    p->base = base;

    if (yajl_parse(p->yajl, data, len) != yajl_status_ok) {
        ngx_rpc_parse_log(p);
        return NGX_ERROR;
    }

    /* yajl keeps quiet on a token left open after the value */

    if (p->complete) {
        return ngx_rpc_parse_after(p, data, len);
    }

    return NGX_OK;
}


/*
 * The lexical state after data: in a string, after a backslash in one, in
 * a bare token (number, literal, or junk), or between tokens.  *e is where
 * the token open before data ends in it, or where the scan stopped if it
 * goes on.  Strings are checked to be UTF-8 as RFC 3629 has it (yajl lets
 * overlong forms, surrogates and code points past U+10FFFF through): the
 * scan stops at the first byte that is not, or at a form feed or vertical
 * tab, and returns where.  Runs of plain ASCII in strings, most of a
 * body, are passed over by a table.
 */

static size_t
ngx_rpc_parse_lex(ngx_rpc_parser_t *p, u_char *data, size_t n, size_t *e)
{
    u_char          ch, c;
    size_t          i;
    ngx_uint_t      lex, open, spaced;
    ngx_rpc_utf8_t  utf8;

    /*
     * NGX_RPC_C_* of each byte: plain ASCII in a string ends at '"', '\\',
     * "\f", "\v" and bytes that are not ASCII; a bare token at white space
     * and ",:\"[]{}"
     */

    static u_char  cls[] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 6, 9, 9, 6, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        6, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    };

    lex = p->lex;
    open = (lex != NGX_RPC_LEX_OUT);
    spaced = 0;
    utf8 = p->utf8;

    for (i = 0; i < n; i++) {
        ch = data[i];
        c = cls[ch];

        if (c & NGX_RPC_C_FAULT) {
            goto fault;
        }

        switch (lex) {

        case NGX_RPC_LEX_STRING:
            if (ch >= 0x80 || utf8.left) {
                if (ngx_rpc_utf8(&utf8, ch) != NGX_OK) {
                    goto fault;
                }

                break;
            }

            if (ch == '\\') {
                lex = NGX_RPC_LEX_ESCAPE;

            } else if (ch == '"') {
                lex = NGX_RPC_LEX_OUT;

                if (open) {
                    open = 0;
                    *e = i + 1;
                }

            } else {
                while (i + 1 < n
                       && !(cls[data[i + 1]] & NGX_RPC_C_PLAIN_END))
                {
                    i++;
                }
            }

            break;

        case NGX_RPC_LEX_ESCAPE:
            lex = NGX_RPC_LEX_STRING;
            break;

        case NGX_RPC_LEX_BARE:
            if (!(c & NGX_RPC_C_BARE_END)) {
                break;
            }

            lex = NGX_RPC_LEX_OUT;

            if (open) {
                open = 0;
                *e = i;
            }

            /* fall through */

        default: /* NGX_RPC_LEX_OUT */
            if (ch == '"') {
                lex = NGX_RPC_LEX_STRING;
                p->token = p->total + i;

            } else if (!(c & NGX_RPC_C_BARE_END)) {
                lex = NGX_RPC_LEX_BARE;
                p->token = p->total + i;

            } else {
                spaced |= c & NGX_RPC_C_SPACE;
            }
        }
    }

    p->lex = lex;
    p->utf8 = utf8;
    p->spaced |= (spaced != 0);

    if (open) {
        *e = n;
    }

    return n;

fault:

    p->lex = lex;
    p->utf8 = utf8;
    p->spaced |= (spaced != 0);

    if (open) {
        *e = i;
    }

    return i;
}


/* bytes of a long token, kept for yajl until the token ends */

static ngx_int_t
ngx_rpc_parse_hold(ngx_rpc_parser_t *p, u_char *data, size_t len, off_t off)
{
    u_char  *h;
    size_t   size;

    if (p->hold_len == 0) {
        p->hold_off = off;
    }

    if (p->hold_len + len > p->hold_size) {
        size = ngx_max(2 * p->hold_size, p->hold_len + len);

        h = ngx_pnalloc(p->pool, size);
        if (h == NULL) {
            p->error = NGX_ERROR;
            return NGX_ERROR;
        }

        if (p->hold_len) {
            ngx_memcpy(h, p->hold, p->hold_len);
        }

        p->hold = h;
        p->hold_size = size;
    }

    ngx_memcpy(p->hold + p->hold_len, data, len);
    p->hold_len += len;

    return NGX_OK;
}


ngx_int_t
ngx_rpc_parse_finish(ngx_rpc_parser_t *p)
{
    if (p->error) {
        return NGX_ERROR;
    }

    if (p->hold_len && !p->complete
        && ngx_rpc_parse_yajl(p, p->hold, p->hold_len, p->hold_off) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p->hold_len = 0;

    /* yajl ends a trailing number with a space of its own: no segment */

    p->base = p->total;

    if (yajl_complete_parse(p->yajl) != yajl_status_ok) {
        ngx_rpc_parse_log(p);
        return NGX_ERROR;
    }

    if (!p->complete) {
        ngx_log_error(NGX_LOG_INFO, p->log, 0,
                      "rpc: invalid JSON: no complete value");
        p->error = NGX_RPC_PARSE_ERROR;
        return NGX_ERROR;
    }

    p->done = 1;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, p->log, 0,
                   "rpc: parsed %O bytes in %ui segments, %ui messages",
                   p->total, p->segs.nelts, p->msgs.nelts);

    return NGX_OK;
}


/*
 * yajl waits for more input on a token left open after the value (a quote,
 * a string without its end) and does not complain when there is none
 */

static ngx_int_t
ngx_rpc_parse_after(ngx_rpc_parser_t *p, u_char *data, size_t len)
{
    size_t  i;

    i = (p->end > p->base) ? (size_t) (p->end - p->base) : 0;

    for ( /* void */ ; i < len; i++) {
        if (!ngx_rpc_parse_space(data[i])) {
            ngx_log_error(NGX_LOG_INFO, p->log, 0,
                          "rpc: invalid JSON: data after the value "
                          "at byte %O", p->base + (off_t) i);
            p->error = NGX_RPC_PARSE_ERROR;
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A piece that follows the last segment in memory extends it: nginx reads
 * into the free end of one buffer, and copies made one after another from
 * a pool usually lie end to end.  A small piece elsewhere is copied, so
 * that bytes read one at a time do not cost a segment each.
 */

static ngx_int_t
ngx_rpc_parse_keep(ngx_rpc_parser_t *p, u_char *data, size_t len)
{
    ngx_rpc_seg_t  *seg;

    seg = NULL;

    if (p->segs.nelts) {
        seg = (ngx_rpc_seg_t *) p->segs.elts + p->segs.nelts - 1;

        if (seg->start + seg->len == data) {
            seg->len += len;
            return NGX_OK;
        }
    }

    if (seg && len < NGX_RPC_PARSE_SMALL) {

        if ((size_t) (p->copy_end - p->copy) < len) {
            p->copy = ngx_pnalloc(p->pool, NGX_RPC_PARSE_BLOCK);
            if (p->copy == NULL) {
                return NGX_ERROR;
            }

            p->copy_end = p->copy + NGX_RPC_PARSE_BLOCK;
        }

        ngx_memcpy(p->copy, data, len);
        data = p->copy;
        p->copy += len;

        if (seg->start + seg->len == data) {
            seg->len += len;
            return NGX_OK;
        }
    }

    seg = ngx_array_push(&p->segs);
    if (seg == NULL) {
        return NGX_ERROR;
    }

    seg->start = data;
    seg->offset = p->total;
    seg->len = len;

    return NGX_OK;
}


static void
ngx_rpc_parse_log(ngx_rpc_parser_t *p)
{
    size_t          len;
    unsigned char  *err;

    if (p->error == NGX_RPC_BATCH_TOO_LARGE) {
        ngx_log_error(NGX_LOG_INFO, p->log, 0,
                      "rpc: batch of more than %ui calls", p->max_msgs);
        return;
    }

    if (p->error == NGX_RPC_PARSE_ERROR) {
        ngx_log_error(NGX_LOG_INFO, p->log, 0,
                      "rpc: JSON nested deeper than %ui", p->max_depth);
        return;
    }

    if (p->error) {
        return;
    }

    p->error = NGX_RPC_PARSE_ERROR;

    err = yajl_get_error(p->yajl, 0, NULL, 0);

    if (err == NULL) {
        ngx_log_error(NGX_LOG_INFO, p->log, 0, "rpc: invalid JSON");
        return;
    }

    /* yajl ends its message with a new line: one log entry, one line */

    len = ngx_strlen(err);

    while (len && (err[len - 1] == '\n' || err[len - 1] == ' ')) {
        len--;
    }

    ngx_log_error(NGX_LOG_INFO, p->log, 0, "rpc: invalid JSON: %*s",
                  len, err);

    yajl_free_error(p->yajl, err);
}


static void
ngx_rpc_parse_cleanup(void *data)
{
    ngx_rpc_parser_t  *p = data;

    if (p->yajl) {
        yajl_free(p->yajl);
        p->yajl = NULL;
    }
}


/*
 * yajl's memory is the parser's pool: its five blocks and the growth of
 * its stack cost no malloc() and free() each.  A block keeps its size in
 * front of it, for realloc(); a large one that grows or is freed goes back
 * at once (ngx_pfree() takes only those), so that a long string with
 * escapes does not keep every size it grew through
 */

static void *
ngx_rpc_parse_malloc(void *ctx, size_t size)
{
    size_t  *m;

    m = ngx_palloc(ctx, sizeof(size_t) + size);
    if (m == NULL) {
        return NULL;
    }

    *m = size;

    return m + 1;
}


static void *
ngx_rpc_parse_realloc(void *ctx, void *ptr, size_t size)
{
    void    *p;
    size_t  *m;

    if (ptr == NULL) {
        return ngx_rpc_parse_malloc(ctx, size);
    }

    m = (size_t *) ptr - 1;

    if (size <= *m) {
        return ptr;
    }

    p = ngx_rpc_parse_malloc(ctx, size);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, ptr, *m);
    (void) ngx_pfree(ctx, m);

    return p;
}


static void
ngx_rpc_parse_free(void *ctx, void *ptr)
{
    if (ptr) {
        (void) ngx_pfree(ctx, (size_t *) ptr - 1);
    }
}


static int
ngx_rpc_parse_null(void *ctx)
{
    return ngx_rpc_parse_scalar(ctx, NGX_RPC_NULL);
}


static int
ngx_rpc_parse_boolean(void *ctx, int v)
{
    return ngx_rpc_parse_scalar(ctx, NGX_RPC_BOOL);
}


static int
ngx_rpc_parse_number(void *ctx, const char *s, size_t len)
{
    ngx_rpc_parser_t  *p = ctx;

    ngx_int_t       n;
    ngx_uint_t      depth;
    ngx_rpc_msg_t  *msg;

    msg = p->msg;
    depth = ngx_rpc_msg_depth(p);

    if (msg && p->key == NGX_RPC_M_ID && p->depth == depth) {
        n = ngx_atoi((u_char *) s, len);
        msg->num = (n == NGX_ERROR) ? -1 : n;

    } else if (msg && p->key == NGX_RPC_M_ERROR && msg->code_key
               && p->depth == depth + 1)
    {
        /* a code that is no integer of ngx_int_t is kept apart, not 0 */

        if (len && s[0] == '-') {
            n = ngx_atoi((u_char *) s + 1, len - 1);
            msg->code = (n == NGX_ERROR) ? 0 : -n;

        } else {
            n = ngx_atoi((u_char *) s, len);
            msg->code = (n == NGX_ERROR) ? 0 : n;
        }

        msg->code_ok = (n != NGX_ERROR);
    }

    return ngx_rpc_parse_scalar(p, NGX_RPC_NUMBER);
}


static int
ngx_rpc_parse_string(void *ctx, const unsigned char *s, size_t len)
{
    ngx_rpc_parser_t  *p = ctx;

    ngx_rpc_msg_t  *msg;

    msg = p->msg;

    if (msg && p->depth == ngx_rpc_msg_depth(p)) {

        if (p->key == NGX_RPC_M_METHOD) {
            msg->method.data = ngx_pnalloc(p->pool, len + 1);
            if (msg->method.data == NULL) {
                p->error = NGX_ERROR;
                return 0;
            }

            ngx_memcpy(msg->method.data, s, len);
            msg->method.len = len;

        } else if (p->key == NGX_RPC_M_JSONRPC) {
            msg->version_ok = (len == 3 && ngx_memcmp(s, "2.0", 3) == 0);
        }
    }

    return ngx_rpc_parse_scalar(p, NGX_RPC_STRING);
}


static int
ngx_rpc_parse_start_map(void *ctx)
{
    return ngx_rpc_parse_open(ctx, NGX_RPC_OBJECT);
}


static int
ngx_rpc_parse_start_array(void *ctx)
{
    return ngx_rpc_parse_open(ctx, NGX_RPC_ARRAY);
}


static int
ngx_rpc_parse_map_key(void *ctx, const unsigned char *s, size_t len)
{
    ngx_rpc_parser_t  *p = ctx;

    ngx_uint_t      i, depth;
    ngx_rpc_msg_t  *msg;

    p->last = p->base + yajl_get_bytes_consumed(p->yajl);

    msg = p->msg;
    depth = ngx_rpc_msg_depth(p);

    if (msg == NULL) {
        return 1;
    }

    if (p->depth == depth) {
        p->key = NGX_RPC_M_N;

        i = ngx_rpc_parse_member(s, len);

        if (i == NGX_RPC_M_N) {
            return 1;
        }

        if (msg->member[i].type != NGX_RPC_NONE) {
            msg->duplicate = 1;
            return 1;
        }

        p->key = i;

    } else if (p->depth == depth + 1 && p->key == NGX_RPC_M_ERROR) {
        msg->code_key = (len == 4 && ngx_memcmp(s, "code", 4) == 0);
    }

    return 1;
}


/* comparisons of constant length, which the compiler does inline */

static ngx_uint_t
ngx_rpc_parse_member(const u_char *s, size_t len)
{
    switch (len) {

    case 2:
        if (s[0] == 'i' && s[1] == 'd') {
            return NGX_RPC_M_ID;
        }

        break;

    case 5:
        if (ngx_memcmp(s, "error", 5) == 0) {
            return NGX_RPC_M_ERROR;
        }

        break;

    case 6:
        if (ngx_memcmp(s, "method", 6) == 0) {
            return NGX_RPC_M_METHOD;
        }

        if (ngx_memcmp(s, "params", 6) == 0) {
            return NGX_RPC_M_PARAMS;
        }

        if (ngx_memcmp(s, "result", 6) == 0) {
            return NGX_RPC_M_RESULT;
        }

        break;

    case 7:
        if (ngx_memcmp(s, "jsonrpc", 7) == 0) {
            return NGX_RPC_M_JSONRPC;
        }

        break;
    }

    return NGX_RPC_M_N;
}


static int
ngx_rpc_parse_scalar(ngx_rpc_parser_t *p, ngx_uint_t type)
{
    off_t             start, end;
    ngx_rpc_msg_t    *msg;
    ngx_rpc_value_t  *v;

    end = p->base + yajl_get_bytes_consumed(p->yajl);

    if (p->depth == 0) {
        p->top = type;
        p->last = end;
        p->end = end;
        p->complete = 1;
        return 1;
    }

    if (p->top == NGX_RPC_ARRAY && p->depth == 1) {
        start = ngx_rpc_parse_start(p, end);

        msg = ngx_rpc_parse_msg(p, type, start);
        if (msg == NULL) {
            return 0;
        }

        msg->range.end = end;
        p->msg = NULL;

    } else if (p->depth == ngx_rpc_msg_depth(p) && p->key != NGX_RPC_M_N) {
        start = ngx_rpc_parse_start(p, end);

        v = &p->msg->member[p->key];
        v->type = type;
        v->range.start = start;
        v->range.end = end;

        p->key = NGX_RPC_M_N;
    }

    p->last = end;

    return 1;
}


static int
ngx_rpc_parse_open(ngx_rpc_parser_t *p, ngx_uint_t type)
{
    off_t             start;
    ngx_rpc_value_t  *v;

    p->last = p->base + yajl_get_bytes_consumed(p->yajl);
    start = p->last - 1;

    if (p->depth == 0) {
        p->top = type;

        if (type == NGX_RPC_OBJECT
            && ngx_rpc_parse_msg(p, type, start) == NULL)
        {
            return 0;
        }

    } else if (p->top == NGX_RPC_ARRAY && p->depth == 1) {
        if (ngx_rpc_parse_msg(p, type, start) == NULL) {
            return 0;
        }

    } else if (p->depth == ngx_rpc_msg_depth(p) && p->key != NGX_RPC_M_N) {
        v = &p->msg->member[p->key];
        v->type = type;
        v->range.start = start;
    }

    if (++p->depth > p->max_depth) {
        p->error = NGX_RPC_PARSE_ERROR;
        return 0;
    }

    return 1;
}


static int
ngx_rpc_parse_end_container(void *ctx)
{
    ngx_rpc_parser_t  *p = ctx;

    off_t       end;
    ngx_uint_t  depth;

    end = p->base + yajl_get_bytes_consumed(p->yajl);
    p->last = end;

    p->depth--;
    depth = ngx_rpc_msg_depth(p);

    if (p->depth == 0) {
        p->end = end;
        p->complete = 1;
    }

    if (p->msg == NULL) {
        return 1;
    }

    if (p->depth == depth && p->key != NGX_RPC_M_N) {
        p->msg->member[p->key].range.end = end;
        p->key = NGX_RPC_M_N;

    } else if (p->depth == depth - 1) {
        p->msg->range.end = end;
        p->msg = NULL;
    }

    return 1;
}


static ngx_rpc_msg_t *
ngx_rpc_parse_msg(ngx_rpc_parser_t *p, ngx_uint_t type, off_t start)
{
    ngx_rpc_msg_t  *msg;

    if (p->max_msgs == 0) {
        /* a value only: one scratch record, never kept */
        msg = p->msgs.elts;

    } else if (p->msgs.nelts >= p->max_msgs) {
        p->error = NGX_RPC_BATCH_TOO_LARGE;
        return NULL;

    } else {
        msg = ngx_array_push(&p->msgs);
        if (msg == NULL) {
            p->error = NGX_ERROR;
            return NULL;
        }
    }

    ngx_memzero(msg, sizeof(ngx_rpc_msg_t));

    msg->type = type;
    msg->range.start = start;
    msg->num = -1;

    p->msg = msg;
    p->key = NGX_RPC_M_N;

    return msg;
}


/*
 * yajl reports where a token ends; it starts after the separators that
 * follow the previous token, which may lie in an earlier buffer.  The
 * previous token ends at p->last, which only moves on: each separator is
 * looked at once.
 */

static off_t
ngx_rpc_parse_start(ngx_rpc_parser_t *p, off_t end)
{
    off_t           off;
    u_char          ch;
    ngx_uint_t      i;
    ngx_rpc_seg_t  *seg;

    off = p->last;

    if (off >= end || p->segs.nelts == 0) {
        return off;
    }

    seg = p->segs.elts;
    i = ngx_rpc_parse_find(p, off);

    while (off < end) {

        if (off >= seg[i].offset + (off_t) seg[i].len) {
            if (++i == p->segs.nelts) {
                break;
            }

            continue;
        }

        ch = seg[i].start[off - seg[i].offset];

        if (!ngx_rpc_parse_space(ch) && ch != ',' && ch != ':') {
            break;
        }

        off++;
    }

    return off;
}


/* the last segment that starts at or before off; there is one at least */

static ngx_uint_t
ngx_rpc_parse_find(ngx_rpc_parser_t *p, off_t off)
{
    ngx_uint_t      lo, hi, mid;
    ngx_rpc_seg_t  *seg;

    seg = p->segs.elts;
    lo = 0;
    hi = p->segs.nelts;

    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;

        if (seg[mid].offset <= off) {
            lo = mid;

        } else {
            hi = mid;
        }
    }

    return lo;
}


ngx_int_t
ngx_rpc_parse_slice(ngx_rpc_parser_t *p, ngx_pool_t *pool,
    ngx_rpc_range_t *range, ngx_chain_t ***ll)
{
    off_t           from, to;
    ngx_uint_t      i;
    ngx_rpc_seg_t  *seg;

    if (range->start >= range->end || p->segs.nelts == 0) {
        return NGX_OK;
    }

    seg = p->segs.elts;

    for (i = ngx_rpc_parse_find(p, range->start);
         i < p->segs.nelts && seg[i].offset < range->end;
         i++)
    {
        from = ngx_max(range->start, seg[i].offset);
        to = ngx_min(range->end, seg[i].offset + (off_t) seg[i].len);

        if (from >= to) {
            continue;
        }

        if (ngx_rpc_chain_add(pool, ll, seg[i].start
                              + (from - seg[i].offset), to - from)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a value as one string: in place, or copied when it straddles segments */

ngx_int_t
ngx_rpc_parse_copy(ngx_rpc_parser_t *p, ngx_rpc_range_t *range,
    ngx_str_t *out)
{
    ngx_rpc_seg_t  *seg;

    out->len = range->end - range->start;

    if (p->segs.nelts) {
        seg = (ngx_rpc_seg_t *) p->segs.elts
              + ngx_rpc_parse_find(p, range->start);

        if (range->start >= seg->offset
            && range->end <= seg->offset + (off_t) seg->len)
        {
            out->data = seg->start + (range->start - seg->offset);
            return NGX_OK;
        }
    }

    out->data = ngx_pnalloc(p->pool, out->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_rpc_parse_copy_to(p, range, out->data);

    return NGX_OK;
}


/* copies a value to dst, returns the end of the copy */

u_char *
ngx_rpc_parse_copy_to(ngx_rpc_parser_t *p, ngx_rpc_range_t *range,
    u_char *dst)
{
    off_t           from, to;
    ngx_uint_t      i;
    ngx_rpc_seg_t  *seg;

    if (range->start >= range->end || p->segs.nelts == 0) {
        return dst;
    }

    seg = p->segs.elts;

    for (i = ngx_rpc_parse_find(p, range->start);
         i < p->segs.nelts && seg[i].offset < range->end;
         i++)
    {
        from = ngx_max(range->start, seg[i].offset);
        to = ngx_min(range->end, seg[i].offset + (off_t) seg[i].len);

        if (from < to) {
            dst = ngx_cpymem(dst, seg[i].start + (from - seg[i].offset),
                             to - from);
        }
    }

    return dst;
}


/* a value without the white space between its tokens, for keys */

u_char *
ngx_rpc_parse_copy_squeezed(ngx_rpc_parser_t *p, ngx_rpc_range_t *range,
    u_char *dst)
{
    u_char  *last;

    last = ngx_rpc_parse_copy_to(p, range, dst);

    /* none anywhere in the stream: nothing to take out */

    return p->spaced ? ngx_rpc_squeeze(dst, last) : last;
}
