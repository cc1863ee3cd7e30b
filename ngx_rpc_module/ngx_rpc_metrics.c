
/*
 * Prometheus metrics.  rpc_metrics_zone holds a slot of counters for each
 * worker: a worker claims a free slot when it starts and writes only its
 * own, with no lock and no cache line shared with another writer; the
 * rpc_metrics handler, in any worker, adds the slots up.  A slot keeps its
 * counts after its worker exits, for the next worker that claims it.
 *
 * Every label value is fixed by the configuration: methods named in
 * rpc_allow_methods, rpc_route, rpc_cache_valid and rpc_metrics_methods,
 * else "other" or "invalid"; the upstreams of rpc_pass and rpc_route and
 * their servers; outcomes and error codes from a fixed list.  Client input
 * never makes a series.
 *
 * A reload keeps the counts when the labels are the same.  When they
 * change, the zone starts again from zero, and workers of the old
 * configuration stop counting (they see another generation).
 */


#include "ngx_rpc.h"


#define NGX_RPC_MX_TRANSPORTS   2
#define NGX_RPC_MX_SHAPES       4
#define NGX_RPC_MX_OUTCOMES     19
#define NGX_RPC_MX_KINDS        6
#define NGX_RPC_MX_CACHE        10
#define NGX_RPC_MX_GAUGES       4

/* the cells of an upstream, after its calls-per-request histogram */
#define NGX_RPC_MX_UP_REQUESTS  0
#define NGX_RPC_MX_UP_FALLBACKS 1
#define NGX_RPC_MX_UP_CONNS     2
#define NGX_RPC_MX_UP_FAILURES  3
#define NGX_RPC_MX_UP_HIST      (NGX_RPC_MX_UP_FAILURES + NGX_RPC_MX_KINDS)


typedef struct {
    ngx_atomic_t                 pid;
    ngx_uint_t                   worker;
    ngx_uint_t                   generation;
    ngx_uint_t                   pad[5];
    uint64_t                     cell[1];
} ngx_rpc_mx_slot_t;


typedef struct {
    uint32_t                     signature;
    ngx_uint_t                   generation;
    ngx_uint_t                   nslots;
    size_t                       slot_size;
    u_char                      *slots;
} ngx_rpc_mx_sh_t;


typedef struct {
    ngx_http_upstream_srv_conf_t  *uscf;
    ngx_str_t                      name;
    ngx_array_t                    servers;   /* of ngx_str_t */
    ngx_uint_t                     server;    /* index of its first */
} ngx_rpc_mx_upstream_t;


static ngx_int_t ngx_rpc_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_rpc_metrics_label(ngx_rpc_msg_t *msg);
static ngx_uint_t ngx_rpc_metrics_outcome(ngx_rpc_call_t *call);
static void ngx_rpc_metrics_observe(uint64_t *cell, ngx_array_t *bounds,
    ngx_msec_t value);
static ngx_rpc_mx_upstream_t *ngx_rpc_metrics_find(
    ngx_http_upstream_conf_t *conf);
static ngx_int_t ngx_rpc_metrics_handler(ngx_http_request_t *r);
static void ngx_rpc_metrics_sum(ngx_rpc_metrics_t *mx, uint64_t *sum);
static u_char *ngx_rpc_metrics_upstream_counter(u_char *p,
    ngx_rpc_metrics_t *mx, uint64_t *sum, char *name, char *help,
    ngx_uint_t cell);
static u_char *ngx_rpc_metrics_head(u_char *p, char *name, char *type,
    char *help);
static u_char *ngx_rpc_metrics_hist(u_char *p, char *name, u_char *labels,
    uint64_t *cell, ngx_array_t *bounds, ngx_uint_t seconds);
static u_char *ngx_rpc_metrics_escape(u_char *p, ngx_str_t *s);


static char  *ngx_rpc_mx_transports[] = { "http", "websocket" };

static char  *ngx_rpc_mx_shapes[] = {
    "single", "batch", "notification", "invalid"
};

/* outcome labels: then the gateway's error codes, in this order */
static char  *ngx_rpc_mx_outcomes[] = {
    "result", "error", "cancelled", "notification"
};

static ngx_int_t  ngx_rpc_mx_codes[] = {
    NGX_RPC_PARSE_ERROR, NGX_RPC_INVALID_REQUEST, NGX_RPC_METHOD_NOT_FOUND,
    NGX_RPC_UPSTREAM_UNAVAILABLE, NGX_RPC_UPSTREAM_TIMEOUT,
    NGX_RPC_UPSTREAM_CLOSED, NGX_RPC_UPSTREAM_STATUS,
    NGX_RPC_UPSTREAM_NOT_JSON, NGX_RPC_UPSTREAM_BAD_SHAPE,
    NGX_RPC_UPSTREAM_NO_RESULT, NGX_RPC_BATCH_TOO_LARGE,
    NGX_RPC_BODY_TOO_LARGE, NGX_RPC_UPSTREAM_TOO_LARGE, NGX_RPC_OVERLOADED,
    NGX_RPC_LIMITED
};

static char  *ngx_rpc_mx_kinds[] = {
    "refused", "timeout", "reset", "status", "invalid", "too_large"
};

/* indexed by NGX_RPC_CACHE_* - 1, then NGX_RPC_MX_REDIS_MISS and on */
static char  *ngx_rpc_mx_cache[] = {
    "miss", "bypass", "expired", "hit", "redis", "collapsed",
    "redis_miss", "redis_error", "store", "eviction"
};

static ngx_msec_t  ngx_rpc_mx_sizes[] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000
};

static ngx_msec_t  ngx_rpc_mx_default_buckets[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};


/* this worker's slot, and the configuration that laid it out */
static ngx_rpc_mx_slot_t   *ngx_rpc_mx_slot;
static ngx_rpc_metrics_t   *ngx_rpc_mx;
static ngx_rpc_mx_sh_t     *ngx_rpc_mx_sh;
static ngx_uint_t           ngx_rpc_mx_generation;
static ngx_array_t          ngx_rpc_mx_size_bounds;


