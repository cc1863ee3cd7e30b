
/*
 * Variables for log_format: $rpc_method, $rpc_id, $rpc_calls,
 * $rpc_error_code, $rpc_cache_status, $rpc_upstream_batch.  For a batch,
 * values are listed in request order, separated by commas; "-" stands for
 * a missing method or id, a call the cache did not see, or one that did not
 * go upstream.  A WebSocket connection logs once, when it closes:
 * $rpc_messages and $rpc_calls count what it carried, and
 * $rpc_websocket_close is the close code the gateway sent.
 */


#include "ngx_rpc.h"


#define NGX_RPC_VAR_METHOD      0
#define NGX_RPC_VAR_ID          1
#define NGX_RPC_VAR_CALLS       2
#define NGX_RPC_VAR_ERROR_CODE  3
#define NGX_RPC_VAR_CACHE       4
#define NGX_RPC_VAR_BATCH       5
#define NGX_RPC_VAR_MESSAGES    6
#define NGX_RPC_VAR_CLOSE       7

/* lists of what is not a member of the request */
#define NGX_RPC_LIST_CACHE      NGX_RPC_M_N
#define NGX_RPC_LIST_BATCH      (NGX_RPC_M_N + 1)


static ngx_int_t ngx_rpc_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_rpc_variable_list(ngx_rpc_message_t *ctx,
    ngx_http_variable_value_t *v, ngx_uint_t member);


static ngx_http_variable_t  ngx_rpc_vars[] = {

    { ngx_string("rpc_method"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_METHOD, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_id"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_calls"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_CALLS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_error_code"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_ERROR_CODE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_cache_status"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_CACHE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_upstream_batch"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_BATCH, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_messages"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_MESSAGES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("rpc_websocket_close"), NULL, ngx_rpc_variable,
      NGX_RPC_VAR_CLOSE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* indexed by NGX_RPC_CACHE_* */
static ngx_str_t  ngx_rpc_cache_statuses[] = {
    ngx_string("-"),
    ngx_string("MISS"),
    ngx_string("BYPASS"),
    ngx_string("EXPIRED"),
    ngx_string("HIT"),
    ngx_string("REDIS"),
    ngx_string("COLLAPSED")
};


ngx_int_t
ngx_rpc_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_rpc_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_rpc_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char             *p;
    ngx_int_t           n;
    ngx_rpc_session_t  *s;
    ngx_rpc_message_t  *ctx;

    s = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (s == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ctx = s->ctx;

    switch (data) {

    case NGX_RPC_VAR_CALLS:
        n = ctx ? ctx->calls.nelts : s->calls;
        break;

    case NGX_RPC_VAR_MESSAGES:
        n = s->messages;
        break;

    case NGX_RPC_VAR_CLOSE:
        n = ngx_rpc_websocket_close_code(s);
        break;

    default:
        if (ctx == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }

        n = -1;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    switch (data) {

    case NGX_RPC_VAR_CALLS:
    case NGX_RPC_VAR_MESSAGES:
    case NGX_RPC_VAR_CLOSE:
        if (n < 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%i", n) - p;
        return NGX_OK;

    case NGX_RPC_VAR_ERROR_CODE:
        v->data = ctx->codes.data;
        v->len = ctx->codes.len;
        return NGX_OK;

    case NGX_RPC_VAR_METHOD:
        return ngx_rpc_variable_list(ctx, v, NGX_RPC_M_METHOD);

    case NGX_RPC_VAR_CACHE:
        return ngx_rpc_variable_list(ctx, v, NGX_RPC_LIST_CACHE);

    case NGX_RPC_VAR_BATCH:
        return ngx_rpc_variable_list(ctx, v, NGX_RPC_LIST_BATCH);

    default: /* NGX_RPC_VAR_ID */
        return ngx_rpc_variable_list(ctx, v, NGX_RPC_M_ID);
    }
}


static ngx_int_t
ngx_rpc_variable_list(ngx_rpc_message_t *ctx, ngx_http_variable_value_t *v,
    ngx_uint_t member)
{
    u_char          *p;
    size_t           len;
    ngx_str_t       *s;
    ngx_uint_t       i, n;
    ngx_rpc_call_t  *call;

    n = ctx->calls.nelts;
    call = ctx->calls.elts;

    s = ngx_palloc(ctx->request->pool, (n + 1) * sizeof(ngx_str_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (i = 0; i < n; i++) {
        ngx_str_set(&s[i], "-");

        if (member == NGX_RPC_LIST_CACHE) {
            s[i] = ngx_rpc_cache_statuses[call[i].cache_status];

        } else if (member == NGX_RPC_LIST_BATCH) {
            if (call[i].batch_size) {
                s[i].data = ngx_pnalloc(ctx->request->pool, NGX_INT_T_LEN);
                if (s[i].data == NULL) {
                    return NGX_ERROR;
                }

                s[i].len = ngx_sprintf(s[i].data, "%ui", call[i].batch_size)
                           - s[i].data;
            }

        } else if (member == NGX_RPC_M_METHOD) {
            if (call[i].msg->member[member].type == NGX_RPC_STRING) {
                s[i] = call[i].msg->method;
            }

        } else if (call[i].msg->member[member].type != NGX_RPC_NONE
                   && ngx_rpc_parse_copy(&ctx->parser,
                                         &call[i].msg->member[member].range,
                                         &s[i])
                      != NGX_OK)
        {
            return NGX_ERROR;
        }

        len += s[i].len + 1;
    }

    if (n == 1) {
        v->data = s[0].data;
        v->len = s[0].len;
        return NGX_OK;
    }

    p = ngx_pnalloc(ctx->request->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, s[i].data, s[i].len);
    }

    v->len = p - v->data;

    return NGX_OK;
}
