
/*
 * Dispatcher: calls go upstream in exchanges that the worker owns, not the
 * client.  With rpc_upstream_batch, the calls of all clients of a location
 * bound for one upstream queue on a batcher and go out SIZE at a time, or
 * when the window ends; with it off, the calls of a message to one upstream
 * make one exchange at once.  An exchange has its own pool and runs as a
 * background subrequest of a request of its own, on a connection without a
 * socket: a client that goes away or times out only takes its calls out,
 * and the exchange is freed once no call refers to it.
 */


#include "ngx_rpc.h"


/* an upstream that refused a batch gets single calls for this long */
#define NGX_RPC_SINGLE_TIME  60000
#define NGX_RPC_SINGLE_MAX   64

typedef struct {
    ngx_http_upstream_srv_conf_t  *upstream;
    ngx_msec_t                     until;
} ngx_rpc_single_t;


static ngx_uint_t ngx_rpc_single_only(ngx_http_upstream_conf_t *conf);
static void ngx_rpc_single_remember(ngx_http_upstream_conf_t *conf);
static ngx_int_t ngx_rpc_single_send(ngx_rpc_call_t *call);
static ngx_rpc_batcher_t *ngx_rpc_batcher(ngx_http_request_t *r,
    ngx_http_upstream_conf_t *conf);
static void ngx_rpc_batcher_flush(ngx_event_t *ev);
static ngx_int_t ngx_rpc_batcher_send(ngx_rpc_batcher_t *b, ngx_uint_t n);
static ngx_rpc_exchange_t *ngx_rpc_exchange_create(ngx_http_request_t *cr,
    ngx_http_upstream_conf_t *conf, ngx_uint_t n, ngx_uint_t batch);
static ngx_int_t ngx_rpc_exchange_add(ngx_rpc_exchange_t *ex,
    ngx_rpc_call_t *call, ngx_chain_t ***ll);
static ngx_int_t ngx_rpc_exchange_start(ngx_rpc_exchange_t *ex,
    ngx_chain_t **ll);
static void ngx_rpc_exchange_fail(ngx_rpc_exchange_t *ex);
static void ngx_rpc_exchange_detach(ngx_rpc_call_t *call);
static void ngx_rpc_exchange_unref(ngx_rpc_call_t *call);
static void ngx_rpc_exchange_free(ngx_event_t *ev);
static u_char *ngx_rpc_exchange_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


static ngx_queue_t       ngx_rpc_batchers;
static ngx_rpc_single_t  ngx_rpc_singles[NGX_RPC_SINGLE_MAX];
static ngx_uint_t        ngx_rpc_nsingles;


/* the calls of ctx marked to send go to their batchers or exchanges */

