
/*
 * Response assembly: the client's answer is written into one block: the
 * literals, the client ids and the small answers, copied.  An answer of
 * NGX_RPC_ANSWER_SMALL bytes or more goes by reference, as slices of the
 * upstream reply or the cached copy: a batch of small answers is one
 * buffer (one iovec), and a large answer is never copied.
 */


#include "ngx_rpc.h"


#define NGX_RPC_CODE_LEN      (NGX_INT_T_LEN + 1)
#define NGX_RPC_ANSWER_SMALL  1024
#define NGX_RPC_ANSWER_BLOCK  2048


typedef struct {
    ngx_pool_t    *pool;
    ngx_chain_t  **ll;
    u_char        *pos;    /* written, not linked yet */
    u_char        *last;
    u_char        *end;
} ngx_rpc_answer_t;


static ngx_int_t ngx_rpc_response_call(ngx_rpc_message_t *ctx,
    ngx_rpc_call_t *call, ngx_str_t *sep, ngx_rpc_answer_t *a,
    ngx_uint_t *open);
static ngx_int_t ngx_rpc_response_error_obj(ngx_rpc_message_t *ctx,
    ngx_int_t code, ngx_rpc_msg_t *msg, ngx_str_t *sep, ngx_rpc_answer_t *a);
static u_char *ngx_rpc_answer_reserve(ngx_rpc_answer_t *a, size_t size);
static ngx_int_t ngx_rpc_answer_flush(ngx_rpc_answer_t *a);
static u_char *ngx_rpc_response_id(ngx_rpc_message_t *ctx, ngx_rpc_msg_t *msg,
    u_char *p);
static void ngx_rpc_response_code(ngx_rpc_message_t *ctx, ngx_int_t code,
    ngx_uint_t ok);


typedef struct {
    ngx_int_t    code;
    char        *message;
} ngx_rpc_error_t;