#define ngx_rpc_mx_live()                                                     \
    (ngx_rpc_mx_slot != NULL                                                  \
     && ngx_rpc_mx_sh->generation == ngx_rpc_mx_generation)


/* a call is done: its method, outcome, cache status and time */

void
ngx_rpc_metrics_call(ngx_rpc_call_t *call)
{
    uint64_t           *cell;
    ngx_uint_t          label;
    ngx_rpc_metrics_t  *mx;

    if (!ngx_rpc_mx_live()) {
        return;
    }

    mx = ngx_rpc_mx;
    cell = ngx_rpc_mx_slot->cell;

    label = ngx_rpc_metrics_label(call->msg);

    cell[mx->calls + label * NGX_RPC_MX_OUTCOMES
         + ngx_rpc_metrics_outcome(call)]++;

    ngx_rpc_metrics_observe(&cell[mx->latency + label * mx->hist_cells],
                            mx->buckets,
                            ngx_current_msec - call->ctx->start);

    if (call->cache_status) {
        cell[mx->cache + call->cache_status - 1]++;
    }
}


/* a message is dispatched: how it came and what shape it has */

void
ngx_rpc_metrics_message(ngx_rpc_message_t *ctx)
{
    uint64_t           *cell;
    ngx_uint_t          i, shape;
    ngx_rpc_call_t     *call;
    ngx_rpc_metrics_t  *mx;

    if (!ngx_rpc_mx_live()) {
        return;
    }

    mx = ngx_rpc_mx;
    cell = ngx_rpc_mx_slot->cell;

    if (ctx->error) {
        shape = 3;

    } else {
        shape = 2;
        call = ctx->calls.elts;

        for (i = 0; i < ctx->calls.nelts; i++) {
            if (!call[i].notification) {
                shape = ctx->batch ? 1 : 0;
                break;
            }
        }
    }

    cell[mx->messages + (ctx->session->ws ? NGX_RPC_MX_SHAPES : 0) + shape]++;

    ngx_rpc_metrics_observe(&cell[mx->message_calls],
                            &ngx_rpc_mx_size_bounds, ctx->calls.nelts);
}


/*
 * An exchange ended: its upstream, its size, how it failed, and the time
 * of each try at each server.
 */

void
ngx_rpc_metrics_exchange(ngx_rpc_exchange_t *ex)
{
    uint64_t                   *cell, *up;
    ngx_str_t                  *name;
    ngx_uint_t                  i, j, kind;
    ngx_rpc_metrics_t          *mx;
    ngx_rpc_mx_upstream_t      *u;
    ngx_http_upstream_state_t  *state;

    if (!ngx_rpc_mx_live()) {
        return;
    }

    u = ngx_rpc_metrics_find(ex->conf);
    if (u == NULL) {
        return;
    }

    mx = ngx_rpc_mx;
    cell = ngx_rpc_mx_slot->cell;
    up = &cell[mx->upstreams + (u - (ngx_rpc_mx_upstream_t *)
                                   mx->upstream_list.elts)
                               * mx->upstream_cells];

    up[NGX_RPC_MX_UP_REQUESTS]++;

    ngx_rpc_metrics_observe(&up[NGX_RPC_MX_UP_HIST],
                            &ngx_rpc_mx_size_bounds, ex->nsent);

    switch (ex->refused ? 0 : ex->error) {

    case 0:
        kind = NGX_RPC_MX_KINDS;
        break;

    case NGX_RPC_UPSTREAM_UNAVAILABLE:
        kind = 0;
        break;

    case NGX_RPC_UPSTREAM_TIMEOUT:
        kind = 1;
        break;

    case NGX_RPC_UPSTREAM_CLOSED:
        kind = 2;
        break;

    case NGX_RPC_UPSTREAM_STATUS:
        kind = 3;
        break;

    case NGX_RPC_UPSTREAM_TOO_LARGE:
        kind = 5;
        break;

    default:
        kind = 4;
    }

    if (ex->refused) {
        kind = 3;
    }

    if (kind < NGX_RPC_MX_KINDS) {
        up[NGX_RPC_MX_UP_FAILURES + kind]++;
    }

    if (ex->sr == NULL || ex->sr->upstream_states == NULL) {
        return;
    }

    state = ex->sr->upstream_states->elts;

    for (i = 0; i < ex->sr->upstream_states->nelts; i++) {
        if (state[i].peer == NULL) {
            continue;
        }

        if (i < 64 && (ex->fresh >> i) & 1
            && state[i].connect_time != (ngx_msec_t) -1)
        {
            up[NGX_RPC_MX_UP_CONNS]++;
        }

        name = u->servers.elts;

        for (j = 0; j < u->servers.nelts - 1; j++) {
            if (name[j].len == state[i].peer->len
                && ngx_strncmp(name[j].data, state[i].peer->data,
                               name[j].len)
                   == 0)
            {
                break;
            }
        }

        ngx_rpc_metrics_observe(&cell[mx->servers
                                      + (u->server + j) * mx->hist_cells],
                                mx->buckets, state[i].response_time);
    }
}


/* calls of a batch the upstream refused, sent again one by one */

void
ngx_rpc_metrics_fallback(ngx_http_upstream_conf_t *conf, ngx_uint_t n)
{
    ngx_rpc_metrics_t      *mx;
    ngx_rpc_mx_upstream_t  *u;

    if (!ngx_rpc_mx_live()) {
        return;
    }

    u = ngx_rpc_metrics_find(conf);
    if (u == NULL) {
        return;
    }

    mx = ngx_rpc_mx;

    ngx_rpc_mx_slot->cell[mx->upstreams
                          + (u - (ngx_rpc_mx_upstream_t *)
                                 mx->upstream_list.elts)
                            * mx->upstream_cells
                          + NGX_RPC_MX_UP_FALLBACKS] += n;
}


