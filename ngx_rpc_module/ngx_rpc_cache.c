
/*
 * Response cache: a shared-memory zone (slab, rbtree by key hash, LRU
 * queue) all workers read, and Redis behind it when configured.  A miss
 * joins the calls in flight (ngx_rpc_flight.c).
 */


#include "ngx_rpc.h"


typedef struct {
    ngx_rbtree_node_t            node;
    ngx_queue_t                  queue;
    ngx_msec_t                   expire;
    uint32_t                     key_len;
    uint32_t                     value_len;
    u_char                       data[1];
} ngx_rpc_cache_node_t;


typedef struct {
    ngx_rpc_shm_tree_t           tree;
    ngx_uint_t                   entries;
} ngx_rpc_cache_sh_t;


typedef struct {
    ngx_rpc_cache_sh_t          *sh;
    ngx_slab_pool_t             *shpool;
    size_t                       max_entry;
} ngx_rpc_cache_t;


static ngx_int_t ngx_rpc_cache_key(ngx_rpc_call_t *call);
static ngx_int_t ngx_rpc_cache_get(ngx_rpc_cache_t *cache,
    ngx_rpc_call_t *call, ngx_pool_t *pool);
static void ngx_rpc_cache_put(ngx_rpc_cache_t *cache, ngx_rpc_call_t *call,
    ngx_str_t *value, ngx_msec_t ttl);
static ngx_rpc_cache_node_t *ngx_rpc_cache_find(ngx_rpc_cache_t *cache,
    ngx_str_t *key, uint32_t hash);
static void ngx_rpc_cache_delete(ngx_rpc_cache_t *cache,
    ngx_rpc_cache_node_t *cn);
static void ngx_rpc_cache_redis_handler(void *data, redisReply **reply);
static ngx_int_t ngx_rpc_cache_redis_value(ngx_rpc_call_t *call,
    redisReply *reply);
static void ngx_rpc_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_rpc_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/*
 * NGX_OK: answered from the cache; NGX_AGAIN: waits for Redis or for an
 * identical call in flight; NGX_DECLINED: goes upstream.
 */

