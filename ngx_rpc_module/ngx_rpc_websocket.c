
/*
 * JSON-RPC over WebSocket (RFC 6455) on an rpc_pass location.  After the
 * handshake the request stays open and the connection gets read and write
 * handlers of its own, as core's upgraded proxying does.  Each text message
 * is a message of ngx_rpc_message.c, parsed as its frames arrive, and gets
 * one text frame back; answers leave in the order they are ready.
 *
 * Only the read, write and ping handlers end the connection, so that
 * nothing is freed under a caller: elsewhere a close or an error is only
 * marked, and the write event posted.
 */


#include "ngx_rpc.h"


#define NGX_RPC_HTTP_UPGRADE_REQUIRED  426


/*
 * A read buffer, freed when neither the connection nor a message whose
 * parser points into it holds it any more.
 */
typedef struct {
    ngx_uint_t                   refs;
    u_char                      *pos;
    u_char                      *last;
    u_char                      *end;
    ngx_rpc_message_t           *owner;  /* last message that took a ref */
} ngx_rpc_ws_buf_t;


/* a frame, or the rest of one, queued for a client that is not reading */
typedef struct {
    ngx_chain_t                  cl;
    ngx_buf_t                    buf;
} ngx_rpc_ws_out_t;


struct ngx_rpc_websocket_s {
    ngx_rpc_session_t           *session;
    ngx_http_request_t          *request;
    ngx_rpc_loc_conf_t          *conf;
    ngx_rpc_frame_t              frame;
    ngx_rpc_ws_buf_t            *buf;
    size_t                       buffer_size;
    ngx_rpc_message_t           *ctx;       /* the message being read */
    ngx_queue_t                  messages;  /* read, not answered yet */
    ngx_uint_t                   calls;     /* of those messages */
    ngx_chain_t                 *out;
    ngx_chain_t                **last_out;
    size_t                       queued;
    ngx_event_t                  ping;
    ngx_int_t                    close;     /* the code sent, 0: none */
    unsigned                     closing:1;
    unsigned                     error:1;
    unsigned                     alive:1;
    unsigned                     ping_sent:1;
    unsigned                     paused:1;
    unsigned                     counted:1;
    unsigned                     reading:1;
    unsigned                     behind:1;  /* events over max_queued */
};


/* connections of this worker open, for the metrics */
static ngx_uint_t  ngx_rpc_websocket_open;


