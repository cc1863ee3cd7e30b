
/*
 * Response assembly: the client's answer is a chain of small literal
 * buffers around slices of the client's ids and of the upstream replies.
 */


#include "ngx_rpc.h"


#define NGX_RPC_CODE_LEN  (NGX_INT_T_LEN + 1)


static ngx_int_t ngx_rpc_response_call(ngx_rpc_ctx_t *ctx,
    ngx_rpc_call_t *call, ngx_chain_t ***ll);
static ngx_int_t ngx_rpc_response_error_obj(ngx_rpc_ctx_t *ctx,
    ngx_int_t code, ngx_rpc_msg_t *msg, ngx_chain_t ***ll);
static void ngx_rpc_response_code(ngx_rpc_ctx_t *ctx, ngx_int_t code);


static u_char  ngx_rpc_null[] = "null";
static u_char  ngx_rpc_comma[] = ",";
static u_char  ngx_rpc_open[] = "[";
static u_char  ngx_rpc_close[] = "]";
static u_char  ngx_rpc_end[] = "}";
static u_char  ngx_rpc_id[] = "{\"jsonrpc\":\"2.0\",\"id\":";
static u_char  ngx_rpc_result[] = ",\"result\":";
static u_char  ngx_rpc_error[] = ",\"error\":";


typedef struct {
    ngx_int_t    code;
    char        *message;
} ngx_rpc_error_t;


static ngx_rpc_error_t  ngx_rpc_errors[] = {
    { NGX_RPC_PARSE_ERROR, "Parse error" },
    { NGX_RPC_INVALID_REQUEST, "Invalid Request" },
    { NGX_RPC_METHOD_NOT_FOUND, "Method not found" },
    { NGX_RPC_UPSTREAM_UNAVAILABLE, "Upstream unavailable" },
    { NGX_RPC_UPSTREAM_TIMEOUT, "Upstream timed out" },
    { NGX_RPC_UPSTREAM_CLOSED, "Upstream closed connection before reply was complete" },
    { NGX_RPC_UPSTREAM_STATUS, "Upstream replied with HTTP error status" },
    { NGX_RPC_UPSTREAM_NOT_JSON, "Upstream reply is not valid JSON" },
    { NGX_RPC_UPSTREAM_BAD_SHAPE, "Upstream reply is not a valid response" },
    { NGX_RPC_UPSTREAM_NO_RESULT, "Upstream reply has no response for call" },
    { NGX_RPC_BATCH_TOO_LARGE, "Batch too large" },
    { NGX_RPC_BODY_TOO_LARGE, "Request body too large" },
    { 0, "Server error" }
};


u_char *
ngx_rpc_error_message(ngx_int_t code)
{
    ngx_rpc_error_t  *e;

    for (e = ngx_rpc_errors; e->code; e++) {
        if (e->code == code) {
            break;
        }
    }

    return (u_char *) e->message;
}


