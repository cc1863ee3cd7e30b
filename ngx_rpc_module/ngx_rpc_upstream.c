
/*
 * Upstream exchange: one HTTP/1.1 POST to an upstream {} group, run by
 * nginx's upstream machinery (keepalive, next_upstream, timeouts, TLS) in
 * a background in-memory subrequest of the exchange's own request.  The
 * reply body is parsed as it is read and kept in the buffers it arrived in;
 * its results go to the clients as slices.  Every failure ends as per-call
 * errors, never an nginx error page.
 */


#include "ngx_rpc.h"


#define NGX_RPC_REPLY_MAX_DEPTH  1024


static void ngx_rpc_upstream_init(ngx_http_request_t *sr);
static void ngx_rpc_upstream_nodelay(ngx_http_request_t *sr);
static ngx_int_t ngx_rpc_upstream_create_request(ngx_http_request_t *sr);
static ngx_int_t ngx_rpc_upstream_reinit_request(ngx_http_request_t *sr);
static ngx_int_t ngx_rpc_upstream_process_status_line(
    ngx_http_request_t *sr);
static ngx_int_t ngx_rpc_upstream_process_header(ngx_http_request_t *sr);
static ngx_int_t ngx_rpc_upstream_parse_header(ngx_http_request_t *sr);
static void ngx_rpc_upstream_informational(ngx_http_request_t *sr);
static ngx_int_t ngx_rpc_upstream_header_again(ngx_http_request_t *sr);
static void ngx_rpc_upstream_abort_request(ngx_http_request_t *sr);
static void ngx_rpc_upstream_finalize_request(ngx_http_request_t *sr,
    ngx_int_t rc);
static ngx_int_t ngx_rpc_upstream_filter_init(void *data);
static ngx_int_t ngx_rpc_upstream_filter(void *data, ssize_t bytes);
static ngx_int_t ngx_rpc_upstream_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static ngx_int_t ngx_rpc_upstream_error(ngx_rpc_exchange_t *ex);
static void ngx_rpc_upstream_match(ngx_rpc_exchange_t *ex);