static ngx_int_t ngx_rpc_websocket_accept(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_table_elt_t *ngx_rpc_websocket_header(ngx_http_request_t *r,
    char *name, ngx_table_elt_t *prev);
static ngx_int_t ngx_rpc_websocket_protocol(ngx_http_request_t *r);
static void ngx_rpc_websocket_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_rpc_websocket_process(ngx_rpc_websocket_t *ws);
static ngx_int_t ngx_rpc_websocket_data(ngx_rpc_websocket_t *ws);
static void ngx_rpc_websocket_control(ngx_rpc_websocket_t *ws);
static void ngx_rpc_websocket_answer(ngx_rpc_message_t *ctx);
static void ngx_rpc_websocket_done(ngx_rpc_websocket_t *ws,
    ngx_rpc_message_t *ctx);
static void ngx_rpc_websocket_idle(ngx_rpc_websocket_t *ws);
static ngx_int_t ngx_rpc_websocket_send(ngx_rpc_websocket_t *ws,
    ngx_uint_t opcode, ngx_chain_t *in, ngx_uint_t force);
static ngx_int_t ngx_rpc_websocket_flush(ngx_rpc_websocket_t *ws);
static void ngx_rpc_websocket_write_handler(ngx_event_t *wev);
static void ngx_rpc_websocket_ping_handler(ngx_event_t *ev);
static void ngx_rpc_websocket_close(ngx_rpc_websocket_t *ws,
    ngx_int_t code, char *reason);
static void ngx_rpc_websocket_finalize(ngx_rpc_websocket_t *ws,
    ngx_int_t rc);
static void ngx_rpc_websocket_cleanup(void *data);
static ngx_rpc_ws_buf_t *ngx_rpc_websocket_buf(ngx_rpc_websocket_t *ws,
    size_t size);
static void ngx_rpc_websocket_buf_release(void *data);


/* a GET asking for the upgrade, over HTTP/1.1 (there is no RFC 8441) */

ngx_uint_t
ngx_rpc_websocket_upgrade(ngx_http_request_t *r)
{
    ngx_str_t  *v;

    if (r->method != NGX_HTTP_GET || r != r->main
        || r->http_version != NGX_HTTP_VERSION_11
        || r->headers_in.upgrade == NULL)
    {
        return 0;
    }

    v = &r->headers_in.upgrade->value;

    return ngx_strlcasestrn(v->data, v->data + v->len,
                            (u_char *) "websocket", 9 - 1)
           != NULL;
}


ngx_int_t
ngx_rpc_websocket_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                 *v;
    ngx_table_elt_t           *h, *key;
    ngx_connection_t          *c;
    ngx_rpc_session_t         *s;
    ngx_pool_cleanup_t        *cln;
    ngx_rpc_loc_conf_t        *rlcf;
    ngx_rpc_websocket_t       *ws;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);

    h = ngx_rpc_websocket_header(r, "Sec-WebSocket-Version", NULL);

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        if (h) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rpc: websocket: version \"%V\" not supported",
                          &h->value);
        } else {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rpc: websocket: no version");
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Sec-WebSocket-Version");
        ngx_str_set(&h->value, "13");

        /* nginx has no reason phrase of its own for 426 */
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");

        return ngx_rpc_response_error(r, NGX_RPC_HTTP_UPGRADE_REQUIRED,
                                      NGX_RPC_INVALID_REQUEST);
    }

    /* nginx 1.22 keeps no pointer to Connection */

    key = ngx_rpc_websocket_header(r, "Sec-WebSocket-Key", NULL);
    h = ngx_rpc_websocket_header(r, "Connection", NULL);
    v = h ? &h->value : NULL;

    if (key == NULL || v == NULL
        || ngx_strlcasestrn(v->data, v->data + v->len,
                            (u_char *) "upgrade", 7 - 1)
           == NULL
        || r->headers_in.content_length_n > 0
        || r->headers_in.chunked)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: websocket: bad handshake request");
        return ngx_rpc_response_error(r, NGX_HTTP_BAD_REQUEST,
                                      NGX_RPC_INVALID_REQUEST);
    }

    rc = ngx_rpc_websocket_accept(r, &key->value);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rpc: websocket: bad key \"%V\"", &key->value);
            return ngx_rpc_response_error(r, NGX_HTTP_BAD_REQUEST,
                                          NGX_RPC_INVALID_REQUEST);
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rlcf->ws_protocols && ngx_rpc_websocket_protocol(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s = ngx_pcalloc(r->pool, sizeof(ngx_rpc_session_t));
    ws = ngx_pcalloc(r->pool, sizeof(ngx_rpc_websocket_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (s == NULL || ws == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->request = r;
    s->answer = ngx_rpc_websocket_answer;
    s->ws = ws;
    ngx_queue_init(&s->subscribers);

    ws->session = s;
    ws->request = r;
    ws->conf = rlcf;
    ws->last_out = &ws->out;
    ngx_queue_init(&ws->messages);
    ngx_rpc_frame_init(&ws->frame, rlcf->ws_max_message);

    ws->ping.handler = ngx_rpc_websocket_ping_handler;
    ws->ping.data = ws;
    ws->ping.log = c->log;
    ws->ping.cancelable = 1;

    cln->handler = ngx_rpc_websocket_cleanup;
    cln->data = ws;

    ngx_http_set_ctx(r, s, ngx_rpc_module);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    ws->buffer_size = clcf->client_body_buffer_size;

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->keepalive = 0;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (r->out || c->buffered) {
        /* frames must not overtake the head: a client that does not read */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: websocket: handshake response not sent at once");
        return NGX_HTTP_CLOSE;
    }

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "rpc: websocket open");

    c->log->action = "serving JSON-RPC over WebSocket";

    /* frames the client sent behind its request are read first */

    if (r->header_in->pos < r->header_in->last) {
        ws->buf = ngx_rpc_websocket_buf(ws,
                                   ngx_max(ws->buffer_size,
                                           (size_t) (r->header_in->last
                                                     - r->header_in->pos)));
        if (ws->buf == NULL) {
            return NGX_ERROR;
        }

        ws->buf->last = ngx_cpymem(ws->buf->pos, r->header_in->pos,
                                   r->header_in->last - r->header_in->pos);
        r->header_in->pos = r->header_in->last;
    }

    r->main->count++;
    ngx_rpc_websocket_open++;
    ngx_rpc_metrics_gauge(NGX_RPC_MX_WEBSOCKETS, ngx_rpc_websocket_open);
    ws->counted = 1;

    c->read->handler = ngx_rpc_websocket_read_handler;
    c->write->handler = ngx_rpc_websocket_write_handler;

    if (rlcf->ws_ping_interval) {
        ngx_add_timer(&ws->ping, rlcf->ws_ping_interval);
    }

    ngx_rpc_websocket_idle(ws);

    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_DONE;
}


/* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)); NGX_DECLINED: bad key */

static ngx_int_t
ngx_rpc_websocket_accept(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char            raw[16];
    ngx_str_t         dst;
    ngx_table_elt_t  *h;

    if (key->len != 24) {
        return NGX_DECLINED;
    }

    dst.data = raw;

    if (ngx_decode_base64(&dst, key) != NGX_OK || dst.len != 16) {
        return NGX_DECLINED;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Upgrade");
    ngx_str_set(&h->value, "websocket");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(20));
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Sec-WebSocket-Accept");
    h->value.len = ngx_base64_encoded_length(20);
    ngx_rpc_frame_accept(key->data, key->len, h->value.data);

    return NGX_OK;
}


/* the first header named so, or the next one after prev */

static ngx_table_elt_t *
ngx_rpc_websocket_header(ngx_http_request_t *r, char *name,
    ngx_table_elt_t *prev)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (prev) {
            if (&h[i] == prev) {
                prev = NULL;
            }

            continue;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * The first subprotocol the client offers that rpc_websocket_protocols
 * names is chosen, and only it is sent back; none: no header.
 */

static ngx_int_t
ngx_rpc_websocket_protocol(ngx_http_request_t *r)
{
    u_char              *p, *last, *t;
    ngx_str_t           *name;
    ngx_uint_t           j;
    ngx_table_elt_t     *h, *out;
    ngx_rpc_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);
    name = rlcf->ws_protocols->elts;

    for (h = ngx_rpc_websocket_header(r, "Sec-WebSocket-Protocol", NULL);
         h;
         h = ngx_rpc_websocket_header(r, "Sec-WebSocket-Protocol", h))
    {
        p = h->value.data;
        last = p + h->value.len;

        while (p < last) {
            while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            t = p;

            while (p < last && *p != ',' && *p != ' ' && *p != '\t') {
                p++;
            }

            for (j = 0; j < rlcf->ws_protocols->nelts; j++) {
                if (name[j].len == (size_t) (p - t)
                    && ngx_strncmp(name[j].data, t, p - t) == 0)
                {
                    out = ngx_list_push(&r->headers_out.headers);
                    if (out == NULL) {
                        return NGX_ERROR;
                    }

                    out->hash = 1;
                    ngx_str_set(&out->key, "Sec-WebSocket-Protocol");
                    out->value = name[j];

                    return NGX_OK;
                }
            }
        }
    }

    return NGX_OK;
}


static void
ngx_rpc_websocket_read_handler(ngx_event_t *rev)
{
    ssize_t               n;
    ngx_rpc_ws_buf_t     *b;
    ngx_connection_t     *c;
    ngx_rpc_session_t    *s;
    ngx_http_request_t   *r;
    ngx_rpc_websocket_t  *ws;

    c = rev->data;
    r = c->data;
    s = ngx_http_get_module_ctx(r, ngx_rpc_module);
    ws = s->ws;

    if (c->close) {

        /*
         * an idle connection of a worker that shuts down: it ends here, as
         * the worker may exit before a posted event runs
         */

        if (!c->error) {
            ngx_rpc_websocket_close(ws, NGX_RPC_WS_GOING_AWAY,
                                    "server shutting down");
        }

        if (c->error || ws->error || ws->out || c->buffered) {
            ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLOSE);

        } else {
            ngx_rpc_websocket_finalize(ws, NGX_DONE);
        }

        goto done;
    }

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: websocket: idle for rpc_websocket_idle_timeout");
        rev->timedout = 0;
        ngx_rpc_websocket_close(ws, NGX_RPC_WS_NORMAL, "idle");
        goto done;
    }

    ws->reading = 1;

    for ( ;; ) {

        if (ws->closing || ws->error) {
            goto done;
        }

        if (ngx_exiting) {
            if (ngx_queue_empty(&ws->messages)) {
                ngx_rpc_websocket_close(ws, NGX_RPC_WS_GOING_AWAY,
                                        "server shutting down");
            }

            ws->paused = 1;
            goto done;
        }

        if (ws->calls >= ws->conf->ws_max_calls) {
            /* backpressure: nothing more is read until answers leave */
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "rpc: websocket paused, %ui calls", ws->calls);
            ws->paused = 1;
            goto done;
        }

        b = ws->buf;

        if (b && b->pos < b->last) {
            if (ngx_rpc_websocket_process(ws) != NGX_OK) {
                goto done;
            }

            continue;
        }

        if (b == NULL || b->last == b->end) {
            if (b && b->refs == 1) {
                b->pos = (u_char *) (b + 1);
                b->last = b->pos;
                b->owner = NULL;

            } else {
                if (b) {
                    ngx_rpc_websocket_buf_release(b);
                }

                ws->buf = ngx_rpc_websocket_buf(ws, ws->buffer_size);
                if (ws->buf == NULL) {
                    ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLOSE);
                    goto done;
                }

                b = ws->buf;
            }
        }

        /* a short read left nothing: no recv() just to hear EAGAIN */

        if (!rev->ready) {
            break;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rpc: websocket: client closed connection");
            ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            goto done;
        }

        b->last += n;
        ws->alive = 1;
    }

    /* nothing to read: a buffer no message points into is let go */

    if (ws->buf && ws->buf->refs == 1) {
        ngx_rpc_websocket_buf_release(ws->buf);
        ws->buf = NULL;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLOSE);
        goto done;
    }

    ngx_rpc_websocket_idle(ws);

