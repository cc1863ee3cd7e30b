
/*
 * Subscriptions: the calls of rpc_subscribe_methods on a WebSocket of a
 * location with rpc_subscribe_pass.  The clients of a worker that ask for
 * the same key (method and params) share one subscription of the node,
 * made over the worker's own WebSocket to it (ngx_rpc_wsclient.c).  Each
 * client gets an id of the gateway's, spliced into the node's events in
 * place of the node's id, the rest of the bytes as they came.  When the
 * connection to the node is lost, every key with clients is subscribed
 * again on the next one and the clients keep their ids.
 */


#include "ngx_rpc.h"

#if (NGX_OPENSSL)
#include <openssl/rand.h>
#endif


/* an event held for a client until its subscribe answer is out */
typedef struct {
    ngx_chain_t                  cl;
    ngx_buf_t                    buf;
} ngx_rpc_held_t;


/* this worker's, for the metrics */
static ngx_uint_t  ngx_rpc_subscribers;
static ngx_uint_t  ngx_rpc_subscriptions_live;


static void ngx_rpc_subscribe_init(ngx_rpc_subscribe_t *sub);
static ngx_int_t ngx_rpc_subscribe_add(ngx_rpc_call_t *call);
static ngx_int_t ngx_rpc_unsubscribe(ngx_rpc_call_t *call);
static ngx_rpc_subscription_t *ngx_rpc_subscription_create(
    ngx_rpc_subscribe_t *sub, ngx_str_t *key, uint32_t hash, size_t mlen);
static size_t ngx_rpc_subscription_size(ngx_rpc_subscription_t *st);
static void ngx_rpc_subscription_want(ngx_rpc_subscription_t *st);
static void ngx_rpc_subscribe_flush(ngx_rpc_subscribe_t *sub);
static void ngx_rpc_subscription_send(ngx_rpc_subscription_t *st,
    size_t size);
static ngx_rpc_subscription_t *ngx_rpc_subscribe_op(ngx_rpc_subscribe_t *sub,
    ngx_uint_t id);
static void ngx_rpc_subscription_settle(ngx_rpc_subscription_t *st);
static void ngx_rpc_subscription_wait_handler(ngx_event_t *ev);
static void ngx_rpc_subscription_refused(ngx_rpc_subscription_t *st);
static void ngx_rpc_subscription_retry_handler(ngx_event_t *ev);
static void ngx_rpc_subscription_fail(ngx_rpc_subscription_t *st,
    ngx_int_t code);
static ngx_int_t ngx_rpc_subscriber_add(ngx_rpc_subscription_t *st,
    ngx_rpc_call_t *call);
static void ngx_rpc_subscriber_id(u_char *id);
static void ngx_rpc_subscriber_free(ngx_rpc_subscriber_t *sr);
static void ngx_rpc_subscribe_unwait(ngx_rpc_call_t *call);
static void ngx_rpc_subscription_idle(ngx_rpc_subscription_t *st);
static void ngx_rpc_subscription_linger_handler(ngx_event_t *ev);
static void ngx_rpc_subscription_free(ngx_rpc_subscription_t *st);
static void ngx_rpc_subscribe_reply(ngx_rpc_subscribe_t *sub,
    ngx_rpc_msg_t *msg, u_char *data);
static void ngx_rpc_subscribe_event(ngx_rpc_subscribe_t *sub,
    ngx_rpc_msg_t *msg, u_char *data, size_t len);
static void ngx_rpc_subscriber_hold(ngx_rpc_subscriber_t *sr,
    ngx_chain_t *in, size_t len);
static void ngx_rpc_subscribe_stall_handler(ngx_event_t *ev);
static void ngx_rpc_subscribe_stop_handler(ngx_event_t *ev);


/* NGX_RPC_SUBSCRIBE, NGX_RPC_UNSUBSCRIBE or 0 */

ngx_uint_t
ngx_rpc_subscribe_method(ngx_rpc_loc_conf_t *rlcf, ngx_str_t *name)
{
    ngx_uint_t  i;

    for (i = 0; i < 2; i++) {
        if (name->len == rlcf->sub_methods[i].len
            && ngx_strncmp(name->data, rlcf->sub_methods[i].data, name->len)
               == 0)
        {
            return i + 1;
        }
    }

    return 0;
}


/* the worker's state of a rpc_subscribe_pass, made on its first call */

