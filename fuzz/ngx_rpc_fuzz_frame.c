
/*
 * libFuzzer target for ngx_rpc_frame.c, the WebSocket frame reader (RFC
 * 6455), linked with ngx_rpc_util.c (ngx_rpc_utf8()) and nginx's core
 * objects (see "fuzz" in the Makefile).
 *
 * An input is a header, then the bytes a client sends (or a server):
 *   byte 0 & 0x0f    the largest message (rpc_websocket_max_message):
 *                    ngx_rpc_fuzz_max_size[] below
 *   byte 0 & 0x10    before each piece, one call with nothing to read
 *   byte 0 & 0x20    client mode: the bytes are a server's, whose frames
 *                    must not be masked (the upstream WebSocket client)
 *   byte 1 & 0x80    the bytes go in pieces of (byte 1 & 0x7f) + 1 bytes
 *   else             (byte 1 & 0x0f) cut points follow, 2 bytes each
 *                    (little endian, taken modulo the length of the bytes)
 *
 * Every piece is a buffer of its own, malloc'd to its exact size, so that
 * ASan sees a read past the end of any of them; the bytes of a piece the
 * reader has taken are poisoned before the next call, so that it cannot
 * look back at them either.  The reader is called on each piece until it
 * returns NGX_AGAIN (then it must have taken every byte) or NGX_ERROR
 * (then the input is done), and what it returns is checked as it comes:
 * pos moves forward within the piece, a data piece lies within the bytes
 * taken by that call, a message starts with f->first and ends with
 * f->last with no data outside one, a message never exceeds max_size and
 * is UTF-8 by a checker of its own here, a control frame is a close, ping
 * or pong of at most 125 bytes, a close frame's code is one a peer may
 * send (or absent) and a close code of an error one a server may send.
 *
 * Then the differential check: a reference decoder here reads the whole
 * input in one go, written from RFC 6455 and WS-SPEC.md, not from the
 * reader, in the same mode; both must give the same messages and control
 * frames in the same order, and the same close code for an error, which
 * the reader must report within the bytes where the reference says it
 * becomes certain; an error the input stops short of proving may be
 * reported or not.  With no error, the text of a message still open must
 * be the same too.  And the bytes the reader took must be what the
 * reference makes of them: frame heads as they came, payloads unmasked.
 * Each message read is written back as a client's masked frame
 * (ngx_rpc_frame_write_masked()) and must read back the same.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_rpc.h"


#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define ngx_rpc_fuzz_poison(p, n)    __asan_poison_memory_region(p, n)
#define ngx_rpc_fuzz_unpoison(p, n)  __asan_unpoison_memory_region(p, n)
#endif
#endif

#ifndef ngx_rpc_fuzz_poison
#define ngx_rpc_fuzz_poison(p, n)
#define ngx_rpc_fuzz_unpoison(p, n)
#endif


#define ngx_rpc_fuzz_check(cond, what)                                     \
    if (!(cond)) {                                                         \
        ngx_rpc_fuzz_fail(what, #cond, __LINE__);                          \
    }


#define NGX_RPC_FUZZ_MESSAGE    1
#define NGX_RPC_FUZZ_CONTROL    2


/* a complete message (in run->text) or a control frame (in run->ctl) */
typedef struct {
    ngx_uint_t              type;
    ngx_uint_t              opcode;
    ngx_int_t               code;
    size_t                  start;
    size_t                  len;
} ngx_rpc_fuzz_event_t;


/* what a decoder made of the input: the reader's or the reference's */
typedef struct {
    ngx_rpc_fuzz_event_t   *events;
    ngx_uint_t              nevents;
    ngx_uint_t              max_events;
    u_char                 *text;       /* the messages, one after another */
    size_t                  ntext;
    u_char                 *ctl;        /* the control frames' payloads */
    size_t                  nctl;
    size_t                  max_text;   /* of each */
    size_t                  msg;        /* where the open message starts */
    ngx_uint_t              in_msg;
    ngx_int_t               code;       /* of an error; 0: none */
    size_t                  err_lo;     /* the reader: where it stopped */
    size_t                  err_hi;
    ngx_uint_t              optional;   /* the input ends before err_hi */
} ngx_rpc_fuzz_run_t;


