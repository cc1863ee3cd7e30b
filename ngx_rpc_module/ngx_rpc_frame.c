
/*
 * WebSocket frames (RFC 6455): a reader fed bytes as they arrive, which
 * unmasks payloads in place and checks every rule a server must, and the
 * head of the frames the gateway sends.  No I/O here: the connection is
 * ngx_rpc_websocket.c's.
 */


#include "ngx_rpc.h"


#define NGX_RPC_FRAME_HEAD      0
#define NGX_RPC_FRAME_PAYLOAD   1


static ngx_int_t ngx_rpc_frame_head(ngx_rpc_frame_t *f);
static ngx_int_t ngx_rpc_frame_close(ngx_rpc_frame_t *f);
static ngx_int_t ngx_rpc_frame_error(ngx_rpc_frame_t *f, ngx_int_t code,
    char *reason);


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

        for (i = 0; i < n; i++) {
            p[i] ^= f->mask[f->mask_pos++ & 3];
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

    if (f->nhead == 2) {
        if (h[0] & 0x70) {
            return ngx_rpc_frame_error(f, NGX_RPC_WS_PROTOCOL_ERROR,
                                       "reserved bits set");
        }

        if (!(h[1] & 0x80)) {
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

        f->need = 2 + (len == 126 ? 2 : (len == 127 ? 8 : 0)) + 4;

        return NGX_AGAIN;
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

    ngx_memcpy(f->mask, h + f->nhead - 4, 4);
    f->mask_pos = 0;
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


/* the head of a frame the gateway sends: final and unmasked */

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