ngx_int_t
ngx_rpc_upstream_start(ngx_rpc_exchange_t *ex)
{
    ngx_http_request_t           *r, *sr;
    ngx_http_post_subrequest_t   *ps;

    r = ex->request;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_rpc_upstream_done;
    ps->data = ex;

    if (ngx_http_subrequest(r, &r->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* no location lookup: the exchange runs with the location's config */

    sr->loc_conf = r->loc_conf;
    sr->method = NGX_HTTP_POST;
    ngx_str_set(&sr->method_name, "POST");
    sr->write_event_handler = ngx_rpc_upstream_init;

    /*
     * the exchange is found through the request it owns, so that the
     * subrequest has no context of ours: with log_subrequest, $rpc_* of it
     * are not found, while they work in an rpc location run as a subrequest
     */

    ngx_http_set_ctx(r, ex, ngx_rpc_module);
    ex->sr = sr;

    return NGX_OK;
}


void
ngx_rpc_upstream_abort(ngx_rpc_exchange_t *ex)
{
    ngx_http_upstream_t  *u;

    u = ex->sr ? ex->sr->upstream : NULL;

    if (u && u->cleanup && *u->cleanup) {
        (*u->cleanup)(ex->sr);
    }
}


/* $upstream_addr and the like of a client request list every try */

void
ngx_rpc_upstream_states(ngx_rpc_exchange_t *ex, ngx_http_request_t *r)
{
    ngx_uint_t                  i;
    ngx_array_t                *states;
    ngx_rpc_session_t          *s;
    ngx_http_upstream_state_t  *st, *state;

    states = ex->sr ? ex->sr->upstream_states : NULL;
    s = ngx_http_get_module_ctx(r, ngx_rpc_module);

    /* a WebSocket connection would keep them all: it logs none */

    if (states == NULL || states->nelts == 0 || s == NULL || s->ws) {
        return;
    }

    if (r->upstream_states == NULL) {
        r->upstream_states = ngx_array_create(r->pool, states->nelts,
                                         sizeof(ngx_http_upstream_state_t));
        if (r->upstream_states == NULL) {
            return;
        }
    }

    state = states->elts;

    for (i = 0; i < states->nelts; i++) {
        st = ngx_array_push(r->upstream_states);
        if (st == NULL) {
            return;
        }

        *st = state[i];
    }
}


static void
ngx_rpc_upstream_init(ngx_http_request_t *sr)
{
    ngx_http_upstream_t  *u;
    ngx_rpc_exchange_t   *ex;

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);

    if (ngx_http_upstream_create(sr) != NGX_OK) {
        ngx_http_finalize_request(sr, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    u = sr->upstream;

    ngx_str_set(&u->schema, "http://");
    u->output.tag = (ngx_buf_tag_t) &ngx_rpc_module;
    u->conf = ex->conf;

#if (NGX_HTTP_SSL)
    if (u->conf->ssl) {
        ngx_str_set(&u->schema, "https://");
        u->ssl = 1;
        u->ssl_name = u->conf->upstream->host;
    }
#endif

    u->create_request = ngx_rpc_upstream_create_request;
    u->reinit_request = ngx_rpc_upstream_reinit_request;
    u->process_header = ngx_rpc_upstream_process_status_line;
    u->abort_request = ngx_rpc_upstream_abort_request;
    u->finalize_request = ngx_rpc_upstream_finalize_request;
    u->input_filter_init = ngx_rpc_upstream_filter_init;
    u->input_filter = ngx_rpc_upstream_filter;
    u->input_filter_ctx = ex;

    ngx_http_upstream_init(sr);
    ngx_rpc_upstream_nodelay(sr);
}


/*
 * A batch of many calls is written with several writev() calls: without
 * TCP_NODELAY its tail would wait for the upstream's delayed ACK.  Set on
 * a new connection before its request is written, and again on retries.
 */

static void
ngx_rpc_upstream_nodelay(ngx_http_request_t *sr)
{
    ngx_uint_t                 n;
    ngx_connection_t          *c;
    ngx_rpc_exchange_t        *ex;
    ngx_http_upstream_t       *u;
    ngx_http_core_loc_conf_t  *clcf;

    u = sr->upstream;
    c = u ? u->peer.connection : NULL;
    clcf = ngx_http_get_module_loc_conf(sr, ngx_http_core_module);

    if (c && clcf->tcp_nodelay) {
        (void) ngx_tcp_nodelay(c);
    }

    /* a new connection for this try: counted if it connects (metrics) */

    n = sr->upstream_states ? sr->upstream_states->nelts : 0;

    if (c && c->requests == 1 && n && n <= 64) {
        ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);
        ex->fresh |= (uint64_t) 1 << (n - 1);
    }
}


static ngx_int_t
ngx_rpc_upstream_create_request(ngx_http_request_t *sr)
{
    off_t                          len;
    ngx_buf_t                     *b;
    ngx_uint_t                     port;
    ngx_chain_t                   *cl;
    ngx_rpc_exchange_t            *ex;
    ngx_rpc_loc_conf_t            *rlcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);
    rlcf = ngx_http_get_module_loc_conf(sr, ngx_rpc_module);
    uscf = ex->conf->upstream;

    /* Host has the port unless it is the scheme's own, as $proxy_host */

    port = 0;

    if (!uscf->no_port && uscf->port != (sr->upstream->ssl ? 443 : 80)) {
        port = uscf->port;
    }

    len = 0;

    for (cl = ex->body; cl; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
    }

    b = ngx_create_temp_buf(sr->pool,
                            sizeof("POST  HTTP/1.1" CRLF "Host: :65535" CRLF
                                   "Content-Type: application/json" CRLF
                                   "Content-Length: " CRLF CRLF)
                            + rlcf->uri.len + uscf->host.len + NGX_OFF_T_LEN);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "POST %V HTTP/1.1" CRLF "Host: %V",
                          &rlcf->uri, &uscf->host);

    if (port) {
        b->last = ngx_sprintf(b->last, ":%ui", port);
    }

    b->last = ngx_sprintf(b->last, CRLF "Content-Type: application/json" CRLF
                          "Content-Length: %O" CRLF CRLF, len);

    cl = ngx_alloc_chain_link(sr->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = ex->body;

    sr->upstream->request_bufs = cl;

    return NGX_OK;
}


static ngx_int_t
ngx_rpc_upstream_reinit_request(ngx_http_request_t *sr)
{
    ngx_rpc_exchange_t  *ex;

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);

    ngx_memzero(&ex->status, sizeof(ngx_http_status_t));
    ngx_memzero(&ex->chunked, sizeof(ngx_http_chunked_t));

    ex->content_length = -1;
    ex->chunked_body = 0;
    ex->conn_close = 0;
    ex->invalid_header = 0;
    ex->too_large = 0;
    ex->complete = 0;

    sr->upstream->process_header = ngx_rpc_upstream_process_status_line;

    ngx_rpc_upstream_nodelay(sr);

    return NGX_OK;
}


