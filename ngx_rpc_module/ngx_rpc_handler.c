
/*
 * Request handling: parse the body as it arrives, apply policy, hand the
 * calls to the dispatcher, answer when all are done.
 */


#include "ngx_rpc.h"


static ngx_int_t ngx_rpc_body_feed(ngx_rpc_ctx_t *ctx, u_char *p,
    size_t size);
static void ngx_rpc_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_rpc_body_read(ngx_rpc_ctx_t *ctx);
static ngx_int_t ngx_rpc_dispatch(ngx_rpc_ctx_t *ctx);
static void ngx_rpc_finish(ngx_rpc_ctx_t *ctx);
static void ngx_rpc_fail(ngx_rpc_ctx_t *ctx);
static void ngx_rpc_wake_handler(ngx_event_t *ev);
static void ngx_rpc_timeout_handler(ngx_event_t *ev);
static void ngx_rpc_cleanup(void *data);


ngx_int_t
ngx_rpc_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_pool_t                *pool;
    ngx_rpc_ctx_t             *ctx;
    ngx_table_elt_t           *h;
    ngx_pool_cleanup_t        *cln;
    ngx_rpc_loc_conf_t        *rlcf;
    ngx_http_core_loc_conf_t  *clcf;

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

    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);

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

    /* the message's own things go to a pool kept for reuse */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pool = ngx_rpc_pool_get(r->connection->log);
    if (pool == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_rpc_pool_free;
    cln->data = pool;

    ctx = ngx_pcalloc(pool, sizeof(ngx_rpc_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->pool = pool;
    ngx_http_set_ctx(r, ctx, ngx_rpc_module);

    if (ngx_rpc_parse_init(&ctx->parser, pool, r->connection->log,
                           rlcf->max_depth, rlcf->max_batch, 4)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
    size_t          size;
    ngx_buf_t      *b;
    ngx_chain_t    *cl;
    ngx_rpc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (ctx == NULL || ctx->request != r) {
        return ngx_rpc_next_request_body_filter(r, in);
    }

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
ngx_rpc_body_feed(ngx_rpc_ctx_t *ctx, u_char *p, size_t size)
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
    ngx_rpc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_rpc_module);

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

    if (ngx_rpc_dispatch(ctx) != NGX_OK) {
        ngx_rpc_fail(ctx);
        return;
    }

    if (ctx->pending == 0) {
        ngx_rpc_finish(ctx);
    }
}


/*
 * The body was read before the content handler ran (mirror reads it in
 * its phase): it is parsed from the buffers and file nginx kept.
 */

static ngx_int_t
ngx_rpc_body_read(ngx_rpc_ctx_t *ctx)
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


static ngx_int_t
ngx_rpc_dispatch(ngx_rpc_ctx_t *ctx)
{
    ngx_int_t             rc;
    ngx_uint_t            i, refused;
    ngx_rpc_msg_t        *msg;
    ngx_rpc_call_t       *call;
    ngx_rpc_parser_t     *p;
    ngx_connection_t     *c;
    ngx_pool_cleanup_t   *cln;
    ngx_http_request_t   *r;
    ngx_rpc_loc_conf_t   *rlcf;

    r = ctx->request;
    p = &ctx->parser;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);

    if (ngx_array_init(&ctx->calls, ctx->pool, ngx_max(p->msgs.nelts, 1),
                       sizeof(ngx_rpc_call_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* calls may wait for others and lead others: cleaned up in any case */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_rpc_cleanup;
    cln->data = ctx;

    ctx->wake.handler = ngx_rpc_wake_handler;
    ctx->wake.data = ctx;
    ctx->wake.log = r->connection->log;

    if (p->error) {
        ctx->error = p->error;
        return NGX_OK;
    }

    ctx->batch = (p->top == NGX_RPC_ARRAY);

    if ((p->top != NGX_RPC_OBJECT && !ctx->batch) || p->msgs.nelts == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "rpc: body is neither a request nor a batch");
        ctx->error = NGX_RPC_INVALID_REQUEST;
        return NGX_OK;
    }

    msg = p->msgs.elts;
    refused = 0;

    for (i = 0; i < p->msgs.nelts; i++) {
        call = ngx_array_push(&ctx->calls);
        if (call == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(call, sizeof(ngx_rpc_call_t));
        call->ctx = ctx;
        call->msg = &msg[i];

        rc = ngx_rpc_policy_check(rlcf, &msg[i]);

        if (rc == NGX_RPC_INVALID_REQUEST) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "rpc: invalid request at position %ui", i);
            ngx_rpc_call_done(call, rc);
            continue;
        }

        call->notification =
                        (msg[i].member[NGX_RPC_M_ID].type == NGX_RPC_NONE);

        if (rc) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "rpc: method \"%V\" not allowed", &msg[i].method);
            ngx_rpc_call_done(call, rc);
            continue;
        }

        if (ngx_rpc_call_hold(call, rlcf->max_pending) != NGX_OK) {
            ngx_rpc_call_done(call, NGX_RPC_OVERLOADED);
            refused++;
            continue;
        }

        call->upstream = ngx_rpc_policy_route(rlcf, &msg[i].method);

        rc = ngx_rpc_cache_lookup(call);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            ngx_rpc_call_done(call, 0);
            continue;
        }

        call->send = (rc == NGX_DECLINED);
        ngx_rpc_call_wait(call);
    }

    if (refused) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "rpc: %ui calls refused, rpc_max_pending %ui reached",
                      refused, rlcf->max_pending);
    }

    /* with Redis lookups out, calls go upstream once all are back */

    if (ctx->lookups == 0 && ngx_rpc_dispatcher_send(ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->pending == 0) {
        return NGX_OK;
    }

    ctx->timer.handler = ngx_rpc_timeout_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, rlcf->timeout);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_rpc_handler_wake;

    /* a client that hangs up is noticed at once, as with proxy_pass */

    c = r->connection;

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_rpc_handler_wake(ngx_http_request_t *r)
{
    ngx_rpc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (ctx->pending == 0 && !ctx->responded) {
        ngx_rpc_finish(ctx);
    }
}


