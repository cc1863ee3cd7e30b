
/*
 * Policy: JSON-RPC 2.0 request validation, method allow/deny, routing.
 */


#include "ngx_rpc.h"




/* returns 0 for a call that may go upstream, or the error to answer */

ngx_int_t
ngx_rpc_policy_check(ngx_rpc_loc_conf_t *rlcf, ngx_rpc_msg_t *msg)
{
    ngx_uint_t  type;

    if (msg->type != NGX_RPC_OBJECT
        || msg->duplicate
        || !msg->version_ok
        || msg->member[NGX_RPC_M_METHOD].type != NGX_RPC_STRING)
    {
        return NGX_RPC_INVALID_REQUEST;
    }

    type = msg->member[NGX_RPC_M_PARAMS].type;

    if (type != NGX_RPC_NONE && type != NGX_RPC_OBJECT
        && type != NGX_RPC_ARRAY)
    {
        return NGX_RPC_INVALID_REQUEST;
    }

    type = msg->member[NGX_RPC_M_ID].type;

    if (type != NGX_RPC_NONE && type != NGX_RPC_NULL
        && type != NGX_RPC_NUMBER && type != NGX_RPC_STRING)
    {
        return NGX_RPC_INVALID_REQUEST;
    }

    if (rlcf->deny && ngx_rpc_policy_match(rlcf->deny, &msg->method)) {
        return NGX_RPC_METHOD_NOT_FOUND;
    }

    if (rlcf->allow && !ngx_rpc_policy_match(rlcf->allow, &msg->method)) {
        return NGX_RPC_METHOD_NOT_FOUND;
    }

    return 0;
}


ngx_http_upstream_conf_t *
ngx_rpc_policy_route(ngx_rpc_loc_conf_t *rlcf, ngx_str_t *method)
{
    ngx_uint_t        i;
    ngx_rpc_route_t  *route;

    if (rlcf->routes) {
        route = rlcf->routes->elts;

        for (i = 0; i < rlcf->routes->nelts; i++) {
            if (ngx_rpc_policy_match(route[i].patterns, method)) {
                return route[i].upstream;
            }
        }
    }

    return &rlcf->upstream;
}


ngx_int_t
ngx_rpc_policy_match(ngx_array_t *patterns, ngx_str_t *name)
{
    ngx_str_t   *pat;
    ngx_uint_t   i;

    pat = patterns->elts;

    for (i = 0; i < patterns->nelts; i++) {
        if (ngx_rpc_policy_glob(pat[i].data, pat[i].data + pat[i].len,
                                name->data, name->data + name->len))
        {
            return 1;
        }
    }

    return 0;
}


/* "*" matches any run of bytes, everything else itself */

ngx_uint_t
ngx_rpc_policy_glob(u_char *p, u_char *pe, u_char *s, u_char *se)
{
    u_char  *star, *mark;

    star = NULL;
    mark = NULL;

    while (s < se) {

        if (p < pe && *p == '*') {
            star = ++p;
            mark = s;

            if (p == pe) {
                return 1;    /* a star at the end takes the rest */
            }

            continue;
        }

        if (p < pe && *p == *s) {
            p++;
            s++;
            continue;
        }

        if (star == NULL) {
            return 0;
        }

        p = star;
        s = ++mark;
    }

    while (p < pe && *p == '*') {
        p++;
    }

    return p == pe;
}