/*
 * Informational (1xx) replies that come before the final one are skipped
 * in this loop, and not by recursion: an upstream may send many of them.
 */

static ngx_int_t
ngx_rpc_upstream_process_status_line(ngx_http_request_t *sr)
{
    ngx_int_t             rc;
    ngx_http_upstream_t  *u;
    ngx_rpc_exchange_t   *ex;

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);
    u = sr->upstream;

    for ( ;; ) {
        rc = ngx_http_parse_status_line(sr, &u->buffer, &ex->status);

        if (rc == NGX_AGAIN) {
            return ngx_rpc_upstream_header_again(sr);
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                          "rpc: upstream sent no valid HTTP/1.x status line");
            ex->invalid_header = 1;
            return NGX_HTTP_UPSTREAM_INVALID_HEADER;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "rpc: upstream status %ui", ex->status.code);

        /* no status is below 100; we never ask to switch protocols */

        if (ex->status.code < 100
            || ex->status.code == NGX_HTTP_SWITCHING_PROTOCOLS)
        {
            ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                          "rpc: upstream sent unexpected status %ui",
                          ex->status.code);
            ex->invalid_header = 1;
            return NGX_HTTP_UPSTREAM_INVALID_HEADER;
        }

        u->headers_in.status_n = ex->status.code;

        if (u->state && u->state->status == 0) {
            u->state->status = ex->status.code;
        }

        ex->content_length = -1;
        u->process_header = ngx_rpc_upstream_process_header;

        rc = ngx_rpc_upstream_parse_header(sr);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        ngx_rpc_upstream_informational(sr);
    }
}


/* nginx calls this when the header did not end in the status line's read */

static ngx_int_t
ngx_rpc_upstream_process_header(ngx_http_request_t *sr)
{
    ngx_int_t  rc;

    rc = ngx_rpc_upstream_parse_header(sr);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    ngx_rpc_upstream_informational(sr);

    return ngx_rpc_upstream_process_status_line(sr);
}


/* NGX_DECLINED: the header of an informational reply has ended */

static ngx_int_t
ngx_rpc_upstream_parse_header(ngx_http_request_t *sr)
{
    size_t                len;
    u_char               *name, *value;
    ngx_int_t             rc;
    ngx_http_upstream_t  *u;
    ngx_rpc_exchange_t   *ex;

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);
    u = sr->upstream;

    for ( ;; ) {

        rc = ngx_http_parse_header_line(sr, &u->buffer, 1);

        if (rc == NGX_OK) {
            name = sr->header_name_start;
            len = sr->header_name_end - name;
            value = sr->header_start;

            if (len == sizeof("Content-Length") - 1
                && ngx_strncasecmp(name, (u_char *) "Content-Length", len)
                   == 0)
            {
                /* two lengths: which one frames the reply is a guess */

                if (ex->content_length != -1) {
                    ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                                  "rpc: upstream sent duplicate "
                                  "\"Content-Length\" header");
                    ex->invalid_header = 1;
                    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
                }

                ex->content_length = ngx_atoof(value,
                                               sr->header_end - value);

                if (ex->content_length == NGX_ERROR) {
                    ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                                  "rpc: upstream sent invalid "
                                  "\"Content-Length\" header");
                    ex->invalid_header = 1;
                    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
                }

            } else if (len == sizeof("Transfer-Encoding") - 1
                       && ngx_strncasecmp(name,
                                          (u_char *) "Transfer-Encoding", len)
                          == 0)
            {
                ex->chunked_body = (ngx_strlcasestrn(value, sr->header_end,
                                               (u_char *) "chunked", 7 - 1)
                                    != NULL);

            } else if (len == sizeof("Connection") - 1
                       && ngx_strncasecmp(name, (u_char *) "Connection", len)
                          == 0)
            {
                ex->conn_close = (ngx_strlcasestrn(value, sr->header_end,
                                               (u_char *) "close", 5 - 1)
                                  != NULL);
            }

            continue;
        }

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {
            if (ex->status.code < NGX_HTTP_OK) {
                return NGX_DECLINED;
            }

            if (ex->chunked_body) {
                ex->content_length = -1;
            }

            /*
             * the reply is ours to read: nginx sees an empty body, or its
             * in-memory output would check the length against
             * subrequest_output_buffer_size, and allocate that much
             */

            sr->upstream->headers_in.content_length_n = 0;

            return NGX_OK;
        }

        if (rc == NGX_AGAIN) {
            return ngx_rpc_upstream_header_again(sr);
        }

        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "rpc: upstream sent invalid header");
        ex->invalid_header = 1;

        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }
}