ngx_int_t
ngx_rpc_dispatcher_send(ngx_rpc_message_t *ctx)
{
    ngx_uint_t                 i, j, n;
    ngx_chain_t              **ll;
    ngx_rpc_call_t            *call;
    ngx_rpc_batcher_t         *b;
    ngx_rpc_exchange_t        *ex;
    ngx_rpc_loc_conf_t        *rlcf;
    ngx_http_upstream_conf_t  *conf;

    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);
    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {

        if (!call[i].send) {
            continue;
        }

        if (ngx_rpc_single_only(call[i].upstream)) {
            call[i].send = 0;

            if (ngx_rpc_single_send(&call[i]) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        if (rlcf->upstream_batch) {
            b = ngx_rpc_batcher(ctx->request, call[i].upstream);
            if (b == NULL) {
                return NGX_ERROR;
            }

            call[i].send = 0;
            call[i].batcher = b;
            ngx_queue_insert_tail(&b->calls, &call[i].link);
            b->ncalls++;

            if (b->ncalls >= rlcf->upstream_batch || rlcf->window == 0) {
                if (!b->flush.posted) {
                    ngx_post_event(&b->flush, &ngx_posted_events);
                }

            } else if (!b->flush.timer_set) {
                ngx_add_timer(&b->flush, rlcf->window);
            }

            continue;
        }

        /* off: the message's calls to this upstream, as the client sent */

        conf = call[i].upstream;
        n = 0;

        for (j = i; j < ctx->calls.nelts; j++) {
            n += (call[j].send && call[j].upstream == conf);
        }

        ex = ngx_rpc_exchange_create(ctx->request, conf, n, ctx->batch);
        if (ex == NULL) {
            return NGX_ERROR;
        }

        ll = &ex->body;

        for (j = i; j < ctx->calls.nelts; j++) {
            if (!call[j].send || call[j].upstream != conf) {
                continue;
            }

            call[j].send = 0;

            if (ngx_rpc_exchange_add(ex, &call[j], &ll) != NGX_OK) {
                ngx_rpc_exchange_fail(ex);
                return NGX_ERROR;
            }
        }

        if (ngx_rpc_exchange_start(ex, ll) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_rpc_single_only(ngx_http_upstream_conf_t *conf)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_rpc_nsingles; i++) {

        if (ngx_rpc_singles[i].upstream != conf->upstream) {
            continue;
        }

        if ((ngx_msec_int_t) (ngx_rpc_singles[i].until - ngx_current_msec)
            > 0)
        {
            return 1;
        }

        ngx_rpc_singles[i] = ngx_rpc_singles[--ngx_rpc_nsingles];
        return 0;
    }

    return 0;
}


static void
ngx_rpc_single_remember(ngx_http_upstream_conf_t *conf)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_rpc_nsingles; i++) {
        if (ngx_rpc_singles[i].upstream == conf->upstream) {
            break;
        }
    }

    if (i == NGX_RPC_SINGLE_MAX) {
        /* the table is full: an entry is replaced */
        i = 0;

    } else if (i == ngx_rpc_nsingles) {
        ngx_rpc_nsingles++;
    }

    ngx_rpc_singles[i].upstream = conf->upstream;
    ngx_rpc_singles[i].until = ngx_current_msec + NGX_RPC_SINGLE_TIME;
}


/* a call in an exchange of its own, not as a batch */

static ngx_int_t
ngx_rpc_single_send(ngx_rpc_call_t *call)
{
    ngx_chain_t         **ll;
    ngx_rpc_exchange_t   *ex;

    ex = ngx_rpc_exchange_create(call->ctx->request, call->upstream, 1, 0);
    if (ex == NULL) {
        return NGX_ERROR;
    }

    ll = &ex->body;

    if (ngx_rpc_exchange_add(ex, call, &ll) != NGX_OK) {
        ngx_rpc_exchange_fail(ex);
        return NGX_ERROR;
    }

    return ngx_rpc_exchange_start(ex, ll);
}


static ngx_rpc_batcher_t *
ngx_rpc_batcher(ngx_http_request_t *r, ngx_http_upstream_conf_t *conf)
{
    ngx_queue_t        *q;
    ngx_rpc_batcher_t  *b;

    if (ngx_rpc_batchers.next == NULL) {
        ngx_queue_init(&ngx_rpc_batchers);
    }

    for (q = ngx_queue_head(&ngx_rpc_batchers);
         q != ngx_queue_sentinel(&ngx_rpc_batchers);
         q = ngx_queue_next(q))
    {
        b = ngx_queue_data(q, ngx_rpc_batcher_t, queue);

        if (b->conf == conf && b->loc_conf == r->loc_conf) {
            return b;
        }
    }

    /* one per location and upstream: lives as long as the worker */

    b = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_rpc_batcher_t));
    if (b == NULL) {
        return NULL;
    }

    b->conf = conf;
    b->loc_conf = r->loc_conf;
    ngx_queue_init(&b->calls);

    b->flush.handler = ngx_rpc_batcher_flush;
    b->flush.data = b;
    b->flush.log = ngx_cycle->log;

    ngx_queue_insert_tail(&ngx_rpc_batchers, &b->queue);

    return b;
}