ngx_int_t
ngx_rpc_response_buf(ngx_pool_t *pool, ngx_chain_t ***ll, u_char *data,
    size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    cl = ngx_alloc_chain_link(pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    /* start == pos: the upstream module rewinds request buffers on retry */

    b->start = data;
    b->pos = data;
    b->last = data + len;
    b->end = data + len;
    b->memory = 1;

    cl->buf = b;
    cl->next = NULL;

    **ll = cl;
    *ll = &cl->next;

    return NGX_OK;
}


ngx_int_t
ngx_rpc_response_send(ngx_rpc_ctx_t *ctx)
{
    ngx_uint_t           i, n;
    ngx_chain_t         *out, **ll;
    ngx_rpc_call_t      *call;
    ngx_http_request_t  *r;

    r = ctx->request;

    ctx->codes.data = ngx_pnalloc(r->pool,
                                  (ctx->calls.nelts + 1) * NGX_RPC_CODE_LEN);
    if (ctx->codes.data == NULL) {
        return NGX_ERROR;
    }

    out = NULL;
    ll = &out;

    if (ctx->error) {
        if (ngx_rpc_response_error_obj(ctx, ctx->error, NULL, &ll)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_rpc_response_body(ctx, out);
    }

    if (ctx->batch
        && ngx_rpc_response_buf(r->pool, &ll, ngx_rpc_open, 1) != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = 0;
    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {
        if (call[i].notification) {
            continue;
        }

        if (n++
            && ngx_rpc_response_buf(r->pool, &ll, ngx_rpc_comma, 1)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_rpc_response_call(ctx, &call[i], &ll) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (n == 0) {
        /* notifications only: nothing to answer */

        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->header_only = 1;
        ngx_http_clear_content_length(r);

        return ngx_http_send_header(r);
    }

    if (ctx->batch
        && ngx_rpc_response_buf(r->pool, &ll, ngx_rpc_close, 1) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_rpc_response_body(ctx, out);
}


static ngx_int_t
ngx_rpc_response_call(ngx_rpc_ctx_t *ctx, ngx_rpc_call_t *call,
    ngx_chain_t ***ll)
{
    ngx_int_t            code;
    ngx_pool_t          *pool;
    ngx_rpc_msg_t       *reply;
    ngx_rpc_range_t     *range;
    ngx_rpc_parser_t    *up;

    code = call->error;

    if (code == 0 && call->exchange->error) {
        code = call->exchange->error;
    }

    if (code == 0 && call->reply == NULL) {
        code = NGX_RPC_UPSTREAM_NO_RESULT;
    }

    if (code) {
        return ngx_rpc_response_error_obj(ctx, code, call->msg, ll);
    }

    pool = ctx->request->pool;
    reply = call->reply;
    up = &call->exchange->reply;

    if (ngx_rpc_response_buf(pool, ll, ngx_rpc_id, sizeof(ngx_rpc_id) - 1)
        != NGX_OK
        || ngx_rpc_parse_slice(&ctx->parser,
                               &call->msg->member[NGX_RPC_M_ID].range, ll)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (reply->member[NGX_RPC_M_RESULT].type != NGX_RPC_NONE) {
        range = &reply->member[NGX_RPC_M_RESULT].range;

        if (ngx_rpc_response_buf(pool, ll, ngx_rpc_result,
                                 sizeof(ngx_rpc_result) - 1)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        range = &reply->member[NGX_RPC_M_ERROR].range;
        ngx_rpc_response_code(ctx, reply->code);

        if (ngx_rpc_response_buf(pool, ll, ngx_rpc_error,
                                 sizeof(ngx_rpc_error) - 1)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_rpc_parse_slice(up, range, ll) != NGX_OK
        || ngx_rpc_response_buf(pool, ll, ngx_rpc_end, 1) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an error object; its id is the call's own when the call has a valid one */

static ngx_int_t
ngx_rpc_response_error_obj(ngx_rpc_ctx_t *ctx, ngx_int_t code,
    ngx_rpc_msg_t *msg, ngx_chain_t ***ll)
{
    u_char       *p, *s;
    size_t        len;
    ngx_uint_t    type;
    ngx_pool_t   *pool;

    pool = ctx->request->pool;
    s = ngx_rpc_error_message(code);

    len = sizeof("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":,\"message\":\"\"},"
                 "\"id\":") - 1 + NGX_INT_T_LEN + ngx_strlen(s);

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_rpc_response_code(ctx, code);

    if (ngx_rpc_response_buf(pool, ll, p,
            ngx_sprintf(p, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%i,"
                        "\"message\":\"%s\"},\"id\":", code, s) - p)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    type = msg ? msg->member[NGX_RPC_M_ID].type : NGX_RPC_NONE;

    if (type == NGX_RPC_NUMBER || type == NGX_RPC_STRING
        || type == NGX_RPC_NULL)
    {
        if (ngx_rpc_parse_slice(&ctx->parser,
                                &msg->member[NGX_RPC_M_ID].range, ll)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (ngx_rpc_response_buf(pool, ll, ngx_rpc_null, 4) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_rpc_response_buf(pool, ll, ngx_rpc_end, 1);
}


/* remembers answered error codes for $rpc_error_code */

static void
ngx_rpc_response_code(ngx_rpc_ctx_t *ctx, ngx_int_t code)
{
    u_char  *p;

    if (ctx->codes.data == NULL) {
        return;
    }

    p = ctx->codes.data + ctx->codes.len;

    if (ctx->codes.len) {
        *p++ = ',';
    }

    ctx->codes.len = ngx_sprintf(p, "%i", code) - ctx->codes.data;
}


/* error answer for a request the gateway could not take at all */

ngx_int_t
ngx_rpc_response_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_int_t code)
{
    ngx_rpc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_rpc_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ctx->request = r;
        ngx_http_set_ctx(r, ctx, ngx_rpc_module);
    }

    ctx->error = code;
    r->headers_out.status = status;

    return ngx_rpc_response_send(ctx);
}


ngx_int_t
ngx_rpc_response_body(ngx_rpc_ctx_t *ctx, ngx_chain_t *out)
{
    off_t                len;
    ngx_int_t            rc;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = ctx->request;
    len = 0;

    for (cl = out; cl->next; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
    }

    len += cl->buf->last - cl->buf->pos;
    cl->buf->last_buf = 1;

    if (r->headers_out.status == 0) {
        r->headers_out.status = NGX_HTTP_OK;
    }

    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}