/*
 * An informational reply ("100 Continue", "103 Early Hints") comes before
 * the final one and says nothing about it: it is dropped with its headers,
 * and what follows it is moved to the start of the buffer, so that the
 * final header alone has to fit rpc_buffer_size.
 */

static void
ngx_rpc_upstream_informational(ngx_http_request_t *sr)
{
    u_char               *p;
    ngx_http_upstream_t  *u;
    ngx_rpc_exchange_t   *ex;

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);
    u = sr->upstream;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "rpc: upstream informational status %ui skipped",
                   ex->status.code);

    ngx_memzero(&ex->status, sizeof(ngx_http_status_t));

    ex->content_length = -1;
    ex->chunked_body = 0;
    ex->conn_close = 0;

    u->headers_in.status_n = 0;

    if (u->state) {
        u->state->status = 0;
    }

    p = u->buffer.pos;
    u->buffer.pos = u->buffer.start;
    u->buffer.last = ngx_movemem(u->buffer.start, p, u->buffer.last - p);

    u->process_header = ngx_rpc_upstream_process_status_line;
}


/*
 * A header that does not fit rpc_buffer_size is an invalid reply; nginx
 * would report a full buffer as a failure of its own, and the calls would
 * get -32002 as for a reply cut short.
 */

static ngx_int_t
ngx_rpc_upstream_header_again(ngx_http_request_t *sr)
{
    ngx_http_upstream_t  *u;
    ngx_rpc_exchange_t   *ex;

    u = sr->upstream;

    if (u->buffer.last != u->buffer.end) {
        return NGX_AGAIN;
    }

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);

    ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                  "rpc: upstream sent a header larger than "
                  "rpc_buffer_size %uz", u->conf->buffer_size);

    ex->invalid_header = 1;

    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
}


static void
ngx_rpc_upstream_abort_request(ngx_http_request_t *sr)
{
    return;
}


/* rc is kept here: nginx reports failures after the header as success */

static void
ngx_rpc_upstream_finalize_request(ngx_http_request_t *sr, ngx_int_t rc)
{
    ngx_rpc_exchange_t  *ex;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "rpc: finalize upstream exchange %i", rc);

    ex = ngx_http_get_module_ctx(sr->main, ngx_rpc_module);
    ex->rc = rc;
}


