
/*
 * One client message, whatever carried it: its calls are checked, routed
 * and sent on their way, and once every call is done, or the message times
 * out or fails, the session's transport answers it.
 */


#include "ngx_rpc.h"


static void ngx_rpc_message_wake_handler(ngx_event_t *ev);
static void ngx_rpc_message_timeout_handler(ngx_event_t *ev);


/* a message with a pool of its own, parsed with the location's limits */

ngx_rpc_message_t *
ngx_rpc_message_create(ngx_rpc_session_t *s)
{
    ngx_pool_t          *pool;
    ngx_connection_t    *c;
    ngx_rpc_message_t   *ctx;
    ngx_rpc_loc_conf_t  *rlcf;

    c = s->request->connection;
    rlcf = ngx_http_get_module_loc_conf(s->request, ngx_rpc_module);

    pool = ngx_rpc_pool_get(c->log);
    if (pool == NULL) {
        return NULL;
    }

    ctx = ngx_pcalloc(pool, sizeof(ngx_rpc_message_t));
    if (ctx == NULL) {
        ngx_rpc_pool_free(pool);
        return NULL;
    }

    ctx->session = s;
    ctx->request = s->request;
    ctx->pool = pool;
    ctx->start = ngx_current_msec;

    ctx->wake.handler = ngx_rpc_message_wake_handler;
    ctx->wake.data = ctx;
    ctx->wake.log = c->log;

    ctx->timer.handler = ngx_rpc_message_timeout_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = c->log;

    if (ngx_rpc_parse_init(&ctx->parser, pool, c->log, rlcf->max_depth,
                           rlcf->max_batch, 4)
        != NGX_OK)
    {
        ngx_rpc_pool_free(pool);
        return NULL;
    }

    return ctx;
}


/*
 * The message is parsed: each call is checked, and answered at once (an
 * invalid or denied call, a refused one, a cache hit) or sent to wait.
 * The caller answers the message when nothing is pending.
 */

ngx_int_t
ngx_rpc_message_dispatch(ngx_rpc_message_t *ctx)
{
    ngx_int_t            rc;
    ngx_log_t           *log;
    ngx_uint_t           i, refused;
    ngx_rpc_msg_t       *msg;
    ngx_rpc_call_t      *call;
    ngx_rpc_parser_t    *p;
    ngx_rpc_loc_conf_t  *rlcf;

    p = &ctx->parser;
    log = ctx->request->connection->log;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);

    ctx->session->messages++;

    if (ngx_array_init(&ctx->calls, ctx->pool, ngx_max(p->msgs.nelts, 1),
                       sizeof(ngx_rpc_call_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (p->error) {
        ctx->error = p->error;
        ngx_rpc_metrics_message(ctx);
        return NGX_OK;
    }

    ctx->batch = (p->top == NGX_RPC_ARRAY);

    if ((p->top != NGX_RPC_OBJECT && !ctx->batch) || p->msgs.nelts == 0) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rpc: message is neither a request nor a batch");
        ctx->error = NGX_RPC_INVALID_REQUEST;
        ngx_rpc_metrics_message(ctx);
        return NGX_OK;
    }

    ctx->session->calls += p->msgs.nelts;

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
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "rpc: invalid request at position %ui", i);
            ngx_rpc_call_done(call, rc);
            continue;
        }

        call->notification =
                        (msg[i].member[NGX_RPC_M_ID].type == NGX_RPC_NONE);

        if (rc) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "rpc: method \"%V\" not allowed", &msg[i].method);
            ngx_rpc_call_done(call, rc);
            continue;
        }

        /* never over HTTP: a subscription needs the client's socket */

        call->subscribe = ngx_rpc_subscribe_method(rlcf, &msg[i].method);

        if (call->subscribe
            && (ctx->session->ws == NULL || rlcf->subscribe == NULL))
        {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "rpc: method \"%V\" needs a WebSocket with "
                          "rpc_subscribe_pass", &msg[i].method);
            ngx_rpc_call_done(call, NGX_RPC_METHOD_NOT_FOUND);
            continue;
        }

        if (ngx_rpc_call_hold(call, rlcf->max_pending) != NGX_OK) {
            ngx_rpc_call_done(call, NGX_RPC_OVERLOADED);
            refused++;
            continue;
        }

        call->upstream = ngx_rpc_policy_route(rlcf, &msg[i].method);

        /* charged in message order: a refused call gets its own error */

        rc = ngx_rpc_limit_call(call);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ctx->limited++;
            ngx_rpc_call_done(call, NGX_RPC_LIMITED);
            continue;
        }

        if (rc == NGX_AGAIN) {
            ngx_rpc_call_wait(call);
            continue;
        }

        rc = ngx_rpc_call_start(call);

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

    ngx_rpc_metrics_message(ctx);

    if (refused) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rpc: %ui calls refused, rpc_max_pending %ui reached",
                      refused, rlcf->max_pending);
    }

    /* with Redis lookups out, calls go upstream once all are back */

    if (ctx->lookups == 0 && ngx_rpc_dispatcher_send(ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->pending) {
        ngx_add_timer(&ctx->timer, rlcf->timeout);
    }

    return NGX_OK;
}


/* every call is done: the transport answers, and may free the message */

void
ngx_rpc_message_answer(ngx_rpc_message_t *ctx)
{
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ctx->responded = 1;
    ctx->session->answer(ctx);
}


/*
 * Something failed (no memory, no subrequest): the calls still waiting
 * leave what they wait for, as the message gets no answer of calls, and
 * exchanges already started must not answer it again.
 */

void
ngx_rpc_message_fail(ngx_rpc_message_t *ctx)
{
    ctx->responded = 1;
    ctx->failed = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_rpc_call_cancel_all(ctx, NGX_RPC_UPSTREAM_UNAVAILABLE);

    ctx->session->answer(ctx);
}


static void
ngx_rpc_message_wake_handler(ngx_event_t *ev)
{
    ngx_connection_t   *c;
    ngx_rpc_message_t  *ctx;

    ctx = ev->data;
    c = ctx->request->connection;

    if (ctx->responded) {
        return;
    }

    if (ctx->lookups == 0 && ngx_rpc_dispatcher_send(ctx) != NGX_OK) {
        ngx_rpc_message_fail(ctx);

    } else if (ctx->pending == 0) {
        ngx_rpc_message_answer(ctx);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_rpc_message_timeout_handler(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_rpc_call_t      *call;
    ngx_connection_t    *c;
    ngx_rpc_message_t   *ctx;
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

    ngx_rpc_message_answer(ctx);
    ngx_http_run_posted_requests(c);
}


/*
 * The message is going away: nothing may wake it from here on, its calls
 * leave what they wait for, and only then is a posted wake deleted, as the
 * pool it lives in is freed next.  Also a pool cleanup handler.
 */

void
ngx_rpc_message_free(void *data)
{
    ngx_rpc_message_t  *ctx = data;

    ctx->responded = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_rpc_call_cancel_all(ctx, 0);
    ngx_rpc_dispatcher_release(ctx);

    if (ctx->wake.posted) {
        ngx_delete_posted_event(&ctx->wake);
    }

    ngx_rpc_pool_free(ctx->pool);
}