done:

    ws->reading = 0;

    ngx_http_run_posted_requests(c);
}


/* the frames in the buffer; NGX_DONE when reading must stop for now */

static ngx_int_t
ngx_rpc_websocket_process(ngx_rpc_websocket_t *ws)
{
    ngx_int_t          rc;
    ngx_rpc_frame_t   *f;
    ngx_rpc_ws_buf_t  *b;

    f = &ws->frame;
    b = ws->buf;

    while (!ws->closing && !ws->error) {

        if (ws->calls >= ws->conf->ws_max_calls) {
            /* the rest waits in the buffer: the read loop pauses */
            return NGX_OK;
        }

        rc = ngx_rpc_frame_read(f, &b->pos, b->last);

        switch (rc) {

        case NGX_AGAIN:
            return NGX_OK;

        case NGX_RPC_FRAME_DATA:
            if (ngx_rpc_websocket_data(ws) != NGX_OK) {
                return NGX_DONE;
            }

            break;

        case NGX_RPC_FRAME_CONTROL:
            ngx_rpc_websocket_control(ws);
            break;

        default: /* NGX_ERROR */
            ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
                          "rpc: websocket: %s, closing with %i",
                          f->reason, f->code);
            ngx_rpc_websocket_close(ws, f->code, f->reason);
        }
    }

    return NGX_DONE;
}