/* UTF-8 decoded, not looked up: the bits of the sequence so far */
typedef struct {
    ngx_uint_t              need;       /* bytes of the sequence; 0: none */
    ngx_uint_t              have;
    uint32_t                bits;
} ngx_rpc_fuzz_utf8_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_rpc_fuzz_read(u_char **piece, size_t *plen, size_t *poff,
    ngx_uint_t n, off_t max_size, ngx_uint_t empty, ngx_uint_t client,
    ngx_rpc_fuzz_run_t *r);
static void ngx_rpc_fuzz_data(ngx_rpc_frame_t *f, off_t max_size,
    ngx_rpc_fuzz_run_t *r);
static void ngx_rpc_fuzz_control(ngx_rpc_frame_t *f, ngx_rpc_fuzz_run_t *r);
static void ngx_rpc_fuzz_reference(u_char *in, size_t len, off_t max_size,
    ngx_uint_t client, u_char *out, ngx_rpc_fuzz_run_t *r);
static void ngx_rpc_fuzz_error(ngx_rpc_fuzz_run_t *r, ngx_int_t code,
    size_t lo, size_t hi, size_t len);
static void ngx_rpc_fuzz_compare(ngx_rpc_fuzz_run_t *rd,
    ngx_rpc_fuzz_run_t *ref);
static void ngx_rpc_fuzz_event(ngx_rpc_fuzz_run_t *r, ngx_uint_t type,
    ngx_uint_t opcode, ngx_int_t code, size_t start, size_t len);
static void ngx_rpc_fuzz_append(ngx_rpc_fuzz_run_t *r, u_char *p, size_t n);
static size_t ngx_rpc_fuzz_append_control(ngx_rpc_fuzz_run_t *r, u_char *p,
    size_t n);
static void ngx_rpc_fuzz_run_init(ngx_rpc_fuzz_run_t *r, size_t len);
static void ngx_rpc_fuzz_run_free(ngx_rpc_fuzz_run_t *r);
static ngx_int_t ngx_rpc_fuzz_utf8(ngx_rpc_fuzz_utf8_t *u, u_char c);
static ngx_uint_t ngx_rpc_fuzz_utf8_whole(u_char *p, size_t n);
static ngx_uint_t ngx_rpc_fuzz_peer_code(ngx_int_t code);
static void ngx_rpc_fuzz_write_head(size_t len);
static void ngx_rpc_fuzz_write_masked(u_char *text, size_t len,
    u_char *mask);
static void ngx_rpc_fuzz_fail(const char *what, const char *cond,
    int line);


/* rpc_websocket_max_message: edges of the length encodings, the default */
static off_t  ngx_rpc_fuzz_max_size[16] = {
    0, 1, 2, 3, 7, 16, 100, 125, 126, 127, 128, 1000, 65535, 65536,
    1024 * 1024, NGX_MAX_OFF_T_VALUE
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *in, *out, **piece, mask[4];
    off_t                max_size;
    size_t               len, step, cut[16], *plen, *poff, c, t, upto;
    ngx_uint_t           i, j, n, ncuts, empty, client;
    ngx_rpc_fuzz_run_t   rd, ref;

    if (size < 2) {
        return 0;
    }

    max_size = ngx_rpc_fuzz_max_size[data[0] & 0x0f];
    empty = data[0] & 0x10;
    client = data[0] & 0x20;

    step = 0;
    ncuts = 0;

    if (data[1] & 0x80) {
        step = (data[1] & 0x7f) + 1;
        data += 2;
        size -= 2;

    } else {
        ncuts = ngx_min((ngx_uint_t) (data[1] & 0x0f), (size - 2) / 2);
        data += 2;
        size -= 2;

        for (i = 0; i < ncuts; i++) {
            cut[i] = data[0] | (data[1] << 8);
            data += 2;
            size -= 2;
        }
    }

    len = size;

    in = malloc(len + 1);
    out = malloc(len + 1);
    piece = malloc((len + 1) * sizeof(u_char *));
    plen = malloc((len + 1) * sizeof(size_t));
    poff = malloc((len + 1) * sizeof(size_t));

    if (in == NULL || out == NULL || piece == NULL || plen == NULL
        || poff == NULL)
    {
        abort();
    }

    ngx_memcpy(in, data, len);

    /* the mask of the frames written back: the input's first bytes */

    ngx_memcpy(mask, "\x37\xfa\x21\x3d", 4);
    ngx_memcpy(mask, in, ngx_min(len, 4));

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
        poff[n] = c;
        piece[n] = malloc(plen[n]);

        if (piece[n] == NULL) {
            abort();
        }

        ngx_memcpy(piece[n], in + c, plen[n]);

        n++;
        c = t;
    }

    ngx_rpc_fuzz_run_init(&rd, len);
    ngx_rpc_fuzz_run_init(&ref, len);

    ngx_rpc_fuzz_read(piece, plen, poff, n, max_size, empty, client, &rd);
    ngx_rpc_fuzz_reference(in, len, max_size, client, out, &ref);

    ngx_rpc_fuzz_compare(&rd, &ref);

    /*
     * what the reader left in the pieces: up to where it stopped, the
     * heads as they came and the payloads unmasked
     */

    upto = rd.code ? rd.err_lo : len;

    for (i = 0; i < n && poff[i] < upto; i++) {
        t = ngx_min(plen[i], upto - poff[i]);

        ngx_rpc_fuzz_check(ngx_memcmp(piece[i], out + poff[i], t) == 0,
                           "the bytes taken are not the heads as they came "
                           "and the payloads unmasked");
    }

    for (i = 0; i < rd.nevents; i++) {
        if (rd.events[i].type == NGX_RPC_FUZZ_MESSAGE) {
            ngx_rpc_fuzz_write_head(rd.events[i].len);
            ngx_rpc_fuzz_write_masked(rd.text + rd.events[i].start,
                                      rd.events[i].len, mask);
        }
    }

    ngx_rpc_fuzz_write_head(len);
    ngx_rpc_fuzz_write_head(len + 65536);
    ngx_rpc_fuzz_write_head((size_t) len << 40);

    for (i = 0; i < n; i++) {
        free(piece[i]);
    }

    ngx_rpc_fuzz_run_free(&rd);
    ngx_rpc_fuzz_run_free(&ref);

    free(in);
    free(out);
    free(piece);
    free(plen);
    free(poff);

    return 0;
}