/* full batches go at once; when the window ends, what is queued goes too */

static void
ngx_rpc_batcher_flush(ngx_event_t *ev)
{
    ngx_uint_t           all, size;
    ngx_rpc_batcher_t   *b;
    ngx_rpc_loc_conf_t  *rlcf;

    b = ev->data;
    rlcf = b->loc_conf[ngx_rpc_module.ctx_index];
    size = rlcf->upstream_batch;

    all = ev->timedout || rlcf->window == 0;
    ev->timedout = 0;

    while (b->ncalls >= size || (all && b->ncalls)) {
        (void) ngx_rpc_batcher_send(b, ngx_min(b->ncalls, size));
    }

    if (b->ncalls == 0) {
        if (ev->timer_set) {
            ngx_del_timer(ev);
        }

    } else if (!ev->timer_set) {
        ngx_add_timer(ev, rlcf->window);
    }
}


static ngx_int_t
ngx_rpc_batcher_send(ngx_rpc_batcher_t *b, ngx_uint_t n)
{
    ngx_uint_t           i;
    ngx_queue_t         *q;
    ngx_chain_t        **ll;
    ngx_rpc_call_t      *call;
    ngx_rpc_exchange_t  *ex;

    q = ngx_queue_head(&b->calls);
    call = ngx_queue_data(q, ngx_rpc_call_t, link);

    ex = ngx_rpc_exchange_create(call->ctx->request, b->conf, n, n > 1);

    ll = ex ? &ex->body : NULL;

    for (i = 0; i < n; i++) {
        q = ngx_queue_head(&b->calls);
        ngx_queue_remove(q);
        b->ncalls--;

        call = ngx_queue_data(q, ngx_rpc_call_t, link);
        call->batcher = NULL;

        if (ex && ngx_rpc_exchange_add(ex, call, &ll) != NGX_OK) {
            ngx_rpc_exchange_fail(ex);
            ex = NULL;
        }

        if (ex == NULL) {
            ngx_rpc_call_done(call, NGX_RPC_UPSTREAM_UNAVAILABLE);
        }
    }

    if (ex == NULL) {
        return NGX_ERROR;
    }

    return ngx_rpc_exchange_start(ex, ll);
}


/*
 * The exchange and its owner: a request on a connection without a socket,
 * with the client's configuration and error log, in a pool of its own.
 */