/* a piece of a text message: parsed where it lies; the last one sends it */

static ngx_int_t
ngx_rpc_websocket_data(ngx_rpc_websocket_t *ws)
{
    ngx_rpc_frame_t     *f;
    ngx_rpc_ws_buf_t    *b;
    ngx_rpc_message_t   *ctx;
    ngx_pool_cleanup_t  *cln;

    f = &ws->frame;
    b = ws->buf;

    if (f->first) {
        ws->ctx = ngx_rpc_message_create(ws->session);
        if (ws->ctx == NULL) {
            ngx_rpc_websocket_close(ws, NGX_RPC_WS_INTERNAL_ERROR, NULL);
            return NGX_ERROR;
        }

        /* a freed message's address may come back: no ref is assumed */

        b->owner = NULL;

    }

    ctx = ws->ctx;

    if (f->data.len && !ctx->parser.error) {

        /* the message's parser points into the buffer: it holds it */

        if (b->owner != ctx) {
            cln = ngx_pool_cleanup_add(ctx->pool, 0);
            if (cln == NULL) {
                ngx_rpc_websocket_close(ws, NGX_RPC_WS_INTERNAL_ERROR, NULL);
                return NGX_ERROR;
            }

            cln->handler = ngx_rpc_websocket_buf_release;
            cln->data = b;
            b->refs++;
            b->owner = ctx;
        }

        if (ngx_rpc_parse_feed(&ctx->parser, f->data.data, f->data.len)
            != NGX_OK
            && ctx->parser.error == NGX_ERROR)
        {
            ngx_rpc_websocket_close(ws, NGX_RPC_WS_INTERNAL_ERROR, NULL);
            return NGX_ERROR;
        }
    }

    if (!f->last) {
        return NGX_OK;
    }

    ws->ctx = NULL;

    if (!ctx->parser.error) {
        (void) ngx_rpc_parse_finish(&ctx->parser);
    }

    if (ctx->parser.error == NGX_ERROR
        || ngx_rpc_message_dispatch(ctx) != NGX_OK)
    {
        ngx_rpc_message_free(ctx);
        ngx_rpc_websocket_close(ws, NGX_RPC_WS_INTERNAL_ERROR, NULL);
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&ws->messages, &ctx->queue);
    ws->calls += ctx->calls.nelts;

    if (ctx->pending == 0) {
        ngx_rpc_message_answer(ctx);
    }

    return NGX_OK;
}


