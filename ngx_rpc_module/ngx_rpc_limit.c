
/*
 * Call-weighted rate limits: rpc_limit_zone and rpc_limit read as
 * limit_req_zone and limit_req, with nginx's leaky bucket (excess kept in
 * thousandths of a call), but each call of a message is charged its cost
 * (rpc_limit_cost) on its own, in message order.  A call is charged to
 * every zone of the location only if all of them admit it.  A full zone
 * lets its least recently used keys go; it never refuses for memory.
 */


#include "ngx_rpc.h"


typedef struct {
    u_char                       color;
    u_char                       fresh;   /* as if it had drained for ever */
    u_short                      len;
    ngx_queue_t                  queue;
    ngx_msec_t                   last;
    ngx_uint_t                   excess;  /* thousandths of a call */
    u_char                       data[1];
} ngx_rpc_limit_node_t;


typedef struct {
    ngx_rpc_shm_tree_t           tree;
} ngx_rpc_limit_sh_t;


typedef struct {
    ngx_rpc_limit_sh_t          *sh;
    ngx_slab_pool_t             *shpool;
    ngx_uint_t                   rate;    /* thousandths of a call a second */
    ngx_http_complex_value_t     key;
} ngx_rpc_limit_ctx_t;


static ngx_int_t ngx_rpc_limit_key(ngx_rpc_message_t *ctx, ngx_uint_t i,
    ngx_str_t *key);
static ngx_rpc_limit_node_t *ngx_rpc_limit_node(ngx_rpc_limit_ctx_t *lctx,
    ngx_str_t *key, uint32_t hash);
static ngx_uint_t ngx_rpc_limit_cost(ngx_rpc_loc_conf_t *rlcf,
    ngx_str_t *method);
static void ngx_rpc_limit_delay_handler(ngx_event_t *ev);
static void ngx_rpc_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_rpc_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/*
 * The call's cost against every limit of the location: NGX_OK (charged,
 * go on), NGX_AGAIN (charged, go on after call->delay), NGX_DECLINED
 * (refused, nothing charged).
 */

ngx_int_t
ngx_rpc_limit_call(ngx_rpc_call_t *call)
{
    uint32_t               hash;
    ngx_int_t              rc, refuse;
    ngx_str_t              key;
    ngx_uint_t             i, n, cost, excess, drained, over, level;
    ngx_uint_t             next[NGX_RPC_LIMITS_MAX];
    ngx_msec_t             delay, wait;
    ngx_msec_int_t         d;
    ngx_rpc_limit_t       *limit;
    ngx_rpc_message_t     *ctx;
    ngx_rpc_loc_conf_t    *rlcf;
    ngx_rpc_limit_ctx_t   *lctx;
    ngx_rpc_limit_node_t  *node[NGX_RPC_LIMITS_MAX];

    ctx = call->ctx;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);

    if (rlcf->limits == NULL) {
        return NGX_OK;
    }

    cost = 1000 * ngx_rpc_limit_cost(rlcf, &call->msg->method);

    if (cost == 0) {
        return NGX_OK;
    }

    limit = rlcf->limits->elts;
    n = rlcf->limits->nelts;

    refuse = -1;
    delay = 0;

    /*
     * zones are locked in one order for all locations (rpc_limit sorts
     * them), so that no two workers wait on each other
     */

    for (i = 0; i < n; i++) {
        lctx = limit[i].zone->data;

        if (ngx_rpc_limit_key(ctx, i, &key) != NGX_OK) {
            n = i;
            rc = NGX_ERROR;
            goto unlock;
        }

        /* an empty key is not limited, as with limit_req */

        if (key.len == 0) {
            node[i] = NULL;
            next[i] = 0;
            continue;
        }

        hash = ngx_crc32_short(key.data, key.len);

        ngx_shmtx_lock(&lctx->shpool->mutex);

        node[i] = ngx_rpc_limit_node(lctx, &key, hash);

        if (node[i] == NULL) {
            /* a key larger than the zone: not limited, never refused */

            ngx_shmtx_unlock(&lctx->shpool->mutex);

            ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                          "rpc: no room for a key of %uz bytes in "
                          "rpc_limit_zone \"%V\"",
                          key.len, &limit[i].zone->shm.name);
            next[i] = 0;
            continue;
        }

        /* as limit_req: what drained since, then this call's cost */

        /* another worker's clock may be a little ahead, as limit_req says */

        d = (ngx_msec_int_t) (ngx_current_msec - node[i]->last);

        if (d < -60000) {
            d = 1;

        } else if (d < 0) {
            d = 0;
        }

        drained = lctx->rate * (ngx_uint_t) d / 1000;
        excess = node[i]->excess + cost;

        next[i] = (excess > drained && !node[i]->fresh) ? excess - drained : 0;

        if (next[i] > limit[i].burst && refuse < 0) {
            refuse = i;
        }

        over = (next[i] > limit[i].delay) ? next[i] - limit[i].delay : 0;

        wait = (ngx_msec_t) (over * 1000 / lctx->rate);
        delay = ngx_max(delay, wait);
    }

    if (refuse >= 0) {
        lctx = limit[refuse].zone->data;

        ngx_log_error(rlcf->limit_log_level, ctx->request->connection->log,
                      0, "rpc: %slimiting calls, excess: %ui.%03ui by zone "
                      "\"%V\", method \"%V\"",
                      rlcf->limit_dry_run ? "dry run, " : "",
                      next[refuse] / 1000, next[refuse] % 1000,
                      &limit[refuse].zone->shm.name, &call->msg->method);

        /* a dry run lets the call go, uncharged, as limit_req does */

        if (rlcf->limit_dry_run) {
            rc = NGX_OK;
            goto unlock;
        }

        wait = (ngx_msec_t) ((next[refuse] - limit[refuse].burst) * 1000
                             / lctx->rate);
        ctx->retry = ngx_max(ctx->retry, wait);

        rc = NGX_DECLINED;
        goto unlock;
    }

    /* admitted by all: charged to all */

    for (i = 0; i < n; i++) {
        if (node[i]) {
            node[i]->excess = next[i];
            node[i]->last = ngx_current_msec;
            node[i]->fresh = 0;
        }
    }

    rc = NGX_OK;

    if (delay && !rlcf->limit_dry_run) {
        /* a delay is logged a level lower, as limit_req does */

        level = (rlcf->limit_log_level == NGX_LOG_INFO)
                ? NGX_LOG_INFO : rlcf->limit_log_level + 1;

        ngx_log_error(level, ctx->request->connection->log, 0,
                      "rpc: delaying a call of \"%V\" by %M ms",
                      &call->msg->method, delay);

        call->delay.handler = ngx_rpc_limit_delay_handler;
        call->delay.data = call;
        call->delay.log = ctx->request->connection->log;
        ngx_add_timer(&call->delay, delay);

        rc = NGX_AGAIN;
    }