/* the reader fed piece by piece, as ngx_rpc_websocket_process() feeds it */

static void
ngx_rpc_fuzz_read(u_char **piece, size_t *plen, size_t *poff, ngx_uint_t n,
    off_t max_size, ngx_uint_t empty, ngx_uint_t client, ngx_rpc_fuzz_run_t *r)
{
    u_char           *pos, *last, *start;
    ngx_int_t         rc;
    ngx_uint_t        i;
    ngx_rpc_frame_t   f;

    ngx_rpc_frame_init(&f, max_size);
    f.client = client ? 1 : 0;

    for (i = 0; i < n; i++) {
        pos = piece[i];
        last = pos + plen[i];

        if (empty) {
            rc = ngx_rpc_frame_read(&f, &pos, pos);

            ngx_rpc_fuzz_check(rc == NGX_AGAIN && pos == piece[i],
                               "nothing to read is not NGX_AGAIN");
        }

        for ( ;; ) {
            start = pos;

            rc = ngx_rpc_frame_read(&f, &pos, last);

            ngx_rpc_fuzz_check(pos >= start && pos <= last,
                               "pos moved back or past last");

            if (rc == NGX_AGAIN) {
                ngx_rpc_fuzz_check(pos == last,
                                   "NGX_AGAIN with bytes not taken");
                break;
            }

            if (rc == NGX_ERROR) {
                ngx_rpc_fuzz_check(f.reason != NULL, "an error without why");
                ngx_rpc_fuzz_check(f.code == NGX_RPC_WS_PROTOCOL_ERROR
                                   || f.code == NGX_RPC_WS_UNSUPPORTED
                                   || f.code == NGX_RPC_WS_BAD_DATA
                                   || f.code == NGX_RPC_WS_TOO_BIG,
                                   "an error with a close code a frame "
                                   "reader may not send");

                r->code = f.code;
                r->err_lo = poff[i] + (pos - piece[i]);
                r->err_hi = r->err_lo;

                ngx_rpc_fuzz_unpoison(piece[i], plen[i]);
                goto done;
            }

            /* an event takes at least a byte: else the caller loops */

            ngx_rpc_fuzz_check(pos > start, "an event with no byte taken");

            if (rc == NGX_RPC_FRAME_DATA) {
                ngx_rpc_fuzz_check(f.data.data >= start
                                   && f.data.data + f.data.len <= pos,
                                   "data outside the bytes taken");

                ngx_rpc_fuzz_data(&f, max_size, r);

            } else {
                ngx_rpc_fuzz_check(rc == NGX_RPC_FRAME_CONTROL,
                                   "an unknown return code");

                ngx_rpc_fuzz_control(&f, r);
            }

            /* taken: the reader does not look at it again */

            ngx_rpc_fuzz_poison(piece[i], pos - piece[i]);
        }

        ngx_rpc_fuzz_unpoison(piece[i], plen[i]);
    }

done:

    /* the pieces after an error were never poisoned */

    for (i = 0; i < n; i++) {
        ngx_rpc_fuzz_unpoison(piece[i], plen[i]);
    }
}