static void
ngx_rpc_websocket_control(ngx_rpc_websocket_t *ws)
{
    ngx_buf_t         b;
    ngx_chain_t       cl;
    ngx_rpc_frame_t  *f;

    f = &ws->frame;

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.memory = 1;
    cl.buf = &b;
    cl.next = NULL;

    switch (f->opcode) {

    case NGX_RPC_WS_PING:
        b.pos = f->control;
        b.last = f->control + f->ncontrol;

        switch (ngx_rpc_websocket_send(ws, NGX_RPC_WS_PONG, &cl, 0)) {

        case NGX_OK:
            return;

        case NGX_DECLINED:
            ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
                          "rpc: websocket: client pings and does not read, "
                          "closing with %i", (ngx_int_t) NGX_RPC_WS_POLICY);
            ngx_rpc_websocket_close(ws, NGX_RPC_WS_POLICY,
                                    "too many bytes queued");
            return;

        default:
            ws->error = 1;
            ngx_post_event(ws->request->connection->write,
                           &ngx_posted_events);
            return;
        }

    case NGX_RPC_WS_CLOSE:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                       "rpc: websocket close %i from client", f->code);

        /* the client's code is echoed; none, none */

        ngx_rpc_websocket_close(ws, f->code ? f->code : NGX_RPC_WS_NO_STATUS,
                                NULL);
        return;

    default: /* NGX_RPC_WS_PONG: the client is alive, nothing else */
        return;
    }
}


/* the transport's answer: one text frame, then the message is freed */

static void
ngx_rpc_websocket_answer(ngx_rpc_message_t *ctx)
{
    size_t                len;
    ngx_int_t             rc;
    ngx_chain_t          *out, *cl;
    ngx_connection_t     *c;
    ngx_rpc_websocket_t  *ws;

    ws = ctx->session->ws;
    c = ws->request->connection;

    if (ctx->failed || ngx_rpc_response_build(ctx, &out) != NGX_OK) {
        ngx_rpc_websocket_close(ws, NGX_RPC_WS_INTERNAL_ERROR, NULL);
        return;
    }

    if (out) {
        len = 0;

        for (cl = out; cl; cl = cl->next) {
            len += cl->buf->last - cl->buf->pos;
        }

        rc = ngx_rpc_websocket_send(ws, NGX_RPC_WS_TEXT, out, 0);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rpc: websocket: client does not read, %uz bytes "
                          "queued, closing with %i",
                          ws->queued + len, (ngx_int_t) NGX_RPC_WS_POLICY);
            ngx_rpc_websocket_close(ws, NGX_RPC_WS_POLICY,
                                    "too many bytes queued");
            return;
        }

        if (rc == NGX_ERROR) {
            ws->error = 1;
            ngx_post_event(c->write, &ngx_posted_events);
            return;
        }
    }

    /* the answer is out or queued: now the events of its subscriptions */

    ngx_rpc_subscribe_answered(ctx);

    ngx_rpc_websocket_done(ws, ctx);

    if (ws->paused && ws->calls < ws->conf->ws_max_calls && !ngx_exiting) {
        ws->paused = 0;
        ngx_post_event(c->read, &ngx_posted_events);
    }

    if (ngx_queue_empty(&ws->messages)) {
        if (ngx_exiting) {
            ngx_rpc_websocket_close(ws, NGX_RPC_WS_GOING_AWAY,
                                    "server shutting down");
            return;
        }

        ngx_rpc_websocket_idle(ws);

        /* an idle connection holds no buffer (not under the read loop) */

        if (!ws->reading && ws->buf && ws->buf->refs == 1
            && ws->buf->pos == ws->buf->last)
        {
            ngx_rpc_websocket_buf_release(ws->buf);
            ws->buf = NULL;
        }
    }
}