unlock:

    for (i = n; i-- > 0; ) {
        if (node[i]) {
            lctx = limit[i].zone->data;
            ngx_shmtx_unlock(&lctx->shpool->mutex);
        }
    }

    return rc;
}


/* a limit's key, once a session: a WebSocket request lives long */

static ngx_int_t
ngx_rpc_limit_key(ngx_rpc_message_t *ctx, ngx_uint_t i, ngx_str_t *key)
{
    ngx_str_t            *keys;
    ngx_rpc_limit_t      *limit;
    ngx_rpc_session_t    *s;
    ngx_rpc_loc_conf_t   *rlcf;
    ngx_rpc_limit_ctx_t  *lctx;

    s = ctx->session;
    rlcf = ngx_http_get_module_loc_conf(ctx->request, ngx_rpc_module);
    limit = rlcf->limits->elts;

    if (s->limit_keys == NULL) {
        s->limit_keys = ngx_pcalloc(ctx->request->pool,
                                    rlcf->limits->nelts * sizeof(ngx_str_t));
        if (s->limit_keys == NULL) {
            return NGX_ERROR;
        }
    }

    keys = s->limit_keys;

    if (keys[i].data == NULL) {
        lctx = limit[i].zone->data;

        if (ngx_http_complex_value(ctx->request, &lctx->key, &keys[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* known even when empty; 64k at most */

        if (keys[i].data == NULL) {
            keys[i].data = (u_char *) "";
        }

        keys[i].len = ngx_min(keys[i].len, 65535);
    }

    *key = keys[i];

    return NGX_OK;
}


/* the key's node, made if new; the least recently used go for room */

static ngx_rpc_limit_node_t *
ngx_rpc_limit_node(ngx_rpc_limit_ctx_t *lctx, ngx_str_t *key, uint32_t hash)
{
    size_t                 size;
    ngx_int_t              rc;
    ngx_queue_t           *q;
    ngx_rbtree_node_t     *node, *sentinel;
    ngx_rpc_limit_node_t  *ln;

    node = lctx->sh->tree.rbtree.root;
    sentinel = lctx->sh->tree.rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        ln = (ngx_rpc_limit_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, ln->data, key->len, (size_t) ln->len);

        if (rc == 0) {
            ngx_queue_remove(&ln->queue);
            ngx_queue_insert_head(&lctx->sh->tree.queue, &ln->queue);
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_rpc_limit_node_t, data)
           + key->len;

    for ( ;; ) {
        node = ngx_slab_alloc_locked(lctx->shpool, size);

        if (node || ngx_queue_empty(&lctx->sh->tree.queue)) {
            break;
        }

        q = ngx_queue_last(&lctx->sh->tree.queue);
        ln = ngx_queue_data(q, ngx_rpc_limit_node_t, queue);
        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));
        ngx_rbtree_delete(&lctx->sh->tree.rbtree, node);
        ngx_slab_free_locked(lctx->shpool, node);
    }

    if (node == NULL) {
        return NULL;
    }

    node->key = hash;

    ln = (ngx_rpc_limit_node_t *) &node->color;
    ln->len = (u_short) key->len;
    ln->fresh = 1;
    ln->excess = 0;
    ln->last = ngx_current_msec;
    ngx_memcpy(ln->data, key->data, key->len);

    ngx_rbtree_insert(&lctx->sh->tree.rbtree, node);
    ngx_queue_insert_head(&lctx->sh->tree.queue, &ln->queue);

    return ln;
}


static ngx_uint_t
ngx_rpc_limit_cost(ngx_rpc_loc_conf_t *rlcf, ngx_str_t *method)
{
    ngx_uint_t             i;
    ngx_rpc_limit_cost_t  *lc;

    if (rlcf->limit_costs == NULL || method->data == NULL) {
        return 1;
    }

    lc = rlcf->limit_costs->elts;

    for (i = 0; i < rlcf->limit_costs->nelts; i++) {
        if (ngx_rpc_policy_match(lc[i].patterns, method)) {
            return lc[i].cost;
        }
    }

    return 1;
}


/* a delayed call goes on its way */

static void
ngx_rpc_limit_delay_handler(ngx_event_t *ev)
{
    ngx_int_t           rc;
    ngx_rpc_call_t     *call;
    ngx_connection_t   *c;
    ngx_rpc_message_t  *ctx;

    call = ev->data;
    ctx = call->ctx;
    c = ctx->request->connection;

    rc = ngx_rpc_call_start(call);

    if (rc == NGX_ERROR) {
        ngx_rpc_call_done(call, NGX_RPC_UPSTREAM_UNAVAILABLE);

    } else if (rc == NGX_OK) {
        ngx_rpc_call_done(call, 0);

    } else {
        call->send = (rc == NGX_DECLINED);
        ngx_rpc_message_wake(ctx);
    }

    ngx_http_run_posted_requests(c);
}


/* also when the call leaves before its time */

void
ngx_rpc_limit_cancel(ngx_rpc_call_t *call)
{
    if (call->delay.timer_set) {
        ngx_del_timer(&call->delay);
    }
}


static void
ngx_rpc_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_rpc_limit_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_rpc_limit_node_t *) &node->color;
            lnt = (ngx_rpc_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
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


static ngx_int_t
ngx_rpc_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rpc_limit_ctx_t  *octx = data;

    ngx_rpc_limit_ctx_t  *lctx;

    lctx = shm_zone->data;

    if (octx) {
        if (lctx->key.value.len != octx->key.value.len
            || ngx_strncmp(lctx->key.value.data, octx->key.value.data,
                           lctx->key.value.len)
               != 0)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "rpc_limit_zone \"%V\" uses the \"%V\" key "
                          "while previously it used the \"%V\" key",
                          &shm_zone->shm.name, &lctx->key.value,
                          &octx->key.value);
            return NGX_ERROR;
        }

        lctx->sh = octx->sh;
        lctx->shpool = octx->shpool;

        return NGX_OK;
    }

    lctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    lctx->sh = ngx_rpc_shm_tree(shm_zone, sizeof(ngx_rpc_limit_sh_t),
                                "rpc_limit_zone",
                                ngx_rpc_limit_rbtree_insert_value);

    return lctx->sh ? NGX_OK : NGX_ERROR;
}


