
/*
 * WebSocket frames (RFC 6455): a reader fed bytes as they arrive, which
 * unmasks payloads in place and checks every rule a server must (or, in
 * client mode, a client must), the head of the frames the gateway sends,
 * and the client's side of the opening handshake.  No I/O here: the
 * connections are ngx_rpc_websocket.c's and ngx_rpc_wsclient.c's.
 */


#include "ngx_rpc.h"
#include <ngx_sha1.h>


#define NGX_RPC_FRAME_HEAD        0
#define NGX_RPC_FRAME_PAYLOAD     1

#define NGX_RPC_FRAME_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* what a server's handshake response has shown */
#define NGX_RPC_FRAME_UPGRADE     0x01
#define NGX_RPC_FRAME_CONNECTION  0x02
#define NGX_RPC_FRAME_ACCEPT      0x04

/* a header name of n bytes at p is name (case-insensitive) */
#define ngx_rpc_frame_is(p, n, name)                                          \
    ((n) == sizeof(name) - 1                                                  \
     && ngx_strncasecmp(p, (u_char *) name, sizeof(name) - 1) == 0)


static ngx_int_t ngx_rpc_frame_head(ngx_rpc_frame_t *f);
static ngx_int_t ngx_rpc_frame_close(ngx_rpc_frame_t *f);
static ngx_int_t ngx_rpc_frame_error(ngx_rpc_frame_t *f, ngx_int_t code,
    char *reason);
static ngx_uint_t ngx_rpc_frame_token(u_char *p, u_char *last, char *token);


/* a server's reader; a client's sets f->client after this */

void
ngx_rpc_frame_init(ngx_rpc_frame_t *f, off_t max_size)
{
    ngx_memzero(f, sizeof(ngx_rpc_frame_t));

    f->need = 2;
    f->max_size = max_size;
}


/*
 * Reads from *pos up to last and moves *pos past what it took.  Returns
 * NGX_RPC_FRAME_DATA for a piece of a text message (f->data, unmasked in
 * place; f->first and f->last mark its ends; a piece may be empty at an
 * end), NGX_RPC_FRAME_CONTROL for a whole control frame (f->opcode,
 * f->control; f->code is a close frame's code), NGX_AGAIN once every byte
 * is taken, or NGX_ERROR with the close code in f->code and why in
 * f->reason.
 */

ngx_int_t
ngx_rpc_frame_read(ngx_rpc_frame_t *f, u_char **pos, u_char *last)
{
    u_char      *p;
    size_t       n, i, k;
    ngx_int_t    rc;

    p = *pos;

    while (p < last) {

        if (f->state == NGX_RPC_FRAME_HEAD) {
            k = ngx_min((size_t) (last - p), f->need - f->nhead);
            ngx_memcpy(f->head + f->nhead, p, k);
            f->nhead += k;
            p += k;

            if (f->nhead < f->need) {
                break;
            }

            rc = ngx_rpc_frame_head(f);

            if (rc == NGX_AGAIN) {
                continue;
            }

            if (rc == NGX_ERROR) {
                *pos = p;
                return NGX_ERROR;
            }

            f->state = NGX_RPC_FRAME_PAYLOAD;

            if (f->opcode & 0x8) {
                f->ncontrol = 0;

            } else if (f->left == 0 && (f->start || f->fin)) {
                /* a message starts or ends with no bytes */
                goto data;
            }

            if (f->left == 0) {
                goto done;
            }

            continue;
        }

        /* NGX_RPC_FRAME_PAYLOAD */

        n = (size_t) ngx_min((uint64_t) (last - p), f->left);

        if (!f->client) {
            for (i = 0; i < n; i++) {
                p[i] ^= f->mask[f->mask_pos++ & 3];
            }
        }

        if (f->opcode & 0x8) {
            ngx_memcpy(f->control + f->ncontrol, p, n);
            f->ncontrol += n;
            f->left -= n;
            p += n;

            if (f->left) {
                continue;
            }

            goto done;
        }

        for (i = 0; i < n; i++) {
            if ((p[i] >= 0x80 || f->utf8.left)
                && ngx_rpc_utf8(&f->utf8, p[i]) != NGX_OK)
            {
                *pos = p + i;
                return ngx_rpc_frame_error(f, NGX_RPC_WS_BAD_DATA,
                                           "text is not UTF-8");
            }
        }

        f->data.data = p;
        f->data.len = n;
        f->left -= n;
        p += n;

        goto emit;

    data:

        f->data.data = p;
        f->data.len = 0;

    emit:

        f->first = f->start;
        f->start = 0;
        f->last = (f->left == 0 && f->fin);

        if (f->left == 0) {
            f->state = NGX_RPC_FRAME_HEAD;
            f->nhead = 0;
            f->need = 2;
        }

        if (f->last) {
            f->message = 0;

            if (f->utf8.left) {
                *pos = p;
                return ngx_rpc_frame_error(f, NGX_RPC_WS_BAD_DATA,
                                           "text ends inside a character");
            }
        }

        *pos = p;
        return NGX_RPC_FRAME_DATA;

    done:

        f->state = NGX_RPC_FRAME_HEAD;
        f->nhead = 0;
        f->need = 2;

        if (f->opcode & 0x8) {
            *pos = p;

            if (f->opcode == NGX_RPC_WS_CLOSE) {
                return ngx_rpc_frame_close(f);
            }

            return NGX_RPC_FRAME_CONTROL;
        }
    }

    *pos = p;

    return NGX_AGAIN;
}