static void
ngx_rpc_subscribe_init(ngx_rpc_subscribe_t *sub)
{
    ngx_rbtree_init(&sub->keys, &sub->keys_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_rbtree_init(&sub->ids, &sub->ids_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_rbtree_init(&sub->ops, &sub->ops_sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&sub->all);
    ngx_queue_init(&sub->unsent);

    sub->stall.handler = ngx_rpc_subscribe_stall_handler;
    sub->stall.data = sub;
    sub->stall.log = ngx_cycle->log;
    sub->stall.cancelable = 1;

    sub->stop.handler = ngx_rpc_subscribe_stop_handler;
    sub->stop.data = sub;
    sub->stop.log = ngx_cycle->log;

    sub->ready = 1;
}


/*
 * A call of a subscription method: NGX_OK once answered (call->answer or
 * call->error), NGX_AGAIN while it waits for the node, NGX_ERROR.
 */

ngx_int_t
ngx_rpc_subscribe_call(ngx_rpc_call_t *call)
{
    ngx_rpc_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(call->ctx->request, ngx_rpc_module);

    if (!rlcf->subscribe->ready) {
        ngx_rpc_subscribe_init(rlcf->subscribe);
    }

    if (call->subscribe == NGX_RPC_UNSUBSCRIBE) {
        return ngx_rpc_unsubscribe(call);
    }

    /* a subscription whose id nobody learns would only cost the node */

    if (call->notification) {
        ngx_log_error(NGX_LOG_INFO, call->ctx->request->connection->log, 0,
                      "rpc: \"%V\" without an id ignored",
                      &call->msg->method);
        return NGX_OK;
    }

    return ngx_rpc_subscribe_add(call);
}


static ngx_int_t
ngx_rpc_subscribe_add(ngx_rpc_call_t *call)
{
    u_char                  *last;
    size_t                   mlen;
    uint32_t                 hash;
    ngx_str_t                key;
    ngx_uint_t               state;
    ngx_rpc_msg_t           *msg;
    ngx_connection_t        *c;
    ngx_rpc_parser_t        *p;
    ngx_rpc_range_t         *method, *params;
    ngx_rpc_session_t       *s;
    ngx_rpc_message_t       *ctx;
    ngx_rpc_loc_conf_t      *rlcf;
    ngx_rpc_subscribe_t     *sub;
    ngx_rpc_subscription_t  *st;

    ctx = call->ctx;
    s = ctx->session;
    c = ctx->request->connection;
    p = &ctx->parser;
    msg = call->msg;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);
    sub = rlcf->subscribe;

    /* calls still waiting for the node count: a batch may hold many */

    if (s->nsubscribers + s->subscribing >= rlcf->sub_max) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: rpc_subscribe_max %ui reached", rlcf->sub_max);
        call->error = NGX_RPC_TOO_MANY_SUBSCRIPTIONS;
        return NGX_OK;
    }

    /* the key: the method as sent, and the params without whitespace */

    method = &msg->member[NGX_RPC_M_METHOD].range;
    params = &msg->member[NGX_RPC_M_PARAMS].range;
    mlen = method->end - method->start;

    key.data = ngx_pnalloc(ctx->pool, mlen + 1 + (params->end - params->start));
    if (key.data == NULL) {
        return NGX_ERROR;
    }

    last = ngx_rpc_parse_copy_to(p, method, key.data);
    *last++ = '\n';

    if (msg->member[NGX_RPC_M_PARAMS].type != NGX_RPC_NONE) {
        last = ngx_rpc_parse_copy_squeezed(p, params, last);
    }

    key.len = last - key.data;
    hash = ngx_crc32_short(key.data, key.len);

    st = (ngx_rpc_subscription_t *) ngx_str_rbtree_lookup(&sub->keys, &key,
                                                          hash);

    if (st && st->live) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "rpc: subscription joined, %uz bytes of key",
                       key.len);

        return ngx_rpc_subscriber_add(st, call);
    }

    state = ngx_rpc_wsclient_state(sub);

    if (ngx_exiting) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rpc: \"%V\" refused: the worker is shutting down",
                      &msg->method);
        call->error = NGX_RPC_UPSTREAM_UNAVAILABLE;
        return NGX_OK;
    }

    if (state == NGX_RPC_WSC_BACKOFF) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "rpc: \"%V\" refused: no subscription upstream is "
                      "reachable", &msg->method);
        call->error = NGX_RPC_UPSTREAM_UNAVAILABLE;
        return NGX_OK;
    }

    if (st == NULL) {
        st = ngx_rpc_subscription_create(sub, &key, hash, mlen);
        if (st == NULL) {
            return NGX_ERROR;
        }
    }

    if (st->linger.timer_set) {
        ngx_del_timer(&st->linger);
    }

    call->subscription = st;
    ngx_queue_insert_tail(&st->calls, &call->queue);
    s->subscribing++;

    ngx_rpc_subscription_want(st);

    if (state == NGX_RPC_WSC_OPEN) {
        ngx_rpc_subscribe_flush(sub);

    } else if (ngx_rpc_wsclient_start(sub) != NGX_OK) {
        ngx_rpc_subscribe_cancel(call);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/*
 * [id]: true when the id is one of this client's, and then the client's
 * subscription ends here; the node hears of it only once nobody is left.
 */

static ngx_int_t
ngx_rpc_unsubscribe(ngx_rpc_call_t *call)
{
    u_char                *p, *last, *start;
    ngx_str_t              v;
    ngx_uint_t             esc;
    ngx_queue_t           *q;
    ngx_rpc_session_t     *s;
    ngx_rpc_message_t     *ctx;
    ngx_rpc_subscriber_t  *sr;

    ctx = call->ctx;
    s = ctx->session;

    if (call->msg->member[NGX_RPC_M_PARAMS].type != NGX_RPC_ARRAY) {
        goto invalid;
    }

    if (ngx_rpc_parse_copy(&ctx->parser,
                           &call->msg->member[NGX_RPC_M_PARAMS].range, &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the JSON is valid: only its shape is checked */

    p = v.data + 1;
    last = v.data + v.len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    {
        p++;
    }

    if (p == last || *p != '"') {
        goto invalid;
    }

    start = p++;
    esc = 0;

    while (*p != '"') {
        if (*p == '\\') {
            esc = 1;
            p++;
        }

        p++;
    }

    v.data = start;
    v.len = ++p - start;

    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        p++;
    }

    if (*p != ']') {
        goto invalid;
    }

    ngx_str_set(&call->answer, "false");

    if (esc || v.len != sizeof(sr->id)) {
        return NGX_OK;
    }

    for (q = ngx_queue_head(&s->subscribers);
         q != ngx_queue_sentinel(&s->subscribers);
         q = ngx_queue_next(q))
    {
        sr = ngx_queue_data(q, ngx_rpc_subscriber_t, link);

        if (ngx_memcmp(sr->id, v.data, sizeof(sr->id)) == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "rpc: unsubscribed");

            ngx_rpc_subscriber_free(sr);
            ngx_str_set(&call->answer, "true");
            break;
        }
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "rpc: \"%V\" takes one subscription id",
                  &call->msg->method);

    call->error = NGX_RPC_INVALID_PARAMS;

    return NGX_OK;
}


static ngx_rpc_subscription_t *
ngx_rpc_subscription_create(ngx_rpc_subscribe_t *sub, ngx_str_t *key,
    uint32_t hash, size_t mlen)
{
    u_char                  *p;
    ngx_rpc_subscription_t  *st;

    st = ngx_calloc(sizeof(ngx_rpc_subscription_t) + key->len,
                    ngx_cycle->log);
    if (st == NULL) {
        return NULL;
    }

    p = (u_char *) (st + 1);
    ngx_memcpy(p, key->data, key->len);

    st->sn.str.data = p;
    st->sn.str.len = key->len;
    st->sn.node.key = hash;

    st->method.data = p;
    st->method.len = mlen;
    st->params.data = p + mlen + 1;
    st->params.len = key->len - mlen - 1;

    st->sub = sub;
    ngx_queue_init(&st->subscribers);
    ngx_queue_init(&st->calls);

    st->linger.handler = ngx_rpc_subscription_linger_handler;
    st->linger.data = st;
    st->linger.log = ngx_cycle->log;
    st->linger.cancelable = 1;

    st->wait.handler = ngx_rpc_subscription_wait_handler;
    st->wait.data = st;
    st->wait.log = ngx_cycle->log;
    st->wait.cancelable = 1;

    st->retry.handler = ngx_rpc_subscription_retry_handler;
    st->retry.data = st;
    st->retry.log = ngx_cycle->log;
    st->retry.cancelable = 1;

    ngx_rbtree_insert(&sub->keys, &st->sn.node);
    ngx_queue_insert_tail(&sub->all, &st->queue);
    sub->nall++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "rpc: subscription created, %ui in all", sub->nall);

    return st;
}