/* every zone of rpc_limit is an rpc_limit_zone: known once all are read */

ngx_int_t
ngx_rpc_limit_init(ngx_conf_t *cf)
{
    ngx_uint_t             i;
    ngx_rpc_limit_use_t   *use;
    ngx_rpc_main_conf_t   *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);
    use = rmcf->limit_uses.elts;

    for (i = 0; i < rmcf->limit_uses.nelts; i++) {
        if (use[i].zone->init != ngx_rpc_limit_init_zone) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"rpc_limit\" zone \"%V\" is not declared by "
                          "\"rpc_limit_zone\" in %s:%ui",
                          &use[i].zone->shm.name, use[i].file, use[i].line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* rpc_limit_zone KEY zone=NAME:SIZE rate=RATE */

char *
ngx_rpc_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char                            *p;
    size_t                             len;
    ssize_t                            size;
    ngx_str_t                         *value, name, s;
    ngx_int_t                          rate, scale;
    ngx_uint_t                         i;
    ngx_shm_zone_t                    *shm_zone;
    ngx_rpc_limit_ctx_t               *lctx;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    lctx = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_limit_ctx_t));
    if (lctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &lctx->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    size = 0;
    rate = 1;
    scale = 1;
    name.len = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {

            len = value[i].len;
            p = value[i].data + len - 3;

            if (ngx_strncmp(p, "r/s", 3) == 0) {
                scale = 1;
                len -= 3;

            } else if (ngx_strncmp(p, "r/m", 3) == 0) {
                scale = 60;
                len -= 3;
            }

            rate = ngx_atoi(value[i].data + 5, len - 5);
            if (rate <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid rate \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    lctx->rate = rate * 1000 / scale;

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_rpc_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        if (shm_zone->init != ngx_rpc_limit_init_zone) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "zone \"%V\" is already used", &name);
            return NGX_CONF_ERROR;
        }

        lctx = shm_zone->data;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" is already bound to key \"%V\"",
                           &cmd->name, &name, &lctx->key.value);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_rpc_limit_init_zone;
    shm_zone->data = lctx;

    return NGX_CONF_OK;
}


