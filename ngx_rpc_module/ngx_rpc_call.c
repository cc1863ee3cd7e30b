
/*
 * The life of a call: the one place where a call is sent to wait, where
 * its outcome is set, and where it is taken out of what it waits for.
 * The held-calls count of rpc_max_pending and the message's wake-up are
 * kept here and nowhere else.
 */


#include "ngx_rpc.h"


/* calls of this worker admitted and not answered yet, for rpc_max_pending */
static ngx_uint_t  ngx_rpc_held_calls;


/* NGX_DECLINED when the worker already holds max calls (0: no limit) */

ngx_int_t
ngx_rpc_call_hold(ngx_rpc_call_t *call, ngx_uint_t max)
{
    if (max && ngx_rpc_held_calls >= max) {
        return NGX_DECLINED;
    }

    ngx_rpc_held_calls++;
    call->held = 1;
    ngx_rpc_metrics_gauge(NGX_RPC_MX_HELD, ngx_rpc_held_calls);

    return NGX_OK;
}


/*
 * Past rpc_limit, the call is answered by a subscription of its session's,
 * from the cache, or sent upstream: NGX_OK (answered), NGX_DECLINED (to
 * send), NGX_AGAIN (waiting), NGX_ERROR, as ngx_rpc_cache_lookup() says.
 */

ngx_int_t
ngx_rpc_call_start(ngx_rpc_call_t *call)
{
    if (call->subscribe) {
        return ngx_rpc_subscribe_call(call);
    }

    return ngx_rpc_cache_lookup(call);
}


/* the call waits for an answer from elsewhere */

void
ngx_rpc_call_wait(ngx_rpc_call_t *call)
{
    if (call->waiting) {
        return;
    }

    call->waiting = 1;
    call->ctx->pending++;
}


/*
 * The call's outcome is final: code, a gateway error, or else what was left
 * in reply or answer.  Once every call of the message is done, the message
 * is woken, unless it has answered or is going away.
 */

void
ngx_rpc_call_done(ngx_rpc_call_t *call, ngx_int_t code)
{
    ngx_rpc_message_t  *ctx;

    if (call->done) {
        return;
    }

    ctx = call->ctx;

    call->done = 1;
    call->send = 0;

    if (code) {
        call->error = code;
    }

    ngx_rpc_metrics_call(call);

    /* the identical calls that waited for it get the same answer */

    if (call->flight) {
        if (call->flight->leader == call) {
            ngx_rpc_flight_land(call);

        } else {
            ngx_rpc_flight_leave(call);
        }
    }

    if (call->held) {
        call->held = 0;
        ngx_rpc_held_calls--;
        ngx_rpc_metrics_gauge(NGX_RPC_MX_HELD, ngx_rpc_held_calls);
    }

    if (!call->waiting) {
        return;
    }

    call->waiting = 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "rpc: call %ui done, code %i, %ui pending",
                   (ngx_uint_t) (call - (ngx_rpc_call_t *) ctx->calls.elts),
                   call->error, ctx->pending - 1);

    if (--ctx->pending == 0) {
        ngx_rpc_message_wake(ctx);
    }
}


/*
 * The call leaves whatever it waits for and ends with code: the message
 * timed out, or (code 0) is going away and answers nobody.
 */

void
ngx_rpc_call_cancel(ngx_rpc_call_t *call, ngx_int_t code)
{
    ngx_rpc_message_t  *ctx;

    ctx = call->ctx;

    if (call->lookup) {
        ngx_rpc_redis_cancel(call->lookup);
        call->lookup = NULL;
        ctx->lookups--;
    }

    if (call->flight) {
        ngx_rpc_flight_leave(call);
    }

    ngx_rpc_limit_cancel(call);
    ngx_rpc_subscribe_cancel(call);
    ngx_rpc_dispatcher_cancel(call);

    ngx_rpc_call_done(call, code);
}


/*
 * Every call of the message still waiting is cancelled.  Calls that wait
 * on a flight leave first, so that a flight led by a call of the same
 * message is never handed over to another call of it.
 */

void
ngx_rpc_call_cancel_all(ngx_rpc_message_t *ctx, ngx_int_t code)
{
    ngx_uint_t       i;
    ngx_rpc_call_t  *call;

    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {
        if (call[i].flight && call[i].flight->leader != &call[i]) {
            ngx_rpc_call_cancel(&call[i], code);
        }
    }

    for (i = 0; i < ctx->calls.nelts; i++) {
        if (!call[i].done) {
            ngx_rpc_call_cancel(&call[i], code);
        }
    }
}


/* posted, so that no other request's code runs inside the caller's stack */

void
ngx_rpc_message_wake(ngx_rpc_message_t *ctx)
{
    if (ctx->responded || ctx->wake.posted) {
        return;
    }

    ngx_post_event(&ctx->wake, &ngx_posted_events);
}