/* NGX_RPC_MX_REDIS_MISS, NGX_RPC_MX_REDIS_ERROR, _STORE, _EVICT */

void
ngx_rpc_metrics_cache(ngx_uint_t what)
{
    if (ngx_rpc_mx_live()) {
        ngx_rpc_mx_slot->cell[ngx_rpc_mx->cache + what]++;
    }
}


/* NGX_RPC_MX_HELD, _WEBSOCKETS, ...: this worker's value now */

void
ngx_rpc_metrics_gauge(ngx_uint_t what, ngx_uint_t value)
{
    if (ngx_rpc_mx_live()) {
        ngx_rpc_mx_slot->cell[ngx_rpc_mx->gauges + what] = value;
    }
}


/* the label of a call's method: fixed by the configuration */

static ngx_uint_t
ngx_rpc_metrics_label(ngx_rpc_msg_t *msg)
{
    ngx_int_t           d;
    ngx_str_t          *name;
    ngx_uint_t          lo, hi, mid, i;
    ngx_rpc_metrics_t  *mx;

    mx = ngx_rpc_mx;

    if (msg == NULL || msg->member[NGX_RPC_M_METHOD].type != NGX_RPC_STRING
        || msg->method.data == NULL)
    {
        return mx->nlabels + 1;                       /* "invalid" */
    }

    /* names sorted at start: a binary search, then the patterns */

    name = mx->methods.elts;
    lo = 0;
    hi = mx->nnames;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        d = ngx_memn2cmp(name[mid].data, msg->method.data, name[mid].len,
                         msg->method.len);

        if (d == 0) {
            return mid;
        }

        if (d < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    for (i = mx->nnames; i < mx->nlabels; i++) {
        if (ngx_rpc_policy_glob(name[i].data, name[i].data + name[i].len,
                                msg->method.data,
                                msg->method.data + msg->method.len))
        {
            return i;
        }
    }

    return mx->nlabels;                               /* "other" */
}


static ngx_uint_t
ngx_rpc_metrics_outcome(ngx_rpc_call_t *call)
{
    ngx_uint_t  i;

    /* a notification sent on gets no answer, and wants none */

    if (call->notification
        && (call->error == 0 || call->error == NGX_RPC_UPSTREAM_NO_RESULT))
    {
        return 3;
    }

    if (call->error) {
        for (i = 0; i < sizeof(ngx_rpc_mx_codes) / sizeof(ngx_int_t); i++) {
            if (ngx_rpc_mx_codes[i] == call->error) {
                return 4 + i;
            }
        }

        return 1;
    }

    if (call->reply) {
        return call->reply->member[NGX_RPC_M_ERROR].type != NGX_RPC_NONE;
    }

    if (call->answer.len) {
        return call->answer_error;
    }

    return 2;                                         /* "cancelled" */
}


/* buckets as counted: each in one, added up when shown */

static void
ngx_rpc_metrics_observe(uint64_t *cell, ngx_array_t *bounds, ngx_msec_t v)
{
    ngx_uint_t   i;
    ngx_msec_t  *b;

    b = bounds->elts;

    for (i = 0; i < bounds->nelts; i++) {
        if (v <= b[i]) {
            break;
        }
    }

    cell[i]++;
    cell[bounds->nelts + 1] += v;
}


static ngx_rpc_mx_upstream_t *
ngx_rpc_metrics_find(ngx_http_upstream_conf_t *conf)
{
    ngx_uint_t              i;
    ngx_rpc_mx_upstream_t  *u;

    u = ngx_rpc_mx->upstream_list.elts;

    for (i = 0; i < ngx_rpc_mx->upstream_list.nelts; i++) {
        if (u[i].uscf == conf->upstream) {
            return &u[i];
        }
    }

    return NULL;
}


/* the worker takes a free slot, or one whose worker is gone */

ngx_int_t
ngx_rpc_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t            i, pass;
    ngx_rpc_mx_sh_t      *sh;
    ngx_rpc_mx_slot_t    *slot;
    ngx_rpc_metrics_t    *mx;
    ngx_rpc_main_conf_t  *rmcf;

    /* the cache manager and loader serve no calls */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_rpc_module);

    if (rmcf == NULL || rmcf->metrics == NULL
        || rmcf->metrics->zone == NULL)
    {
        return NGX_OK;
    }

    mx = rmcf->metrics;
    sh = ((ngx_slab_pool_t *) mx->zone->shm.addr)->data;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < sh->nslots; i++) {
            slot = (ngx_rpc_mx_slot_t *) (sh->slots + i * sh->slot_size);

            if (slot->pid == 0) {
                if (!ngx_atomic_cmp_set(&slot->pid, 0, ngx_pid)) {
                    continue;
                }

            } else if (pass == 0
                       || kill((ngx_pid_t) slot->pid, 0) == 0
                       || ngx_errno != NGX_ESRCH
                       || !ngx_atomic_cmp_set(&slot->pid, slot->pid,
                                              ngx_pid))
            {
                continue;
            }

            if (slot->generation != sh->generation) {
                ngx_memzero(slot->cell, sh->slot_size
                                        - offsetof(ngx_rpc_mx_slot_t, cell));
                slot->generation = sh->generation;
            }

            ngx_memzero(&slot->cell[mx->gauges],
                        NGX_RPC_MX_GAUGES * sizeof(uint64_t));

            slot->worker = ngx_worker;

            ngx_rpc_mx = mx;
            ngx_rpc_mx_sh = sh;
            ngx_rpc_mx_generation = sh->generation;
            ngx_rpc_mx_slot = slot;

            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                  "rpc_metrics_zone \"%V\" has no slot left for this worker: "
                  "it is not counted", &mx->zone->shm.name);

    return NGX_OK;
}


void
ngx_rpc_metrics_exit_process(void)
{
    if (ngx_rpc_mx_slot == NULL) {
        return;
    }

    if (ngx_rpc_mx_live()) {
        ngx_memzero(&ngx_rpc_mx_slot->cell[ngx_rpc_mx->gauges],
                    NGX_RPC_MX_GAUGES * sizeof(uint64_t));
    }

    (void) ngx_atomic_cmp_set(&ngx_rpc_mx_slot->pid, ngx_pid, 0);
    ngx_rpc_mx_slot = NULL;
}


