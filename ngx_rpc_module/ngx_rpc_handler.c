
/*
 * Request handling: parse the body as it arrives, apply policy, hand the
 * calls to the dispatcher, answer when all are done.
 */


#include "ngx_rpc.h"


static ngx_int_t ngx_rpc_body_feed(ngx_rpc_message_t *ctx, u_char *p,
    size_t size);
static void ngx_rpc_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_rpc_body_read(ngx_rpc_message_t *ctx);
static void ngx_rpc_http_answer(ngx_rpc_message_t *ctx);


ngx_int_t
ngx_rpc_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_table_elt_t           *h;
    ngx_rpc_session_t         *s;
    ngx_rpc_message_t         *ctx;
    ngx_pool_cleanup_t        *cln;
    ngx_rpc_loc_conf_t        *rlcf;
    ngx_http_core_loc_conf_t  *clcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);

    if (rlcf->websocket && ngx_rpc_websocket_upgrade(r)) {
        return ngx_rpc_websocket_handler(r);
    }

    if (!(r->method & NGX_HTTP_POST)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "rpc: method \"%V\" not allowed", &r->method_name);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "POST");

        return ngx_rpc_response_error(r, NGX_HTTP_NOT_ALLOWED,
                                      NGX_RPC_INVALID_REQUEST);
    }

    if (rlcf->max_body_size
        && r->headers_in.content_length_n > rlcf->max_body_size)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client intended to send too large body: %O bytes",
                      r->headers_in.content_length_n);

        r->expect_tested = 1;

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_rpc_response_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      NGX_RPC_BODY_TOO_LARGE);
    }

    s = ngx_pcalloc(r->pool, sizeof(ngx_rpc_session_t));
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->request = r;
    s->answer = ngx_rpc_http_answer;

    /* the message and its calls go with the request, whatever happens */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_rpc_message_create(s);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_rpc_message_free;
    cln->data = ctx;

    s->ctx = ctx;
    ngx_http_set_ctx(r, s, ngx_rpc_module);

    /*
     * The body is parsed as it arrives, where nginx read it.  A body that
     * may not fit in client_body_buffer_size goes to a temp file, and the
     * buffer is reused: its bytes are copied before they are parsed.
     */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx->copy_body = (r->headers_in.content_length_n < 0
                      || r->headers_in.content_length_n
                         > (off_t) clcf->client_body_buffer_size
                      || r->request_body_in_file_only);

    /* a body read before this handler (mirror) did not pass the filter */

    ctx->read_body = (r->request_body != NULL);

    rc = ngx_http_read_client_request_body(r, ngx_rpc_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * Each piece of the body is parsed as it arrives.  Once the body is known
 * to be bad (not JSON, too deep, too large a batch) or over the limit of a
 * chunked body, its bytes are dropped: nothing more is kept or written to
 * a temp file, and the body handler answers with a JSON-RPC error once the
 * body is read (answering here would make nginx send its own page).
 */

ngx_int_t
ngx_rpc_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t              size;
    ngx_buf_t          *b;
    ngx_chain_t        *cl;
    ngx_rpc_session_t  *s;
    ngx_rpc_message_t  *ctx;

    s = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (s == NULL || s->request != r || s->ctx == NULL) {
        return ngx_rpc_next_request_body_filter(r, in);
    }

    ctx = s->ctx;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = b->last - b->pos;

        if (ngx_rpc_body_feed(ctx, b->pos, size) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ctx->too_large || ctx->parser.error) {
            b->pos = b->last;
        }
    }

    return ngx_rpc_next_request_body_filter(r, in);
}


/*
 * A piece of the body is counted and parsed, in place or from a copy; once
 * the body is known to be bad or too large, nothing more is kept.
 */

