
/*
 * Utilities of every stage: buffers over bytes that stay where they are,
 * and pools kept for reuse.  Nothing here needs a request.
 */


#include "ngx_rpc.h"


static u_char *ngx_rpc_json_skip(u_char *p, u_char *last);


/* pools kept for reuse, and the most blocks a kept pool may have */
#define NGX_RPC_POOLS_MAX    64
#define NGX_RPC_POOL_BLOCKS  4

/* under ASan or valgrind every pool is freed: they see any use after it */

#if (defined __SANITIZE_ADDRESS__)
#define ngx_rpc_pool_keep()  0

#elif (defined __has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ngx_rpc_pool_keep()  (!RUNNING_ON_VALGRIND)
#endif
#endif

#ifndef ngx_rpc_pool_keep
#define ngx_rpc_pool_keep()  1
#endif


static ngx_pool_t  *ngx_rpc_pools[NGX_RPC_POOLS_MAX];
static ngx_uint_t   ngx_rpc_npools;


/* a buffer over len bytes at data, linked at the end of a chain */

ngx_int_t
ngx_rpc_chain_add(ngx_pool_t *pool, ngx_chain_t ***ll, u_char *data,
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


/*
 * Pools of ended exchanges and client messages are kept for new ones, as a
 * malloc()ed pool each time costs more than the rest of a small exchange.
 */

ngx_pool_t *
ngx_rpc_pool_get(ngx_log_t *log)
{
    ngx_pool_t  *pool;

    if (ngx_rpc_npools) {
        pool = ngx_rpc_pools[--ngx_rpc_npools];
        pool->log = log;
        return pool;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return NULL;
    }

    /* a page-sized upstream buffer (rpc_buffer_size) fits in a block */

    pool->max = NGX_DEFAULT_POOL_SIZE - sizeof(ngx_pool_t);

    return pool;
}


/* also a pool cleanup handler */

void
ngx_rpc_pool_free(void *data)
{
    ngx_pool_t          *pool = data;
    ngx_uint_t           n;
    ngx_pool_t          *p;
    ngx_pool_cleanup_t  *cln;

    /* a pool that a large message made grow is not kept */

    n = 0;

    for (p = pool; p && n <= NGX_RPC_POOL_BLOCKS; p = p->d.next) {
        n++;
    }

    if (ngx_rpc_npools == NGX_RPC_POOLS_MAX || n > NGX_RPC_POOL_BLOCKS
        || !ngx_rpc_pool_keep())
    {
        ngx_destroy_pool(pool);
        return;
    }

    for (cln = pool->cleanup; cln; cln = cln->next) {
        if (cln->handler) {
            cln->handler(cln->data);
        }
    }

    pool->cleanup = NULL;
    pool->log = ngx_cycle->log;

    ngx_reset_pool(pool);

    ngx_rpc_pools[ngx_rpc_npools++] = pool;
}


void
ngx_rpc_pool_exit(void)
{
    while (ngx_rpc_npools) {
        ngx_destroy_pool(ngx_rpc_pools[--ngx_rpc_npools]);
    }
}


/*
 * One byte of UTF-8 text: NGX_ERROR where it cannot be (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF).
 */

ngx_int_t
ngx_rpc_utf8(ngx_rpc_utf8_t *u, u_char ch)
{
    if (u->left) {
        if (ch < u->lo || ch > u->hi) {
            return NGX_ERROR;
        }

        u->left--;
        u->lo = 0x80;
        u->hi = 0xbf;

        return NGX_OK;
    }

    if (ch < 0x80) {
        return NGX_OK;
    }

    u->lo = 0x80;
    u->hi = 0xbf;

    if (ch >= 0xc2 && ch <= 0xdf) {
        u->left = 1;

    } else if (ch >= 0xe0 && ch <= 0xef) {
        u->left = 2;

        if (ch == 0xe0) {
            u->lo = 0xa0;

        } else if (ch == 0xed) {
            u->hi = 0x9f;
        }

    } else if (ch >= 0xf0 && ch <= 0xf4) {
        u->left = 3;

        if (ch == 0xf0) {
            u->lo = 0x90;

        } else if (ch == 0xf4) {
            u->hi = 0x8f;
        }

    } else {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The shared part of a zone of keys, at the start of its slab pool, made
 * once: an rbtree and an LRU queue first (ngx_rpc_shm_tree_t), zeroed.  A
 * full zone lets its oldest keys go, so running out is not worth an alert.
 */

void *
ngx_rpc_shm_tree(ngx_shm_zone_t *shm_zone, size_t size, char *name,
    ngx_rbtree_insert_pt insert)
{
    size_t               len;
    ngx_slab_pool_t     *shpool;
    ngx_rpc_shm_tree_t  *tree;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        return shpool->data;
    }

    tree = ngx_slab_calloc(shpool, size);
    if (tree == NULL) {
        return NULL;
    }

    shpool->data = tree;

    ngx_rbtree_init(&tree->rbtree, &tree->sentinel, insert);
    ngx_queue_init(&tree->queue);

    len = sizeof(" in  \"\"") + ngx_strlen(name) + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NULL;
    }

    ngx_sprintf(shpool->log_ctx, " in %s \"%V\"%Z", name,
                &shm_zone->shm.name);

    shpool->log_nomem = 0;

    return tree;
}


/*
 * drops whitespace outside strings of JSON text in place, returns the new
 * end: the cache and subscription keys
 */

u_char *
ngx_rpc_squeeze(u_char *p, u_char *last)
{
    u_char      *d;
    ngx_uint_t   str, esc;

    d = p;
    str = 0;
    esc = 0;

    for ( /* void */ ; p < last; p++) {

        if (str) {
            if (esc) {
                esc = 0;

            } else if (*p == '\\') {
                esc = 1;

            } else if (*p == '"') {
                str = 0;
            }

        } else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            continue;

        } else if (*p == '"') {
            str = 1;
        }

        *d++ = *p;
    }

    return d;
}