static size_t
ngx_rpc_subscription_size(ngx_rpc_subscription_t *st)
{
    return sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"method\":,\"params\":}")
           + NGX_INT_T_LEN + st->method.len + st->params.len;
}


/* the subscription needs a subscribe on the node: it waits for its turn */

static void
ngx_rpc_subscription_want(ngx_rpc_subscription_t *st)
{
    if (st->live || st->sent || st->queued) {
        return;
    }

    ngx_queue_insert_tail(&st->sub->unsent, &st->unsent);
    st->queued = 1;
}


/*
 * Subscribes go while the bytes of those not answered stay under half of
 * rpc_websocket_max_queued (one always may): a reconnect with many keys,
 * or large ones, must not look like a node that does not read.  Answers
 * make room for the next.
 */

static void
ngx_rpc_subscribe_flush(ngx_rpc_subscribe_t *sub)
{
    size_t                   size;
    ngx_queue_t             *q;
    ngx_rpc_subscription_t  *st;

    while (!ngx_queue_empty(&sub->unsent)
           && ngx_rpc_wsclient_state(sub) == NGX_RPC_WSC_OPEN)
    {
        q = ngx_queue_head(&sub->unsent);
        st = ngx_queue_data(q, ngx_rpc_subscription_t, unsent);
        size = ngx_rpc_subscription_size(st);

        if (sub->inflight
            && sub->inflight + size > sub->conf->ws_max_queued / 2)
        {
            break;
        }

        ngx_queue_remove(q);
        st->queued = 0;

        ngx_rpc_subscription_send(st, size);
    }
}


/*
 * The subscribe call to the node, with an id of the gateway's own, to be
 * answered within rpc_timeout.  If the connection breaks on it, the
 * wsclient tells in ngx_rpc_subscribe_lost(), which queues it again.
 */

static void
ngx_rpc_subscription_send(ngx_rpc_subscription_t *st, size_t size)
{
    u_char               *buf, *p;
    ngx_rpc_subscribe_t  *sub;

    sub = st->sub;

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        ngx_rpc_wsclient_reset(sub, "no memory");
        return;
    }

    st->op.key = ++sub->next_op;
    ngx_rbtree_insert(&sub->ops, &st->op);
    st->sent = 1;
    sub->inflight += size;

    ngx_add_timer(&st->wait, sub->conf->timeout);

    p = ngx_sprintf(buf, "{\"jsonrpc\":\"2.0\",\"id\":%ui,\"method\":%V",
                    st->op.key, &st->method);

    if (st->params.len) {
        p = ngx_sprintf(p, ",\"params\":%V", &st->params);
    }

    *p++ = '}';

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "rpc: subscribe sent upstream, id %ui", st->op.key);

    (void) ngx_rpc_wsclient_send(sub, buf, p - buf);

    ngx_free(buf);
}


static ngx_rpc_subscription_t *
ngx_rpc_subscribe_op(ngx_rpc_subscribe_t *sub, ngx_uint_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = sub->ops.root;
    sentinel = sub->ops.sentinel;

    while (node != sentinel) {
        if (id == node->key) {
            return (ngx_rpc_subscription_t *)
                       ((u_char *) node
                        - offsetof(ngx_rpc_subscription_t, op));
        }

        node = (id < node->key) ? node->left : node->right;
    }

    return NULL;
}


/* the node answered the subscribe, or never will on this connection */

static void
ngx_rpc_subscription_settle(ngx_rpc_subscription_t *st)
{
    size_t  size;

    if (!st->sent) {
        return;
    }

    ngx_rbtree_delete(&st->sub->ops, &st->op);
    st->sent = 0;

    size = ngx_rpc_subscription_size(st);
    st->sub->inflight -= ngx_min(st->sub->inflight, size);

    if (st->wait.timer_set) {
        ngx_del_timer(&st->wait);
    }
}


/* a node that leaves a subscribe unanswered is taken for a broken one */

static void
ngx_rpc_subscription_wait_handler(ngx_event_t *ev)
{
    ngx_rpc_subscription_t  *st;

    st = ev->data;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "rpc: subscription upstream did not answer a subscribe "
                  "within rpc_timeout %M, reconnecting",
                  st->sub->conf->timeout);

    ngx_rpc_wsclient_reset(st->sub, "subscribe not answered");
}


