
/*
 * Calls in flight: per worker, identical cacheable calls (same cache key)
 * wait for the first one, the leader, instead of going upstream again.
 */


#include "ngx_rpc.h"


static ngx_rbtree_t       ngx_rpc_flights;
static ngx_rbtree_node_t  ngx_rpc_flights_sentinel;


/*
 * NGX_AGAIN: the call waits for an identical one in flight in this worker;
 * NGX_DECLINED: it leads, identical calls after it will wait for it (or,
 * with no memory for the flight, it leads nothing).
 */

ngx_int_t
ngx_rpc_flight_join(ngx_rpc_call_t *call)
{
    ngx_rpc_flight_t  *f;

    if (ngx_rpc_flights.root == NULL) {
        ngx_rbtree_init(&ngx_rpc_flights, &ngx_rpc_flights_sentinel,
                        ngx_str_rbtree_insert_value);
    }

    f = (ngx_rpc_flight_t *) ngx_str_rbtree_lookup(&ngx_rpc_flights,
                                                   &call->key, call->hash);

    if (f) {
        ngx_queue_insert_tail(&f->waiters, &call->queue);
        call->flight = f;
        call->cache_status = NGX_RPC_CACHE_COLLAPSED;
        return NGX_AGAIN;
    }

    f = ngx_alloc(sizeof(ngx_rpc_flight_t) + call->key.len, ngx_cycle->log);
    if (f == NULL) {
        return NGX_DECLINED;
    }

    f->sn.node.key = call->hash;
    f->sn.str.len = call->key.len;
    f->sn.str.data = (u_char *) &f[1];
    ngx_memcpy(f->sn.str.data, call->key.data, call->key.len);

    f->leader = call;
    ngx_queue_init(&f->waiters);
    ngx_rbtree_insert(&ngx_rpc_flights, &f->sn.node);

    call->flight = f;

    return NGX_DECLINED;
}


/*
 * The leader's outcome goes to each waiting call: its result or upstream
 * error object (a slice of its exchange's reply, or its own answer bytes),
 * copied into the waiter's pool, or the gateway's code.
 */

void
ngx_rpc_flight_land(ngx_rpc_call_t *call)
{
    ngx_str_t          value;
    ngx_int_t          code, wcode;
    ngx_uint_t         error;
    ngx_queue_t       *q;
    ngx_rpc_msg_t     *reply;
    ngx_rpc_call_t    *w;
    ngx_rpc_value_t   *v;
    ngx_rpc_flight_t  *f;
    ngx_rpc_parser_t  *p;

    f = call->flight;
    call->flight = NULL;

    ngx_rbtree_delete(&ngx_rpc_flights, &f->sn.node);

    code = call->error;
    reply = call->reply;
    error = call->answer_error;
    p = NULL;
    v = NULL;
    value = call->answer;

    if (code == 0 && reply) {
        p = &call->exchange->reply;
        v = &reply->member[NGX_RPC_M_RESULT];
        error = (v->type == NGX_RPC_NONE);

        if (error) {
            v = &reply->member[NGX_RPC_M_ERROR];
        }

        value.len = v->range.end - v->range.start;

    } else if (code == 0 && value.data == NULL) {
        code = NGX_RPC_UPSTREAM_NO_RESULT;
    }

    while (!ngx_queue_empty(&f->waiters)) {
        q = ngx_queue_head(&f->waiters);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_rpc_call_t, queue);
        w->flight = NULL;
        wcode = code;

        if (code == 0) {
            w->answer_error = error;
            w->answer_code = reply ? reply->code : call->answer_code;
            w->answer_code_ok = reply ? reply->code_ok
                                      : call->answer_code_ok;

            w->answer.len = value.len;
            w->answer.data = ngx_pnalloc(w->ctx->pool, value.len);

            if (w->answer.data == NULL) {
                ngx_str_null(&w->answer);
                wcode = NGX_RPC_UPSTREAM_UNAVAILABLE;

            } else if (p) {
                (void) ngx_rpc_parse_copy_to(p, &v->range, w->answer.data);

            } else {
                ngx_memcpy(w->answer.data, value.data, value.len);
            }
        }

        ngx_rpc_call_done(w, wcode);
    }

    ngx_free(f);
}


/*
 * A call leaves its flight: a waiter just leaves, a leader hands the lead
 * to the first waiter, which then goes upstream itself.
 */

void
ngx_rpc_flight_leave(ngx_rpc_call_t *call)
{
    ngx_queue_t       *q;
    ngx_rpc_call_t    *w;
    ngx_rpc_flight_t  *f;

    f = call->flight;
    call->flight = NULL;

    if (f->leader != call) {
        ngx_queue_remove(&call->queue);
        return;
    }

    if (ngx_queue_empty(&f->waiters)) {
        ngx_rbtree_delete(&ngx_rpc_flights, &f->sn.node);
        ngx_free(f);
        return;
    }

    q = ngx_queue_head(&f->waiters);
    ngx_queue_remove(q);

    w = ngx_queue_data(q, ngx_rpc_call_t, queue);
    w->send = 1;
    w->cache_status = NGX_RPC_CACHE_MISS;
    f->leader = w;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, w->ctx->request->connection->log, 0,
                   "rpc: flight handed over to a waiting call");

    ngx_rpc_message_wake(w->ctx);
}