static void
ngx_rpc_wake_handler(ngx_event_t *ev)
{
    ngx_rpc_ctx_t       *ctx;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    if (ctx->responded) {
        return;
    }

    if (ctx->lookups == 0 && ngx_rpc_dispatcher_send(ctx) != NGX_OK) {
        ngx_rpc_fail(ctx);

    } else if (ctx->pending == 0) {
        ngx_rpc_finish(ctx);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_rpc_finish(ngx_rpc_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ctx->responded = 1;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_finalize_request(r, ngx_rpc_response_send(ctx));
}


/*
 * Something failed (no memory, no subrequest): the calls still waiting
 * leave what they wait for, as the client gets a 500 and no answer, and
 * exchanges already started must not answer the message again.
 */

static void
ngx_rpc_fail(ngx_rpc_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;
    ctx->responded = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_rpc_call_cancel_all(ctx, NGX_RPC_UPSTREAM_UNAVAILABLE);

    r->read_event_handler = ngx_http_block_reading;
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


static void
ngx_rpc_timeout_handler(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_rpc_ctx_t       *ctx;
    ngx_rpc_call_t      *call;
    ngx_connection_t    *c;
    ngx_rpc_exchange_t  *last;
    ngx_rpc_loc_conf_t  *rlcf;

    ctx = ev->data;
    c = ctx->request->connection;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "rpc: calls not answered within rpc_timeout %M",
                  rlcf->timeout);

    /* a client that timed out still logs the tries made for it */

    last = NULL;
    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {
        if (!call[i].done && call[i].exchange
            && call[i].exchange != last)
        {
            last = call[i].exchange;
            ngx_rpc_upstream_states(last, ctx->request);
        }
    }

    ngx_rpc_call_cancel_all(ctx, NGX_RPC_UPSTREAM_TIMEOUT);

    ngx_rpc_finish(ctx);
    ngx_http_run_posted_requests(c);
}


/*
 * The request is going away: nothing may wake it from here on, its calls
 * leave what they wait for, and only then is a posted wake deleted, as the
 * pool it lives in is freed next.
 */

static void
ngx_rpc_cleanup(void *data)
{
    ngx_rpc_ctx_t  *ctx = data;

    ctx->responded = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_rpc_call_cancel_all(ctx, 0);
    ngx_rpc_dispatcher_release(ctx);

    if (ctx->wake.posted) {
        ngx_delete_posted_event(&ctx->wake);
    }
}