/* a client joins a live subscription: its answer is its new id */

static ngx_int_t
ngx_rpc_subscriber_add(ngx_rpc_subscription_t *st, ngx_rpc_call_t *call)
{
    ngx_rpc_session_t     *s;
    ngx_rpc_message_t     *ctx;
    ngx_rpc_subscriber_t  *sr;

    ctx = call->ctx;
    s = ctx->session;

    sr = ngx_calloc(sizeof(ngx_rpc_subscriber_t), ngx_cycle->log);
    if (sr == NULL) {
        return NGX_ERROR;
    }

    call->answer.data = ngx_pnalloc(ctx->pool, sizeof(sr->id));
    if (call->answer.data == NULL) {
        ngx_free(sr);
        return NGX_ERROR;
    }

    ngx_rpc_subscriber_id(sr->id);

    ngx_memcpy(call->answer.data, sr->id, sizeof(sr->id));
    call->answer.len = sizeof(sr->id);

    sr->subscription = st;
    sr->session = s;
    sr->last_held = &sr->held;

    ngx_queue_insert_tail(&st->subscribers, &sr->queue);
    ngx_queue_insert_tail(&s->subscribers, &sr->link);
    s->nsubscribers++;

    ngx_rpc_metrics_gauge(NGX_RPC_MX_SUBSCRIBERS, ++ngx_rpc_subscribers);

    call->subscriber = sr;

    if (st->linger.timer_set) {
        ngx_del_timer(&st->linger);
    }

    return NGX_OK;
}


/* "0x" and 32 hex digits, quoted: 16 bytes nobody can guess */

static void
ngx_rpc_subscriber_id(u_char *id)
{
    u_char      rnd[16];
    ngx_uint_t  i;

#if (NGX_OPENSSL)
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
#endif
    {
        for (i = 0; i < sizeof(rnd); i++) {
            rnd[i] = (u_char) ngx_random();
        }
    }

    id[0] = '"';
    id[1] = '0';
    id[2] = 'x';
    ngx_hex_dump(id + 3, rnd, sizeof(rnd));
    id[3 + 2 * sizeof(rnd)] = '"';
}


static void
ngx_rpc_subscriber_free(ngx_rpc_subscriber_t *sr)
{
    ngx_chain_t             *cl, *next;
    ngx_rpc_subscription_t  *st;

    st = sr->subscription;

    ngx_queue_remove(&sr->queue);
    ngx_queue_remove(&sr->link);
    sr->session->nsubscribers--;
    sr->session->held -= sr->held_size;

    ngx_rpc_metrics_gauge(NGX_RPC_MX_SUBSCRIBERS, --ngx_rpc_subscribers);

    for (cl = sr->held; cl; cl = next) {
        next = cl->next;
        ngx_free(cl);
    }

    ngx_free(sr);

    ngx_rpc_subscription_idle(st);
}


/*
 * The answer of the message is on its way to the client: its new
 * subscriptions may now send, the events held for them first.
 */

void
ngx_rpc_subscribe_answered(ngx_rpc_message_t *ctx)
{
    ngx_uint_t             i;
    ngx_chain_t           *cl, *next;
    ngx_rpc_call_t        *call;
    ngx_rpc_subscriber_t  *sr;

    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {
        sr = call[i].subscriber;

        if (sr == NULL) {
            continue;
        }

        call[i].subscriber = NULL;
        sr->active = 1;

        for (cl = sr->held; cl; cl = next) {
            next = cl->next;
            cl->next = NULL;
            (void) ngx_rpc_websocket_event(sr->session, cl);
            ngx_free(cl);
        }

        sr->session->held -= sr->held_size;
        sr->held = NULL;
        sr->last_held = &sr->held;
        sr->held_size = 0;
    }
}


/* the client's connection ends: so do its subscriptions */

void
ngx_rpc_subscribe_close(ngx_rpc_session_t *s)
{
    ngx_queue_t           *q;
    ngx_rpc_subscriber_t  *sr;

    while (!ngx_queue_empty(&s->subscribers)) {
        q = ngx_queue_head(&s->subscribers);
        sr = ngx_queue_data(q, ngx_rpc_subscriber_t, link);
        ngx_rpc_subscriber_free(sr);
    }
}


/* a subscribe call leaves before the node answered: a timeout, a close */

void
ngx_rpc_subscribe_cancel(ngx_rpc_call_t *call)
{
    ngx_rpc_subscription_t  *st;

    st = call->subscription;

    if (st == NULL) {
        return;
    }

    ngx_rpc_subscribe_unwait(call);

    ngx_rpc_subscription_idle(st);
}


/* the call no longer waits on its subscription */

static void
ngx_rpc_subscribe_unwait(ngx_rpc_call_t *call)
{
    ngx_queue_remove(&call->queue);
    call->subscription = NULL;
    call->ctx->session->subscribing--;
}


/*
 * Nobody needs the subscription any more: a live one lingers, one the node
 * has not answered yet waits for its answer, any other goes at once.
 */

static void
ngx_rpc_subscription_idle(ngx_rpc_subscription_t *st)
{
    ngx_msec_t  linger;

    if (st->busy
        || !ngx_queue_empty(&st->subscribers) || !ngx_queue_empty(&st->calls))
    {
        return;
    }

    if (!st->live) {
        if (!st->sent) {
            ngx_rpc_subscription_free(st);
        }

        return;
    }

    linger = st->sub->conf->sub_linger;

    if (linger == 0 || ngx_exiting) {
        ngx_rpc_subscription_linger_handler(&st->linger);
        return;
    }

    if (!st->linger.timer_set) {
        ngx_add_timer(&st->linger, linger);
    }
}