/* the rpc_metrics location: Prometheus text of all workers' slots */

static ngx_int_t
ngx_rpc_metrics_handler(ngx_http_request_t *r)
{
    size_t                  size;
    u_char                 *p, *q, *lb;
    uint64_t               *sum, *up, *stats, n;
    ngx_buf_t              *b;
    ngx_int_t               rc;
    ngx_str_t              *name, *srv;
    ngx_uint_t              i, j, k, nup;
    ngx_chain_t             out;
    ngx_shm_zone_t        **zone;
    ngx_rpc_metrics_t      *mx;
    ngx_rpc_main_conf_t    *rmcf;
    ngx_rpc_mx_upstream_t  *u;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_rpc_module);
    mx = rmcf->metrics;

    sum = ngx_pcalloc(r->pool, (mx->ncells + mx->nworkers) * sizeof(uint64_t));
    lb = ngx_pnalloc(r->pool, 4 * mx->max_label + 64);
    stats = ngx_palloc(r->pool,
                       (2 * mx->cache_zones.nelts + 1) * sizeof(uint64_t));

    if (sum == NULL || lb == NULL || stats == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_rpc_metrics_sum(mx, sum);

    /* every line is bounded by the longest label of the configuration */

    size = 4096 + (4 * mx->max_label + 128)
                  * (mx->ncells + mx->nworkers + 2 * mx->cache_zones.nelts
                     + 64);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;
    name = mx->methods.elts;
    u = mx->upstream_list.elts;
    nup = mx->upstream_list.nelts;

    p = ngx_rpc_metrics_head(p, "rpc_messages_total", "counter",
                         "JSON-RPC messages received, by transport and shape");

    for (i = 0; i < NGX_RPC_MX_TRANSPORTS; i++) {
        for (j = 0; j < NGX_RPC_MX_SHAPES; j++) {
            p = ngx_sprintf(p, "rpc_messages_total{transport=\"%s\","
                            "shape=\"%s\"} %uL\n",
                            ngx_rpc_mx_transports[i], ngx_rpc_mx_shapes[j],
                            sum[mx->messages + i * NGX_RPC_MX_SHAPES + j]);
        }
    }

    p = ngx_rpc_metrics_head(p, "rpc_message_calls", "histogram",
                             "Calls in a message");
    p = ngx_rpc_metrics_hist(p, "rpc_message_calls", NULL,
                             &sum[mx->message_calls],
                             &ngx_rpc_mx_size_bounds, 0);

    p = ngx_rpc_metrics_head(p, "rpc_calls_total", "counter",
                         "Calls answered, by method and outcome: result, "
                         "error (from upstream), cancelled, or a gateway "
                         "error code");

    for (i = 0; i < mx->nlabels + 2; i++) {
        for (j = 0; j < NGX_RPC_MX_OUTCOMES; j++) {
            n = sum[mx->calls + i * NGX_RPC_MX_OUTCOMES + j];

            if (n == 0) {
                continue;
            }

            p = ngx_sprintf(p, "rpc_calls_total{method=\"");
            p = ngx_rpc_metrics_escape(p, &name[i]);

            if (j < 4) {
                p = ngx_sprintf(p, "\",outcome=\"%s\"} %uL\n",
                                ngx_rpc_mx_outcomes[j], n);

            } else {
                p = ngx_sprintf(p, "\",outcome=\"%i\"} %uL\n",
                                ngx_rpc_mx_codes[j - 4], n);
            }
        }
    }

    p = ngx_rpc_metrics_head(p, "rpc_call_duration_seconds", "histogram",
                             "Time from a call's arrival to its answer");

    for (i = 0; i < mx->nlabels + 2; i++) {
        k = mx->latency + i * mx->hist_cells;
        n = 0;

        for (j = 0; j <= mx->buckets->nelts; j++) {
            n += sum[k + j];
        }

        if (n == 0) {
            continue;
        }

        q = ngx_sprintf(lb, "method=\"");
        *ngx_rpc_metrics_escape(q, &name[i]) = '\0';
        p = ngx_rpc_metrics_hist(p, "rpc_call_duration_seconds", lb,
                                 &sum[k], mx->buckets, 1);
    }

    p = ngx_rpc_metrics_head(p, "rpc_cache_total", "counter",
                             "Cache lookups by status (as $rpc_cache_status), "
                             "Redis misses and errors, stores and evictions");

    for (i = 0; i < NGX_RPC_MX_CACHE; i++) {
        p = ngx_sprintf(p, "rpc_cache_total{event=\"%s\"} %uL\n",
                        ngx_rpc_mx_cache[i], sum[mx->cache + i]);
    }

    /* each zone's lock taken once: entries and bytes, then both shown */

    zone = mx->cache_zones.elts;

    for (i = 0; i < mx->cache_zones.nelts; i++) {
        ngx_rpc_cache_stats(zone[i], &stats[2 * i], &stats[2 * i + 1]);
    }

    p = ngx_rpc_metrics_head(p, "rpc_cache_entries", "gauge",
                             "Entries in a cache zone");

    for (i = 0; i < mx->cache_zones.nelts; i++) {
        p = ngx_sprintf(p, "rpc_cache_entries{zone=\"");
        p = ngx_rpc_metrics_escape(p, &zone[i]->shm.name);
        p = ngx_sprintf(p, "\"} %uL\n", stats[2 * i]);
    }

    p = ngx_rpc_metrics_head(p, "rpc_cache_bytes", "gauge",
                             "Bytes of a cache zone in use (whole pages)");

    for (i = 0; i < mx->cache_zones.nelts; i++) {
        p = ngx_sprintf(p, "rpc_cache_bytes{zone=\"");
        p = ngx_rpc_metrics_escape(p, &zone[i]->shm.name);
        p = ngx_sprintf(p, "\"} %uL\n", stats[2 * i + 1]);
    }

    p = ngx_rpc_metrics_upstream_counter(p, mx, sum,
                                         "rpc_upstream_requests_total",
                                         "Upstream HTTP requests",
                                         NGX_RPC_MX_UP_REQUESTS);

    p = ngx_rpc_metrics_head(p, "rpc_upstream_request_calls", "histogram",
                             "Calls in an upstream request");

    for (i = 0; i < nup; i++) {
        up = &sum[mx->upstreams + i * mx->upstream_cells];
        q = ngx_sprintf(lb, "upstream=\"");
        *ngx_rpc_metrics_escape(q, &u[i].name) = '\0';
        p = ngx_rpc_metrics_hist(p, "rpc_upstream_request_calls", lb,
                                 &up[NGX_RPC_MX_UP_HIST],
                                 &ngx_rpc_mx_size_bounds, 0);
    }

    p = ngx_rpc_metrics_head(p, "rpc_upstream_failures_total", "counter",
                             "Upstream requests that failed, by kind");

    for (i = 0; i < nup; i++) {
        up = &sum[mx->upstreams + i * mx->upstream_cells];

        for (j = 0; j < NGX_RPC_MX_KINDS; j++) {
            p = ngx_sprintf(p, "rpc_upstream_failures_total{upstream=\"");
            p = ngx_rpc_metrics_escape(p, &u[i].name);
            p = ngx_sprintf(p, "\",kind=\"%s\"} %uL\n", ngx_rpc_mx_kinds[j],
                            up[NGX_RPC_MX_UP_FAILURES + j]);
        }
    }

    p = ngx_rpc_metrics_upstream_counter(p, mx, sum,
                                         "rpc_upstream_fallback_calls_total",
                                         "Calls of a batch the upstream "
                                         "refused, sent again one by one",
                                         NGX_RPC_MX_UP_FALLBACKS);

    p = ngx_rpc_metrics_upstream_counter(p, mx, sum,
                                         "rpc_upstream_connections_total",
                                         "Upstream connections opened",
                                         NGX_RPC_MX_UP_CONNS);

    p = ngx_rpc_metrics_head(p, "rpc_upstream_duration_seconds",
                             "histogram",
                             "Time of each try of an upstream request, by "
                             "server");

    for (i = 0; i < nup; i++) {
        srv = u[i].servers.elts;

        for (j = 0; j < u[i].servers.nelts; j++) {
            k = mx->servers + (u[i].server + j) * mx->hist_cells;
            q = ngx_sprintf(lb, "upstream=\"");
            q = ngx_rpc_metrics_escape(q, &u[i].name);
            q = ngx_sprintf(q, "\",server=\"");
            *ngx_rpc_metrics_escape(q, &srv[j]) = '\0';
            p = ngx_rpc_metrics_hist(p, "rpc_upstream_duration_seconds", lb,
                                     &sum[k], mx->buckets, 1);
        }
    }

    p = ngx_rpc_metrics_head(p, "rpc_pending_calls", "gauge",
                             "Calls a worker holds now (rpc_max_pending)");

    for (i = 0; i < mx->nworkers; i++) {
        p = ngx_sprintf(p, "rpc_pending_calls{worker=\"%ui\"} %uL\n",
                        i, sum[mx->ncells + i]);
    }

    p = ngx_rpc_metrics_head(p, "rpc_websocket_connections", "gauge",
                             "WebSocket connections open");
    p = ngx_sprintf(p, "rpc_websocket_connections %uL\n",
                    sum[mx->gauges + NGX_RPC_MX_WEBSOCKETS]);

    p = ngx_rpc_metrics_head(p, "rpc_subscriptions", "gauge",
                             "Subscriptions of clients open");
    p = ngx_sprintf(p, "rpc_subscriptions %uL\n",
                    sum[mx->gauges + NGX_RPC_MX_SUBSCRIBERS]);

    p = ngx_rpc_metrics_head(p, "rpc_upstream_subscriptions", "gauge",
                             "Subscriptions the workers hold on nodes");
    p = ngx_sprintf(p, "rpc_upstream_subscriptions %uL\n",
                    sum[mx->gauges + NGX_RPC_MX_SUBSCRIPTIONS]);

    b->last = p;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main);
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The slots of this configuration's generation, added up; gauges only of
 * live workers, by worker number, after the cells.
 */