static ngx_rpc_exchange_t *
ngx_rpc_exchange_create(ngx_http_request_t *cr,
    ngx_http_upstream_conf_t *conf, ngx_uint_t n, ngx_uint_t batch)
{
    ngx_log_t                  *log;
    ngx_pool_t                 *pool;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_rpc_exchange_t         *ex;
    ngx_rpc_loc_conf_t         *rlcf;
    ngx_http_log_ctx_t         *lctx;
    ngx_http_core_main_conf_t  *cmcf;

    pool = ngx_rpc_pool_get(cr->connection->log);
    if (pool == NULL) {
        return NULL;
    }

    ex = ngx_pcalloc(pool, sizeof(ngx_rpc_exchange_t));
    log = ngx_palloc(pool, sizeof(ngx_log_t));
    lctx = ngx_pcalloc(pool, sizeof(ngx_http_log_ctx_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));

    if (ex == NULL || log == NULL || lctx == NULL || c == NULL || r == NULL) {
        goto failed;
    }

    ex->calls = ngx_pcalloc(pool, n * sizeof(ngx_rpc_call_t *));
    c->read = ngx_pcalloc(pool, sizeof(ngx_event_t));
    c->write = ngx_pcalloc(pool, sizeof(ngx_event_t));
    r->ctx = ngx_pcalloc(pool, sizeof(void *) * ngx_http_max_module);

    cmcf = ngx_http_get_module_main_conf(cr, ngx_http_core_module);
    r->variables = ngx_pcalloc(pool, cmcf->variables.nelts
                                     * sizeof(ngx_http_variable_value_t));

    if (ex->calls == NULL || c->read == NULL || c->write == NULL
        || r->ctx == NULL || r->variables == NULL)
    {
        goto failed;
    }

    ex->pool = pool;
    ex->request = r;
    ex->conf = conf;
    ex->batch = batch;
    ex->free.handler = ngx_rpc_exchange_free;
    ex->free.data = ex;
    ex->free.log = ngx_cycle->log;

    *log = *cr->connection->log;
    log->data = lctx;
    log->handler = ngx_rpc_exchange_log_error;
    log->action = NULL;

    c->fd = (ngx_socket_t) -1;
    c->pool = pool;
    c->log = log;
    c->data = r;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->read->log = log;
    c->write->log = log;

    /*
     * nginx's upstream must not add this connection to the event loop, and
     * takes it as always writable: the reply goes to memory
     */
    c->read->active = 1;
    c->write->active = 1;
    c->write->ready = 1;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;

    log->connection = c->number;
    pool->log = log;

    rlcf = ngx_http_get_module_loc_conf(cr, ngx_rpc_module);

    r->signature = NGX_HTTP_MODULE;
    r->connection = c;
    r->pool = pool;
    r->main = r;
    r->count = 1;
    r->main_conf = cr->main_conf;
    r->srv_conf = cr->srv_conf;
    r->loc_conf = cr->loc_conf;
    r->method = NGX_HTTP_POST;
    r->http_version = NGX_HTTP_VERSION_11;
    r->uri = rlcf->uri;
    r->subrequests = NGX_HTTP_MAX_SUBREQUESTS + 1;
    r->uri_changes = NGX_HTTP_MAX_URI_CHANGES + 1;
    r->start_sec = ngx_time();
    r->start_msec = ngx_current_msec % 1000;
    r->headers_in.content_length_n = -1;
    r->headers_in.keep_alive_n = -1;

    lctx->connection = c;
    lctx->request = r;
    lctx->current_request = r;

    return ex;

failed:

    ngx_destroy_pool(pool);
    return NULL;
}


/*
 * {"jsonrpc":"2.0","id":N,"method":"m","params":<client bytes>}: N, the
 * call's slot in the exchange, is the gateway id.  The method is copied
 * into the call's head, the params stay in the client's buffers.  The head
 * also closes the previous call; the last is closed by the start.
 */