ngx_int_t
ngx_rpc_cache_lookup(ngx_rpc_call_t *call)
{
    ngx_int_t               rc;
    ngx_uint_t              i;
    ngx_rpc_message_t      *ctx;
    ngx_http_request_t     *r;
    ngx_rpc_loc_conf_t     *rlcf;
    ngx_rpc_main_conf_t    *rmcf;
    ngx_rpc_cache_valid_t  *cv;

    ctx = call->ctx;
    r = ctx->request;
    rlcf = ngx_http_get_module_loc_conf(r, ngx_rpc_module);

    if (rlcf->cache == NULL || rlcf->cache_valid == NULL
        || call->notification)
    {
        return NGX_DECLINED;
    }

    cv = rlcf->cache_valid->elts;

    for (i = 0; i < rlcf->cache_valid->nelts; i++) {
        if (ngx_rpc_policy_match(cv[i].patterns, &call->msg->method)) {
            call->valid = cv[i].valid;
            break;
        }
    }

    if (call->valid == 0) {
        return NGX_DECLINED;
    }

    if (ngx_rpc_cache_key(call) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rlcf->cache_bypass
        && ngx_http_test_predicates(r, rlcf->cache_bypass) == NGX_DECLINED)
    {
        call->cache_status = NGX_RPC_CACHE_BYPASS;
        return NGX_DECLINED;
    }

    rc = ngx_rpc_cache_get(rlcf->cache->data, call, call->ctx->pool);

    if (rc == NGX_OK) {
        call->cache_status = NGX_RPC_CACHE_HIT;
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    call->cache_status = (rc == NGX_ABORT) ? NGX_RPC_CACHE_EXPIRED
                                           : NGX_RPC_CACHE_MISS;

    /* identical calls wait for the first, which alone asks Redis */

    if (ngx_rpc_flight_join(call) == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_rpc_module);

    if (rmcf->redis) {
        call->lookup = ngx_rpc_redis_get(rmcf->redis, &call->key,
                                         ngx_rpc_cache_redis_handler, call);
        if (call->lookup) {
            ctx->lookups++;
            return NGX_AGAIN;
        }
    }

    return NGX_DECLINED;
}


/*
 * what the answer depends on, then method and params with insignificant
 * whitespace removed: rpc_cache_key, by default the upstream (the group,
 * its port and the URI of rpc_pass)
 */

static ngx_int_t
ngx_rpc_cache_key(ngx_rpc_call_t *call)
{
    u_char                        *p, *last;
    size_t                         len;
    ngx_str_t                      name;
    ngx_rpc_msg_t                 *msg;
    ngx_rpc_message_t             *ctx;
    ngx_rpc_parser_t              *parser;
    ngx_rpc_session_t             *s;
    ngx_rpc_loc_conf_t            *rlcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    msg = call->msg;
    ctx = call->ctx;
    parser = &ctx->parser;
    uscf = call->upstream->upstream;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);

    if (rlcf->cache_key) {
        s = ctx->session;

        /* once a session: a WebSocket request's pool lives as long */

        if (!s->cache_key_set) {
            if (ngx_http_complex_value(ctx->request, rlcf->cache_key,
                                       &s->cache_key)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            s->cache_key_set = 1;
        }

        name = s->cache_key;

    } else {

        /* once a message for each upstream group its calls go to */

        if (ctx->key_upstream != uscf) {
            p = ngx_pnalloc(ctx->pool,
                            uscf->host.len + NGX_INT_T_LEN + rlcf->uri.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ctx->key_prefix.len = ngx_sprintf(p, "%V:%ui%V", &uscf->host,
                                              (ngx_uint_t) uscf->port,
                                              &rlcf->uri)
                                  - p;
            ctx->key_prefix.data = p;
            ctx->key_upstream = uscf;
        }

        name = ctx->key_prefix;
    }

    len = name.len + 3 + (msg->member[NGX_RPC_M_METHOD].range.end
                          - msg->member[NGX_RPC_M_METHOD].range.start)
          + (msg->member[NGX_RPC_M_PARAMS].range.end
             - msg->member[NGX_RPC_M_PARAMS].range.start);

    p = ngx_pnalloc(ctx->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_cpymem(p, name.data, name.len);
    *last++ = '\n';

    last = ngx_rpc_parse_copy_to(parser,
                                 &msg->member[NGX_RPC_M_METHOD].range, last);
    *last++ = '\n';

    if (msg->member[NGX_RPC_M_PARAMS].type != NGX_RPC_NONE) {
        last = ngx_rpc_parse_copy_squeezed(parser,
                                  &msg->member[NGX_RPC_M_PARAMS].range, last);
    }

    call->key.data = p;
    call->key.len = last - p;
    call->hash = ngx_murmur_hash2(p, call->key.len);

    return NGX_OK;
}


/* NGX_OK and the value in call->answer, NGX_DECLINED, NGX_ABORT: expired */

static ngx_int_t
ngx_rpc_cache_get(ngx_rpc_cache_t *cache, ngx_rpc_call_t *call,
    ngx_pool_t *pool)
{
    ngx_int_t              rc;
    ngx_rpc_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_rpc_cache_find(cache, &call->key, call->hash);

    if (cn == NULL) {
        rc = NGX_DECLINED;

    } else if ((ngx_msec_int_t) (cn->expire - ngx_current_msec) <= 0) {
        ngx_rpc_cache_delete(cache, cn);
        rc = NGX_ABORT;

    } else {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->tree.queue, &cn->queue);

        call->answer.len = cn->value_len;
        call->answer.data = ngx_pnalloc(pool, cn->value_len);

        if (call->answer.data) {
            ngx_memcpy(call->answer.data, cn->data + cn->key_len,
                       cn->value_len);
            rc = NGX_OK;

        } else {
            rc = NGX_ERROR;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/* stores a value, evicting from the LRU tail while the zone is full */

static void
ngx_rpc_cache_put(ngx_rpc_cache_t *cache, ngx_rpc_call_t *call,
    ngx_str_t *value, ngx_msec_t ttl)
{
    size_t                 size;
    ngx_uint_t             n;
    ngx_queue_t           *q;
    ngx_rpc_cache_node_t  *cn;

    size = offsetof(ngx_rpc_cache_node_t, data) + call->key.len + value->len;

    if (size > cache->max_entry) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, call->ctx->request->connection->log,
                       0, "rpc cache: entry of %uz bytes not stored", size);
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_rpc_cache_find(cache, &call->key, call->hash);

    if (cn) {
        ngx_rpc_cache_delete(cache, cn);
    }

    /* expired entries at the tail go first */

    for (n = 0; n < 2 && !ngx_queue_empty(&cache->sh->tree.queue); n++) {
        q = ngx_queue_last(&cache->sh->tree.queue);
        cn = ngx_queue_data(q, ngx_rpc_cache_node_t, queue);

        if ((ngx_msec_int_t) (cn->expire - ngx_current_msec) > 0) {
            break;
        }

        ngx_rpc_cache_delete(cache, cn);
    }

    for ( ;; ) {
        cn = ngx_slab_alloc_locked(cache->shpool, size);

        if (cn || ngx_queue_empty(&cache->sh->tree.queue)) {
            break;
        }

        q = ngx_queue_last(&cache->sh->tree.queue);
        ngx_rpc_cache_delete(cache,
                             ngx_queue_data(q, ngx_rpc_cache_node_t, queue));
        ngx_rpc_metrics_cache(NGX_RPC_MX_EVICT);
    }

    if (cn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, call->ctx->request->connection->log, 0,
                      "rpc cache: no room for an entry of %uz bytes", size);
        return;
    }

    cn->node.key = call->hash;
    cn->expire = ngx_current_msec + ttl;
    cn->key_len = call->key.len;
    cn->value_len = value->len;
    ngx_memcpy(ngx_cpymem(cn->data, call->key.data, call->key.len),
               value->data, value->len);

    ngx_rbtree_insert(&cache->sh->tree.rbtree, &cn->node);
    ngx_queue_insert_head(&cache->sh->tree.queue, &cn->queue);
    cache->sh->entries++;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_rpc_metrics_cache(NGX_RPC_MX_STORE);
}


static ngx_rpc_cache_node_t *
ngx_rpc_cache_find(ngx_rpc_cache_t *cache, ngx_str_t *key, uint32_t hash)
{
    ngx_int_t              rc;
    ngx_rbtree_node_t     *node, *sentinel;
    ngx_rpc_cache_node_t  *cn;

    node = cache->sh->tree.rbtree.root;
    sentinel = cache->sh->tree.rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        cn = (ngx_rpc_cache_node_t *) node;

        rc = ngx_memn2cmp(key->data, cn->data, key->len, cn->key_len);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_rpc_cache_delete(ngx_rpc_cache_t *cache, ngx_rpc_cache_node_t *cn)
{
    cache->sh->entries--;
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->tree.rbtree, &cn->node);
    ngx_slab_free_locked(cache->shpool, cn);
}


/*
 * GET and PTTL answered: a hit fills the zone for what is left of its TTL.
 * A value is used only when it is one JSON value within max_entry, as
 * anything may be in a Redis that other hosts write to.
 */

static void
ngx_rpc_cache_redis_handler(void *data, redisReply **reply)
{
    ngx_rpc_call_t  *call = data;

    ngx_rpc_message_t   *ctx;
    ngx_rpc_loc_conf_t  *rlcf;

    ctx = call->ctx;
    call->lookup = NULL;
    ctx->lookups--;

    if (reply
        && reply[0]->type == REDIS_REPLY_STRING && reply[0]->len > 0
        && reply[1]->type == REDIS_REPLY_INTEGER && reply[1]->integer > 0
        && ngx_rpc_cache_redis_value(call, reply[0]) == NGX_OK)
    {
        rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);
        ngx_rpc_cache_put(rlcf->cache->data, call, &call->answer,
                          ngx_min((ngx_msec_t) reply[1]->integer,
                                  call->valid));

        call->cache_status = NGX_RPC_CACHE_REDIS;
        ngx_rpc_call_done(call, 0);

    } else {
        ngx_rpc_metrics_cache(reply ? NGX_RPC_MX_REDIS_MISS
                                    : NGX_RPC_MX_REDIS_ERROR);
        call->send = 1;
    }

    /* calls of the message to send wait for its last lookup */

    ngx_rpc_message_wake(ctx);
}


/* the value as the call's answer, if it is one JSON value other than null */

static ngx_int_t
ngx_rpc_cache_redis_value(ngx_rpc_call_t *call, redisReply *reply)
{
    u_char              *data;
    ngx_int_t            rc;
    ngx_log_t           *log;
    ngx_rpc_cache_t     *cache;
    ngx_rpc_parser_t    *p;
    ngx_rpc_message_t   *ctx;
    ngx_rpc_loc_conf_t  *rlcf;

    ctx = call->ctx;
    log = ctx->request->connection->log;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);
    cache = rlcf->cache->data;

    if (offsetof(ngx_rpc_cache_node_t, data) + call->key.len + reply->len
        > cache->max_entry)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rpc cache: Redis value of %uz bytes is larger than "
                      "max_entry, not used", (size_t) reply->len);
        return NGX_DECLINED;
    }

    data = ngx_pnalloc(ctx->pool, reply->len);
    p = ngx_pcalloc(ctx->pool, sizeof(ngx_rpc_parser_t));

    if (data == NULL || p == NULL) {
        return NGX_DECLINED;
    }

    ngx_memcpy(data, reply->str, reply->len);

    /* max_msgs 0: the value is checked, its elements are not recorded */

    rc = NGX_DECLINED;

    if (ngx_rpc_parse_init(p, ctx->pool, log, NGX_RPC_VALUE_MAX_DEPTH, 0, 1)
        == NGX_OK
        && ngx_rpc_parse_feed(p, data, reply->len) == NGX_OK
        && ngx_rpc_parse_finish(p) == NGX_OK
        && p->top != NGX_RPC_NULL)
    {
        rc = NGX_OK;
    }

    if (p->yajl) {
        yajl_free(p->yajl);
        p->yajl = NULL;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rpc cache: Redis value is not one JSON value "
                      "other than null, not used");
        return NGX_DECLINED;
    }

    call->answer.data = data;
    call->answer.len = reply->len;

    return NGX_OK;
}