/* the head so far: NGX_AGAIN when more of it is needed */

static ngx_int_t
ngx_rpc_frame_head(ngx_rpc_frame_t *f)
{
    u_char      *h;
    uint64_t     len;
    ngx_uint_t   opcode, i;

    h = f->head;
    opcode = h[0] & 0x0f;
    len = h[1] & 0x7f;

    if (f->nhead == 2 && f->need == 2) {
        if (h[0] & 0x70) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "reserved bits set");
        }

        /* a client masks every frame, a server none (RFC 6455 5.1) */

        if (f->client) {
            if (h[1] & 0x80) {
                return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                           "frame masked");
            }

        } else if (!(h[1] & 0x80)) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "frame not masked");
        }

        switch (opcode) {

        case NGX_RPC_WS_CLOSE:
        case NGX_RPC_WS_PING:
        case NGX_RPC_WS_PONG:
            if (!(h[0] & 0x80) || len > 125) {
                return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "control frame fragmented or too long");
            }

            break;

        case NGX_RPC_WS_CONT:
            if (!f->message) {
                return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                           "continuation without a message");
            }

            break;

        case NGX_RPC_WS_TEXT:
        case NGX_RPC_WS_BINARY:
            if (f->message) {
                return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                           "new message inside a message");
            }

            if (opcode == NGX_RPC_WS_BINARY) {
                return ngx_rpc_frame_error(f, NGX_RPC_WS_UNSUPPORTED,
                                           "binary message");
            }

            break;

        default:
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "reserved opcode");
        }

        f->need = 2 + (len == 126 ? 2 : (len == 127 ? 8 : 0))
                  + (f->client ? 0 : 4);

        if (f->need > 2) {
            return NGX_AGAIN;
        }

        /* a server's frame of up to 125 bytes: its head is whole */
    }

    /* the whole head: length and mask */

    if (len == 126) {
        len = (h[2] << 8) | h[3];

        if (len < 126) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "length not in its shortest form");
        }

    } else if (len == 127) {
        if (h[2] & 0x80) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "length with its top bit set");
        }

        len = 0;

        for (i = 2; i < 10; i++) {
            len = (len << 8) | h[i];
        }

        if (len < 65536) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "length not in its shortest form");
        }
    }

    if (!f->client) {
        ngx_memcpy(f->mask, h + f->nhead - 4, 4);
        f->mask_pos = 0;
    }

    f->opcode = opcode;
    f->fin = (h[0] & 0x80) ? 1 : 0;
    f->left = len;

    if (opcode & 0x8) {
        return NGX_OK;
    }

    if (opcode == NGX_RPC_WS_TEXT) {
        f->message = 1;
        f->start = 1;
        f->size = 0;
    }

    if (len > (uint64_t) (f->max_size - f->size)) {
        return ngx_rpc_frame_error(f, NGX_RPC_WS_TOO_BIG,
                                   "message too big");
    }

    f->size += len;

    return NGX_OK;
}


/* a close frame: its code, if any, must be one a peer may send */