static void
ngx_rpc_fuzz_data(ngx_rpc_frame_t *f, off_t max_size, ngx_rpc_fuzz_run_t *r)
{
    if (f->first) {
        ngx_rpc_fuzz_check(!r->in_msg, "a message starts inside a message");

        r->in_msg = 1;
        r->msg = r->ntext;

    } else {
        ngx_rpc_fuzz_check(r->in_msg, "data outside a message");
    }

    ngx_rpc_fuzz_append(r, f->data.data, f->data.len);

    ngx_rpc_fuzz_check((uint64_t) (r->ntext - r->msg) <= (uint64_t) max_size,
                       "a message over max_size");

    if (!f->last) {
        return;
    }

    ngx_rpc_fuzz_check(ngx_rpc_fuzz_utf8_whole(r->text + r->msg,
                                               r->ntext - r->msg),
                       "a message that is not UTF-8");

    ngx_rpc_fuzz_event(r, NGX_RPC_FUZZ_MESSAGE, NGX_RPC_WS_TEXT, 0, r->msg,
                       r->ntext - r->msg);
    r->in_msg = 0;
}


static void
ngx_rpc_fuzz_control(ngx_rpc_frame_t *f, ngx_rpc_fuzz_run_t *r)
{
    size_t  start;

    ngx_rpc_fuzz_check(f->opcode == NGX_RPC_WS_CLOSE
                       || f->opcode == NGX_RPC_WS_PING
                       || f->opcode == NGX_RPC_WS_PONG,
                       "a control frame that is no close, ping or pong");
    ngx_rpc_fuzz_check(f->ncontrol <= 125, "a control payload over 125");

    start = ngx_rpc_fuzz_append_control(r, f->control, f->ncontrol);

    if (f->opcode != NGX_RPC_WS_CLOSE) {
        ngx_rpc_fuzz_event(r, NGX_RPC_FUZZ_CONTROL, f->opcode, 0, start,
                           f->ncontrol);
        return;
    }

    if (f->ncontrol == 0) {
        ngx_rpc_fuzz_check(f->code == 0, "a code for a close with none");

    } else {
        ngx_rpc_fuzz_check(f->ncontrol >= 2
                           && f->code == ((f->control[0] << 8)
                                          | f->control[1]),
                           "a close code not the payload's");
        ngx_rpc_fuzz_check(ngx_rpc_fuzz_peer_code(f->code),
                           "a close code a peer may not send");
        ngx_rpc_fuzz_check(ngx_rpc_fuzz_utf8_whole(f->control + 2,
                                                   f->ncontrol - 2),
                           "a close reason that is not UTF-8");
    }

    ngx_rpc_fuzz_event(r, NGX_RPC_FUZZ_CONTROL, f->opcode, f->code, start,
                       f->ncontrol);
}


/*
 * The reference: RFC 6455 section 5 for a server (client: for a client,
 * which takes only unmasked frames), with WS-SPEC.md's
 * choices (no binary, no extensions, max_size over all the frames of a
 * message, a frame head is checked once its first two bytes are there,
 * those first), over the whole input at once.  An error is certain from
 * err_lo bytes on, and a reader knows it by err_hi bytes at the latest.
 * out: the input with the payloads unmasked, as far as it reads.
 */