/* the linger is over: one unsubscribe to the node, whose answer is not used */

static void
ngx_rpc_subscription_linger_handler(ngx_event_t *ev)
{
    u_char                  *buf, *p;
    size_t                   len;
    ngx_rpc_subscribe_t     *sub;
    ngx_rpc_subscription_t  *st;

    st = ev->data;
    sub = st->sub;

    if (st->live && ngx_rpc_wsclient_state(sub) == NGX_RPC_WSC_OPEN) {
        len = sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"method\":\"\","
                     "\"params\":[]}")
              + NGX_INT_T_LEN + sub->conf->sub_methods[1].len
              + st->un.str.len;

        buf = ngx_alloc(len, ngx_cycle->log);

        if (buf) {
            p = ngx_sprintf(buf, "{\"jsonrpc\":\"2.0\",\"id\":%ui,"
                            "\"method\":\"%V\",\"params\":[%V]}",
                            ++sub->next_op, &sub->conf->sub_methods[1],
                            &st->un.str);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "rpc: unsubscribe sent upstream, id %ui",
                           sub->next_op);

            (void) ngx_rpc_wsclient_send(sub, buf, p - buf);
            ngx_free(buf);
        }
    }

    ngx_rpc_subscription_free(st);
}


static void
ngx_rpc_subscription_free(ngx_rpc_subscription_t *st)
{
    ngx_rpc_subscribe_t  *sub;

    sub = st->sub;

    if (st->linger.timer_set) {
        ngx_del_timer(&st->linger);
    }

    if (st->retry.timer_set) {
        ngx_del_timer(&st->retry);
    }

    if (st->queued) {
        ngx_queue_remove(&st->unsent);
    }

    ngx_rpc_subscription_settle(st);

    if (st->live) {
        ngx_rbtree_delete(&sub->ids, &st->un.node);
        ngx_rpc_metrics_gauge(NGX_RPC_MX_SUBSCRIPTIONS,
                              --ngx_rpc_subscriptions_live);
    }

    ngx_free(st->un.str.data);

    ngx_rbtree_delete(&sub->keys, &st->sn.node);
    ngx_queue_remove(&st->queue);
    sub->nall--;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "rpc: subscription freed, %ui left", sub->nall);

    ngx_free(st);

    /* nothing left to carry: the connection goes, after this handler */

    if (sub->nall == 0 && !sub->stop.posted) {
        ngx_post_event(&sub->stop, &ngx_posted_events);
    }
}


static void
ngx_rpc_subscribe_stop_handler(ngx_event_t *ev)
{
    ngx_rpc_subscribe_t  *sub;

    sub = ev->data;

    if (sub->nall == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "rpc: no subscriptions left, upstream closed");

        if (sub->stall.timer_set) {
            ngx_del_timer(&sub->stall);
        }

        ngx_rpc_wsclient_stop(sub);
    }
}


/* the connection to the node is up: every subscription is sent, in turn */

void
ngx_rpc_subscribe_open(ngx_rpc_subscribe_t *sub)
{
    ngx_queue_t             *q;
    ngx_rpc_subscription_t  *st;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "rpc: subscription upstream open, %ui to subscribe",
                   sub->nall);

    sub->last_event = ngx_current_msec;

    for (q = ngx_queue_head(&sub->all);
         q != ngx_queue_sentinel(&sub->all);
         q = ngx_queue_next(q))
    {
        st = ngx_queue_data(q, ngx_rpc_subscription_t, queue);
        ngx_rpc_subscription_want(st);
    }

    ngx_rpc_subscribe_flush(sub);

    if (sub->conf->sub_stall && !sub->stall.timer_set) {
        ngx_add_timer(&sub->stall, sub->conf->sub_stall);
    }
}


/*
 * The connection to the node is gone, or an attempt failed: the node's ids
 * mean nothing now, and subscriptions with clients wait for the next
 * connection.  Calls still waiting are refused, unless the next server of
 * the group is tried at once.
 */

void
ngx_rpc_subscribe_lost(ngx_rpc_subscribe_t *sub)
{
    ngx_uint_t               next_now;
    ngx_queue_t             *q, *next;
    ngx_rpc_subscription_t  *st;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "rpc: subscription upstream lost, %ui subscriptions",
                   sub->nall);

    next_now = (ngx_rpc_wsclient_state(sub) == NGX_RPC_WSC_CONNECTING);

    if (sub->stall.timer_set) {
        ngx_del_timer(&sub->stall);
    }

    for (q = ngx_queue_head(&sub->all);
         q != ngx_queue_sentinel(&sub->all);
         q = next)
    {
        next = ngx_queue_next(q);
        st = ngx_queue_data(q, ngx_rpc_subscription_t, queue);

        if (st->live) {
            ngx_rbtree_delete(&sub->ids, &st->un.node);
            ngx_rpc_metrics_gauge(NGX_RPC_MX_SUBSCRIPTIONS,
                                  --ngx_rpc_subscriptions_live);
            st->live = 0;
        }

        ngx_rpc_subscription_settle(st);

        if (!next_now) {
            ngx_rpc_subscription_fail(st, NGX_RPC_UPSTREAM_UNAVAILABLE);
        }

        if (ngx_queue_empty(&st->subscribers) && ngx_queue_empty(&st->calls))
        {
            ngx_rpc_subscription_free(st);

        } else {
            ngx_rpc_subscription_want(st);
        }
    }
}


/* a text message of the node: an event, or an answer to the gateway */