static void
ngx_rpc_metrics_sum(ngx_rpc_metrics_t *mx, uint64_t *sum)
{
    ngx_uint_t          i, j;
    ngx_rpc_mx_sh_t    *sh;
    ngx_rpc_mx_slot_t  *slot;

    sh = ((ngx_slab_pool_t *) mx->zone->shm.addr)->data;

    for (i = 0; i < sh->nslots; i++) {
        slot = (ngx_rpc_mx_slot_t *) (sh->slots + i * sh->slot_size);

        if (slot->generation != sh->generation) {
            continue;
        }

        for (j = 0; j < mx->gauges; j++) {
            sum[j] += slot->cell[j];
        }

        if (slot->pid == 0) {
            continue;
        }

        for (j = NGX_RPC_MX_WEBSOCKETS; j < NGX_RPC_MX_GAUGES; j++) {
            sum[mx->gauges + j] += slot->cell[mx->gauges + j];
        }

        if (slot->worker < mx->nworkers) {
            sum[mx->ncells + slot->worker]
                                    += slot->cell[mx->gauges + NGX_RPC_MX_HELD];
        }
    }
}


/* a counter family with one series for each upstream */

static u_char *
ngx_rpc_metrics_upstream_counter(u_char *p, ngx_rpc_metrics_t *mx,
    uint64_t *sum, char *name, char *help, ngx_uint_t cell)
{
    ngx_uint_t              i;
    ngx_rpc_mx_upstream_t  *u;

    p = ngx_rpc_metrics_head(p, name, "counter", help);

    u = mx->upstream_list.elts;

    for (i = 0; i < mx->upstream_list.nelts; i++) {
        p = ngx_sprintf(p, "%s{upstream=\"", name);
        p = ngx_rpc_metrics_escape(p, &u[i].name);
        p = ngx_sprintf(p, "\"} %uL\n",
                        sum[mx->upstreams + i * mx->upstream_cells + cell]);
    }

    return p;
}


