
/*
 * Stand-ins for the one function of the module that ngx_rpc_parse.c calls
 * outside itself.  ngx_rpc_response_buf() lives in ngx_rpc_response.c,
 * which needs the whole http module (requests, filters, the dispatcher):
 * linking it here is impractical.  This is the same buffer in the same
 * shape (a memory buf over the bytes, start == pos), made with nginx's
 * own ngx_calloc_buf() and ngx_alloc_chain_link(); keep it in step with
 * ngx_rpc_response.c.  Everything else comes from nginx's core objects.
 */


#include "ngx_rpc.h"


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