static ngx_int_t
ngx_rpc_upstream_filter_init(void *data)
{
    ngx_rpc_exchange_t  *ex = data;

    ngx_http_upstream_t  *u;

    u = ex->sr->upstream;

    /* the reply has as many messages as calls, when all goes well */

    if (ngx_rpc_parse_init(&ex->reply, ex->sr->pool, ex->sr->connection->log,
                           NGX_RPC_REPLY_MAX_DEPTH, ex->ncalls + 64,
                           ngx_max(ex->ncalls, 1))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ex->status.code == NGX_HTTP_NO_CONTENT
        || ex->status.code == NGX_HTTP_NOT_MODIFIED)
    {
        u->length = 0;

    } else if (ex->chunked_body) {
        u->length = 1;

    } else {
        u->length = ex->content_length;
    }

    if (u->length == 0) {
        ex->complete = 1;
        u->keepalive = !ex->conn_close && ex->status.http_version >= 1001;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_rpc_upstream_filter(void *data, ssize_t bytes)
{
    ngx_rpc_exchange_t  *ex = data;

    size_t                n;
    u_char               *p;
    ngx_int_t             rc, parse;
    ngx_buf_t            *b, buf;
    ngx_rpc_loc_conf_t   *rlcf;
    ngx_http_upstream_t  *u;

    u = ex->sr->upstream;
    b = &u->buffer;
    rlcf = ngx_http_get_module_loc_conf(ex->sr, ngx_rpc_module);

    /*
     * the reply is kept in memory until the clients are answered: each of
     * its calls may have rpc_max_reply_size of it
     */

    if (rlcf->max_reply_size
        && ex->reply.total + bytes
           > rlcf->max_reply_size * (off_t) ngx_max(ex->ncalls, 1))
    {
        ngx_log_error(NGX_LOG_ERR, ex->sr->connection->log, 0,
                      "rpc: upstream reply is larger than "
                      "rpc_max_reply_size %O for each of its %ui calls",
                      rlcf->max_reply_size, ngx_max(ex->ncalls, 1));
        ex->too_large = 1;
        return NGX_ERROR;
    }

    parse = (ex->ncalls && ex->status.code == NGX_HTTP_OK);

    ngx_memzero(&buf, sizeof(ngx_buf_t));
    buf.pos = b->last;
    buf.last = b->last + bytes;
    b->last = buf.last;

    if (ex->chunked_body) {

        for ( ;; ) {
            rc = ngx_http_parse_chunked(ex->sr, &buf, &ex->chunked);

            if (rc == NGX_OK) {
                n = ngx_min((off_t) (buf.last - buf.pos), ex->chunked.size);

                if (parse) {
                    (void) ngx_rpc_parse_feed(&ex->reply, buf.pos, n);
                }

                buf.pos += n;
                ex->chunked.size -= n;
                continue;
            }

            if (rc == NGX_DONE) {
                u->length = 0;
                break;
            }

            if (rc == NGX_AGAIN) {
                break;
            }

            ngx_log_error(NGX_LOG_ERR, ex->sr->connection->log, 0,
                          "rpc: upstream sent invalid chunked reply");
            ex->invalid_header = 1;

            return NGX_ERROR;
        }

    } else {
        if (u->length >= 0 && bytes > u->length) {
            ngx_log_error(NGX_LOG_WARN, ex->sr->connection->log, 0,
                          "rpc: upstream sent more data than specified in "
                          "\"Content-Length\" header");
            bytes = u->length;
        }

        if (parse) {
            (void) ngx_rpc_parse_feed(&ex->reply, buf.pos, bytes);
        }

        if (u->length > 0) {
            u->length -= bytes;
        }
    }

    if (u->length == 0) {
        ex->complete = 1;
        u->keepalive = !ex->conn_close && ex->status.http_version >= 1001;
        return NGX_OK;
    }

    if (!parse || ex->reply.error) {
        /* nobody refers to these bytes: nginx may read over them */
        return NGX_OK;
    }

    /*
     * nginx rewinds the buffer to its start after each read: the parsed
     * bytes are kept by moving the start past them, or by a new buffer
     */

    if ((size_t) (b->end - b->last) >= u->conf->buffer_size / 4) {
        b->start = b->last;
        b->pos = b->last;
        return NGX_OK;
    }

    p = ngx_palloc(ex->sr->pool, u->conf->buffer_size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    b->start = p;
    b->pos = p;
    b->last = p;
    b->end = p + u->conf->buffer_size;

    return NGX_OK;
}


/*
 * post_subrequest handler: turns how the exchange ended into call results;
 * its rc is not used, see ngx_rpc_upstream_finalize_request()
 */

static ngx_int_t
ngx_rpc_upstream_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_rpc_exchange_t  *ex = data;

    if (ex->done) {
        return NGX_OK;
    }

    ex->error = ngx_rpc_upstream_error(ex);

    if (ex->error == 0) {
        ngx_rpc_upstream_match(ex);
    }

    ngx_rpc_dispatcher_done(ex);

    return NGX_OK;
}


static ngx_int_t
ngx_rpc_upstream_error(ngx_rpc_exchange_t *ex)
{
    ngx_int_t             rc;
    ngx_log_t            *log;
    ngx_http_upstream_t  *u;

    rc = ex->rc;
    u = ex->sr->upstream;
    log = ex->sr->connection->log;

    if (ex->too_large) {
        return NGX_RPC_UPSTREAM_TOO_LARGE;
    }

    if (rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        return NGX_RPC_UPSTREAM_TIMEOUT;
    }

    if (ex->invalid_header) {
        return NGX_RPC_UPSTREAM_BAD_SHAPE;
    }

    if (ex->status.code && ex->status.code != NGX_HTTP_OK
        && ex->status.code != NGX_HTTP_NO_CONTENT
        && (ex->ncalls || ex->status.code >= NGX_HTTP_SPECIAL_RESPONSE))
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rpc: upstream replied with HTTP status %ui",
                      ex->status.code);
        return NGX_RPC_UPSTREAM_STATUS;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE || rc == NGX_ERROR || u == NULL) {
        return (u && u->request_sent) ? NGX_RPC_UPSTREAM_CLOSED
                                      : NGX_RPC_UPSTREAM_UNAVAILABLE;
    }

    if (!ex->complete && u->length != -1) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rpc: upstream prematurely closed connection "
                      "while reading reply");
        return NGX_RPC_UPSTREAM_CLOSED;
    }

    return 0;
}