static void
ngx_rpc_websocket_done(ngx_rpc_websocket_t *ws, ngx_rpc_message_t *ctx)
{
    ngx_queue_remove(&ctx->queue);
    ws->calls -= ctx->calls.nelts;
    ngx_rpc_message_free(ctx);
}


/*
 * With no message in flight the connection is idle: the idle timer runs
 * (each read starts it again), and a worker that shuts down may close it
 * at once, dropping a message not read whole.  A client with subscriptions
 * is not silent, events go to it: only pings watch it then.
 */

static void
ngx_rpc_websocket_idle(ngx_rpc_websocket_t *ws)
{
    ngx_connection_t  *c;

    c = ws->request->connection;

    if (ws->closing || !ngx_queue_empty(&ws->messages)) {
        c->idle = 0;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        return;
    }

    c->idle = 1;

    if (ws->session->nsubscribers == 0) {
        ngx_add_timer(c->read, ws->conf->ws_idle_timeout);

    } else if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }
}


/*
 * A frame is sent at once if nothing waits before it; what the socket does
 * not take is copied and queued.  NGX_DECLINED: it would queue more than
 * rpc_websocket_max_queued for a client that does not read (force: a
 * frame of the gateway's own, always queued).  Every frame is flushed
 * through TLS at once: the last buffer asks for it.
 */