static void
ngx_rpc_fuzz_reference(u_char *in, size_t len, off_t max_size,
    ngx_uint_t client, u_char *out, ngx_rpc_fuzz_run_t *r)
{
    u_char               b0, b1, *mask, *p, zero[4];
    size_t               start, ext, hl, avail, i, end, ml;
    uint64_t             plen, size;
    ngx_int_t            code;
    ngx_uint_t           fin, op, control;
    ngx_rpc_fuzz_utf8_t  text, reason;

    ngx_memcpy(out, in, len);
    ngx_memzero(&text, sizeof(ngx_rpc_fuzz_utf8_t));
    ngx_memzero(zero, 4);

    /* the mask key's length: a server's frames have none */

    ml = client ? 0 : 4;

    size = 0;

    for (start = 0; start < len; start = end) {

        if (len - start < 2) {
            return;
        }

        b0 = in[start];
        b1 = in[start + 1];

        fin = b0 >> 7;
        op = b0 & 0x0f;
        control = (op >= 8);
        plen = b1 & 0x7f;

        /* what the first two bytes show: one error, the first of these */

        if (b0 & 0x70) {
            /* no extension is negotiated: RSV1-3 must be 0 */
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 1, start + 2, len);
            return;
        }

        if (client ? (b1 & 0x80) : !(b1 & 0x80)) {
            /* a client masks every frame, a server none */
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 2, start + 2, len);
            return;
        }

        if (op != 0x0 && op != 0x1 && op != 0x2
            && op != 0x8 && op != 0x9 && op != 0xa)
        {
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 1, start + 2, len);
            return;
        }

        if (control && (!fin || plen > 125)) {
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 1, start + 2, len);
            return;
        }

        if (op == 0x0 && !r->in_msg) {
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 1, start + 2, len);
            return;
        }

        if ((op == 0x1 || op == 0x2) && r->in_msg) {
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 1, start + 2, len);
            return;
        }

        if (op == 0x2) {
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_UNSUPPORTED,
                               start + 1, start + 2, len);
            return;
        }

        if (op == 0x8 && plen == 1 && len - start < 2 + ml + 1) {
            /* a close of one byte: below, once it is there and unmasked */
            ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                               start + 2, start + 2 + ml + 1, len);
            return;
        }

        /* the length, in its shortest form */

        ext = (plen == 126) ? 2 : ((plen == 127) ? 8 : 0);
        hl = 2 + ext + ml;

        if (len - start < 2 + ext) {
            return;
        }

        if (plen == 126) {
            plen = ((uint64_t) in[start + 2] << 8) | in[start + 3];

            if (plen < 126) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                                   start + 4, start + hl, len);
                return;
            }

        } else if (plen == 127) {
            if (in[start + 2] & 0x80) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                                   start + 3, start + hl, len);
                return;
            }

            plen = 0;

            for (i = 0; i < 8; i++) {
                plen = (plen << 8) | in[start + 2 + i];
            }

            if (plen < 65536) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                                   start + 10, start + hl, len);
                return;
            }
        }

        if (!control) {
            if (op == 0x1) {
                r->in_msg = 1;
                r->msg = r->ntext;
                size = 0;
                ngx_memzero(&text, sizeof(ngx_rpc_fuzz_utf8_t));
            }

            /* size <= max_size: no overflow */

            if (plen > (uint64_t) max_size - size) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_TOO_BIG,
                                   start + 2 + ext, start + hl, len);
                return;
            }

            size += plen;
        }

        if (len - start < hl) {
            return;
        }

        /* the payload, unmasked */

        mask = client ? zero : in + start + hl - 4;
        p = out + start + hl;
        avail = (size_t) ngx_min(plen, (uint64_t) (len - start - hl));

        for (i = 0; i < avail; i++) {
            p[i] = in[start + hl + i] ^ mask[i % 4];
        }

        end = start + hl + avail;

        if (control) {

            if (op == 0x8 && plen == 1) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                                   start + 2, end, len);
                return;
            }

            if (op == 0x8 && avail >= 2) {
                code = (p[0] << 8) | p[1];

                if (!ngx_rpc_fuzz_peer_code(code)) {
                    ngx_rpc_fuzz_error(r, NGX_RPC_WS_PROTOCOL_ERROR,
                                       start + hl + 2, start + hl + plen,
                                       len);
                    return;
                }

                ngx_memzero(&reason, sizeof(ngx_rpc_fuzz_utf8_t));

                for (i = 2; i < avail; i++) {
                    if (ngx_rpc_fuzz_utf8(&reason, p[i]) != NGX_OK) {
                        ngx_rpc_fuzz_error(r, NGX_RPC_WS_BAD_DATA,
                                           start + hl + i,
                                           start + hl + plen, len);
                        return;
                    }
                }

                if (avail == plen && reason.need) {
                    ngx_rpc_fuzz_error(r, NGX_RPC_WS_BAD_DATA, end, end, len);
                    return;
                }
            }

            if (avail < plen) {
                return;
            }

            ngx_rpc_fuzz_event(r, NGX_RPC_FUZZ_CONTROL, op,
                               (op == 0x8 && avail) ? (p[0] << 8) | p[1] : 0,
                               ngx_rpc_fuzz_append_control(r, p, avail),
                               avail);
            continue;
        }

        /* text, UTF-8 across the frames of the message */

        for (i = 0; i < avail; i++) {
            if (ngx_rpc_fuzz_utf8(&text, p[i]) != NGX_OK) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_BAD_DATA,
                                   start + hl + i, start + hl + i + 1, len);
                return;
            }
        }

        ngx_rpc_fuzz_append(r, p, avail);

        if (avail < plen) {
            return;
        }

        if (fin) {
            if (text.need) {
                ngx_rpc_fuzz_error(r, NGX_RPC_WS_BAD_DATA, end, end, len);
                return;
            }

            ngx_rpc_fuzz_event(r, NGX_RPC_FUZZ_MESSAGE, NGX_RPC_WS_TEXT, 0,
                               r->msg, r->ntext - r->msg);
            r->in_msg = 0;
        }
    }
}