static u_char *
ngx_rpc_metrics_head(u_char *p, char *name, char *type, char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                       name, help, name, type);
}


/*
 * A histogram's lines: labels is "name=\"value" (its last quote left
 * open) or NULL; times are kept in milliseconds and shown in seconds.
 */

static u_char *
ngx_rpc_metrics_hist(u_char *p, char *name, u_char *labels, uint64_t *cell,
    ngx_array_t *bounds, ngx_uint_t seconds)
{
    uint64_t     n;
    ngx_uint_t   i;
    ngx_msec_t  *b;

    b = bounds->elts;
    n = 0;

    for (i = 0; i <= bounds->nelts; i++) {
        n += cell[i];

        p = ngx_sprintf(p, "%s_bucket{", name);

        if (labels) {
            p = ngx_sprintf(p, "%s\",", labels);
        }

        if (i == bounds->nelts) {
            p = ngx_sprintf(p, "le=\"+Inf\"} %uL\n", n);

        } else if (seconds) {
            p = ngx_sprintf(p, "le=\"%ui.%03ui\"} %uL\n",
                            b[i] / 1000, b[i] % 1000, n);

        } else {
            p = ngx_sprintf(p, "le=\"%ui\"} %uL\n", b[i], n);
        }
    }

    if (labels) {
        p = ngx_sprintf(p, "%s_sum{%s\"} ", name, labels);

    } else {
        p = ngx_sprintf(p, "%s_sum ", name);
    }

    if (seconds) {
        p = ngx_sprintf(p, "%uL.%03uL\n", cell[i] / 1000, cell[i] % 1000);

    } else {
        p = ngx_sprintf(p, "%uL\n", cell[i]);
    }

    if (labels) {
        return ngx_sprintf(p, "%s_count{%s\"} %uL\n", name, labels, n);
    }

    return ngx_sprintf(p, "%s_count %uL\n", name, n);
}


/* a label value as the text format wants it */

static u_char *
ngx_rpc_metrics_escape(u_char *p, ngx_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        switch (s->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = s->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = s->data[i];
        }
    }

    return p;
}


ngx_rpc_metrics_t *
ngx_rpc_metrics_create(ngx_conf_t *cf)
{
    ngx_rpc_metrics_t  *mx;

    mx = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_metrics_t));
    if (mx == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mx->names, cf->pool, 16, sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&mx->patterns, cf->pool, 4, sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&mx->upstream_list, cf->pool, 4,
                          sizeof(ngx_rpc_mx_upstream_t))
           != NGX_OK
        || ngx_array_init(&mx->cache_zones, cf->pool, 2,
                          sizeof(ngx_shm_zone_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return mx;
}


/* a method name a label may be: from the directives that name methods */

ngx_int_t
ngx_rpc_metrics_name(ngx_conf_t *cf, ngx_str_t *name, ngx_uint_t patterns)
{
    ngx_str_t            *s;
    ngx_array_t          *a;
    ngx_rpc_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);

    a = ngx_strlchr(name->data, name->data + name->len, '*')
        ? &rmcf->metrics->patterns : &rmcf->metrics->names;

    if (a == &rmcf->metrics->patterns && !patterns) {
        return NGX_OK;
    }

    s = ngx_array_push(a);
    if (s == NULL) {
        return NGX_ERROR;
    }

    *s = *name;

    return NGX_OK;
}


ngx_int_t
ngx_rpc_metrics_cache_zone(ngx_conf_t *cf, ngx_shm_zone_t *zone)
{
    ngx_shm_zone_t       **z;
    ngx_rpc_main_conf_t   *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);

    z = ngx_array_push(&rmcf->metrics->cache_zones);
    if (z == NULL) {
        return NGX_ERROR;
    }

    *z = zone;

    return NGX_OK;
}


/* the upstream of an rpc_pass or rpc_route, once */

ngx_int_t
ngx_rpc_metrics_add_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *uscf)
{
    ngx_uint_t              i;
    ngx_rpc_metrics_t      *mx;
    ngx_rpc_main_conf_t    *rmcf;
    ngx_rpc_mx_upstream_t  *u;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);
    mx = rmcf->metrics;

    u = mx->upstream_list.elts;

    for (i = 0; i < mx->upstream_list.nelts; i++) {
        if (u[i].uscf == uscf) {
            return NGX_OK;
        }
    }

    u = ngx_array_push(&mx->upstream_list);
    if (u == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(u, sizeof(ngx_rpc_mx_upstream_t));
    u->uscf = uscf;

    return NGX_OK;
}


/* "other" and "invalid" are the gateway's own labels */

static ngx_uint_t
ngx_rpc_metrics_builtin(ngx_str_t *name)
{
    return (name->len == 5 && ngx_strncmp(name->data, "other", 5) == 0)
           || (name->len == 7 && ngx_strncmp(name->data, "invalid", 7) == 0);
}


static int ngx_libc_cdecl
ngx_rpc_metrics_cmp(const void *one, const void *two)
{
    ngx_str_t  *a = (ngx_str_t *) one;
    ngx_str_t  *b = (ngx_str_t *) two;

    return ngx_memn2cmp(a->data, b->data, a->len, b->len);
}


/*
 * Once every location is merged: the labels (names sorted, without
 * duplicates, then the patterns, "other" and "invalid"), each upstream's
 * servers, and where each family's cells are in a slot.
 */

