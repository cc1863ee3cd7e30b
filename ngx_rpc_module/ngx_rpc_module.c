
/*
 * ngx_rpc_module: directives and configuration.
 */


#include "ngx_rpc.h"


/*
 * A directive that only works in a location with rpc_pass (and rpc_cache):
 * the array it fills, inherited by pointer, and where it was written, so
 * that one that reaches no such location is reported after merge.
 */
typedef struct {
    void                        *value;
    char                        *name;
    u_char                      *file;
    ngx_uint_t                   line;
    ngx_uint_t                   need;
    ngx_uint_t                   used;
} ngx_rpc_conf_use_t;


#define NGX_RPC_USED_PASS               1
#define NGX_RPC_USED_CACHE              2


static ngx_int_t ngx_rpc_init(ngx_conf_t *cf);
static void ngx_rpc_exit_process(ngx_cycle_t *cycle);
static void *ngx_rpc_create_main_conf(ngx_conf_t *cf);
static void *ngx_rpc_create_loc_conf(ngx_conf_t *cf);
static char *ngx_rpc_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_rpc_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_rpc_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_rpc_methods(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_rpc_upstream_batch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_rpc_cache_valid_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_rpc_check_bounds(ngx_conf_t *cf, void *post, void *data);
static ngx_int_t ngx_rpc_conf_use(ngx_conf_t *cf, char *name, void *value,
    ngx_uint_t need);
static void ngx_rpc_conf_used(ngx_conf_t *cf, ngx_rpc_loc_conf_t *rlcf);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_rpc_set_ssl(ngx_conf_t *cf, ngx_rpc_loc_conf_t *rlcf);
#endif


static ngx_conf_bitmask_t  ngx_rpc_next_upstream_masks[] = {
    { ngx_string("error"), NGX_HTTP_UPSTREAM_FT_ERROR },
    { ngx_string("timeout"), NGX_HTTP_UPSTREAM_FT_TIMEOUT },
    { ngx_string("invalid_header"), NGX_HTTP_UPSTREAM_FT_INVALID_HEADER },
    { ngx_string("non_idempotent"), NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT },
    { ngx_string("http_500"), NGX_HTTP_UPSTREAM_FT_HTTP_500 },
    { ngx_string("http_502"), NGX_HTTP_UPSTREAM_FT_HTTP_502 },
    { ngx_string("http_503"), NGX_HTTP_UPSTREAM_FT_HTTP_503 },
    { ngx_string("http_504"), NGX_HTTP_UPSTREAM_FT_HTTP_504 },
    { ngx_string("http_429"), NGX_HTTP_UPSTREAM_FT_HTTP_429 },
    { ngx_string("off"), NGX_HTTP_UPSTREAM_FT_OFF },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_rpc_limit_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


/* as ngx_conf_check_num_bounds(), but the message names the directive */

static ngx_conf_num_bounds_t  ngx_rpc_max_bounds = {
    ngx_rpc_check_bounds, 1, 65535
};


static ngx_command_t  ngx_rpc_commands[] = {

    { ngx_string("rpc_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_rpc_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_route"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_rpc_route,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_allow_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_rpc_methods,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, allow),
      NULL },

    { ngx_string("rpc_deny_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_rpc_methods,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, deny),
      NULL },

    { ngx_string("rpc_max_batch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, max_batch),
      &ngx_rpc_max_bounds },

    { ngx_string("rpc_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, max_depth),
      &ngx_rpc_max_bounds },

    { ngx_string("rpc_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, timeout),
      NULL },

    { ngx_string("rpc_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.connect_timeout),
      NULL },

    { ngx_string("rpc_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.send_timeout),
      NULL },

    { ngx_string("rpc_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.read_timeout),
      NULL },

    { ngx_string("rpc_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.buffer_size),
      NULL },

    { ngx_string("rpc_max_reply_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, max_reply_size),
      NULL },

    { ngx_string("rpc_next_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.next_upstream),
      &ngx_rpc_next_upstream_masks },

    { ngx_string("rpc_next_upstream_tries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.next_upstream_tries),
      NULL },

    { ngx_string("rpc_next_upstream_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.next_upstream_timeout),
      NULL },

#if (NGX_HTTP_SSL)

    { ngx_string("rpc_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.ssl_verify),
      NULL },

    { ngx_string("rpc_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ssl_trusted_certificate),
      NULL },

    { ngx_string("rpc_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.ssl_name),
      NULL },

    { ngx_string("rpc_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, upstream.ssl_server_name),
      NULL },

#endif

    { ngx_string("rpc_upstream_batch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_rpc_upstream_batch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, max_pending),
      NULL },

    { ngx_string("rpc_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
      ngx_rpc_limit_zone,
      0,
      0,
      NULL },

    { ngx_string("rpc_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_rpc_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_limit_cost"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_rpc_limit_cost_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_limit_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, limit_log_level),
      &ngx_rpc_limit_log_levels },

    { ngx_string("rpc_limit_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, limit_dry_run),
      NULL },

    { ngx_string("rpc_websocket"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, websocket),
      NULL },

    { ngx_string("rpc_websocket_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_rpc_websocket_protocols,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_websocket_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ws_max_message),
      NULL },

    { ngx_string("rpc_websocket_max_calls"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ws_max_calls),
      &ngx_rpc_max_bounds },

    { ngx_string("rpc_websocket_max_queued"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ws_max_queued),
      NULL },

    { ngx_string("rpc_websocket_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ws_idle_timeout),
      NULL },

    { ngx_string("rpc_websocket_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ws_ping_interval),
      NULL },

    { ngx_string("rpc_websocket_ping_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, ws_ping_timeout),
      NULL },

    { ngx_string("rpc_subscribe_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_rpc_subscribe_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_subscribe_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE3,
      ngx_rpc_subscribe_methods,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_subscribe_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, sub_max),
      &ngx_rpc_max_bounds },

    { ngx_string("rpc_subscribe_linger"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, sub_linger),
      NULL },

    { ngx_string("rpc_subscribe_reconnect"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_rpc_subscribe_reconnect,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_subscribe_stall"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, sub_stall),
      NULL },

    { ngx_string("rpc_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rpc_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_rpc_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_metrics_buckets"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_rpc_metrics_buckets,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_metrics_methods"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_rpc_metrics_methods,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_cache_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_rpc_cache_zone,
      0,
      0,
      NULL },

    { ngx_string("rpc_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_rpc_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_cache_valid"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_rpc_cache_valid_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rpc_cache_bypass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, cache_bypass),
      NULL },

    { ngx_string("rpc_cache_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_rpc_loc_conf_t, cache_key),
      NULL },

    { ngx_string("rpc_cache_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_rpc_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_rpc_module_ctx = {
    ngx_rpc_add_variables,                 /* preconfiguration */
    ngx_rpc_init,                          /* postconfiguration */

    ngx_rpc_create_main_conf,              /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_rpc_create_loc_conf,               /* create location configuration */
    ngx_rpc_merge_loc_conf                 /* merge location configuration */
};


ngx_module_t  ngx_rpc_module = {
    NGX_MODULE_V1,
    &ngx_rpc_module_ctx,                   /* module context */
    ngx_rpc_commands,                      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_rpc_metrics_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_rpc_exit_process,                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_http_request_body_filter_pt  ngx_rpc_next_request_body_filter;


/* runs after every location was merged */

static ngx_int_t
ngx_rpc_init(ngx_conf_t *cf)
{
    ngx_uint_t            i, missing;
    ngx_rpc_conf_use_t   *use;
    ngx_rpc_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);

    use = rmcf->uses.elts;

    for (i = 0; i < rmcf->uses.nelts; i++) {
        missing = use[i].need & ~use[i].used;

        if (missing) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%s\" has no effect without \"%s\" in %s:%ui",
                          use[i].name,
                          (missing & NGX_RPC_USED_PASS) ? "rpc_pass"
                                                        : "rpc_cache",
                          use[i].file, use[i].line);
            return NGX_ERROR;
        }
    }

    if (ngx_rpc_metrics_init(cf) != NGX_OK
        || ngx_rpc_limit_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_rpc_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_rpc_request_body_filter;

    return NGX_OK;
}


static void
ngx_rpc_exit_process(ngx_cycle_t *cycle)
{
    ngx_rpc_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_rpc_module);

    if (rmcf && rmcf->redis) {
        ngx_rpc_redis_close(rmcf->redis);
    }

    ngx_rpc_subscribe_exit(cycle);
    ngx_rpc_metrics_exit_process();
    ngx_rpc_pool_exit();
}


static void *
ngx_rpc_create_main_conf(ngx_conf_t *cf)
{
    ngx_rpc_main_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&conf->uses, cf->pool, 4, sizeof(ngx_rpc_conf_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    conf->metrics = ngx_rpc_metrics_create(cf);
    if (conf->metrics == NULL) {
        return NULL;
    }

    if (ngx_array_init(&conf->limit_uses, cf->pool, 2,
                       sizeof(ngx_rpc_limit_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&conf->subscribes, cf->pool, 1,
                       sizeof(ngx_rpc_subscribe_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return conf;
}


static void *
ngx_rpc_create_loc_conf(ngx_conf_t *cf)
{
    ngx_rpc_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->upstream.upstream = NULL;
     *     conf->upstream.next_upstream = 0;
     *     conf->uri = { 0, NULL };
     *     conf->cache_key = NULL;
     */

    conf->upstream.local = NGX_CONF_UNSET_PTR;
    conf->upstream.socket_keepalive = NGX_CONF_UNSET;
    conf->upstream.next_upstream_tries = NGX_CONF_UNSET_UINT;
    conf->upstream.connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.send_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.read_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.next_upstream_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.buffer_size = NGX_CONF_UNSET_SIZE;
#if (NGX_HTTP_SSL)
    conf->upstream.ssl_verify = NGX_CONF_UNSET;
    conf->upstream.ssl_server_name = NGX_CONF_UNSET;
    conf->upstream.ssl_name = NGX_CONF_UNSET_PTR;
#endif

    /* the reply is read in memory by the module itself */

    conf->upstream.buffering = 0;
    /* the owner of an exchange is no client: nothing to watch */
    conf->upstream.ignore_client_abort = 1;
    conf->upstream.intercept_errors = 0;
    conf->upstream.pass_request_headers = 0;
    conf->upstream.pass_request_body = 0;

    conf->routes = NGX_CONF_UNSET_PTR;
    conf->allow = NGX_CONF_UNSET_PTR;
    conf->deny = NGX_CONF_UNSET_PTR;
    conf->max_batch = NGX_CONF_UNSET_UINT;
    conf->max_depth = NGX_CONF_UNSET_UINT;
    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->max_reply_size = NGX_CONF_UNSET;
    conf->upstream_batch = NGX_CONF_UNSET_UINT;
    conf->window = NGX_CONF_UNSET_MSEC;
    conf->max_pending = NGX_CONF_UNSET_UINT;
    conf->cache = NGX_CONF_UNSET_PTR;
    conf->cache_valid = NGX_CONF_UNSET_PTR;
    conf->cache_bypass = NGX_CONF_UNSET_PTR;
    conf->limits = NGX_CONF_UNSET_PTR;
    conf->limit_costs = NGX_CONF_UNSET_PTR;
    conf->limit_log_level = NGX_CONF_UNSET_UINT;
    conf->limit_dry_run = NGX_CONF_UNSET;
    conf->websocket = NGX_CONF_UNSET;
    conf->ws_protocols = NGX_CONF_UNSET_PTR;
    conf->ws_max_message = NGX_CONF_UNSET;
    conf->ws_max_calls = NGX_CONF_UNSET_UINT;
    conf->ws_max_queued = NGX_CONF_UNSET_SIZE;
    conf->ws_idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->ws_ping_interval = NGX_CONF_UNSET_MSEC;
    conf->ws_ping_timeout = NGX_CONF_UNSET_MSEC;
    conf->sub_max = NGX_CONF_UNSET_UINT;
    conf->sub_linger = NGX_CONF_UNSET_MSEC;
    conf->sub_reconnect_min = NGX_CONF_UNSET_MSEC;
    conf->sub_reconnect_max = NGX_CONF_UNSET_MSEC;
    conf->sub_stall = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_rpc_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_rpc_loc_conf_t  *prev = parent;
    ngx_rpc_loc_conf_t  *conf = child;

    ngx_uint_t                      i;
    ngx_rpc_route_t                *route;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_upstream_srv_conf_t   *uscf;

    ngx_conf_merge_ptr_value(conf->upstream.local, prev->upstream.local,
                             NULL);

    ngx_conf_merge_value(conf->upstream.socket_keepalive,
                         prev->upstream.socket_keepalive, 0);

    ngx_conf_merge_uint_value(conf->upstream.next_upstream_tries,
                              prev->upstream.next_upstream_tries, 0);

    ngx_conf_merge_msec_value(conf->upstream.connect_timeout,
                              prev->upstream.connect_timeout, 60000);

    ngx_conf_merge_msec_value(conf->upstream.send_timeout,
                              prev->upstream.send_timeout, 60000);

    ngx_conf_merge_msec_value(conf->upstream.read_timeout,
                              prev->upstream.read_timeout, 60000);

    ngx_conf_merge_msec_value(conf->upstream.next_upstream_timeout,
                              prev->upstream.next_upstream_timeout, 0);

    ngx_conf_merge_size_value(conf->upstream.buffer_size,
                              prev->upstream.buffer_size,
                              (size_t) ngx_pagesize);

    ngx_conf_merge_bitmask_value(conf->upstream.next_upstream,
                              prev->upstream.next_upstream,
                              (NGX_CONF_BITMASK_SET
                               |NGX_HTTP_UPSTREAM_FT_ERROR
                               |NGX_HTTP_UPSTREAM_FT_TIMEOUT));

    if (conf->upstream.next_upstream & NGX_HTTP_UPSTREAM_FT_OFF) {
        conf->upstream.next_upstream = NGX_CONF_BITMASK_SET
                                       |NGX_HTTP_UPSTREAM_FT_OFF;
    }

    if (conf->upstream.upstream == NULL) {
        conf->upstream.upstream = prev->upstream.upstream;
        conf->uri = prev->uri;
        conf->https = prev->https;
    }

#if (NGX_HTTP_SSL)

    ngx_conf_merge_value(conf->upstream.ssl_verify,
                         prev->upstream.ssl_verify, 0);
    ngx_conf_merge_value(conf->upstream.ssl_server_name,
                         prev->upstream.ssl_server_name, 1);
    ngx_conf_merge_str_value(conf->ssl_trusted_certificate,
                             prev->ssl_trusted_certificate, "");
    ngx_conf_merge_ptr_value(conf->upstream.ssl_name,
                             prev->upstream.ssl_name, NULL);

    if (ngx_rpc_set_ssl(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

#endif

    ngx_conf_merge_uint_value(conf->max_batch, prev->max_batch, 100);
    ngx_conf_merge_uint_value(conf->max_depth, prev->max_depth, 32);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 60000);
    ngx_conf_merge_off_value(conf->max_reply_size, prev->max_reply_size,
                             64 * 1024 * 1024);

    if (conf->upstream_batch == NGX_CONF_UNSET_UINT) {
        conf->upstream_batch = prev->upstream_batch;
        conf->window = prev->window;
    }

    ngx_conf_merge_uint_value(conf->upstream_batch, prev->upstream_batch, 0);
    ngx_conf_merge_msec_value(conf->window, prev->window, 1);
    ngx_conf_merge_uint_value(conf->max_pending, prev->max_pending, 0);

    ngx_conf_merge_ptr_value(conf->allow, prev->allow, NULL);
    ngx_conf_merge_ptr_value(conf->deny, prev->deny, NULL);

    ngx_conf_merge_ptr_value(conf->cache, prev->cache, NULL);
    ngx_conf_merge_ptr_value(conf->cache_valid, prev->cache_valid, NULL);
    ngx_conf_merge_ptr_value(conf->cache_bypass, prev->cache_bypass, NULL);

    if (conf->cache_key == NULL) {
        conf->cache_key = prev->cache_key;
    }

    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);
    ngx_conf_merge_ptr_value(conf->limit_costs, prev->limit_costs, NULL);
    ngx_conf_merge_uint_value(conf->limit_log_level, prev->limit_log_level,
                              NGX_LOG_ERR);
    ngx_conf_merge_value(conf->limit_dry_run, prev->limit_dry_run, 0);

    ngx_conf_merge_value(conf->websocket, prev->websocket, 0);
    ngx_conf_merge_ptr_value(conf->ws_protocols, prev->ws_protocols, NULL);
    ngx_conf_merge_off_value(conf->ws_max_message, prev->ws_max_message,
                             1024 * 1024);
    ngx_conf_merge_uint_value(conf->ws_max_calls, prev->ws_max_calls, 128);
    ngx_conf_merge_size_value(conf->ws_max_queued, prev->ws_max_queued,
                              1024 * 1024);
    ngx_conf_merge_msec_value(conf->ws_idle_timeout, prev->ws_idle_timeout,
                              600000);
    ngx_conf_merge_msec_value(conf->ws_ping_interval, prev->ws_ping_interval,
                              30000);
    ngx_conf_merge_msec_value(conf->ws_ping_timeout, prev->ws_ping_timeout,
                              30000);

    ngx_conf_merge_str_value(conf->sub_methods[0], prev->sub_methods[0],
                             "eth_subscribe");
    ngx_conf_merge_str_value(conf->sub_methods[1], prev->sub_methods[1],
                             "eth_unsubscribe");
    ngx_conf_merge_str_value(conf->sub_methods[2], prev->sub_methods[2],
                             "eth_subscription");
    ngx_conf_merge_uint_value(conf->sub_max, prev->sub_max, 32);
    ngx_conf_merge_msec_value(conf->sub_linger, prev->sub_linger, 10000);
    ngx_conf_merge_msec_value(conf->sub_reconnect_min,
                              prev->sub_reconnect_min, 100);
    ngx_conf_merge_msec_value(conf->sub_reconnect_max,
                              prev->sub_reconnect_max, 30000);
    ngx_conf_merge_msec_value(conf->sub_stall, prev->sub_stall, 60000);

    if (conf->subscribe && !conf->websocket) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rpc_subscribe_pass\" needs \"rpc_websocket "
                           "on\"");
        return NGX_CONF_ERROR;
    }

    /* routes declared here use this location's timeouts and retries */

    if (conf->routes != NGX_CONF_UNSET_PTR) {
        route = conf->routes->elts;

        for (i = 0; i < conf->routes->nelts; i++) {
            uscf = route[i].upstream->upstream;
            *route[i].upstream = conf->upstream;
            route[i].upstream->upstream = uscf;
#if (NGX_HTTP_SSL)
            route[i].upstream->ssl = route[i].https ? conf->ssl : NULL;
#endif
        }
    }

    ngx_conf_merge_ptr_value(conf->routes, prev->routes, NULL);

    /*
     * client_max_body_size is enforced by the module in its locations, so
     * that a body over it is answered with a JSON-RPC error, not nginx's
     * HTML page; core merged this location's value already
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_rpc_handler) {
        conf->max_body_size = clcf->client_max_body_size;
        clcf->client_max_body_size = 0;

        ngx_rpc_conf_used(cf, conf);
    }

    return NGX_CONF_OK;
}


static char *
ngx_rpc_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (rlcf->upstream.upstream) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rlcf->upstream.upstream = ngx_rpc_conf_upstream(cf, &value[1],
                                                    &rlcf->uri, &rlcf->https,
                                                    0);
    if (rlcf->upstream.upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_rpc_handler;

    return NGX_CONF_OK;
}


static char *
ngx_rpc_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_str_t         *value, *pat, uri;
    ngx_uint_t         i, n;
    ngx_rpc_route_t   *route;

    if (rlcf->routes == NGX_CONF_UNSET_PTR) {
        rlcf->routes = ngx_array_create(cf->pool, 2, sizeof(ngx_rpc_route_t));
        if (rlcf->routes == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_rpc_conf_use(cf, "rpc_route", rlcf->routes,
                             NGX_RPC_USED_PASS)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    route = ngx_array_push(rlcf->routes);
    if (route == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    n = cf->args->nelts - 1;

    route->patterns = ngx_array_create(cf->pool, n - 1, sizeof(ngx_str_t));
    if (route->patterns == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < n; i++) {
        pat = ngx_array_push(route->patterns);
        if (pat == NULL) {
            return NGX_CONF_ERROR;
        }

        *pat = value[i];

        if (ngx_rpc_metrics_name(cf, pat, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    route->upstream = ngx_pcalloc(cf->pool, sizeof(ngx_http_upstream_conf_t));
    if (route->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    route->upstream->upstream = ngx_rpc_conf_upstream(cf, &value[n], &uri,
                                                      &route->https, 0);
    if (route->upstream->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    if (uri.len > 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "URI in \"rpc_route\" is not supported, "
                           "the URI of \"rpc_pass\" is used");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * NAME, HOST:PORT or http://HOST:PORT/URI, as proxy_pass takes them; ws://
 * and wss:// in place of http:// and https:// for rpc_subscribe_pass
 */

ngx_http_upstream_srv_conf_t *
ngx_rpc_conf_upstream(ngx_conf_t *cf, ngx_str_t *url, ngx_str_t *uri,
    ngx_uint_t *tls, ngx_uint_t ws)
{
    size_t                         n;
    ngx_url_t                      u;
    ngx_http_upstream_srv_conf_t  *uscf;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *url;
    u.default_port = 80;
    *tls = 0;

    n = ws ? sizeof("ws://") - 1 : sizeof("http://") - 1;

    if (url->len > n
        && ngx_strncasecmp(url->data, (u_char *) (ws ? "ws://" : "http://"),
                           n)
           == 0)
    {
        u.url.data += n;
        u.url.len -= n;

    } else if (url->len > n + 1
               && ngx_strncasecmp(url->data,
                                  (u_char *) (ws ? "wss://" : "https://"),
                                  n + 1)
                  == 0)
    {
#if (NGX_HTTP_SSL)
        u.url.data += n + 1;
        u.url.len -= n + 1;
        u.default_port = 443;
        *tls = 1;
#else
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "TLS upstreams need nginx built with "
                           "ngx_http_ssl_module");
        return NULL;
#endif
    }

    u.uri_part = 1;
    u.no_resolve = 1;

    uscf = ngx_http_upstream_add(cf, &u, 0);
    if (uscf == NULL) {
        return NULL;
    }

    if (ngx_rpc_metrics_add_upstream(cf, uscf) != NGX_OK) {
        return NULL;
    }

    if (u.uri.len) {
        *uri = u.uri;

    } else {
        ngx_str_set(uri, "/");
    }

    return uscf;
}


static char *
ngx_rpc_methods(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t     *value, *pat;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        pat = ngx_array_push(*a);
        if (pat == NULL) {
            return NGX_CONF_ERROR;
        }

        *pat = value[i];

        /* the methods allowed by name are labels of the metrics */

        if (cmd->offset == offsetof(ngx_rpc_loc_conf_t, allow)
            && ngx_rpc_metrics_name(cf, pat, 0) != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* rpc_upstream_batch SIZE [window=TIME] | off */

static char *
ngx_rpc_upstream_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value, s;

    if (rlcf->upstream_batch != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts == 3) {
            return "takes no window when off";
        }

        rlcf->upstream_batch = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n <= 0 || n > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid batch size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    rlcf->upstream_batch = n;
    rlcf->window = 1;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "window=", 7) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    s.data = value[2].data + 7;
    s.len = value[2].len - 7;

    rlcf->window = ngx_parse_time(&s, 0);

    if (rlcf->window == (ngx_msec_t) NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid window \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* rpc_cache_valid of ngx_rpc_cache.c, its first line remembered */

static char *
ngx_rpc_cache_valid_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_loc_conf_t  *rlcf = conf;

    char                   *rv;
    ngx_str_t              *pat;
    ngx_uint_t              first, i;
    ngx_rpc_cache_valid_t  *cv;

    first = (rlcf->cache_valid == NGX_CONF_UNSET_PTR);

    rv = ngx_rpc_cache_valid(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    cv = (ngx_rpc_cache_valid_t *) rlcf->cache_valid->elts
         + rlcf->cache_valid->nelts - 1;
    pat = cv->patterns->elts;

    for (i = 0; i < cv->patterns->nelts; i++) {
        if (ngx_rpc_metrics_name(cf, &pat[i], 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (!first) {
        return NGX_CONF_OK;
    }

    if (ngx_rpc_conf_use(cf, "rpc_cache_valid", rlcf->cache_valid,
                         NGX_RPC_USED_PASS|NGX_RPC_USED_CACHE)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_rpc_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_int_t              *np = data;
    ngx_conf_num_bounds_t  *bounds = post;

    u_char  *p;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    /* ngx_conf_handler() prints it after the directive's name */

    p = ngx_pnalloc(cf->pool, sizeof("value must be between  and ")
                              + 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(p, "value must be between %i and %i%Z",
                bounds->low, bounds->high);

    return (char *) p;
}


static ngx_int_t
ngx_rpc_conf_use(ngx_conf_t *cf, char *name, void *value, ngx_uint_t need)
{
    ngx_rpc_conf_use_t   *use;
    ngx_rpc_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);

    use = ngx_array_push(&rmcf->uses);
    if (use == NULL) {
        return NGX_ERROR;
    }

    use->value = value;
    use->name = name;
    use->file = cf->conf_file->file.name.data;
    use->line = cf->conf_file->line;
    use->need = need;
    use->used = 0;

    return NGX_OK;
}


/* a location with rpc_pass: the directives it inherited take effect */

static void
ngx_rpc_conf_used(ngx_conf_t *cf, ngx_rpc_loc_conf_t *rlcf)
{
    ngx_uint_t            i;
    ngx_rpc_conf_use_t   *use;
    ngx_rpc_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_rpc_module);

    use = rmcf->uses.elts;

    for (i = 0; i < rmcf->uses.nelts; i++) {

        if (use[i].value == rlcf->routes) {
            use[i].used |= NGX_RPC_USED_PASS;

        } else if (use[i].value == rlcf->cache_valid) {
            use[i].used |= NGX_RPC_USED_PASS;

            if (rlcf->cache) {
                use[i].used |= NGX_RPC_USED_CACHE;
            }
        }
    }
}


#if (NGX_HTTP_SSL)

/* one TLS client context for the https upstreams of a location */

static ngx_int_t
ngx_rpc_set_ssl(ngx_conf_t *cf, ngx_rpc_loc_conf_t *rlcf)
{
    ngx_str_t            ciphers;
    ngx_uint_t           i, need;
    ngx_rpc_route_t     *route;
    ngx_pool_cleanup_t  *cln;

    need = rlcf->https || (rlcf->subscribe && rlcf->subscribe->wss);

    if (rlcf->routes != NGX_CONF_UNSET_PTR) {
        route = rlcf->routes->elts;

        for (i = 0; i < rlcf->routes->nelts; i++) {
            need |= route[i].https;
        }
    }

    if (!need) {
        return NGX_OK;
    }

    rlcf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rlcf->ssl == NULL) {
        return NGX_ERROR;
    }

    rlcf->ssl->log = cf->log;

    if (ngx_ssl_create(rlcf->ssl, NGX_CONF_BITMASK_SET|NGX_SSL_TLSv1_2
                                  |NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rlcf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rlcf->ssl;

    ngx_str_set(&ciphers, "DEFAULT");

    if (ngx_ssl_ciphers(cf, rlcf->ssl, &ciphers, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rlcf->upstream.ssl_verify) {
        if (rlcf->ssl_trusted_certificate.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no \"rpc_ssl_trusted_certificate\" is "
                               "defined for \"rpc_ssl_verify\"");
            return NGX_ERROR;
        }

        /* a leaf, two intermediates and a root, as providers send */

        if (ngx_ssl_trusted_certificate(cf, rlcf->ssl,
                                        &rlcf->ssl_trusted_certificate, 4)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    rlcf->upstream.ssl_session_reuse = 1;

    if (ngx_ssl_client_session_cache(cf, rlcf->ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rlcf->https) {
        rlcf->upstream.ssl = rlcf->ssl;
    }

    return NGX_OK;
}

#endif


/*
 * NAME:SIZE of rpc_cache_zone and rpc_metrics_zone: a zone of this module,
 * at least 8 pages, of one directive only
 */

ngx_shm_zone_t *
ngx_rpc_conf_zone(ngx_conf_t *cf, ngx_str_t *value)
{
    u_char          *p;
    ssize_t          size;
    ngx_str_t        name, s;
    ngx_shm_zone_t  *shm_zone;

    p = (u_char *) ngx_strlchr(value->data, value->data + value->len, ':');

    if (p == NULL || p == value->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected NAME:SIZE", value);
        return NULL;
    }

    name.data = value->data;
    name.len = p - value->data;

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", value);
        return NULL;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uz bytes",
                           value, 8 * ngx_pagesize);
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_rpc_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NULL;
    }

    return shm_zone;
}