static void
ngx_rpc_upstream_match(ngx_rpc_exchange_t *ex)
{
    off_t                max;
    ngx_int_t            num;
    ngx_log_t           *log;
    ngx_uint_t           i, batch, result, error;
    ngx_rpc_msg_t       *msg;
    ngx_rpc_call_t      *c;
    ngx_rpc_parser_t    *p;
    ngx_rpc_loc_conf_t  *rlcf;

    if (ex->ncalls == 0) {
        return;
    }

    p = &ex->reply;
    log = ex->sr->connection->log;
    rlcf = ngx_http_get_module_loc_conf(ex->sr, ngx_rpc_module);
    max = rlcf->max_reply_size;

    if (ex->status.code == NGX_HTTP_NO_CONTENT) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rpc: upstream replied 204 to %ui calls", ex->ncalls);
        return;
    }

    if (ngx_rpc_parse_finish(p) != NGX_OK) {
        ex->error = (p->error == NGX_RPC_BATCH_TOO_LARGE)
                    ? NGX_RPC_UPSTREAM_BAD_SHAPE : NGX_RPC_UPSTREAM_NOT_JSON;

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rpc: upstream reply is not %s",
                      ex->error == NGX_RPC_UPSTREAM_NOT_JSON
                      ? "valid JSON" : "of the expected size");
        return;
    }

    batch = ex->batch;

    /* an upstream that does not take batches answers with one value */

    if (batch && p->top != NGX_RPC_ARRAY) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rpc: upstream refused a batch, its %ui calls are "
                      "sent one by one", ex->nsent);
        ex->refused = 1;
        return;
    }

    if (p->top != (batch ? NGX_RPC_ARRAY : NGX_RPC_OBJECT)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rpc: upstream reply to a %s is not %s",
                      batch ? "batch" : "single call",
                      batch ? "an array" : "an object");
        ex->error = NGX_RPC_UPSTREAM_BAD_SHAPE;
        return;
    }

    msg = p->msgs.elts;

    for (i = 0; i < p->msgs.nelts; i++) {

        num = msg[i].num;

        /*
         * an error with a null id answers a single call: the upstream
         * could not read its id (ganache does so for unknown methods)
         */

        if (!batch && num < 0
            && msg[i].member[NGX_RPC_M_ID].type == NGX_RPC_NULL
            && msg[i].member[NGX_RPC_M_ERROR].type == NGX_RPC_OBJECT)
        {
            num = 0;
        }

        if (msg[i].type != NGX_RPC_OBJECT || num < 0
            || (ngx_uint_t) num >= ex->nsent
            || (ex->calls[num] && ex->calls[num]->notification))
        {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "rpc: upstream reply has a response with an "
                          "unknown id at position %ui", i);
            continue;
        }

        c = ex->calls[num];

        if (c == NULL) {
            /* the call timed out or its client went away */
            continue;
        }

        if (c->reply || c->error) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "rpc: upstream reply has id %i more than once",
                          num);
            continue;
        }

        result = (msg[i].member[NGX_RPC_M_RESULT].type != NGX_RPC_NONE);
        error = (msg[i].member[NGX_RPC_M_ERROR].type == NGX_RPC_OBJECT);

        if (result == error || msg[i].duplicate || !msg[i].version_ok) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "rpc: upstream response for id %i is not a valid "
                          "JSON-RPC 2.0 response", num);
            c->error = NGX_RPC_UPSTREAM_BAD_SHAPE;
            continue;
        }

        c->reply = &msg[i];

        if (max && msg[i].range.end - msg[i].range.start > max) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "rpc: upstream response for id %i is larger than "
                          "rpc_max_reply_size %O", num, max);
            c->error = NGX_RPC_UPSTREAM_TOO_LARGE;
        }
    }

    for (i = 0; i < ex->nsent; i++) {
        c = ex->calls[i];

        if (c && !c->notification && !c->reply && !c->error) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "rpc: upstream reply has no response for id %ui",
                          i);
        }
    }
}
