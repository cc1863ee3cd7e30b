
/*
 * libFuzzer target for ngx_rpc_frame_response() (ngx_rpc_frame.c), the
 * check of a server's answer to the upstream WebSocket client's upgrade
 * (RFC 6455 4.1), linked as fuzz_frame is (see "fuzz" in the Makefile).
 *
 * An input is the bytes a server sends; the client's key is RFC 6455's
 * sample, so the Sec-WebSocket-Accept it wants is the RFC's too (checked
 * here once, as a known answer of ngx_rpc_frame_accept()).
 *
 * The parser is called on the whole input and on every prefix that ends
 * at a line end or just before one (each malloc'd to its exact size, so
 * that ASan sees a read past the end), as the client calls it again on
 * all the bytes so far as they arrive: a prefix's answer must be NGX_AGAIN
 * or the whole input's (the same length, status and reason: an answer
 * once given does not change as more bytes come), and it may change only
 * at a line end.  NGX_OK must end the head with a LF and have status 101.
 *
 * Then the differential check: a reference here, written from RFC 6455
 * 4.1 and RFC 9112 rather than from the parser, reads the whole input as
 * lines and must give the same answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_rpc.h"


#define ngx_rpc_fuzz_check(cond, what)                                     \
    if (!(cond)) {                                                         \
        ngx_rpc_fuzz_fail(what, #cond, __LINE__);                          \
    }


#define NGX_RPC_FUZZ_KEY     "dGhlIHNhbXBsZSBub25jZQ=="
#define NGX_RPC_FUZZ_ACCEPT  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


typedef struct {
    ngx_int_t     rc;
    size_t        len;
    ngx_uint_t    status;
    char         *reason;
} ngx_rpc_fuzz_answer_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_rpc_fuzz_parse(const uint8_t *data, size_t n,
    ngx_rpc_fuzz_answer_t *a);
static void ngx_rpc_fuzz_reference(const u_char *in, size_t n,
    ngx_rpc_fuzz_answer_t *a);
static ngx_uint_t ngx_rpc_fuzz_status_line(const u_char *l, size_t n,
    ngx_uint_t *status);
static ngx_uint_t ngx_rpc_fuzz_tchar(u_char c);
static ngx_uint_t ngx_rpc_fuzz_vchar(u_char c);
static ngx_uint_t ngx_rpc_fuzz_name(const u_char *p, size_t n,
    const char *name);
static ngx_uint_t ngx_rpc_fuzz_list(const u_char *p, size_t n,
    const char *token);
static ngx_uint_t ngx_rpc_fuzz_same(ngx_rpc_fuzz_answer_t *a,
    ngx_rpc_fuzz_answer_t *b);
static void ngx_rpc_fuzz_show(const char *who, ngx_rpc_fuzz_answer_t *a);
static void ngx_rpc_fuzz_fail(const char *what, const char *cond,
    int line);


static ngx_uint_t  ngx_rpc_fuzz_known;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                 accept[28];
    size_t                 k, last;
    ngx_rpc_fuzz_answer_t  whole, part, prev, ref;

    if (!ngx_rpc_fuzz_known) {
        ngx_rpc_frame_accept((u_char *) NGX_RPC_FUZZ_KEY,
                             sizeof(NGX_RPC_FUZZ_KEY) - 1, accept);

        ngx_rpc_fuzz_check(ngx_memcmp(accept, NGX_RPC_FUZZ_ACCEPT, 28) == 0,
                           "not RFC 6455's Sec-WebSocket-Accept of its key");
        ngx_rpc_fuzz_known = 1;
    }

    ngx_rpc_fuzz_parse(data, size, &whole);

    if (whole.rc == NGX_OK) {
        ngx_rpc_fuzz_check(whole.len > 0 && whole.len <= size
                           && data[whole.len - 1] == '\n',
                           "a head that does not end with a line end");
        ngx_rpc_fuzz_check(whole.status == 101, "NGX_OK without 101");

    } else if (whole.rc == NGX_ERROR) {
        ngx_rpc_fuzz_check(whole.reason != NULL, "an error without why");

    } else {
        ngx_rpc_fuzz_check(whole.rc == NGX_AGAIN, "an unknown return code");
    }

    /* the prefixes where an answer may come, and just before them */

    ngx_rpc_fuzz_parse(data, 0, &prev);
    ngx_rpc_fuzz_check(prev.rc == NGX_AGAIN, "an answer with no byte");

    last = 0;

    for (k = 1; k <= size; k++) {
        if (data[k - 1] != '\n' && k != size) {
            continue;
        }

        if (k - 1 > last) {
            ngx_rpc_fuzz_parse(data, k - 1, &part);
            ngx_rpc_fuzz_check(ngx_rpc_fuzz_same(&part, &prev),
                               "an answer changed inside a line");
        }

        ngx_rpc_fuzz_parse(data, k, &part);

        if (part.rc != NGX_AGAIN && !ngx_rpc_fuzz_same(&part, &whole)) {
            ngx_rpc_fuzz_show("prefix", &part);
            ngx_rpc_fuzz_show("whole", &whole);
            ngx_rpc_fuzz_check(0, "an answer changed as more bytes came");
        }

        prev = part;
        last = k;
    }

    ngx_rpc_fuzz_reference(data, size, &ref);

    if (!ngx_rpc_fuzz_same(&whole, &ref)) {
        ngx_rpc_fuzz_show("parser", &whole);
        ngx_rpc_fuzz_show("reference", &ref);
        ngx_rpc_fuzz_check(0, "the parser and the reference differ");
    }

    return 0;
}