/* rpc_limit zone=NAME [burst=N] [nodelay | delay=N] */

char *
ngx_rpc_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_int_t               burst, delay;
    ngx_str_t              *value, s;
    ngx_uint_t              i;
    ngx_shm_zone_t         *shm_zone;
    ngx_rpc_limit_t        *limit, *limits;
    ngx_rpc_limit_use_t    *use;
    ngx_rpc_main_conf_t    *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);
    value = cf->args->elts;

    shm_zone = NULL;
    burst = 0;
    delay = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            s.len = value[i].len - 5;
            s.data = value[i].data + 5;

            shm_zone = ngx_shared_memory_add(cf, &s, 0, &ngx_rpc_module);
            if (shm_zone == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {

            burst = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (burst <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "delay=", 6) == 0) {

            delay = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (delay <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid delay value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "nodelay") == 0) {
            delay = NGX_MAX_INT_T_VALUE / 1000;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rlcf->limits == NGX_CONF_UNSET_PTR) {
        rlcf->limits = ngx_array_create(cf->pool, 1, sizeof(ngx_rpc_limit_t));
        if (rlcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    limits = rlcf->limits->elts;

    for (i = 0; i < rlcf->limits->nelts; i++) {
        if (shm_zone == limits[i].zone) {
            return "is duplicate";
        }
    }

    if (rlcf->limits->nelts == NGX_RPC_LIMITS_MAX) {
        return "is given too many times";
    }

    limit = ngx_array_push(rlcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    /* in the order of the zones' addresses: the same in every location */

    limits = rlcf->limits->elts;

    while (limit > limits && (limit - 1)->zone > shm_zone) {
        *limit = *(limit - 1);
        limit--;
    }

    limit->zone = shm_zone;
    limit->burst = burst * 1000;
    limit->delay = ngx_min(delay, burst) * 1000;

    /* checked once every zone is known: it must be an rpc_limit_zone */

    use = ngx_array_push(&rmcf->limit_uses);
    if (use == NULL) {
        return NGX_CONF_ERROR;
    }

    use->zone = shm_zone;
    use->file = cf->conf_file->file.name.data;
    use->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* rpc_limit_cost PATTERN... N */

char *
ngx_rpc_limit_cost_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_int_t              n;
    ngx_str_t             *value, *pat;
    ngx_uint_t             i;
    ngx_rpc_limit_cost_t  *lc;

    if (rlcf->limit_costs == NGX_CONF_UNSET_PTR) {
        rlcf->limit_costs = ngx_array_create(cf->pool, 2,
                                             sizeof(ngx_rpc_limit_cost_t));
        if (rlcf->limit_costs == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    n = ngx_atoi(value[cf->args->nelts - 1].data,
                 value[cf->args->nelts - 1].len);

    if (n < 0 || n > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid cost \"%V\": 0 to 1000000",
                           &value[cf->args->nelts - 1]);
        return NGX_CONF_ERROR;
    }

    lc = ngx_array_push(rlcf->limit_costs);
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    lc->cost = n;
    lc->patterns = ngx_array_create(cf->pool, cf->args->nelts - 2,
                                    sizeof(ngx_str_t));
    if (lc->patterns == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts - 1; i++) {
        pat = ngx_array_push(lc->patterns);
        if (pat == NULL) {
            return NGX_CONF_ERROR;
        }

        *pat = value[i];
    }

    return NGX_CONF_OK;
}