/* an exchange ended and its calls are done: their results are stored */

void
ngx_rpc_cache_update(ngx_rpc_exchange_t *ex)
{
    ngx_str_t             value;
    ngx_uint_t            i;
    ngx_rpc_call_t       *call;
    ngx_rpc_value_t      *result;
    ngx_rpc_loc_conf_t   *rlcf;
    ngx_rpc_main_conf_t  *rmcf;

    rlcf = ngx_http_get_module_loc_conf(ex->request, ngx_rpc_module);
    rmcf = ngx_http_get_module_main_conf(ex->request, ngx_rpc_module);

    for (i = 0; i < ex->nsent; i++) {
        call = ex->calls[i];

        if (call == NULL || call->key.len == 0 || call->error
            || call->reply == NULL)
        {
            continue;
        }

        result = &call->reply->member[NGX_RPC_M_RESULT];

        if (result->type == NGX_RPC_NONE || result->type == NGX_RPC_NULL) {
            continue;
        }

        if (ngx_rpc_parse_copy(&ex->reply, &result->range, &value) != NGX_OK)
        {
            continue;
        }

        ngx_rpc_cache_put(rlcf->cache->data, call, &value, call->valid);

        if (rmcf->redis) {
            ngx_rpc_redis_set(rmcf->redis, &call->key, &value, call->valid);
        }
    }
}