/* the parser on the first n bytes, in a buffer of exactly n bytes */

static void
ngx_rpc_fuzz_parse(const uint8_t *data, size_t n, ngx_rpc_fuzz_answer_t *a)
{
    u_char  *buf;

    buf = malloc(n ? n : 1);
    if (buf == NULL) {
        abort();
    }

    ngx_memcpy(buf, data, n);

    a->len = 0;
    a->status = 0;
    a->reason = NULL;

    a->rc = ngx_rpc_frame_response(buf, buf + n,
                                   (u_char *) NGX_RPC_FUZZ_ACCEPT, &a->len,
                                   &a->status, &a->reason);

    ngx_rpc_fuzz_check(ngx_memcmp(buf, data, n) == 0,
                       "the parser wrote into the bytes");

    if (a->rc != NGX_OK) {
        a->len = 0;
    }

    if (a->rc != NGX_ERROR) {
        a->reason = NULL;
    }

    free(buf);
}


/*
 * The reference: lines split at LF (a CR before it dropped); the status
 * line, then header lines up to an empty one; each line decides as it
 * comes, the headers missing at the end.
 */

static void
ngx_rpc_fuzz_reference(const u_char *in, size_t n, ngx_rpc_fuzz_answer_t *a)
{
    size_t         start, end, i, colon, vs, ve;
    ngx_uint_t     line, upgrade, connection, accept;
    const u_char  *l;

    a->rc = NGX_AGAIN;
    a->len = 0;
    a->status = 0;
    a->reason = NULL;

    upgrade = 0;
    connection = 0;
    accept = 0;

    for (start = 0, line = 0; start < n; start = end + 1, line++) {

        for (end = start; end < n && in[end] != '\n'; end++) {
            /* void */
        }

        if (end == n) {
            return;     /* a line not whole yet */
        }

        l = in + start;
        i = end - start;

        if (i > 0 && l[i - 1] == '\r') {
            i--;
        }

        if (line == 0) {
            if (!ngx_rpc_fuzz_status_line(l, i, &a->status)) {
                a->status = 0;
                a->reason = "invalid status line";
                a->rc = NGX_ERROR;
                return;
            }

            if (a->status != 101) {
                a->reason = "status is not 101";
                a->rc = NGX_ERROR;
                return;
            }

            continue;
        }

        if (i == 0) {
            if (!upgrade) {
                a->reason = "no \"Upgrade: websocket\"";

            } else if (!connection) {
                a->reason = "no \"Connection: upgrade\"";

            } else if (!accept) {
                a->reason = "no Sec-WebSocket-Accept";

            } else {
                a->rc = NGX_OK;
                a->len = end + 1;
                return;
            }

            a->rc = NGX_ERROR;
            return;
        }

        /* name ":" OWS value OWS */

        for (colon = 0; colon < i && l[colon] != ':'; colon++) {
            /* void */
        }

        if (colon == 0 || colon == i) {
            a->reason = "invalid header line";
            a->rc = NGX_ERROR;
            return;
        }

        for (vs = 0; vs < colon; vs++) {
            if (!ngx_rpc_fuzz_tchar(l[vs])) {
                a->reason = "invalid header line";
                a->rc = NGX_ERROR;
                return;
            }
        }

        vs = colon + 1;
        ve = i;

        while (vs < ve && (l[vs] == ' ' || l[vs] == '\t')) {
            vs++;
        }

        while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t')) {
            ve--;
        }

        for (i = vs; i < ve; i++) {
            if (!ngx_rpc_fuzz_vchar(l[i])) {
                a->reason = "invalid header value";
                a->rc = NGX_ERROR;
                return;
            }
        }

        if (ngx_rpc_fuzz_name(l, colon, "upgrade")) {
            upgrade |= ngx_rpc_fuzz_list(l + vs, ve - vs, "websocket");

        } else if (ngx_rpc_fuzz_name(l, colon, "connection")) {
            connection |= ngx_rpc_fuzz_list(l + vs, ve - vs, "upgrade");

        } else if (ngx_rpc_fuzz_name(l, colon, "sec-websocket-accept")) {
            if (accept) {
                a->reason = "Sec-WebSocket-Accept twice";
                a->rc = NGX_ERROR;
                return;
            }

            if (ve - vs != sizeof(NGX_RPC_FUZZ_ACCEPT) - 1
                || memcmp(l + vs, NGX_RPC_FUZZ_ACCEPT, ve - vs) != 0)
            {
                a->reason = "Sec-WebSocket-Accept does not match the key";
                a->rc = NGX_ERROR;
                return;
            }

            accept = 1;

        } else if ((ngx_rpc_fuzz_name(l, colon, "sec-websocket-extensions")
                    || ngx_rpc_fuzz_name(l, colon, "sec-websocket-protocol"))
                   && ve > vs)
        {
            /* the client offered none: an empty list chooses none */
            a->reason = "an extension or subprotocol not offered";
            a->rc = NGX_ERROR;
            return;
        }
    }
}