static ngx_int_t
ngx_rpc_exchange_add(ngx_rpc_exchange_t *ex, ngx_rpc_call_t *call,
    ngx_chain_t ***ll)
{
    u_char            *s, *last;
    ngx_chain_t      **head, *cl;
    ngx_rpc_msg_t     *msg;
    ngx_rpc_range_t   *method;

    msg = call->msg;
    method = &msg->member[NGX_RPC_M_METHOD].range;

    s = ngx_pnalloc(ex->pool,
                    sizeof("},{\"jsonrpc\":\"2.0\",\"id\":,\"method\":"
                           ",\"params\":")
                    + NGX_INT_T_LEN + (method->end - method->start));
    if (s == NULL) {
        return NGX_ERROR;
    }

    last = s;

    if (ex->nsent) {
        last = ngx_cpymem(last, "},", 2);

    } else if (ex->batch) {
        *last++ = '[';
    }

    last = ngx_cpymem(last, "{\"jsonrpc\":\"2.0\"",
                      sizeof("{\"jsonrpc\":\"2.0\"") - 1);

    if (!call->notification) {
        last = ngx_sprintf(last, ",\"id\":%ui", ex->nsent);
    }

    last = ngx_cpymem(last, ",\"method\":", sizeof(",\"method\":") - 1);
    last = ngx_rpc_parse_copy_to(&call->ctx->parser, method, last);

    if (msg->member[NGX_RPC_M_PARAMS].type != NGX_RPC_NONE) {
        last = ngx_cpymem(last, ",\"params\":", sizeof(",\"params\":") - 1);
    }

    head = *ll;

    if (ngx_rpc_chain_add(ex->pool, ll, s, last - s) != NGX_OK) {
        return NGX_ERROR;
    }

    if (msg->member[NGX_RPC_M_PARAMS].type != NGX_RPC_NONE
        && ngx_rpc_parse_slice(&call->ctx->parser, ex->pool,
                               &msg->member[NGX_RPC_M_PARAMS].range, ll)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    call->body = *head;
    call->nbufs = 0;

    for (cl = call->body->next; cl; cl = cl->next) {
        call->nbufs++;
    }

    call->exchange = ex;
    call->slot = ex->nsent;

    ex->calls[ex->nsent++] = call;
    ex->ncalls += !call->notification;
    ex->live++;
    ex->refs++;

    return NGX_OK;
}


static ngx_int_t
ngx_rpc_exchange_start(ngx_rpc_exchange_t *ex, ngx_chain_t **ll)
{
    ngx_uint_t       i;
    ngx_chain_t    **tail;
    ngx_rpc_call_t  *call;

    for (i = 0; i < ex->nsent; i++) {
        call = ex->calls[i];
        call->batch_size = ex->nsent;
    }

    tail = ll;

    if (ngx_rpc_chain_add(ex->pool, &ll, (u_char *) "}]",
                          ex->batch ? 2 : 1)
        != NGX_OK
        || ngx_rpc_upstream_start(ex) != NGX_OK)
    {
        ngx_rpc_exchange_fail(ex);
        return NGX_ERROR;
    }

    /* TLS sends what it has buffered only on a flush */

    (*tail)->buf->flush = 1;

    ngx_http_run_posted_requests(ex->request->connection);

    return NGX_OK;
}


/* an exchange that could not start: its calls fail, nothing is sent */

static void
ngx_rpc_exchange_fail(ngx_rpc_exchange_t *ex)
{
    ex->error = NGX_RPC_UPSTREAM_UNAVAILABLE;
    ex->sr = NULL;

    ngx_rpc_dispatcher_done(ex);
}


/*
 * The exchange ended: every call still in it gets its result or error.
 * The calls of a batch the upstream refused are sent again one by one.
 * A batch whose reply was larger than rpc_max_reply_size for each of its
 * calls was run by the upstream: of its calls, only those safe to run
 * twice, the cacheable ones, are sent again.
 */

void
ngx_rpc_dispatcher_done(ngx_rpc_exchange_t *ex)
{
    ngx_int_t           code;
    ngx_uint_t          i, n;
    ngx_rpc_call_t     *call;
    ngx_rpc_message_t  *ctx;

    ngx_rpc_metrics_exchange(ex);

    if (ex->refused) {
        ngx_rpc_single_remember(ex->conf);
    }

    n = 0;

    for (i = 0; i < ex->nsent; i++) {
        call = ex->calls[i];

        if (call == NULL
            || !(ex->refused
                 || (ex->error == NGX_RPC_UPSTREAM_TOO_LARGE
                     && ex->nsent > 1 && call->valid)))
        {
            continue;
        }

        ex->calls[i] = NULL;
        ex->live--;
        ngx_rpc_exchange_unref(call);
        n++;

        if (ngx_rpc_single_send(call) != NGX_OK) {
            ngx_rpc_call_done(call, NGX_RPC_UPSTREAM_UNAVAILABLE);
        }
    }

    if (n && ex->refused) {
        ngx_rpc_metrics_fallback(ex->conf, n);
    }

    if (n && !ex->refused) {
        ngx_log_error(NGX_LOG_WARN, ex->request->connection->log, 0,
                      "rpc: %ui cacheable calls of the upstream batch are "
                      "sent again one by one", n);
    }

    ex->done = 1;
    ctx = NULL;

    for (i = 0; i < ex->nsent; i++) {
        call = ex->calls[i];

        if (call == NULL) {
            continue;
        }

        if (call->ctx != ctx) {
            ctx = call->ctx;
            ngx_rpc_upstream_states(ex, ctx->request);
        }

        code = call->error;

        if (code == 0 && call->reply == NULL) {
            code = ex->error ? ex->error : NGX_RPC_UPSTREAM_NO_RESULT;
        }

        ngx_rpc_call_done(call, code);
    }

    ngx_rpc_cache_update(ex);

    if (ex->refs == 0) {
        ngx_post_event(&ex->free, &ngx_posted_events);
    }
}


/* a call leaves its batcher or exchange: it timed out, or its client went */

void
ngx_rpc_dispatcher_cancel(ngx_rpc_call_t *call)
{
    ngx_rpc_exchange_t  *ex;

    if (call->batcher) {
        ngx_queue_remove(&call->link);
        call->batcher->ncalls--;
        call->batcher = NULL;
        return;
    }

    ex = call->exchange;

    if (ex == NULL || ex->done) {
        return;
    }

    ngx_rpc_exchange_detach(call);
    ngx_rpc_exchange_unref(call);
}


/* a message going away lets go of the exchanges it was answered from */

void
ngx_rpc_dispatcher_release(ngx_rpc_message_t *ctx)
{
    ngx_uint_t       i;
    ngx_rpc_call_t  *call;

    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {
        if (call[i].exchange) {
            ngx_rpc_exchange_unref(&call[i]);
        }
    }
}


/*
 * A call leaves an exchange still running: its bytes are copied into the
 * exchange, as the upstream may still be sending them, or send them again
 * to the next server; an exchange no call is left in is aborted.
 */

static void
ngx_rpc_exchange_detach(ngx_rpc_call_t *call)
{
    size_t               size;
    u_char              *p;
    ngx_buf_t           *b;
    ngx_uint_t           n;
    ngx_chain_t         *cl;
    ngx_rpc_exchange_t  *ex;

    ex = call->exchange;
    ex->calls[call->slot] = NULL;
    ex->live--;

    if (ex->live == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ex->request->connection->log, 0,
                       "rpc: no call left in exchange, aborted");

        ngx_rpc_upstream_abort(ex);
        ngx_rpc_metrics_exchange(ex);
        ex->done = 1;
        return;
    }

    for (cl = call->body->next, n = call->nbufs; n; cl = cl->next, n--) {
        b = cl->buf;
        size = b->end - b->start;

        p = ngx_pnalloc(ex->pool, size);
        if (p == NULL) {
            ngx_rpc_upstream_abort(ex);
            ex->error = NGX_RPC_UPSTREAM_UNAVAILABLE;
            ngx_rpc_dispatcher_done(ex);
            return;
        }

        ngx_memcpy(p, b->start, size);

        b->pos = p + (b->pos - b->start);
        b->last = p + (b->last - b->start);
        b->start = p;
        b->end = p + size;
    }
}


static void
ngx_rpc_exchange_unref(ngx_rpc_call_t *call)
{
    ngx_rpc_exchange_t  *ex;

    ex = call->exchange;
    call->exchange = NULL;

    if (--ex->refs == 0 && ex->done) {
        ngx_post_event(&ex->free, &ngx_posted_events);
    }
}


/* posted, so that nothing of the exchange is on the stack any more */

static void
ngx_rpc_exchange_free(ngx_event_t *ev)
{
    ngx_rpc_exchange_t  *ex;

    ex = ev->data;

    ngx_rpc_pool_free(ex->pool);
}


static u_char *
ngx_rpc_exchange_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char               *p;
    ngx_http_request_t   *r;
    ngx_http_log_ctx_t   *lctx;
    ngx_http_upstream_t  *u;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
    }

    lctx = log->data;
    r = lctx->current_request;
    u = r ? r->upstream : NULL;

    if (u && u->peer.name) {
        p = ngx_snprintf(p, len, ", upstream: \"%V\"", u->peer.name);
    }

    return p;
}