static ngx_int_t
ngx_rpc_body_feed(ngx_rpc_message_t *ctx, u_char *p, size_t size)
{
    u_char              *copy;
    ngx_http_request_t  *r;
    ngx_rpc_loc_conf_t  *rlcf;

    r = ctx->request;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);

    ctx->body_size += size;

    if (rlcf->max_body_size && ctx->body_size > rlcf->max_body_size
        && !ctx->too_large)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client intended to send too large chunked body: "
                      "%O bytes", ctx->body_size);
        ctx->too_large = 1;
    }

    if (ctx->too_large || ctx->parser.error || size == 0) {
        return NGX_OK;
    }

    if (ctx->copy_body) {
        copy = ngx_pnalloc(ctx->pool, size);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(copy, p, size);
        p = copy;
    }

    if (ngx_rpc_parse_feed(&ctx->parser, p, size) != NGX_OK
        && ctx->parser.error == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_rpc_body_handler(ngx_http_request_t *r)
{
    ngx_connection_t   *c;
    ngx_rpc_session_t  *s;
    ngx_rpc_message_t  *ctx;

    s = ngx_http_get_module_ctx(r, ngx_rpc_module);
    ctx = s->ctx;

    if (ctx->read_body && ngx_rpc_body_read(ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->too_large) {
        r->keepalive = 0;
        ngx_http_finalize_request(r,
                   ngx_rpc_response_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          NGX_RPC_BODY_TOO_LARGE));
        return;
    }

    if (!ctx->parser.error) {
        (void) ngx_rpc_parse_finish(&ctx->parser);
    }

    if (ctx->parser.error == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_rpc_message_dispatch(ctx) != NGX_OK) {
        ngx_rpc_message_fail(ctx);
        return;
    }

    if (ctx->pending == 0) {
        ngx_rpc_message_answer(ctx);
        return;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_rpc_handler_wake;

    /* a client that hangs up is noticed at once, as with proxy_pass */

    c = r->connection;

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_rpc_message_fail(ctx);
    }
}


/*
 * The body was read before the content handler ran (mirror reads it in
 * its phase): it is parsed from the buffers and file nginx kept.
 */

static ngx_int_t
ngx_rpc_body_read(ngx_rpc_message_t *ctx)
{
    off_t         off;
    size_t        size;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ctx->copy_body = 0;

    for (cl = ctx->request->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            if (ngx_rpc_body_feed(ctx, b->pos, b->last - b->pos) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        if (!b->in_file) {
            continue;
        }

        for (off = b->file_pos; off < b->file_last; off += n) {
            size = (size_t) ngx_min(b->file_last - off, 16384);

            p = ngx_pnalloc(ctx->pool, size);
            if (p == NULL) {
                return NGX_ERROR;
            }

            n = ngx_read_file(b->file, p, size, off);

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (n == 0) {
                ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                              "rpc: request body file \"%V\" is short",
                              &b->file->name);
                return NGX_ERROR;
            }

            if (ngx_rpc_body_feed(ctx, p, n) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * The HTTP transport's answer: the response, or a 500 for a message that
 * failed; the message is freed with the request.
 */

static void
ngx_rpc_http_answer(ngx_rpc_message_t *ctx)
{
    u_char              *p;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = ctx->request;
    r->read_event_handler = ngx_http_block_reading;

    if (ctx->failed) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* every call refused by rpc_limit: 429, and when to come back */

    if (ctx->limited && ctx->limited == ctx->calls.nelts) {
        h = ngx_list_push(&r->headers_out.headers);
        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);

        if (h == NULL || p == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%M",
                                   ngx_max((ctx->retry + 999) / 1000, 1))
                       - p;

        r->headers_out.status = NGX_HTTP_TOO_MANY_REQUESTS;
    }

    ngx_http_finalize_request(r, ngx_rpc_response_send(ctx));
}


void
ngx_rpc_handler_wake(ngx_http_request_t *r)
{
    ngx_rpc_session_t  *s;

    s = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (s->ctx->pending == 0 && !s->ctx->responded) {
        ngx_rpc_message_answer(s->ctx);
    }
}