static void
ngx_rpc_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_rpc_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            cn = (ngx_rpc_cache_node_t *) node;
            cnt = (ngx_rpc_cache_node_t *) temp;

            p = (ngx_memn2cmp(cn->data, cnt->data, cn->key_len,
                              cnt->key_len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* a zone that outlives a reload keeps its entries */

static ngx_int_t
ngx_rpc_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rpc_cache_t  *ocache = data;

    ngx_rpc_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    cache->sh = ngx_rpc_shm_tree(shm_zone, sizeof(ngx_rpc_cache_sh_t),
                                 "rpc_cache_zone",
                                 ngx_rpc_cache_rbtree_insert_value);

    return cache->sh ? NGX_OK : NGX_ERROR;
}


/* rpc_cache_zone NAME:SIZE [max_entry=SIZE] */

char *
ngx_rpc_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t           size, max_entry;
    ngx_str_t        *value, s;
    ngx_shm_zone_t   *shm_zone;
    ngx_rpc_cache_t  *cache;

    value = cf->args->elts;

    shm_zone = ngx_rpc_conf_zone(cf, &value[1]);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    size = shm_zone->shm.size;

    max_entry = size / 8;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "max_entry=", 10) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        s.data = value[2].data + 10;
        s.len = value[2].len - 10;

        max_entry = ngx_parse_size(&s);

        if (max_entry <= 0 || max_entry > size / 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid max_entry \"%V\", at most half "
                               "the zone size", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->max_entry = max_entry;

    shm_zone->init = ngx_rpc_cache_init_zone;
    shm_zone->data = cache;

    if (ngx_rpc_metrics_cache_zone(cf, shm_zone) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the entries of a zone and the bytes they take, for the metrics */

void
ngx_rpc_cache_stats(ngx_shm_zone_t *zone, uint64_t *entries, uint64_t *bytes)
{
    ngx_rpc_cache_t  *cache;

    cache = zone->data;

    if (cache->sh == NULL) {
        *entries = 0;
        *bytes = 0;
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    *entries = cache->sh->entries;
    *bytes = (uint64_t) ((cache->shpool->end - cache->shpool->start)
                         / ngx_pagesize - cache->shpool->pfree)
             * ngx_pagesize;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* rpc_cache ZONE | off */

char *
ngx_rpc_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t  *value;

    if (rlcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->cache = NULL;
        return NGX_CONF_OK;
    }

    rlcf->cache = ngx_shared_memory_add(cf, &value[1], 0, &ngx_rpc_module);
    if (rlcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    if (rlcf->cache->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown rpc_cache_zone \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* rpc_cache_valid PATTERN... TIME */

char *
ngx_rpc_cache_valid(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t              *value, *pat;
    ngx_uint_t              i, n;
    ngx_rpc_cache_valid_t  *cv;

    value = cf->args->elts;
    n = cf->args->nelts - 1;

    if (rlcf->cache_valid == NGX_CONF_UNSET_PTR) {
        rlcf->cache_valid = ngx_array_create(cf->pool, 2,
                                             sizeof(ngx_rpc_cache_valid_t));
        if (rlcf->cache_valid == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cv = ngx_array_push(rlcf->cache_valid);
    if (cv == NULL) {
        return NGX_CONF_ERROR;
    }

    cv->valid = ngx_parse_time(&value[n], 0);

    if (cv->valid == (ngx_msec_t) NGX_ERROR || cv->valid == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time value \"%V\"", &value[n]);
        return NGX_CONF_ERROR;
    }

    cv->patterns = ngx_array_create(cf->pool, n - 1, sizeof(ngx_str_t));
    if (cv->patterns == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < n; i++) {
        pat = ngx_array_push(cv->patterns);
        if (pat == NULL) {
            return NGX_CONF_ERROR;
        }

        *pat = value[i];
    }

    return NGX_CONF_OK;
}