static void
ngx_rpc_fuzz_error(ngx_rpc_fuzz_run_t *r, ngx_int_t code, size_t lo,
    size_t hi, size_t len)
{
    r->code = code;
    r->err_lo = lo;
    r->err_hi = hi;
    r->optional = (len < hi);
}


static void
ngx_rpc_fuzz_compare(ngx_rpc_fuzz_run_t *rd, ngx_rpc_fuzz_run_t *ref)
{
    u_char                *pa, *pb;
    ngx_uint_t             i;
    ngx_rpc_fuzz_event_t  *a, *b;

    if (rd->code != ref->code && !(rd->code == 0 && ref->optional)) {
        fprintf(stderr, "ngx_rpc_fuzz: reader: close code %d at byte %zu; "
                "reference: close code %d at bytes %zu-%zu%s\n",
                (int) rd->code, rd->err_lo, (int) ref->code, ref->err_lo,
                ref->err_hi, ref->optional ? " (if the input went on)" : "");
        ngx_rpc_fuzz_check(0, "the reader and the reference end "
                           "differently");
    }

    if (rd->code
        && (rd->err_lo < ref->err_lo || rd->err_lo > ref->err_hi))
    {
        fprintf(stderr, "ngx_rpc_fuzz: reader: close code %d at byte %zu; "
                "reference: at bytes %zu-%zu\n", (int) rd->code, rd->err_lo,
                ref->err_lo, ref->err_hi);
        ngx_rpc_fuzz_check(0, "the error is reported at another point");
    }

    if (rd->nevents != ref->nevents) {
        fprintf(stderr, "ngx_rpc_fuzz: reader: %u messages and control "
                "frames; reference: %u\n", (unsigned) rd->nevents,
                (unsigned) ref->nevents);
    }

    for (i = 0; i < ngx_min(rd->nevents, ref->nevents); i++) {
        a = &rd->events[i];
        b = &ref->events[i];

        pa = (a->type == NGX_RPC_FUZZ_MESSAGE) ? rd->text : rd->ctl;
        pb = (b->type == NGX_RPC_FUZZ_MESSAGE) ? ref->text : ref->ctl;

        if (a->type != b->type || a->opcode != b->opcode
            || a->code != b->code || a->len != b->len
            || ngx_memcmp(pa + a->start, pb + b->start, a->len) != 0)
        {
            fprintf(stderr, "ngx_rpc_fuzz: event %u: reader: %s opcode %u "
                    "code %d, %zu bytes; reference: %s opcode %u code %d, "
                    "%zu bytes\n", (unsigned) i,
                    a->type == NGX_RPC_FUZZ_MESSAGE ? "message" : "control",
                    (unsigned) a->opcode, (int) a->code, a->len,
                    b->type == NGX_RPC_FUZZ_MESSAGE ? "message" : "control",
                    (unsigned) b->opcode, (int) b->code, b->len);
            ngx_rpc_fuzz_check(0, "a message or control frame differs from "
                               "the reference's");
        }
    }

    ngx_rpc_fuzz_check(rd->nevents == ref->nevents,
                       "not the reference's number of messages and control "
                       "frames");

    if (rd->code || ref->code) {
        return;
    }

    /* the message still open: as much of it, the same bytes */

    ngx_rpc_fuzz_check((rd->in_msg ? rd->ntext - rd->msg : 0)
                       == (ref->in_msg ? ref->ntext - ref->msg : 0)
                       && (!rd->in_msg
                           || ngx_memcmp(rd->text + rd->msg,
                                         ref->text + ref->msg,
                                         rd->ntext - rd->msg) == 0),
                       "the open message differs from the reference's");
}