/* "HTTP/1." DIGIT SP 3DIGIT [SP reason], the reason without controls */

static ngx_uint_t
ngx_rpc_fuzz_status_line(const u_char *l, size_t n, ngx_uint_t *status)
{
    size_t  i;

    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || !isdigit(l[7])
        || l[8] != ' ' || !isdigit(l[9]) || !isdigit(l[10])
        || !isdigit(l[11]))
    {
        return 0;
    }

    if (n > 12 && l[12] != ' ') {
        return 0;
    }

    for (i = 13; i < n; i++) {
        if (!ngx_rpc_fuzz_vchar(l[i])) {
            return 0;
        }
    }

    *status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');

    return 1;
}


/* RFC 9110 5.6.2 */

static ngx_uint_t
ngx_rpc_fuzz_tchar(u_char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}


/* a value's byte: HTAB, SP, VCHAR, obs-text */

static ngx_uint_t
ngx_rpc_fuzz_vchar(u_char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}


static ngx_uint_t
ngx_rpc_fuzz_name(const u_char *p, size_t n, const char *name)
{
    size_t  i;

    if (n != strlen(name)) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (tolower(p[i]) != name[i]) {
            return 0;
        }
    }

    return 1;
}


/* one element of a comma-separated list, OWS around, is token */

static ngx_uint_t
ngx_rpc_fuzz_list(const u_char *p, size_t n, const char *token)
{
    size_t  s, e, t;

    for (s = 0; s <= n; s = e + 1) {

        for (e = s; e < n && p[e] != ',';  e++) {
            /* void */
        }

        t = e;

        while (s < t && (p[s] == ' ' || p[s] == '\t')) {
            s++;
        }

        while (t > s && (p[t - 1] == ' ' || p[t - 1] == '\t')) {
            t--;
        }

        if (ngx_rpc_fuzz_name(p + s, t - s, token)) {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_rpc_fuzz_same(ngx_rpc_fuzz_answer_t *a, ngx_rpc_fuzz_answer_t *b)
{
    return a->rc == b->rc && a->len == b->len && a->status == b->status
           && (a->reason == b->reason
               || (a->reason && b->reason
                   && strcmp(a->reason, b->reason) == 0));
}


static void
ngx_rpc_fuzz_show(const char *who, ngx_rpc_fuzz_answer_t *a)
{
    fprintf(stderr, "ngx_rpc_fuzz: %s: rc %d, length %zu, status %u, %s\n",
            who, (int) a->rc, a->len, (unsigned) a->status,
            a->reason ? a->reason : "-");
}


static void
ngx_rpc_fuzz_fail(const char *what, const char *cond, int line)
{
    fprintf(stderr, "ngx_rpc_fuzz: %s (line %d: %s)\n", what, line, cond);
    abort();
}