ngx_int_t
ngx_rpc_metrics_init(ngx_conf_t *cf)
{
    u_char                       *p, buf[NGX_INT_T_LEN];
    size_t                        n;
    ngx_str_t                    *s, *name, *label;
    ngx_uint_t                    i, j, k, nservers;
    ngx_msec_t                   *b;
    ngx_shm_zone_t              **zone;
    ngx_rpc_metrics_t            *mx;
    ngx_rpc_main_conf_t          *rmcf;
    ngx_rpc_mx_upstream_t        *u;
    ngx_http_upstream_server_t   *server;

    ngx_rpc_mx_size_bounds.elts = ngx_rpc_mx_sizes;
    ngx_rpc_mx_size_bounds.nelts = sizeof(ngx_rpc_mx_sizes)
                                   / sizeof(ngx_msec_t);

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);
    mx = rmcf->metrics;

    if (mx->zone == NULL) {
        if (mx->shown_file) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"rpc_metrics\" needs \"rpc_metrics_zone\" in "
                          "%s:%ui", mx->shown_file, mx->shown_line);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (mx->buckets == NULL) {
        mx->buckets = ngx_array_create(cf->pool, 11, sizeof(ngx_msec_t));
        if (mx->buckets == NULL) {
            return NGX_ERROR;
        }

        b = ngx_array_push_n(mx->buckets, 11);
        if (b == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(b, ngx_rpc_mx_default_buckets, 11 * sizeof(ngx_msec_t));
    }

    name = mx->names.elts;
    ngx_qsort(name, mx->names.nelts, sizeof(ngx_str_t), ngx_rpc_metrics_cmp);

    if (ngx_array_init(&mx->methods, cf->pool,
                       mx->names.nelts + mx->patterns.nelts + 2,
                       sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < mx->names.nelts; i++) {
        if ((i && ngx_rpc_metrics_cmp(&name[i - 1], &name[i]) == 0)
            || ngx_rpc_metrics_builtin(&name[i]))
        {
            continue;
        }

        label = ngx_array_push(&mx->methods);
        if (label == NULL) {
            return NGX_ERROR;
        }

        *label = name[i];
    }

    mx->nnames = mx->methods.nelts;

    name = mx->patterns.elts;

    for (i = 0; i < mx->patterns.nelts + 2; i++) {

        /* a pattern given twice is one label */

        if (i < mx->patterns.nelts) {
            label = mx->methods.elts;

            for (j = mx->nnames; j < mx->methods.nelts; j++) {
                if (ngx_rpc_metrics_cmp(&label[j], &name[i]) == 0) {
                    break;
                }
            }

            if (j < mx->methods.nelts) {
                continue;
            }
        }

        label = ngx_array_push(&mx->methods);
        if (label == NULL) {
            return NGX_ERROR;
        }

        if (i < mx->patterns.nelts) {
            *label = name[i];

        } else if (i == mx->patterns.nelts) {
            ngx_str_set(label, "other");

        } else {
            ngx_str_set(label, "invalid");
        }
    }

    mx->nlabels = mx->methods.nelts - 2;

    /* the servers of each upstream as configured, then "other" */

    nservers = 0;
    u = mx->upstream_list.elts;

    for (i = 0; i < mx->upstream_list.nelts; i++) {
        u[i].server = nservers;

        /* an upstream {} by its name, one of rpc_pass by host and port */

        u[i].name = u[i].uscf->host;

        if (u[i].uscf->port) {
            n = ngx_sprintf(buf, "%ui", (ngx_uint_t) u[i].uscf->port) - buf;

            u[i].name.len = u[i].uscf->host.len + 1 + n;
            u[i].name.data = ngx_pnalloc(cf->pool, u[i].name.len);
            if (u[i].name.data == NULL) {
                return NGX_ERROR;
            }

            p = ngx_cpymem(u[i].name.data, u[i].uscf->host.data,
                           u[i].uscf->host.len);
            *p++ = ':';
            ngx_memcpy(p, buf, n);
        }

        if (ngx_array_init(&u[i].servers, cf->pool, 2, sizeof(ngx_str_t))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (u[i].uscf->servers) {
            server = u[i].uscf->servers->elts;

            for (j = 0; j < u[i].uscf->servers->nelts; j++) {
                for (k = 0; k < server[j].naddrs; k++) {
                    s = ngx_array_push(&u[i].servers);
                    if (s == NULL) {
                        return NGX_ERROR;
                    }

                    *s = server[j].addrs[k].name;
                }
            }

        } else {
            s = ngx_array_push(&u[i].servers);
            if (s == NULL) {
                return NGX_ERROR;
            }

            *s = u[i].name;
        }

        s = ngx_array_push(&u[i].servers);
        if (s == NULL) {
            return NGX_ERROR;
        }

        ngx_str_set(s, "other");

        nservers += u[i].servers.nelts;
    }

    /* the longest label, which bounds every line of the output */

    mx->max_label = 32;

    for (i = 0; i < mx->methods.nelts; i++) {
        label = mx->methods.elts;
        mx->max_label = ngx_max(mx->max_label, label[i].len);
    }

    for (i = 0; i < mx->upstream_list.nelts; i++) {
        s = u[i].servers.elts;

        for (j = 0; j < u[i].servers.nelts; j++) {
            mx->max_label = ngx_max(mx->max_label, u[i].name.len + s[j].len);
        }
    }

    zone = mx->cache_zones.elts;

    for (i = 0; i < mx->cache_zones.nelts; i++) {
        mx->max_label = ngx_max(mx->max_label, zone[i]->shm.name.len);
    }

    /* the cells of a slot */

    mx->hist_cells = mx->buckets->nelts + 2;
    mx->upstream_cells = NGX_RPC_MX_UP_HIST
                         + ngx_rpc_mx_size_bounds.nelts + 2;

    mx->messages = 0;
    mx->message_calls = NGX_RPC_MX_TRANSPORTS * NGX_RPC_MX_SHAPES;
    mx->calls = mx->message_calls + ngx_rpc_mx_size_bounds.nelts + 2;
    mx->latency = mx->calls + (mx->nlabels + 2) * NGX_RPC_MX_OUTCOMES;
    mx->cache = mx->latency + (mx->nlabels + 2) * mx->hist_cells;
    mx->upstreams = mx->cache + NGX_RPC_MX_CACHE;
    mx->servers = mx->upstreams
                  + mx->upstream_list.nelts * mx->upstream_cells;
    mx->gauges = mx->servers + nservers * mx->hist_cells;
    mx->ncells = mx->gauges + NGX_RPC_MX_GAUGES;

    /* what makes one layout another: counts are kept only for the same */

    ngx_crc32_init(mx->signature);
    ngx_crc32_update(&mx->signature, (u_char *) &mx->ncells,
                     sizeof(ngx_uint_t));
    ngx_crc32_update(&mx->signature, mx->buckets->elts,
                     mx->buckets->nelts * sizeof(ngx_msec_t));

    label = mx->methods.elts;

    for (i = 0; i < mx->methods.nelts; i++) {
        ngx_crc32_update(&mx->signature, label[i].data, label[i].len);
        ngx_crc32_update(&mx->signature, (u_char *) "\n", 1);
    }

    for (i = 0; i < mx->upstream_list.nelts; i++) {
        s = u[i].servers.elts;

        for (j = 0; j < u[i].servers.nelts; j++) {
            ngx_crc32_update(&mx->signature, u[i].name.data, u[i].name.len);
            ngx_crc32_update(&mx->signature, s[j].data, s[j].len);
            ngx_crc32_update(&mx->signature, (u_char *) "\n", 1);
        }
    }

    ngx_crc32_final(mx->signature);

    return NGX_OK;
}


static ngx_int_t
ngx_rpc_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rpc_metrics_t  *mx = shm_zone->data;

    size_t            size;
    ngx_uint_t        i, nslots;
    ngx_core_conf_t  *ccf;
    ngx_rpc_mx_sh_t  *sh;
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ccf = (ngx_core_conf_t *) ngx_get_conf(mx->cycle->conf_ctx,
                                           ngx_core_module);

    mx->nworkers = ccf->worker_processes;

    size = ngx_align(offsetof(ngx_rpc_mx_slot_t, cell)
                     + mx->ncells * sizeof(uint64_t), 64);

    if (shm_zone->shm.exists || data) {
        sh = shpool->data;

        if (sh->signature == mx->signature && sh->slot_size == size
            && sh->nslots >= 4 * mx->nworkers + 4)
        {
            return NGX_OK;
        }

        /* other labels: the workers of the old ones stop counting */

        ngx_shmtx_lock(&shpool->mutex);

        sh->generation++;

        if (sh->slots) {
            ngx_slab_free_locked(shpool, sh->slots);
            sh->slots = NULL;
        }

        ngx_shmtx_unlock(&shpool->mutex);

    } else {
        sh = ngx_slab_alloc(shpool, sizeof(ngx_rpc_mx_sh_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(sh, sizeof(ngx_rpc_mx_sh_t));
        shpool->data = sh;
    }

    /* a slot for each worker, and three times as many again for reloads */

    nslots = 4 * mx->nworkers + 4;

    sh->slots = ngx_slab_alloc(shpool, nslots * size);
    if (sh->slots == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "rpc_metrics_zone \"%V\" is too small: %uz bytes of "
                      "counters are needed for %ui workers",
                      &shm_zone->shm.name, nslots * size + 8 * ngx_pagesize,
                      mx->nworkers);
        return NGX_ERROR;
    }

    ngx_memzero(sh->slots, nslots * size);

    for (i = 0; i < nslots; i++) {
        ((ngx_rpc_mx_slot_t *) (sh->slots + i * size))->generation =
                                                            sh->generation;
    }

    sh->signature = mx->signature;
    sh->nslots = nslots;
    sh->slot_size = size;

    return NGX_OK;
}


/* rpc_metrics_zone NAME:SIZE */

char *
ngx_rpc_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_main_conf_t  *rmcf = conf;

    ngx_str_t          *value;
    ngx_rpc_metrics_t  *mx;

    mx = rmcf->metrics;

    if (mx->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mx->zone = ngx_rpc_conf_zone(cf, &value[1]);
    if (mx->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    mx->cycle = cf->cycle;
    mx->zone->init = ngx_rpc_metrics_init_zone;
    mx->zone->data = mx;

    return NGX_CONF_OK;
}


/* rpc_metrics: the location shows the counters */

char *
ngx_rpc_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_main_conf_t       *rmcf;
    ngx_http_core_loc_conf_t  *clcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);
    rmcf->metrics->shown_file = cf->conf_file->file.name.data;
    rmcf->metrics->shown_line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_rpc_metrics_handler;

    return NGX_CONF_OK;
}


/* rpc_metrics_buckets SECONDS... */

char *
ngx_rpc_metrics_buckets(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_main_conf_t  *rmcf = conf;

    ngx_int_t     ms;
    ngx_str_t    *value;
    ngx_uint_t    i;
    ngx_msec_t   *b;
    ngx_array_t  *a;

    if (rmcf->metrics->buckets) {
        return "is duplicate";
    }

    if (cf->args->nelts > 33) {
        return "takes at most 32 buckets";
    }

    a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_msec_t));
    if (a == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        ms = ngx_atofp(value[i].data, value[i].len, 3);

        b = a->elts;

        if (ms <= 0 || (i > 1 && (ngx_msec_t) ms <= b[i - 2])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid bucket \"%V\": seconds, at most 3 "
                               "decimals, increasing", &value[i]);
            return NGX_CONF_ERROR;
        }

        b = ngx_array_push(a);
        if (b == NULL) {
            return NGX_CONF_ERROR;
        }

        *b = (ngx_msec_t) ms;
    }

    rmcf->metrics->buckets = a;

    return NGX_CONF_OK;
}


/* rpc_metrics_methods NAME|PATTERN... */

char *
ngx_rpc_metrics_methods(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_rpc_metrics_name(cf, &value[i], 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}