static void
ngx_rpc_fuzz_event(ngx_rpc_fuzz_run_t *r, ngx_uint_t type, ngx_uint_t opcode,
    ngx_int_t code, size_t start, size_t len)
{
    ngx_rpc_fuzz_event_t  *e;

    ngx_rpc_fuzz_check(r->nevents < r->max_events,
                       "more events than the input has frames");

    e = &r->events[r->nevents++];

    e->type = type;
    e->opcode = opcode;
    e->code = code;
    e->start = start;
    e->len = len;
}


static void
ngx_rpc_fuzz_append(ngx_rpc_fuzz_run_t *r, u_char *p, size_t n)
{
    ngx_rpc_fuzz_check(n <= r->max_text - r->ntext,
                       "more payload than the input has bytes");

    if (n) {
        ngx_memcpy(r->text + r->ntext, p, n);
        r->ntext += n;
    }
}


static size_t
ngx_rpc_fuzz_append_control(ngx_rpc_fuzz_run_t *r, u_char *p, size_t n)
{
    size_t  start;

    ngx_rpc_fuzz_check(n <= r->max_text - r->nctl,
                       "more control payload than the input has bytes");

    start = r->nctl;

    if (n) {
        ngx_memcpy(r->ctl + r->nctl, p, n);
        r->nctl += n;
    }

    return start;
}


static void
ngx_rpc_fuzz_run_init(ngx_rpc_fuzz_run_t *r, size_t len)
{
    ngx_memzero(r, sizeof(ngx_rpc_fuzz_run_t));

    /* an event takes a byte at least (2 for the reference) */

    r->max_events = len + 1;
    r->max_text = len;

    r->events = malloc(r->max_events * sizeof(ngx_rpc_fuzz_event_t));
    r->text = malloc(len + 1);
    r->ctl = malloc(len + 1);

    if (r->events == NULL || r->text == NULL || r->ctl == NULL) {
        abort();
    }
}


static void
ngx_rpc_fuzz_run_free(ngx_rpc_fuzz_run_t *r)
{
    free(r->events);
    free(r->text);
    free(r->ctl);
}


/*
 * NGX_OK while the bytes so far can still be UTF-8 (RFC 3629): the code
 * point a sequence can still become must be one its length encodes in
 * the shortest form, up to U+10FFFF, and no surrogate; NGX_ERROR once
 * they cannot
 */