void
ngx_rpc_subscribe_message(ngx_rpc_subscribe_t *sub, u_char *data, size_t len)
{
    ngx_str_t          *name;
    ngx_pool_t         *pool;
    ngx_rpc_msg_t      *msg;
    ngx_rpc_parser_t    p;

    pool = ngx_rpc_pool_get(ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    ngx_memzero(&p, sizeof(ngx_rpc_parser_t));

    if (ngx_rpc_parse_init(&p, pool, ngx_cycle->log, NGX_RPC_VALUE_MAX_DEPTH,
                           1, 1)
        != NGX_OK
        || ngx_rpc_parse_feed(&p, data, len) != NGX_OK
        || ngx_rpc_parse_finish(&p) != NGX_OK)
    {
        goto done;
    }

    if (p.error || p.top != NGX_RPC_OBJECT || p.msgs.nelts != 1) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "rpc: subscription upstream sent a message that is "
                      "not a JSON-RPC object, ignored");
        goto done;
    }

    msg = p.msgs.elts;
    name = &sub->conf->sub_methods[2];

    if (msg->member[NGX_RPC_M_METHOD].type == NGX_RPC_STRING
        && msg->method.len == name->len
        && ngx_strncmp(msg->method.data, name->data, name->len) == 0)
    {
        ngx_rpc_subscribe_event(sub, msg, data, len);

    } else if (msg->member[NGX_RPC_M_ID].type != NGX_RPC_NONE
               && msg->member[NGX_RPC_M_METHOD].type == NGX_RPC_NONE)
    {
        ngx_rpc_subscribe_reply(sub, msg, data);

    } else {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "rpc: subscription upstream message ignored");
    }

done:

    ngx_rpc_pool_free(pool);
}


/*
 * The node answers a subscribe: its id for the subscription, and the calls
 * waiting get theirs; or an error, which they get as the node sent it.
 */

static void
ngx_rpc_subscribe_reply(ngx_rpc_subscribe_t *sub, ngx_rpc_msg_t *msg,
    u_char *data)
{
    u_char                  *p, *last;
    size_t                   len;
    uint32_t                 hash;
    ngx_int_t                id;
    ngx_str_t                uid;
    ngx_rpc_call_t          *call;
    ngx_rpc_range_t         *r;
    ngx_rpc_subscription_t  *st;

    /* our ids are numbers; a node may turn them into strings */

    r = &msg->member[NGX_RPC_M_ID].range;
    p = data + r->start;
    last = data + r->end;

    if (msg->member[NGX_RPC_M_ID].type == NGX_RPC_STRING) {
        p++;
        last--;
    }

    id = ngx_atoi(p, last - p);

    if (id <= 0) {
        return;
    }

    st = ngx_rpc_subscribe_op(sub, id);

    if (st == NULL) {
        /* an unsubscribe's answer, or one of a subscription gone */
        return;
    }

    ngx_rpc_subscription_settle(st);
    ngx_rpc_subscribe_flush(sub);

    if (msg->member[NGX_RPC_M_RESULT].type == NGX_RPC_STRING
        || msg->member[NGX_RPC_M_RESULT].type == NGX_RPC_NUMBER)
    {
        r = &msg->member[NGX_RPC_M_RESULT].range;
        uid.data = data + r->start;
        uid.len = r->end - r->start;
        hash = ngx_crc32_short(uid.data, uid.len);

        if (ngx_str_rbtree_lookup(&sub->ids, &uid, hash) != NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "rpc: subscription upstream gave id %V twice",
                          &uid);
            goto failed;
        }

        p = ngx_alloc(uid.len, ngx_cycle->log);
        if (p == NULL) {
            goto failed;
        }

        ngx_free(st->un.str.data);
        ngx_memcpy(p, uid.data, uid.len);

        st->un.str.data = p;
        st->un.str.len = uid.len;
        st->un.node.key = hash;
        st->live = 1;
        st->backoff = 0;

        ngx_rbtree_insert(&sub->ids, &st->un.node);
        ngx_rpc_metrics_gauge(NGX_RPC_MX_SUBSCRIPTIONS,
                              ++ngx_rpc_subscriptions_live);

        sub->last_event = ngx_current_msec;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "rpc: subscription live as %V", &st->un.str);

        while (!ngx_queue_empty(&st->calls)) {
            call = ngx_queue_data(ngx_queue_head(&st->calls), ngx_rpc_call_t,
                                  queue);
            ngx_rpc_subscribe_unwait(call);

            ngx_rpc_call_done(call, ngx_rpc_subscriber_add(st, call) == NGX_OK
                                    ? 0 : NGX_RPC_UPSTREAM_UNAVAILABLE);
        }

        ngx_rpc_subscription_idle(st);
        return;
    }

    if (msg->member[NGX_RPC_M_ERROR].type != NGX_RPC_OBJECT) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "rpc: subscription upstream answered a subscribe "
                      "with neither an id nor an error");
        goto failed;
    }

    r = &msg->member[NGX_RPC_M_ERROR].range;
    len = r->end - r->start;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "rpc: subscription upstream refused %V: %*s",
                  &st->method, ngx_min(len, 256), data + r->start);

    while (!ngx_queue_empty(&st->calls)) {
        call = ngx_queue_data(ngx_queue_head(&st->calls), ngx_rpc_call_t,
                              queue);
        ngx_rpc_subscribe_unwait(call);

        call->answer.data = ngx_pnalloc(call->ctx->pool, len);

        if (call->answer.data == NULL) {
            ngx_rpc_call_done(call, NGX_RPC_UPSTREAM_UNAVAILABLE);
            continue;
        }

        ngx_memcpy(call->answer.data, data + r->start, len);
        call->answer.len = len;
        call->answer_error = 1;
        call->answer_code = msg->code;
        call->answer_code_ok = msg->code_ok;

        ngx_rpc_call_done(call, 0);
    }

    ngx_rpc_subscription_refused(st);
    return;

failed:

    ngx_rpc_subscription_fail(st, NGX_RPC_UPSTREAM_BAD_SHAPE);
    ngx_rpc_subscription_refused(st);
}