/*
 * Finds the member name of the JSON object from start to last, valid JSON
 * already parsed (an event's params): its value's range, as offsets from
 * start.  NGX_DECLINED when it is not there, or there twice, or a key has
 * escapes: a client's decoder would take the last, or decode the key.
 */

ngx_int_t
ngx_rpc_json_member(u_char *start, u_char *last, ngx_str_t *name,
    ngx_rpc_range_t *range)
{
    u_char      *p, *key, *value;
    ngx_uint_t   match, found;

    p = start + 1;
    found = 0;

    for ( ;; ) {
        while (p < last && *p != '"' && *p != '}') {
            p++;
        }

        if (p == last || *p == '}') {
            break;
        }

        key = p;
        p = ngx_rpc_json_skip(p, last);

        if (ngx_strlchr(key, p, '\\') != NULL) {
            return NGX_DECLINED;
        }

        match = ((size_t) (p - key) == name->len + 2
                 && ngx_strncmp(key + 1, name->data, name->len) == 0);

        while (p < last && *p != ':') {
            p++;
        }

        p++;

        while (p < last
               && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        {
            p++;
        }

        value = p;
        p = ngx_rpc_json_skip(p, last);

        if (match) {
            if (found) {
                return NGX_DECLINED;
            }

            found = 1;
            range->start = value - start;
            range->end = p - start;
        }

        while (p < last && *p != ',' && *p != '}') {
            p++;
        }

        if (p == last || *p == '}') {
            break;
        }

        p++;
    }

    return found ? NGX_OK : NGX_DECLINED;
}


/* past one JSON value of valid JSON: a string, a number, an object, ... */

static u_char *
ngx_rpc_json_skip(u_char *p, u_char *last)
{
    ngx_uint_t  depth, str;

    depth = 0;
    str = 0;

    for ( /* void */ ; p < last; p++) {

        if (str) {
            if (*p == '\\') {
                p++;

            } else if (*p == '"') {
                str = 0;

                if (depth == 0) {
                    return p + 1;
                }
            }

            continue;
        }

        switch (*p) {

        case '"':
            str = 1;
            break;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return p;
            }

            if (--depth == 0) {
                return p + 1;
            }

            break;

        case ',':
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            if (depth == 0) {
                return p;
            }

            break;
        }
    }

    return p;
}