static ngx_rpc_error_t  ngx_rpc_errors[] = {
    { NGX_RPC_PARSE_ERROR, "Parse error" },
    { NGX_RPC_INVALID_REQUEST, "Invalid Request" },
    { NGX_RPC_METHOD_NOT_FOUND, "Method not found" },
    { NGX_RPC_INVALID_PARAMS, "Invalid params" },
    { NGX_RPC_UPSTREAM_UNAVAILABLE, "Upstream unavailable" },
    { NGX_RPC_UPSTREAM_TIMEOUT, "Upstream timed out" },
    { NGX_RPC_UPSTREAM_CLOSED,
      "Upstream closed connection before reply was complete" },
    { NGX_RPC_UPSTREAM_STATUS, "Upstream replied with HTTP error status" },
    { NGX_RPC_UPSTREAM_NOT_JSON, "Upstream reply is not valid JSON" },
    { NGX_RPC_UPSTREAM_BAD_SHAPE, "Upstream reply is not a valid response" },
    { NGX_RPC_UPSTREAM_NO_RESULT, "Upstream reply has no response for call" },
    { NGX_RPC_BATCH_TOO_LARGE, "Batch too large" },
    { NGX_RPC_BODY_TOO_LARGE, "Request body too large" },
    { NGX_RPC_UPSTREAM_TOO_LARGE, "Upstream reply too large" },
    { NGX_RPC_OVERLOADED, "Gateway overloaded" },
    { NGX_RPC_LIMITED, "Rate limit exceeded" },
    { NGX_RPC_TOO_MANY_SUBSCRIPTIONS, "Too many subscriptions" },
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


/*
 * Each answer is its head (separator, the previous answer's closing brace,
 * the literals and the client's id) and its value.
 */

ngx_int_t
ngx_rpc_response_build(ngx_rpc_message_t *ctx, ngx_chain_t **out)
{
    u_char            *p;
    ngx_str_t          sep;
    ngx_uint_t         i, n, open;
    ngx_rpc_call_t    *call;
    ngx_rpc_answer_t   a;

    ctx->codes.data = ngx_pnalloc(ctx->pool,
                                  (ctx->calls.nelts + 1) * NGX_RPC_CODE_LEN);
    if (ctx->codes.data == NULL) {
        return NGX_ERROR;
    }

    *out = NULL;

    ngx_memzero(&a, sizeof(ngx_rpc_answer_t));
    a.pool = ctx->pool;
    a.ll = out;

    /* empty, not null: it is copied, and memcpy() must not get NULL */

    ngx_str_set(&sep, "");

    if (ctx->error) {
        if (ngx_rpc_response_error_obj(ctx, ctx->error, NULL, &sep, &a)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_rpc_answer_flush(&a);
    }

    n = 0;
    open = 0;
    call = ctx->calls.elts;

    for (i = 0; i < ctx->calls.nelts; i++) {
        if (call[i].notification) {
            continue;
        }

        if (n++ == 0) {
            if (ctx->batch) {
                ngx_str_set(&sep, "[");
            }

        } else if (open) {
            ngx_str_set(&sep, "},");

        } else {
            ngx_str_set(&sep, ",");
        }

        if (ngx_rpc_response_call(ctx, &call[i], &sep, &a, &open) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* notifications only: nothing to answer */

    if (n == 0) {
        return NGX_OK;
    }

    if (open || ctx->batch) {
        p = ngx_rpc_answer_reserve(&a, 2);
        if (p == NULL) {
            return NGX_ERROR;
        }

        a.last = ngx_cpymem(p, open ? "}]" : "]", open + ctx->batch);
    }

    return ngx_rpc_answer_flush(&a);
}


/* the HTTP response: 200 with the answer, or 204 for notifications only */

ngx_int_t
ngx_rpc_response_send(ngx_rpc_message_t *ctx)
{
    ngx_chain_t         *out;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_rpc_response_build(ctx, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    if (out == NULL) {
        if (r->headers_out.status == 0) {
            r->headers_out.status = NGX_HTTP_NO_CONTENT;

        } else {
            r->headers_out.content_length_n = 0;
        }

        r->header_only = 1;
        ngx_http_clear_content_length(r);

        return ngx_http_send_header(r);
    }

    return ngx_rpc_response_body(ctx, out);
}


/* an answer with a result or error value is left open for what follows */

static ngx_int_t
ngx_rpc_response_call(ngx_rpc_message_t *ctx, ngx_rpc_call_t *call,
    ngx_str_t *sep, ngx_rpc_answer_t *a, ngx_uint_t *open)
{
    u_char           *p, *last;
    size_t            len;
    ngx_int_t         code;
    ngx_rpc_msg_t    *reply;
    ngx_rpc_range_t  *id, *range;

    *open = 0;
    code = call->error;
    reply = call->reply;

    if (code == 0 && call->answer.data == NULL && reply == NULL) {
        code = NGX_RPC_UPSTREAM_NO_RESULT;
    }

    if (code) {
        return ngx_rpc_response_error_obj(ctx, code, call->msg, sep, a);
    }

    id = &call->msg->member[NGX_RPC_M_ID].range;

    len = sep->len + (id->end - id->start)
          + sizeof("{\"jsonrpc\":\"2.0\",\"id\":,\"result\":");

    p = ngx_rpc_answer_reserve(a, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_cpymem(p, sep->data, sep->len);
    last = ngx_cpymem(last, "{\"jsonrpc\":\"2.0\",\"id\":",
                      sizeof("{\"jsonrpc\":\"2.0\",\"id\":") - 1);
    last = ngx_rpc_parse_copy_to(&ctx->parser, id, last);

    range = NULL;

    if (call->answer.data ? !call->answer_error
        : reply->member[NGX_RPC_M_RESULT].type != NGX_RPC_NONE)
    {
        last = ngx_cpymem(last, ",\"result\":", sizeof(",\"result\":") - 1);

        if (call->answer.data == NULL) {
            range = &reply->member[NGX_RPC_M_RESULT].range;
        }

    } else {
        last = ngx_cpymem(last, ",\"error\":", sizeof(",\"error\":") - 1);

        /* an upstream error whose code is no integer logs as "-" */

        if (call->answer.data) {
            ngx_rpc_response_code(ctx, call->answer_code,
                                  call->answer_code_ok);

        } else {
            range = &reply->member[NGX_RPC_M_ERROR].range;
            ngx_rpc_response_code(ctx, reply->code, reply->code_ok);
        }
    }

    *open = 1;
    a->last = last;

    len = range ? (size_t) (range->end - range->start) : call->answer.len;

    if (len >= NGX_RPC_ANSWER_SMALL) {
        if (ngx_rpc_answer_flush(a) != NGX_OK) {
            return NGX_ERROR;
        }

        if (range == NULL) {
            return ngx_rpc_chain_add(a->pool, &a->ll, call->answer.data,
                                     len);
        }

        return ngx_rpc_parse_slice(&call->exchange->reply, a->pool, range,
                                   &a->ll);
    }

    p = ngx_rpc_answer_reserve(a, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (range == NULL) {
        a->last = ngx_cpymem(p, call->answer.data, len);

    } else {
        a->last = ngx_rpc_parse_copy_to(&call->exchange->reply, range, p);
    }

    return NGX_OK;
}


/* an error object; its id is the call's own when the call has a valid one */

static ngx_int_t
ngx_rpc_response_error_obj(ngx_rpc_message_t *ctx, ngx_int_t code,
    ngx_rpc_msg_t *msg, ngx_str_t *sep, ngx_rpc_answer_t *a)
{
    u_char           *p, *last, *s;
    size_t            len;
    ngx_rpc_range_t  *id;

    s = ngx_rpc_error_message(code);
    id = msg ? &msg->member[NGX_RPC_M_ID].range : NULL;

    len = sep->len + sizeof("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":,"
                            "\"message\":\"\"},\"id\":null}")
          + NGX_INT_T_LEN + ngx_strlen(s) + (id ? id->end - id->start : 0);

    p = ngx_rpc_answer_reserve(a, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_rpc_response_code(ctx, code, 1);

    last = ngx_sprintf(p, "%V{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%i,"
                       "\"message\":\"%s\"},\"id\":", sep, code, s);
    last = ngx_rpc_response_id(ctx, msg, last);
    *last++ = '}';

    a->last = last;

    return NGX_OK;
}


/* room for size bytes more: in the block, or in a new one */

static u_char *
ngx_rpc_answer_reserve(ngx_rpc_answer_t *a, size_t size)
{
    size_t  n;

    if ((size_t) (a->end - a->last) >= size) {
        return a->last;
    }

    if (ngx_rpc_answer_flush(a) != NGX_OK) {
        return NULL;
    }

    n = ngx_max(size, NGX_RPC_ANSWER_BLOCK);

    a->pos = ngx_pnalloc(a->pool, n);
    if (a->pos == NULL) {
        return NULL;
    }

    a->last = a->pos;
    a->end = a->pos + n;

    return a->last;
}


/* links what is written since the last link */

static ngx_int_t
ngx_rpc_answer_flush(ngx_rpc_answer_t *a)
{
    if (a->last == a->pos) {
        return NGX_OK;
    }

    if (ngx_rpc_chain_add(a->pool, &a->ll, a->pos, a->last - a->pos)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    a->pos = a->last;

    return NGX_OK;
}


/* the call's id as sent when it is a valid one, null otherwise */

static u_char *
ngx_rpc_response_id(ngx_rpc_message_t *ctx, ngx_rpc_msg_t *msg, u_char *p)
{
    ngx_uint_t  type;

    type = msg ? msg->member[NGX_RPC_M_ID].type : NGX_RPC_NONE;

    if (type == NGX_RPC_NUMBER || type == NGX_RPC_STRING
        || type == NGX_RPC_NULL)
    {
        return ngx_rpc_parse_copy_to(&ctx->parser,
                                     &msg->member[NGX_RPC_M_ID].range, p);
    }

    return ngx_cpymem(p, "null", 4);
}


/*
 * remembers answered error codes for $rpc_error_code; "-" for an upstream
 * error whose code is no integer (ok is 0)
 */

static void
ngx_rpc_response_code(ngx_rpc_message_t *ctx, ngx_int_t code, ngx_uint_t ok)
{
    u_char  *p;

    if (ctx->codes.data == NULL) {
        return;
    }

    p = ctx->codes.data + ctx->codes.len;

    if (ctx->codes.len) {
        *p++ = ',';
    }

    if (!ok) {
        *p++ = '-';
        ctx->codes.len = p - ctx->codes.data;
        return;
    }

    ctx->codes.len = ngx_sprintf(p, "%i", code) - ctx->codes.data;
}


/* error answer for a request the gateway could not take at all */

ngx_int_t
ngx_rpc_response_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_int_t code)
{
    ngx_rpc_session_t  *s;
    ngx_rpc_message_t  *ctx;

    s = ngx_http_get_module_ctx(r, ngx_rpc_module);

    if (s == NULL) {
        s = ngx_pcalloc(r->pool, sizeof(ngx_rpc_session_t));
        if (s == NULL) {
            return NGX_ERROR;
        }

        s->request = r;
        ngx_http_set_ctx(r, s, ngx_rpc_module);
    }

    ctx = s->ctx;

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_rpc_message_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ctx->session = s;
        ctx->request = r;
        ctx->pool = r->pool;
        s->ctx = ctx;
    }

    ctx->error = code;
    r->headers_out.status = status;

    return ngx_rpc_response_send(ctx);
}


ngx_int_t
ngx_rpc_response_body(ngx_rpc_message_t *ctx, ngx_chain_t *out)
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