/*
 * The node refused a subscription that clients still hold (it was
 * subscribed again after a reconnect): it is asked again after a backoff,
 * as rpc_subscribe_reconnect says, until the node takes it.
 */

static void
ngx_rpc_subscription_refused(ngx_rpc_subscription_t *st)
{
    ngx_rpc_loc_conf_t  *conf;

    if (ngx_queue_empty(&st->subscribers)) {
        ngx_rpc_subscription_idle(st);
        return;
    }

    conf = st->sub->conf;

    st->backoff = st->backoff ? ngx_min(2 * st->backoff,
                                        conf->sub_reconnect_max)
                              : conf->sub_reconnect_min;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "rpc: subscription asked again in %M", st->backoff);

    ngx_add_timer(&st->retry, st->backoff);
}


static void
ngx_rpc_subscription_retry_handler(ngx_event_t *ev)
{
    ngx_rpc_subscription_t  *st;

    st = ev->data;

    ngx_rpc_subscription_want(st);
    ngx_rpc_subscribe_flush(st->sub);
}


/* the calls waiting for the node get code */

static void
ngx_rpc_subscription_fail(ngx_rpc_subscription_t *st, ngx_int_t code)
{
    ngx_rpc_call_t  *call;

    while (!ngx_queue_empty(&st->calls)) {
        call = ngx_queue_data(ngx_queue_head(&st->calls), ngx_rpc_call_t,
                              queue);
        ngx_rpc_subscribe_unwait(call);
        ngx_rpc_call_done(call, code);
    }
}


/*
 * An event: to every client of the subscription, its bytes with the
 * client's id in place of the node's, each client's frame sent or queued
 * on its own; a client that falls behind is closed by its connection.
 */

static void
ngx_rpc_subscribe_event(ngx_rpc_subscribe_t *sub, ngx_rpc_msg_t *msg,
    u_char *data, size_t len)
{
    size_t                   size;
    uint32_t                 hash;
    ngx_str_t                uid, name;
    ngx_buf_t                b[3];
    ngx_chain_t              cl[3];
    ngx_queue_t             *q;
    ngx_str_node_t          *un;
    ngx_rpc_range_t          r, *params;
    ngx_rpc_subscriber_t    *sr;
    ngx_rpc_subscription_t  *st;

    params = &msg->member[NGX_RPC_M_PARAMS].range;

    ngx_str_set(&name, "subscription");

    if (msg->member[NGX_RPC_M_PARAMS].type != NGX_RPC_OBJECT
        || ngx_rpc_json_member(data + params->start, data + params->end,
                               &name, &r)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "rpc: subscription upstream sent an event without "
                      "one plain params.subscription, ignored");
        return;
    }

    r.start += params->start;
    r.end += params->start;

    uid.data = data + r.start;
    uid.len = r.end - r.start;
    hash = ngx_crc32_short(uid.data, uid.len);

    un = ngx_str_rbtree_lookup(&sub->ids, &uid, hash);

    st = un ? (ngx_rpc_subscription_t *)
                  ((u_char *) un - offsetof(ngx_rpc_subscription_t, un))
            : NULL;

    /*
     * ids of a connection before this one are out of sub->ids, and the
     * wsclient reads nothing more of a connection once it is lost (its gen)
     */

    if (st == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "rpc: event for unknown subscription %V dropped",
                       &uid);
        return;
    }

    sub->last_event = ngx_current_msec;

    ngx_memzero(b, sizeof(b));

    b[0].memory = 1;
    b[1].memory = 1;
    b[2].memory = 1;

    cl[0].buf = &b[0];
    cl[0].next = &cl[1];
    cl[1].buf = &b[1];
    cl[1].next = &cl[2];
    cl[2].buf = &b[2];
    cl[2].next = NULL;

    size = len - uid.len + sizeof(sr->id);

    for (q = ngx_queue_head(&st->subscribers);
         q != ngx_queue_sentinel(&st->subscribers);
         q = ngx_queue_next(q))
    {
        sr = ngx_queue_data(q, ngx_rpc_subscriber_t, queue);

        /* anew for each client: sending moves pos */

        b[0].pos = data;
        b[0].last = data + r.start;
        b[1].pos = sr->id;
        b[1].last = sr->id + sizeof(sr->id);
        b[2].pos = data + r.end;
        b[2].last = data + len;

        if (sr->active) {
            (void) ngx_rpc_websocket_event(sr->session, cl);

        } else {
            ngx_rpc_subscriber_hold(sr, cl, size);
        }
    }
}


/* held as one copy; more than the client may have queued closes it */

static void
ngx_rpc_subscriber_hold(ngx_rpc_subscriber_t *sr, ngx_chain_t *in,
    size_t len)
{
    u_char             *p;
    ngx_rpc_held_t     *h;
    ngx_rpc_session_t  *s;

    /* for all the connection's subscriptions, as its send queue is */

    s = sr->session;

    if (s->held
        && s->held + len > sr->subscription->sub->conf->ws_max_queued)
    {
        (void) ngx_rpc_websocket_event(s, NULL);
        return;
    }

    h = ngx_alloc(sizeof(ngx_rpc_held_t) + len, ngx_cycle->log);
    if (h == NULL) {
        (void) ngx_rpc_websocket_event(sr->session, NULL);
        return;
    }

    ngx_memzero(h, sizeof(ngx_rpc_held_t));

    p = (u_char *) (h + 1);
    h->buf.memory = 1;
    h->buf.pos = p;

    for ( /* void */ ; in; in = in->next) {
        p = ngx_cpymem(p, in->buf->pos, in->buf->last - in->buf->pos);
    }

    h->buf.last = p;
    h->cl.buf = &h->buf;

    *sr->last_held = &h->cl;
    sr->last_held = &h->cl.next;
    sr->held_size += len;
    s->held += len;
}