static ngx_int_t
ngx_rpc_fuzz_utf8(ngx_rpc_fuzz_utf8_t *u, u_char c)
{
    uint32_t    lo, hi, min, max;
    ngx_uint_t  rest;

    if (u->need == 0) {

        if ((c & 0x80) == 0x00) {
            return NGX_OK;
        }

        if ((c & 0xe0) == 0xc0) {
            u->need = 2;
            u->bits = c & 0x1f;

        } else if ((c & 0xf0) == 0xe0) {
            u->need = 3;
            u->bits = c & 0x0f;

        } else if ((c & 0xf8) == 0xf0) {
            u->need = 4;
            u->bits = c & 0x07;

        } else {
            /* a continuation byte, or 0xf8-0xff */
            return NGX_ERROR;
        }

        u->have = 1;

    } else {

        if ((c & 0xc0) != 0x80) {
            return NGX_ERROR;
        }

        u->bits = (u->bits << 6) | (c & 0x3f);
        u->have++;
    }

    /* the code points the sequence can still become: lo to hi */

    rest = 6 * (u->need - u->have);
    lo = u->bits << rest;
    hi = lo | ((1u << rest) - 1);

    switch (u->need) {
    case 2:
        min = 0x80;
        max = 0x7ff;
        break;
    case 3:
        min = 0x800;
        max = 0xffff;
        break;
    default:
        min = 0x10000;
        max = 0x10ffff;
    }

    lo = ngx_max(lo, min);
    hi = ngx_min(hi, max);

    if (lo > hi || (lo >= 0xd800 && hi <= 0xdfff)) {
        return NGX_ERROR;
    }

    if (u->have == u->need) {
        u->need = 0;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_rpc_fuzz_utf8_whole(u_char *p, size_t n)
{
    size_t               i;
    ngx_rpc_fuzz_utf8_t  u;

    ngx_memzero(&u, sizeof(ngx_rpc_fuzz_utf8_t));

    for (i = 0; i < n; i++) {
        if (ngx_rpc_fuzz_utf8(&u, p[i]) != NGX_OK) {
            return 0;
        }
    }

    return (u.need == 0);
}


/*
 * a close code a peer may send (RFC 6455 7.4, and the IANA registry's
 * 1012-1014): not under 1000, not 1004-1006 (reserved, or never on the
 * wire), not 1015-2999, not 5000 and over
 */

static ngx_uint_t
ngx_rpc_fuzz_peer_code(ngx_int_t code)
{
    return (code >= 1000 && code <= 1003)
           || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


/* ngx_rpc_frame_write_head(): final, unmasked, the shortest length */

static void
ngx_rpc_fuzz_write_head(size_t len)
{
    u_char    head[14], *p;
    size_t    n, i;
    uint64_t  v;

    p = ngx_rpc_frame_write_head(head, NGX_RPC_WS_TEXT, len);
    n = p - head;

    ngx_rpc_fuzz_check(n >= 2 && n <= 10, "a head of a wrong size");
    ngx_rpc_fuzz_check(head[0] == 0x81, "a head not final text");
    ngx_rpc_fuzz_check(!(head[1] & 0x80), "a head masked");

    v = head[1];

    if (v == 126) {
        v = ((uint64_t) head[2] << 8) | head[3];
        ngx_rpc_fuzz_check(n == 4 && v >= 126, "a 16-bit length not so");

    } else if (v == 127) {
        v = 0;

        for (i = 2; i < 10; i++) {
            v = (v << 8) | head[i];
        }

        ngx_rpc_fuzz_check(n == 10 && v >= 65536 && !(head[2] & 0x80),
                           "a 64-bit length not so");

    } else {
        ngx_rpc_fuzz_check(n == 2, "a 7-bit length not so");
    }

    ngx_rpc_fuzz_check(v == len, "a head with another length");
}


static void
ngx_rpc_fuzz_fail(const char *what, const char *cond, int line)
{
    fprintf(stderr, "ngx_rpc_fuzz: %s (line %d: %s)\n", what, line, cond);
    abort();
}


/*
 * ngx_rpc_frame_write_masked(): the frame a client would send of a message
 * the reader gave, masked with 4 bytes of the input, read back by a reader
 * in server mode: the same text, whole, in one frame
 */

static void
ngx_rpc_fuzz_write_masked(u_char *text, size_t len, u_char *mask)
{
    u_char           *frame, *pos, *last, *got;
    size_t            ngot;
    ngx_int_t         rc;
    ngx_rpc_frame_t   f;

    frame = malloc(14 + len);
    got = malloc(len + 1);

    if (frame == NULL || got == NULL) {
        abort();
    }

    last = ngx_rpc_frame_write_masked(frame, NGX_RPC_WS_TEXT, text, len,
                                      mask);

    ngx_rpc_fuzz_check(last > frame && (size_t) (last - frame) <= 14 + len
                       && frame[0] == 0x81 && (frame[1] & 0x80),
                       "a masked frame not final, text and masked");

    ngx_rpc_frame_init(&f, (off_t) len);

    pos = frame;
    ngot = 0;

    for ( ;; ) {
        rc = ngx_rpc_frame_read(&f, &pos, last);

        if (rc != NGX_RPC_FRAME_DATA) {
            break;
        }

        ngx_rpc_fuzz_check(ngot + f.data.len <= len && (f.first || ngot),
                           "a masked frame read back as another text");
        ngx_memcpy(got + ngot, f.data.data, f.data.len);
        ngot += f.data.len;

        if (f.last) {
            rc = ngx_rpc_frame_read(&f, &pos, last);
            break;
        }
    }

    ngx_rpc_fuzz_check(rc == NGX_AGAIN && pos == last && ngot == len
                       && ngx_memcmp(got, text, len) == 0,
                       "a masked frame does not read back as its text");

    free(frame);
    free(got);
}