static ngx_int_t
ngx_rpc_websocket_send(ngx_rpc_websocket_t *ws, ngx_uint_t opcode,
    ngx_chain_t *in, ngx_uint_t force)
{
    off_t              sent;
    u_char            *p, head[10];
    size_t             len, size;
    ngx_buf_t          hb;
    ngx_chain_t        hcl, *cl;
    ngx_connection_t  *c;
    ngx_rpc_ws_out_t  *out;

    c = ws->request->connection;

    len = 0;

    for (cl = in; cl; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
    }

    if (ws->queued && ws->queued + len > ws->conf->ws_max_queued && !force) {
        return NGX_DECLINED;
    }

    ngx_memzero(&hb, sizeof(ngx_buf_t));
    hb.memory = 1;
    hb.pos = head;
    hb.last = ngx_rpc_frame_write_head(head, opcode, len);

    /* an empty buffer in a chain makes nginx's send loop spin */

    hcl.buf = &hb;
    hcl.next = len ? in : NULL;

    len += hb.last - hb.pos;
    cl = &hcl;

    if (ws->out == NULL && !c->buffered && c->write->ready) {
        for (cl = &hcl; cl->next; cl = cl->next) { /* void */ }
        cl->buf->flush = 1;

        sent = c->sent;

        cl = c->send_chain(c, &hcl, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        len -= c->sent - sent;

        if (cl == NULL) {
            ws->queued += len;  /* what TLS still holds, if anything */
            return ngx_rpc_websocket_flush(ws);
        }
    }

    /* the rest is copied: the message it came from is freed next */

    size = 0;

    for (in = cl; in; in = in->next) {
        size += in->buf->last - in->buf->pos;
    }

    out = ngx_alloc(sizeof(ngx_rpc_ws_out_t) + size, c->log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(out, sizeof(ngx_rpc_ws_out_t));

    p = (u_char *) (out + 1);
    out->buf.pos = p;
    out->buf.memory = 1;
    out->buf.flush = 1;

    for ( /* void */ ; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    out->buf.last = p;
    out->cl.buf = &out->buf;

    *ws->last_out = &out->cl;
    ws->last_out = &out->cl.next;
    ws->queued += len;

    return ngx_rpc_websocket_flush(ws);
}


/*
 * Queued frames, and what TLS holds, go as the client reads, each write
 * within send_timeout.
 */

static ngx_int_t
ngx_rpc_websocket_flush(ngx_rpc_websocket_t *ws)
{
    off_t                      sent;
    ngx_chain_t               *cl, *next;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = ws->request->connection;

    if ((ws->out || c->buffered) && c->write->ready) {
        sent = c->sent;

        cl = c->send_chain(c, ws->out, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        ws->queued -= ngx_min(ws->queued, (size_t) (c->sent - sent));

        while (ws->out != cl) {
            next = ws->out->next;
            ngx_free(ws->out);
            ws->out = next;
        }

        if (cl == NULL) {
            ws->last_out = &ws->out;
        }
    }

    if (ws->out == NULL && !c->buffered) {
        ws->queued = 0;

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        return NGX_OK;
    }

    if (!c->write->timer_set) {
        clcf = ngx_http_get_module_loc_conf(ws->request, ngx_http_core_module);
        ngx_add_timer(c->write, clcf->send_timeout);
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_rpc_websocket_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_rpc_session_t    *s;
    ngx_http_request_t   *r;
    ngx_rpc_websocket_t  *ws;

    c = wev->data;
    r = c->data;
    s = ngx_http_get_module_ctx(r, ngx_rpc_module);
    ws = s->ws;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rpc: websocket: client timed out");
        c->timedout = 1;
        ngx_rpc_websocket_finalize(ws, NGX_HTTP_REQUEST_TIME_OUT);
        goto done;
    }

    if (ws->error || ngx_rpc_websocket_flush(ws) != NGX_OK) {
        ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLOSE);
        goto done;
    }

    if (ws->behind && !ws->closing) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: websocket: client does not read its events, "
                      "%uz bytes queued, closing with %i",
                      ws->queued, (ngx_int_t) NGX_RPC_WS_POLICY);
        ngx_rpc_websocket_close(ws, NGX_RPC_WS_POLICY,
                                "too many bytes queued");
    }

    if (ws->closing && ws->out == NULL && !c->buffered) {
        ngx_rpc_websocket_finalize(ws, NGX_DONE);
    }

done:

    ngx_http_run_posted_requests(c);
}


/*
 * A ping when nothing came from the client for rpc_websocket_ping_interval;
 * nothing again within rpc_websocket_ping_timeout: the peer is gone.
 */

static void
ngx_rpc_websocket_ping_handler(ngx_event_t *ev)
{
    ngx_buf_t             b;
    ngx_chain_t           cl;
    ngx_connection_t     *c;
    ngx_rpc_websocket_t  *ws;

    ws = ev->data;
    c = ws->request->connection;

    if (ws->alive) {
        ws->alive = 0;
        ws->ping_sent = 0;
        ngx_add_timer(&ws->ping, ws->conf->ws_ping_interval);
        return;
    }

    if (ws->ping_sent) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: websocket: no answer to a ping within "
                      "rpc_websocket_ping_timeout");
        ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLOSE);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.memory = 1;
    b.pos = (u_char *) "rpc";
    b.last = b.pos + 3;
    cl.buf = &b;
    cl.next = NULL;

    if (ngx_rpc_websocket_send(ws, NGX_RPC_WS_PING, &cl, 1) != NGX_OK) {
        ngx_rpc_websocket_finalize(ws, NGX_HTTP_CLOSE);
        ngx_http_run_posted_requests(c);
        return;
    }

    ws->ping_sent = 1;
    ngx_add_timer(&ws->ping, ws->conf->ws_ping_timeout);
}


/*
 * The gateway's close frame: messages still read or in flight are dropped
 * (the client is going, or broke the protocol), nothing more is read, and
 * the connection ends once the frame is out.
 */

static void
ngx_rpc_websocket_close(ngx_rpc_websocket_t *ws, ngx_int_t code,
    char *reason)
{
    u_char            *p, payload[125];
    ngx_buf_t          b;
    ngx_chain_t        cl;
    ngx_connection_t  *c;

    if (ws->closing) {
        return;
    }

    c = ws->request->connection;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "rpc: websocket close %i", code);

    ngx_rpc_websocket_cleanup(ws);

    ws->closing = 1;
    ws->close = code;

    p = payload;

    if (code != NGX_RPC_WS_NO_STATUS) {
        *p++ = (u_char) (code >> 8);
        *p++ = (u_char) code;

        if (reason) {
            p = ngx_cpymem(p, reason,
                           ngx_min(ngx_strlen(reason), sizeof(payload) - 2));
        }
    }

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.memory = 1;
    b.pos = payload;
    b.last = p;
    cl.buf = &b;
    cl.next = NULL;

    if (ngx_rpc_websocket_send(ws, NGX_RPC_WS_CLOSE, &cl, 1) != NGX_OK) {
        ws->error = 1;
    }

    ngx_rpc_websocket_idle(ws);

    ngx_post_event(c->write, &ngx_posted_events);
}