/*
 * No event for rpc_subscribe_stall while subscriptions are live: the node
 * stopped sending on a socket that looks alive, so it is dropped.
 */

static void
ngx_rpc_subscribe_stall_handler(ngx_event_t *ev)
{
    ngx_msec_t               stall, quiet;
    ngx_queue_t             *q;
    ngx_rpc_subscribe_t     *sub;
    ngx_rpc_subscription_t  *st;

    sub = ev->data;
    stall = sub->conf->sub_stall;
    quiet = ngx_current_msec - sub->last_event;

    for (q = ngx_queue_head(&sub->all);
         q != ngx_queue_sentinel(&sub->all);
         q = ngx_queue_next(q))
    {
        st = ngx_queue_data(q, ngx_rpc_subscription_t, queue);

        if (st->live) {
            break;
        }
    }

    if (q == ngx_queue_sentinel(&sub->all)) {
        sub->last_event = ngx_current_msec;
        quiet = 0;

    } else if (quiet >= stall) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "rpc: no event from the subscription upstream for "
                      "%M ms, reconnecting", quiet);
        ngx_rpc_wsclient_reset(sub, "stalled");
        return;
    }

    ngx_add_timer(ev, stall - quiet);
}


/* the worker exits: what is left is freed, the connection closed */

void
ngx_rpc_subscribe_exit(ngx_cycle_t *cycle)
{
    ngx_uint_t               i;
    ngx_queue_t             *q;
    ngx_rpc_call_t          *call;
    ngx_rpc_subscribe_t    **subp, *sub;
    ngx_rpc_main_conf_t     *rmcf;
    ngx_rpc_subscriber_t    *sr;
    ngx_rpc_subscription_t  *st;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_rpc_module);

    if (rmcf == NULL) {
        return;
    }

    subp = rmcf->subscribes.elts;

    for (i = 0; i < rmcf->subscribes.nelts; i++) {
        sub = subp[i];

        if (!sub->ready) {
            continue;
        }

        while (!ngx_queue_empty(&sub->all)) {
            st = ngx_queue_data(ngx_queue_head(&sub->all),
                                ngx_rpc_subscription_t, queue);

            while (!ngx_queue_empty(&st->calls)) {
                q = ngx_queue_head(&st->calls);
                call = ngx_queue_data(q, ngx_rpc_call_t, queue);
                ngx_rpc_subscribe_unwait(call);
            }

            /* no linger, no unsubscribe: the connection goes too */

            st->busy = 1;

            while (!ngx_queue_empty(&st->subscribers)) {
                q = ngx_queue_head(&st->subscribers);
                sr = ngx_queue_data(q, ngx_rpc_subscriber_t, queue);
                ngx_rpc_subscriber_free(sr);
            }

            ngx_rpc_subscription_free(st);
        }

        if (sub->stall.timer_set) {
            ngx_del_timer(&sub->stall);
        }

        if (sub->stop.posted) {
            ngx_delete_posted_event(&sub->stop);
        }

        ngx_rpc_wsclient_stop(sub);
    }
}


/* rpc_subscribe_pass NAME | ws://HOST:PORT/URI | wss://HOST:PORT/URI */

char *
ngx_rpc_subscribe_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    u_char                         *p;
    ngx_str_t                      *value;
    ngx_rpc_main_conf_t            *rmcf;
    ngx_rpc_subscribe_t            *sub, **subp;
    ngx_http_upstream_srv_conf_t   *uscf;

    if (rlcf->subscribe) {
        return "is duplicate";
    }

    value = cf->args->elts;

    sub = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_subscribe_t));
    if (sub == NULL) {
        return NGX_CONF_ERROR;
    }

    uscf = ngx_rpc_conf_upstream(cf, &value[1], &sub->uri, &sub->wss, 1);
    if (uscf == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the Host header: the group's name, or the address with its port */

    sub->host = uscf->host;

    if (uscf->port && uscf->port != (sub->wss ? 443 : 80)) {
        p = ngx_pnalloc(cf->pool, uscf->host.len + sizeof(":65535") - 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        sub->host.data = p;
        sub->host.len = ngx_sprintf(p, "%V:%d", &uscf->host,
                                    (int) uscf->port)
                        - p;
    }

    sub->upstream = uscf;
    sub->conf = rlcf;
    rlcf->subscribe = sub;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);

    subp = ngx_array_push(&rmcf->subscribes);
    if (subp == NULL) {
        return NGX_CONF_ERROR;
    }

    *subp = sub;

    return NGX_CONF_OK;
}


/* rpc_subscribe_methods SUBSCRIBE UNSUBSCRIBE NOTIFICATION */

char *
ngx_rpc_subscribe_methods(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, j;

    if (rlcf->sub_methods[0].data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* names are compared with the methods as sent: plain ones only */

    for (i = 1; i < 4; i++) {
        for (j = 0; j < value[i].len; j++) {
            if (value[i].data[j] < 0x20 || value[i].data[j] == '"'
                || value[i].data[j] == '\\' || value[i].data[j] >= 0x80)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid method name \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        rlcf->sub_methods[i - 1] = value[i];
    }

    return NGX_CONF_OK;
}


/* rpc_subscribe_reconnect MIN MAX */

char *
ngx_rpc_subscribe_reconnect(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t   *value;
    ngx_msec_t   min, max;

    if (rlcf->sub_reconnect_min != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    min = ngx_parse_time(&value[1], 0);
    max = ngx_parse_time(&value[2], 0);

    if (min == (ngx_msec_t) NGX_ERROR || max == (ngx_msec_t) NGX_ERROR
        || min == 0 || max < min)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid backoff \"%V %V\": two times, the first "
                           "not 0 and not over the second",
                           &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    rlcf->sub_reconnect_min = min;
    rlcf->sub_reconnect_max = max;

    return NGX_CONF_OK;
}