static ngx_int_t
ngx_rpc_frame_close(ngx_rpc_frame_t *f)
{
    size_t          i;
    ngx_int_t       code;
    ngx_rpc_utf8_t  utf8;

    f->code = 0;

    if (f->ncontrol == 0) {
        return NGX_RPC_FRAME_CONTROL;
    }

    if (f->ncontrol == 1) {
        return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                   "close frame of one byte");
    }

    code = (f->control[0] << 8) | f->control[1];

    if (code < 1000 || code >= 5000
        || (code >= 1004 && code <= 1006)
        || (code >= 1015 && code < 3000))
    {
        return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                   "invalid close code");
    }

    ngx_memzero(&utf8, sizeof(ngx_rpc_utf8_t));

    for (i = 2; i < f->ncontrol; i++) {
        if (ngx_rpc_utf8(&utf8, f->control[i]) != NGX_OK) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_BAD_DATA,
                                       "close reason is not UTF-8");
        }
    }

    if (utf8.left) {
        return ngx_rpc_frame_error(f, NGX_RPC_WS_BAD_DATA,
                                   "close reason is not UTF-8");
    }

    f->code = code;

    return NGX_RPC_FRAME_CONTROL;
}


static ngx_int_t
ngx_rpc_frame_error(ngx_rpc_frame_t *f, ngx_int_t code, char *reason)
{
    f->code = code;
    f->reason = reason;

    return NGX_ERROR;
}


/* the head of a frame the gateway sends as a server: final, unmasked */

u_char *
ngx_rpc_frame_write_head(u_char *p, ngx_uint_t opcode, size_t len)
{
    ngx_uint_t  i;

    *p++ = (u_char) (0x80 | opcode);

    if (len < 126) {
        *p++ = (u_char) len;

    } else if (len < 65536) {
        *p++ = 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = 127;

        for (i = 0; i < 8; i++) {
            *p++ = (u_char) ((uint64_t) len >> (56 - 8 * i));
        }
    }

    return p;
}


/*
 * A whole frame the gateway sends as a client: final, masked with the 4
 * bytes of mask (RFC 6455 5.3: fresh and unpredictable for each frame);
 * p has room for 14 + len bytes.
 */

u_char *
ngx_rpc_frame_write_masked(u_char *p, ngx_uint_t opcode, u_char *data,
    size_t len, u_char *mask)
{
    u_char  *head;
    size_t   i;

    head = p;

    p = ngx_rpc_frame_write_head(p, opcode, len);
    head[1] |= 0x80;

    p = ngx_cpymem(p, mask, 4);

    for (i = 0; i < len; i++) {
        p[i] = data[i] ^ mask[i & 3];
    }

    return p + len;
}


/* Sec-WebSocket-Accept of a key: base64(SHA-1(key + GUID)), 28 bytes */

void
ngx_rpc_frame_accept(u_char *key, size_t len, u_char *accept)
{
    u_char      hash[20];
    ngx_str_t   src, dst;
    ngx_sha1_t  sha1;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, key, len);
    ngx_sha1_update(&sha1, NGX_RPC_FRAME_GUID,
                    sizeof(NGX_RPC_FRAME_GUID) - 1);
    ngx_sha1_final(hash, &sha1);

    src.data = hash;
    src.len = 20;
    dst.data = accept;

    ngx_encode_base64(&dst, &src);
}


/*
 * The head of a server's answer to the client's upgrade (RFC 6455 4.1,
 * with RFC 9112's syntax): a status line "HTTP/1.x 101", header lines,
 * an empty line; lines end with LF, a CR before it allowed.  Upgrade must
 * list "websocket", Connection "upgrade", Sec-WebSocket-Accept must be
 * accept (28 bytes), once; no extension or subprotocol was offered, so
 * none may be chosen.
 *
 * Called again on all the bytes so far as more arrive, it decides on each
 * line once the line is whole: NGX_AGAIN while no line was wrong and the
 * empty line has not come; NGX_OK with *len the length of the head (the
 * bytes after it are frames); NGX_ERROR with why in *reason.  *status is
 * the status code once the status line is whole, 0 before.
 */