/*
 * NGX_DONE: a clean end, with nginx's lingering close, so that what the
 * client still sends does not turn into a reset; else the connection is
 * closed at once.
 */

static void
ngx_rpc_websocket_finalize(ngx_rpc_websocket_t *ws, ngx_int_t rc)
{
    ngx_chain_t         *cl;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ws->request;
    c = r->connection;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "rpc: websocket finalize %i", rc);

    ngx_rpc_websocket_cleanup(ws);

    while (ws->out) {
        cl = ws->out->next;
        ngx_free(ws->out);
        ws->out = cl;
    }

    ws->last_out = &ws->out;
    ws->queued = 0;
    ws->closing = 1;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->idle = 0;

    if (rc == NGX_DONE) {
        r->lingering_close = 1;
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * Messages read or in flight, the read buffer and the ping timer go; also
 * the cleanup of the request's pool, for a connection nginx closes itself.
 */

static void
ngx_rpc_websocket_cleanup(void *data)
{
    ngx_rpc_websocket_t  *ws = data;

    ngx_queue_t        *q;
    ngx_rpc_message_t  *ctx;

    if (ws->ctx) {
        ngx_rpc_message_free(ws->ctx);
        ws->ctx = NULL;
    }

    while (!ngx_queue_empty(&ws->messages)) {
        q = ngx_queue_head(&ws->messages);
        ctx = ngx_queue_data(q, ngx_rpc_message_t, queue);
        ngx_rpc_websocket_done(ws, ctx);
    }

    if (ws->buf) {
        ngx_rpc_websocket_buf_release(ws->buf);
        ws->buf = NULL;
    }

    ngx_rpc_subscribe_close(ws->session);

    if (ws->ping.timer_set) {
        ngx_del_timer(&ws->ping);
    }

    if (ws->counted) {
        ws->counted = 0;
        ngx_rpc_websocket_open--;
        ngx_rpc_metrics_gauge(NGX_RPC_MX_WEBSOCKETS, ngx_rpc_websocket_open);
    }
}


static ngx_rpc_ws_buf_t *
ngx_rpc_websocket_buf(ngx_rpc_websocket_t *ws, size_t size)
{
    ngx_rpc_ws_buf_t  *b;

    b = ngx_alloc(sizeof(ngx_rpc_ws_buf_t) + size,
                  ws->request->connection->log);
    if (b == NULL) {
        return NULL;
    }

    b->refs = 1;
    b->pos = (u_char *) (b + 1);
    b->last = b->pos;
    b->end = b->pos + size;
    b->owner = NULL;

    return b;
}


/* also a cleanup of the pools of messages that point into the buffer */

static void
ngx_rpc_websocket_buf_release(void *data)
{
    ngx_rpc_ws_buf_t  *b = data;

    if (--b->refs == 0) {
        ngx_free(b);
    }
}


/*
 * An event of a subscription: a text frame, sent or queued.  A client that
 * would queue more than rpc_websocket_max_queued (or in is NULL: its held
 * events are too many) is closed with 1008 from its write handler, as the
 * caller is fanning out to others; its events are dropped till then.
 */

ngx_int_t
ngx_rpc_websocket_event(ngx_rpc_session_t *s, ngx_chain_t *in)
{
    ngx_int_t             rc;
    ngx_connection_t     *c;
    ngx_rpc_websocket_t  *ws;

    ws = s->ws;
    c = ws->request->connection;

    if (ws->closing || ws->behind || ws->error) {
        return NGX_DECLINED;
    }

    rc = in ? ngx_rpc_websocket_send(ws, NGX_RPC_WS_TEXT, in, 0)
            : NGX_DECLINED;

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_DECLINED) {
        ws->behind = 1;

    } else {
        ws->error = 1;
    }

    ngx_post_event(c->write, &ngx_posted_events);

    return rc;
}


ngx_int_t
ngx_rpc_websocket_close_code(ngx_rpc_session_t *s)
{
    if (s->ws == NULL || s->ws->close == 0) {
        return -1;
    }

    return s->ws->close;
}


char *
ngx_rpc_websocket_protocols(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (rlcf->ws_protocols != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    rlcf->ws_protocols = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (rlcf->ws_protocols == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(rlcf->ws_protocols);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}