ngx_int_t
ngx_rpc_frame_response(u_char *p, u_char *last, u_char *accept,
    size_t *len, ngx_uint_t *status, char **reason)
{
    u_char      *start, *eol, *end, *q, *v;
    size_t       n;
    ngx_uint_t   seen, code, i;

    start = p;
    *status = 0;

    eol = ngx_strlchr(p, last, LF);
    if (eol == NULL) {
        return NGX_AGAIN;
    }

    end = (eol > p && eol[-1] == CR) ? eol - 1 : eol;

    /* "HTTP/1.1 101", and a reason phrase after a space, if any */

    if (end - p < 12
        || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || p[7] < '0' || p[7] > '9'
        || p[8] != ' '
        || (end - p > 12 && p[12] != ' '))
    {
        goto invalid_status;
    }

    code = 0;

    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            goto invalid_status;
        }

        code = code * 10 + (p[i] - '0');
    }

    for (q = p + 12; q < end; q++) {
        if ((*q < 0x20 && *q != '\t') || *q == 0x7f) {
            goto invalid_status;
        }
    }

    *status = code;

    if (code != 101) {
        *reason = "status is not 101";
        return NGX_ERROR;
    }

    seen = 0;

    for ( ;; ) {
        p = eol + 1;

        eol = ngx_strlchr(p, last, LF);
        if (eol == NULL) {
            return NGX_AGAIN;
        }

        end = (eol > p && eol[-1] == CR) ? eol - 1 : eol;

        if (end == p) {
            break;
        }

        /* a token, a colon, the value within optional white space */

        for (q = p; q < end; q++) {
            if (*q <= 0x20 || *q >= 0x7f
                || ngx_strchr("\"(),/:;<=>?@[\\]{}", *q) != NULL)
            {
                break;
            }
        }

        if (q == p || q == end || *q != ':') {
            *reason = "invalid header line";
            return NGX_ERROR;
        }

        n = q - p;
        v = q + 1;

        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }

        while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        for (q = v; q < end; q++) {
            if ((*q < 0x20 && *q != '\t') || *q == 0x7f) {
                *reason = "invalid header value";
                return NGX_ERROR;
            }
        }

        if (ngx_rpc_frame_is(p, n, "Upgrade")) {
            if (ngx_rpc_frame_token(v, end, "websocket")) {
                seen |= NGX_RPC_FRAME_UPGRADE;
            }

        } else if (ngx_rpc_frame_is(p, n, "Connection")) {
            if (ngx_rpc_frame_token(v, end, "upgrade")) {
                seen |= NGX_RPC_FRAME_CONNECTION;
            }

        } else if (ngx_rpc_frame_is(p, n, "Sec-WebSocket-Accept")) {
            if (seen & NGX_RPC_FRAME_ACCEPT) {
                *reason = "Sec-WebSocket-Accept twice";
                return NGX_ERROR;
            }

            if (end - v != 28 || ngx_strncmp(v, accept, 28) != 0) {
                *reason = "Sec-WebSocket-Accept does not match the key";
                return NGX_ERROR;
            }

            seen |= NGX_RPC_FRAME_ACCEPT;

        } else if ((ngx_rpc_frame_is(p, n, "Sec-WebSocket-Extensions")
                    || ngx_rpc_frame_is(p, n, "Sec-WebSocket-Protocol"))
                   && end > v)
        {
            *reason = "an extension or subprotocol not offered";
            return NGX_ERROR;
        }
    }

    if (!(seen & NGX_RPC_FRAME_UPGRADE)) {
        *reason = "no \"Upgrade: websocket\"";
        return NGX_ERROR;
    }

    if (!(seen & NGX_RPC_FRAME_CONNECTION)) {
        *reason = "no \"Connection: upgrade\"";
        return NGX_ERROR;
    }

    if (!(seen & NGX_RPC_FRAME_ACCEPT)) {
        *reason = "no Sec-WebSocket-Accept";
        return NGX_ERROR;
    }

    *len = eol + 1 - start;

    return NGX_OK;

invalid_status:

    *reason = "invalid status line";
    return NGX_ERROR;
}


/* a comma-separated list names token (case-insensitive) */

static ngx_uint_t
ngx_rpc_frame_token(u_char *p, u_char *last, char *token)
{
    u_char  *t, *e;
    size_t   n;

    n = ngx_strlen(token);

    while (p < last) {
        t = p;

        while (p < last && *p != ',') {
            p++;
        }

        e = p++;

        while (t < e && (*t == ' ' || *t == '\t')) {
            t++;
        }

        while (e > t && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }

        if ((size_t) (e - t) == n
            && ngx_strncasecmp(t, (u_char *) token, n) == 0)
        {
            return 1;
        }
    }

    return 0;
}
