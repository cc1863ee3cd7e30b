
/*
 * The upstream WebSocket of rpc_subscribe_pass: per worker and location one
 * client connection (RFC 6455 4.1, 5.1), owned by the worker: no client
 * request holds it, none can end it.  ngx_rpc_subscribe.c drives it with
 * start(), send(), reset() and stop() and is told back through
 * ngx_rpc_subscribe_open(), _message() and _lost().
 *
 * States, as ngx_rpc_wsclient_state() reports them:
 *   IDLE        never started, stopped, or the worker is exiting
 *   CONNECTING  an attempt is under way (TCP connect, TLS, the upgrade
 *               request and its 101, all within rpc_connect_timeout), or
 *               starts once the lost() of the one before has been called
 *   OPEN        the handshake is done and open() was called
 *   BACKOFF     waiting before the next attempt
 *
 * Servers are the group's, primary then backup, "down" ones skipped, one
 * at a time; after any failure the next one is tried.  A failed attempt is
 * followed at once by one on the next server, until every server has
 * failed once in a row; then, and after an open connection is lost, the
 * client waits a random time between delay and 1.5 * delay (at most MAX of
 * rpc_subscribe_reconnect).  delay starts at MIN and doubles with each
 * wait up to MAX; a connection that stayed open at least delay brings it
 * back to MIN, so that a server which accepts and drops at once is not
 * hammered.
 *
 * ngx_rpc_subscribe_lost() is called once for each attempt or connection
 * that ends, except one ended by ngx_rpc_wsclient_stop(), always from a
 * posted event (never inside a call of the registry), with the state
 * already saying what comes next: CONNECTING (the next server, once lost()
 * returns), BACKOFF, or IDLE when the worker is exiting.
 *
 * The registry may call anything from open(), message() and lost(), stop()
 * and start() included: after each callback a handler checks that its
 * connection is still the one (gen), and the read buffer and a message
 * being reassembled are not freed under the read loop (reading).
 *
 * No timer here holds a worker that shuts down: the one timer is
 * cancelable and the connection idle, so that nginx closes it at once
 * (with a close frame, 1001); exit_process stops what is left.
 */


#include "ngx_rpc.h"

#if (NGX_OPENSSL)
#include <openssl/rand.h>
#endif


/* the read buffer: the 101 head must fit, larger messages are copied */
#define NGX_RPC_WSC_BUFFER      16384
#define NGX_RPC_WSC_POOL        1024

#define NGX_RPC_WSC_MIN         100
#define NGX_RPC_WSC_MAX         30000


/* a frame, or the rest of one, waiting for the socket */
typedef struct {
    ngx_chain_t                  cl;
    ngx_buf_t                    buf;
} ngx_rpc_wsc_out_t;


/*
 * Lives as long as the worker (in the cycle's pool); a connection's
 * resources (pool, out queue) go with it, the buffers when no read loop
 * runs.
 */
struct ngx_rpc_wsclient_s {
    ngx_rpc_subscribe_t         *sub;
    ngx_rpc_loc_conf_t          *conf;
    ngx_uint_t                   state;
    ngx_connection_t            *connection;
    ngx_pool_t                  *pool;       /* the connection's */
    ngx_log_t                    log;
    ngx_uint_t                   gen;        /* changes as a connection goes */
    ngx_uint_t                   next;       /* the server to try next */
    ngx_uint_t                   tried;      /* the server of the attempt */
    ngx_uint_t                   servers;    /* not down, at the attempt */
    ngx_uint_t                   failed;     /* attempts failed in a row */
    ngx_msec_t                   min;
    ngx_msec_t                   max;
    ngx_msec_t                   delay;
    ngx_msec_t                   opened;
    ngx_sockaddr_t               sockaddr;
    socklen_t                    socklen;
    ngx_str_t                    name;
    u_char                       name_data[NGX_SOCKADDR_STRLEN];
#if (NGX_HTTP_SSL)
    ngx_str_t                    ssl_name;
#endif
    u_char                       accept[28];
    u_char                      *buf;        /* NGX_RPC_WSC_BUFFER bytes */
    u_char                      *pos;
    u_char                      *last;
    u_char                      *msg;        /* a message in fragments */
    size_t                       msg_len;
    size_t                       msg_size;
    ngx_rpc_frame_t              frame;
    ngx_chain_t                 *out;
    ngx_chain_t                **last_out;
    size_t                       queued;
    ngx_event_t                  timer;      /* deadline, ping or backoff */
    ngx_event_t                  notify;     /* posted: lost() to call */
    unsigned                     connected:1;
    unsigned                     reading:1;
    unsigned                     alive:1;
    unsigned                     ping_sent:1;
};


static void ngx_rpc_wsclient_connect(ngx_rpc_wsclient_t *wc);
static ngx_int_t ngx_rpc_wsclient_peer(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_connected(ngx_rpc_wsclient_t *wc);
#if (NGX_HTTP_SSL)
static void ngx_rpc_wsclient_ssl_init(ngx_rpc_wsclient_t *wc);
static ngx_int_t ngx_rpc_wsclient_ssl_name(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_ssl_handshake(ngx_connection_t *c);
#endif
static void ngx_rpc_wsclient_upgrade(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_rpc_wsclient_process(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_opened(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_data(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_control(ngx_rpc_wsclient_t *wc);
static ngx_int_t ngx_rpc_wsclient_frame(ngx_rpc_wsclient_t *wc,
    ngx_uint_t opcode, u_char *data, size_t len, ngx_uint_t force);
static ngx_rpc_wsc_out_t *ngx_rpc_wsclient_out(ngx_rpc_wsclient_t *wc,
    size_t size);
static ngx_int_t ngx_rpc_wsclient_flush(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_write_handler(ngx_event_t *wev);
static void ngx_rpc_wsclient_timer_handler(ngx_event_t *ev);
static void ngx_rpc_wsclient_notify_handler(ngx_event_t *ev);
static void ngx_rpc_wsclient_fail(ngx_rpc_wsclient_t *wc, ngx_int_t code);
static void ngx_rpc_wsclient_close(ngx_rpc_wsclient_t *wc, ngx_int_t code);
static void ngx_rpc_wsclient_free(ngx_rpc_wsclient_t *wc);
static void ngx_rpc_wsclient_state_set(ngx_rpc_wsclient_t *wc,
    ngx_uint_t state);
static ngx_int_t ngx_rpc_wsclient_random(ngx_rpc_wsclient_t *wc, u_char *p,
    size_t n);
static u_char *ngx_rpc_wsclient_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


static ngx_str_t  ngx_rpc_wsclient_root = ngx_string("/");

#if (NGX_DEBUG)
static char  *ngx_rpc_wsclient_states[] = {
    "idle", "connecting", "open", "backoff"
};
#endif


/*
 * A connection open or on its way (nothing when the worker exits: IDLE);
 * an attempt that fails, even at once, is told by lost() later.
 * NGX_ERROR: no memory for the client.
 */

ngx_int_t
ngx_rpc_wsclient_start(ngx_rpc_subscribe_t *sub)
{
    ngx_rpc_wsclient_t  *wc;
    ngx_rpc_loc_conf_t  *conf;

    wc = sub->client;

    if (wc == NULL) {
        wc = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_rpc_wsclient_t));
        if (wc == NULL) {
            return NGX_ERROR;
        }

        conf = sub->conf;

        wc->sub = sub;
        wc->conf = conf;
        wc->last_out = &wc->out;

        /* until the directive sets them: 0 or unset, the defaults */

        wc->min = conf->sub_reconnect_min;
        wc->max = conf->sub_reconnect_max;

        if (wc->min == 0 || wc->min == NGX_CONF_UNSET_MSEC) {
            wc->min = NGX_RPC_WSC_MIN;
        }

        if (wc->max == 0 || wc->max == NGX_CONF_UNSET_MSEC) {
            wc->max = NGX_RPC_WSC_MAX;
        }

        wc->max = ngx_max(wc->max, wc->min);
        wc->delay = wc->min;

        /* the log names the server: nginx's own messages too */

        wc->log = *ngx_cycle->log;
        wc->log.handler = ngx_rpc_wsclient_log_error;
        wc->log.data = wc;
        wc->log.action = NULL;

        wc->timer.handler = ngx_rpc_wsclient_timer_handler;
        wc->timer.data = wc;
        wc->timer.log = &wc->log;
        wc->timer.cancelable = 1;

        wc->notify.handler = ngx_rpc_wsclient_notify_handler;
        wc->notify.data = wc;
        wc->notify.log = &wc->log;

        sub->client = wc;
    }

    if (wc->state == NGX_RPC_WSC_IDLE && !ngx_exiting && !ngx_terminate) {
        wc->failed = 0;
        ngx_rpc_wsclient_connect(wc);
    }

    return NGX_OK;
}


ngx_uint_t
ngx_rpc_wsclient_state(ngx_rpc_subscribe_t *sub)
{
    return sub->client ? sub->client->state : NGX_RPC_WSC_IDLE;
}


/*
 * One masked text frame, sent now or queued (a copy: data may go once
 * this returns).  NGX_ERROR: not open, or the connection broke (no memory,
 * a send error, more than rpc_websocket_max_queued bytes waiting for a
 * node that does not read); then it is closed and lost() follows from a
 * posted event.
 */

ngx_int_t
ngx_rpc_wsclient_send(ngx_rpc_subscribe_t *sub, u_char *data, size_t len)
{
    ngx_int_t            rc;
    ngx_rpc_wsclient_t  *wc;

    wc = sub->client;

    if (wc == NULL || wc->state != NGX_RPC_WSC_OPEN) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream send %uz bytes", len);

    rc = ngx_rpc_wsclient_frame(wc, NGX_RPC_WS_TEXT, data, len, 0);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream does not read, %uz bytes "
                      "queued", wc->queued);

    } else {
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream: cannot send");
    }

    ngx_rpc_wsclient_fail(wc, 0);

    return NGX_ERROR;
}


/*
 * The registry's verdict that the connection is dead (it stalled): closed,
 * lost() follows from a posted event, and the next attempt after backoff;
 * an attempt under way fails so.  Nothing to do without a connection.
 */

void
ngx_rpc_wsclient_reset(ngx_rpc_subscribe_t *sub, char *reason)
{
    ngx_rpc_wsclient_t  *wc;

    wc = sub->client;

    if (wc == NULL || wc->connection == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                  "rpc: subscription upstream reset: %s", reason);

    ngx_rpc_wsclient_fail(wc, NGX_RPC_WS_NORMAL);
}


/*
 * Closed with a close frame if it is open (1000, 1001 when the worker
 * exits), no reconnect; a lost() not called yet is not called.  Also for
 * exit_process.
 */

void
ngx_rpc_wsclient_stop(ngx_rpc_subscribe_t *sub)
{
    ngx_rpc_wsclient_t  *wc;

    wc = sub->client;

    if (wc == NULL) {
        return;
    }

    ngx_rpc_wsclient_close(wc, (ngx_exiting || ngx_terminate)
                               ? NGX_RPC_WS_GOING_AWAY : NGX_RPC_WS_NORMAL);

    if (wc->notify.posted) {
        ngx_delete_posted_event(&wc->notify);
    }

    if (wc->timer.timer_set) {
        ngx_del_timer(&wc->timer);
    }

    wc->failed = 0;

    if (wc->state != NGX_RPC_WSC_IDLE) {
        ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_IDLE);
    }
}


/* an attempt on the next server that is not down */

static void
ngx_rpc_wsclient_connect(ngx_rpc_wsclient_t *wc)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_peer_connection_t   pc;

    if (ngx_exiting || ngx_terminate) {
        ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_IDLE);
        return;
    }

    ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_CONNECTING);

    wc->log.action = "connecting to subscription upstream";

    if (ngx_rpc_wsclient_peer(wc) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream \"%V\" has no server up",
                      &wc->sub->upstream->host);
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    if (wc->buf == NULL) {
        wc->buf = ngx_alloc(NGX_RPC_WSC_BUFFER, &wc->log);
    }

    wc->pool = ngx_create_pool(NGX_RPC_WSC_POOL, &wc->log);

    if (wc->buf == NULL || wc->pool == NULL) {
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    wc->pos = wc->buf;
    wc->last = wc->buf;

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    pc.sockaddr = &wc->sockaddr.sockaddr;
    pc.socklen = wc->socklen;
    pc.name = &wc->name;
    pc.get = ngx_event_get_peer;
    pc.log = &wc->log;
    pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&pc);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream connect to %V: %i",
                   &wc->name, rc);

    if (rc != NGX_OK && rc != NGX_AGAIN) {
        /* nginx said why, with the server's name */
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    c = pc.connection;
    c->data = wc;
    c->pool = wc->pool;
    c->read->handler = ngx_rpc_wsclient_read_handler;
    c->write->handler = ngx_rpc_wsclient_write_handler;

    /* core's recv() and send() errors: info, the one error line is ours */

    c->log_error = NGX_ERROR_INFO;

    /* closed at once, not waited for, when the worker shuts down */

    c->idle = 1;

    wc->connection = c;
    wc->log.connection = c->number;

    ngx_add_timer(&wc->timer, wc->conf->upstream.connect_timeout);

    if (rc == NGX_OK) {
        /* not from here: the caller may be the registry */
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/*
 * The server to try, copied out of the group (under its lock if in a
 * zone): the first not down from next on, primary then backup, around.
 */

static ngx_int_t
ngx_rpc_wsclient_peer(ngx_rpc_wsclient_t *wc)
{
    ngx_uint_t                     n, i, d, best;
    ngx_http_upstream_rr_peer_t   *peer, *found;
    ngx_http_upstream_rr_peers_t  *peers, *list;

    peers = wc->sub->upstream->peer.data;

    wc->servers = 0;
    wc->name.len = 0;

    if (peers == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_upstream_rr_peers_rlock(peers);

    n = peers->number + (peers->next ? peers->next->number : 0);
    found = NULL;
    best = 0;
    i = 0;

    for (list = peers; list; list = (list == peers) ? peers->next : NULL) {

        for (peer = list->peer; peer; peer = peer->next, i++) {

            if (peer->down) {
                continue;
            }

            wc->servers++;

            d = (i + n - wc->next % n) % n;

            if (found == NULL || d < best) {
                found = peer;
                best = d;
                wc->tried = i;
            }
        }
    }

    if (found == NULL || found->socklen > sizeof(ngx_sockaddr_t)) {
        ngx_http_upstream_rr_peers_unlock(peers);
        return NGX_DECLINED;
    }

    ngx_memcpy(&wc->sockaddr, found->sockaddr, found->socklen);
    wc->socklen = found->socklen;

    wc->name.len = ngx_min(found->name.len, NGX_SOCKADDR_STRLEN);
    wc->name.data = wc->name_data;
    ngx_memcpy(wc->name_data, found->name.data, wc->name.len);

    ngx_http_upstream_rr_peers_unlock(peers);

    return NGX_OK;
}


/* the TCP connect is done or failed; then TLS, or the upgrade */

static void
ngx_rpc_wsclient_connected(ngx_rpc_wsclient_t *wc)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = wc->connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, &wc->log, err,
                      "rpc: subscription upstream: connect() failed");
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    wc->connected = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream connected to %V", &wc->name);

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    if (wc->sub->wss) {
#if (NGX_HTTP_SSL)
        ngx_rpc_wsclient_ssl_init(wc);
#else
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: wss:// needs nginx built with SSL");
        ngx_rpc_wsclient_fail(wc, 0);
#endif
        return;
    }

    ngx_rpc_wsclient_upgrade(wc);
}


#if (NGX_HTTP_SSL)

/* as ngx_http_upstream_ssl_init_connection(), with rpc_ssl_* */

static void
ngx_rpc_wsclient_ssl_init(ngx_rpc_wsclient_t *wc)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = wc->connection;

    if (wc->conf->ssl == NULL) {
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream: no TLS context for "
                      "wss://");
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    if (ngx_ssl_create_connection(wc->conf->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    if ((wc->conf->upstream.ssl_server_name || wc->conf->upstream.ssl_verify)
        && ngx_rpc_wsclient_ssl_name(wc) != NGX_OK)
    {
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    wc->log.action = "SSL handshaking to subscription upstream";

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_rpc_wsclient_ssl_handshake;
        return;
    }

    ngx_rpc_wsclient_ssl_handshake(c);
}


/*
 * The name to send (SNI) and to verify: rpc_ssl_name without variables
 * (there is no request to evaluate them in), else the Host; a port is cut,
 * an IP address is not sent (RFC 6066)
 */

static ngx_int_t
ngx_rpc_wsclient_ssl_name(ngx_rpc_wsclient_t *wc)
{
    u_char                    *p, *last;
    ngx_str_t                  name;
    ngx_connection_t          *c;
    ngx_http_complex_value_t  *cv;

    c = wc->connection;
    cv = wc->conf->upstream.ssl_name;

    name = (cv && cv->lengths == NULL) ? cv->value : wc->sub->host;

    if (name.len == 0) {
        goto done;
    }

    p = name.data;
    last = name.data + name.len;

    if (*p == '[') {
        p = ngx_strlchr(p, last, ']');

        if (p == NULL) {
            p = name.data;
        }
    }

    p = ngx_strlchr(p, last, ':');

    if (p != NULL) {
        name.len = p - name.data;
    }

    if (!wc->conf->upstream.ssl_server_name) {
        goto done;
    }

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME

    if (name.len == 0 || *name.data == '['
        || ngx_inet_addr(name.data, name.len) != INADDR_NONE)
    {
        goto done;
    }

    p = ngx_pnalloc(wc->pool, name.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(p, name.data, name.len + 1);
    name.data = p;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream SSL server name: \"%s\"", p);

    if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) p) == 0) {
        ngx_ssl_error(NGX_LOG_ERR, &wc->log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed", p);
        return NGX_ERROR;
    }

#endif

done:

    wc->ssl_name = name;

    return NGX_OK;
}


static void
ngx_rpc_wsclient_ssl_handshake(ngx_connection_t *c)
{
    long                 rc;
    ngx_rpc_wsclient_t  *wc;

    wc = c->data;

    if (!c->ssl->handshaked) {
        /* nginx logged how, maybe at info: this is the error */
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream: SSL handshake failed");
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    if (wc->conf->upstream.ssl_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream SSL certificate verify "
                          "error: (%l:%s)", rc,
                          X509_verify_cert_error_string(rc));
            ngx_rpc_wsclient_fail(wc, 0);
            return;
        }

        if (ngx_ssl_check_host(c, &wc->ssl_name) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream SSL certificate does "
                          "not match \"%V\"", &wc->ssl_name);
            ngx_rpc_wsclient_fail(wc, 0);
            return;
        }
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream SSL handshake done");

    c->read->handler = ngx_rpc_wsclient_read_handler;
    c->write->handler = ngx_rpc_wsclient_write_handler;

    ngx_rpc_wsclient_upgrade(wc);
}

#endif


/* the upgrade request, with a fresh random key (RFC 6455 4.1) */

static void
ngx_rpc_wsclient_upgrade(ngx_rpc_wsclient_t *wc)
{
    u_char                raw[16], key[24];
    size_t                len;
    ngx_str_t             src, dst, *uri;
    ngx_rpc_wsc_out_t    *out;
    ngx_rpc_subscribe_t  *sub;

    sub = wc->sub;

    if (ngx_rpc_wsclient_random(wc, raw, 16) != NGX_OK) {
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    src.data = raw;
    src.len = 16;
    dst.data = key;

    ngx_encode_base64(&dst, &src);
    ngx_rpc_frame_accept(key, 24, wc->accept);

    uri = sub->uri.len ? &sub->uri : &ngx_rpc_wsclient_root;

    len = sizeof("GET  HTTP/1.1" CRLF) - 1 + uri->len
          + sizeof("Host: " CRLF) - 1 + sub->host.len
          + sizeof("Upgrade: websocket" CRLF
                   "Connection: Upgrade" CRLF
                   "Sec-WebSocket-Key: " CRLF
                   "Sec-WebSocket-Version: 13" CRLF CRLF) - 1 + 24;

    out = ngx_rpc_wsclient_out(wc, len);
    if (out == NULL) {
        ngx_rpc_wsclient_fail(wc, 0);
        return;
    }

    out->buf.last = ngx_sprintf(out->buf.pos,
                                "GET %V HTTP/1.1" CRLF
                                "Host: %V" CRLF
                                "Upgrade: websocket" CRLF
                                "Connection: Upgrade" CRLF
                                "Sec-WebSocket-Key: %*s" CRLF
                                "Sec-WebSocket-Version: 13" CRLF CRLF,
                                uri, &sub->host, (size_t) 24, key);

    wc->queued += out->buf.last - out->buf.pos;

    wc->log.action = "reading the handshake response of subscription "
                     "upstream";

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream upgrade request");

    if (ngx_rpc_wsclient_flush(wc) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream: cannot send");
        ngx_rpc_wsclient_fail(wc, 0);
    }
}


static void
ngx_rpc_wsclient_read_handler(ngx_event_t *rev)
{
    ssize_t              n;
    ngx_uint_t           gen;
    ngx_connection_t    *c;
    ngx_rpc_wsclient_t  *wc;

    c = rev->data;
    wc = c->data;

    if (c->close) {
        /* an idle connection of a worker that shuts down: it goes now */
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                       "rpc: subscription upstream closed, worker exiting");
        ngx_rpc_wsclient_fail(wc, NGX_RPC_WS_GOING_AWAY);
        return;
    }

    if (!wc->connected) {
        /* a refused connect shows as readable first */
        ngx_rpc_wsclient_connected(wc);
        return;
    }

    gen = wc->gen;
    wc->reading = 1;

    for ( ;; ) {

        if (wc->pos == wc->last) {
            wc->pos = wc->buf;
            wc->last = wc->buf;
        }

        if (wc->last == wc->buf + NGX_RPC_WSC_BUFFER) {
            /* frames are always taken whole: only a head stays */
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream sent a handshake "
                          "response head over %d bytes", NGX_RPC_WSC_BUFFER);
            ngx_rpc_wsclient_fail(wc, 0);
            break;
        }

        n = c->recv(c, wc->last, wc->buf + NGX_RPC_WSC_BUFFER - wc->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream closed the connection");
            ngx_rpc_wsclient_fail(wc, 0);
            break;
        }

        wc->last += n;
        wc->alive = 1;

        if (ngx_rpc_wsclient_process(wc) != NGX_OK || wc->gen != gen) {
            break;
        }
    }

    wc->reading = 0;

    if (wc->gen != gen) {
        /* closed inside the loop: what it kept goes now */

        if (wc->connection == NULL) {
            ngx_rpc_wsclient_free(wc);

        } else if (wc->msg) {
            ngx_free(wc->msg);
            wc->msg = NULL;
            wc->msg_size = 0;
        }

        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_rpc_wsclient_fail(wc, 0);
    }
}


/* what was read: the 101 head while connecting, then frames */

static ngx_int_t
ngx_rpc_wsclient_process(ngx_rpc_wsclient_t *wc)
{
    char             *reason;
    size_t            len;
    ngx_int_t         rc;
    ngx_uint_t        gen, status;
    ngx_rpc_frame_t  *f;

    gen = wc->gen;

    if (wc->state == NGX_RPC_WSC_CONNECTING) {
        rc = ngx_rpc_frame_response(wc->pos, wc->last, wc->accept, &len,
                                    &status, &reason);

        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream refused the upgrade: "
                          "%s (status %ui)", reason, status);
            ngx_rpc_wsclient_fail(wc, 0);
            return NGX_ERROR;
        }

        wc->pos += len;

        ngx_rpc_wsclient_opened(wc);

        if (wc->gen != gen) {
            return NGX_ERROR;
        }
    }

    f = &wc->frame;

    for ( ;; ) {
        rc = ngx_rpc_frame_read(f, &wc->pos, wc->last);

        switch (rc) {

        case NGX_AGAIN:
            return NGX_OK;

        case NGX_RPC_FRAME_DATA:
            ngx_rpc_wsclient_data(wc);
            break;

        case NGX_RPC_FRAME_CONTROL:
            ngx_rpc_wsclient_control(wc);
            break;

        default: /* NGX_ERROR */
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream: %s, closing with %i",
                          f->reason, f->code);
            ngx_rpc_wsclient_fail(wc, f->code);
            return NGX_ERROR;
        }

        if (wc->gen != gen) {
            return NGX_ERROR;
        }
    }
}


static void
ngx_rpc_wsclient_opened(ngx_rpc_wsclient_t *wc)
{
    ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_OPEN);

    wc->opened = ngx_current_msec;
    wc->failed = 0;
    wc->alive = 0;
    wc->ping_sent = 0;
    wc->log.action = NULL;

    ngx_rpc_frame_init(&wc->frame, wc->conf->max_reply_size);
    wc->frame.client = 1;

    if (wc->timer.timer_set) {
        ngx_del_timer(&wc->timer);
    }

    if (wc->conf->ws_ping_interval) {
        ngx_add_timer(&wc->timer, wc->conf->ws_ping_interval);
    }

    ngx_rpc_subscribe_open(wc->sub);
}


/*
 * A piece of a text message: a message in one piece is given where it
 * lies, one in pieces is put together first (the reader bounds it by
 * rpc_max_reply_size: more is closed with 1009)
 */

static void
ngx_rpc_wsclient_data(ngx_rpc_wsclient_t *wc)
{
    u_char           *p;
    size_t            size;
    ngx_rpc_frame_t  *f;

    f = &wc->frame;

    if (f->first && f->last) {
        ngx_rpc_subscribe_message(wc->sub, f->data.data, f->data.len);
        return;
    }

    if (f->first) {
        wc->msg_len = 0;
    }

    /* room for the rest of this frame too: one copy of a long frame */

    size = wc->msg_len + f->data.len + (size_t) f->left;

    if (size > wc->msg_size) {
        size = ngx_max(size, ngx_min(2 * wc->msg_size,
                                     (size_t) wc->conf->max_reply_size));

        p = ngx_alloc(size, &wc->log);
        if (p == NULL) {
            ngx_rpc_wsclient_fail(wc, NGX_RPC_WS_INTERNAL_ERROR);
            return;
        }

        if (wc->msg) {
            ngx_memcpy(p, wc->msg, wc->msg_len);
            ngx_free(wc->msg);
        }

        wc->msg = p;
        wc->msg_size = size;
    }

    if (f->data.len) {
        ngx_memcpy(wc->msg + wc->msg_len, f->data.data, f->data.len);
        wc->msg_len += f->data.len;
    }

    if (!f->last) {
        return;
    }

    ngx_rpc_subscribe_message(wc->sub, wc->msg, wc->msg_len);

    /* a large one is not kept: it was rare, maybe a one-off */

    if (wc->msg && wc->msg_size > NGX_RPC_WSC_BUFFER) {
        ngx_free(wc->msg);
        wc->msg = NULL;
        wc->msg_size = 0;
    }
}


static void
ngx_rpc_wsclient_control(ngx_rpc_wsclient_t *wc)
{
    ngx_rpc_frame_t  *f;

    f = &wc->frame;

    switch (f->opcode) {

    case NGX_RPC_WS_PING:
        if (ngx_rpc_wsclient_frame(wc, NGX_RPC_WS_PONG, f->control,
                                   f->ncontrol, 1)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream: cannot send");
            ngx_rpc_wsclient_fail(wc, 0);
        }

        return;

    case NGX_RPC_WS_CLOSE:
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream closed the WebSocket "
                      "with %i \"%*s\"", f->code,
                      f->ncontrol > 2 ? f->ncontrol - 2 : 0, f->control + 2);

        /* its code echoed; none, none */

        ngx_rpc_wsclient_fail(wc, f->code ? f->code : NGX_RPC_WS_NO_STATUS);
        return;

    default: /* NGX_RPC_WS_PONG: alive, as any byte read */
        return;
    }
}


/*
 * A frame of the client: masked with fresh random bytes, queued (a copy)
 * and flushed.  NGX_DECLINED: it would queue more than
 * rpc_websocket_max_queued (force: a control frame, queued while the
 * queue is not over it).
 */

static ngx_int_t
ngx_rpc_wsclient_frame(ngx_rpc_wsclient_t *wc, ngx_uint_t opcode,
    u_char *data, size_t len, ngx_uint_t force)
{
    u_char              mask[4];
    ngx_rpc_wsc_out_t  *out;

    /* a control frame goes beyond it, once: a ping flood does not */

    if (wc->queued
        && wc->queued + len + 14 > wc->conf->ws_max_queued
        && (!force || wc->queued > wc->conf->ws_max_queued))
    {
        return NGX_DECLINED;
    }

    if (ngx_rpc_wsclient_random(wc, mask, 4) != NGX_OK) {
        return NGX_ERROR;
    }

    out = ngx_rpc_wsclient_out(wc, 14 + len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    out->buf.last = ngx_rpc_frame_write_masked(out->buf.pos, opcode, data,
                                               len, mask);

    wc->queued += out->buf.last - out->buf.pos;

    return ngx_rpc_wsclient_flush(wc);
}


/* room for size bytes at the tail of the out queue */

static ngx_rpc_wsc_out_t *
ngx_rpc_wsclient_out(ngx_rpc_wsclient_t *wc, size_t size)
{
    ngx_rpc_wsc_out_t  *out;

    out = ngx_alloc(sizeof(ngx_rpc_wsc_out_t) + size, &wc->log);
    if (out == NULL) {
        return NULL;
    }

    ngx_memzero(out, sizeof(ngx_rpc_wsc_out_t));

    out->buf.pos = (u_char *) (out + 1);
    out->buf.last = out->buf.pos;
    out->buf.memory = 1;
    out->buf.flush = 1;    /* through TLS at once */
    out->cl.buf = &out->buf;

    *wc->last_out = &out->cl;
    wc->last_out = &out->cl.next;

    return out;
}


/* as much of the queue, and of what TLS holds, as the socket takes */

static ngx_int_t
ngx_rpc_wsclient_flush(ngx_rpc_wsclient_t *wc)
{
    off_t              sent;
    ngx_chain_t       *cl, *next;
    ngx_connection_t  *c;

    c = wc->connection;

    if ((wc->out || c->buffered) && c->write->ready) {
        sent = c->sent;

        cl = c->send_chain(c, wc->out, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        wc->queued -= ngx_min(wc->queued, (size_t) (c->sent - sent));

        while (wc->out != cl) {
            next = wc->out->next;
            ngx_free(wc->out);   /* the link heads its ngx_rpc_wsc_out_t */
            wc->out = next;
        }

        if (cl == NULL) {
            wc->last_out = &wc->out;
        }
    }

    if (wc->out == NULL && !c->buffered) {
        wc->queued = 0;
        return NGX_OK;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_rpc_wsclient_write_handler(ngx_event_t *wev)
{
    ngx_connection_t    *c;
    ngx_rpc_wsclient_t  *wc;

    c = wev->data;
    wc = c->data;

    if (!wc->connected) {
        ngx_rpc_wsclient_connected(wc);
        return;
    }

    if (ngx_rpc_wsclient_flush(wc) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                      "rpc: subscription upstream: cannot send");
        ngx_rpc_wsclient_fail(wc, 0);
    }
}


/*
 * CONNECTING: rpc_connect_timeout is over.  OPEN: a ping when nothing came
 * for rpc_websocket_ping_interval, and nothing again within
 * rpc_websocket_ping_timeout: the node is gone.  BACKOFF: the next
 * attempt.
 */

static void
ngx_rpc_wsclient_timer_handler(ngx_event_t *ev)
{
    ngx_rpc_wsclient_t  *wc;

    wc = ev->data;

    switch (wc->state) {

    case NGX_RPC_WSC_CONNECTING:
        ngx_log_error(NGX_LOG_ERR, &wc->log, NGX_ETIMEDOUT,
                      "rpc: subscription upstream timed out");
        ngx_rpc_wsclient_fail(wc, 0);
        return;

    case NGX_RPC_WSC_OPEN:

        if (wc->alive) {
            wc->alive = 0;
            wc->ping_sent = 0;
            ngx_add_timer(&wc->timer, wc->conf->ws_ping_interval);
            return;
        }

        if (wc->ping_sent) {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream: no answer to a ping "
                          "within rpc_websocket_ping_timeout");
            ngx_rpc_wsclient_fail(wc, 0);
            return;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                       "rpc: subscription upstream ping");

        if (ngx_rpc_wsclient_frame(wc, NGX_RPC_WS_PING, (u_char *) "rpc", 3,
                                   1)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, &wc->log, 0,
                          "rpc: subscription upstream: cannot send");
            ngx_rpc_wsclient_fail(wc, 0);
            return;
        }

        wc->ping_sent = 1;
        ngx_add_timer(&wc->timer, wc->conf->ws_ping_timeout);
        return;

    case NGX_RPC_WSC_BACKOFF:
        ngx_rpc_wsclient_connect(wc);
        return;
    }
}


/* the registry is told, then the next server is tried if it is time */

static void
ngx_rpc_wsclient_notify_handler(ngx_event_t *ev)
{
    ngx_rpc_wsclient_t  *wc;

    wc = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream lost, %s next",
                   ngx_rpc_wsclient_states[wc->state]);

    ngx_rpc_subscribe_lost(wc->sub);

    /*
     * unless lost() stopped or started the client, or a failure since is
     * to be told first
     */

    if (wc->state == NGX_RPC_WSC_CONNECTING && wc->connection == NULL
        && !wc->notify.posted)
    {
        ngx_rpc_wsclient_connect(wc);
    }
}


/*
 * The attempt or the connection is over: closed and freed at once (code: a
 * close frame to send first, if open), the next step set, and lost() to be
 * called from a posted event.
 */

static void
ngx_rpc_wsclient_fail(ngx_rpc_wsclient_t *wc, ngx_int_t code)
{
    ngx_msec_t  wait;
    ngx_uint_t  open;

    open = (wc->state == NGX_RPC_WSC_OPEN);

    ngx_rpc_wsclient_close(wc, code);

    wc->next = wc->tried + 1;

    if (ngx_exiting || ngx_terminate) {
        ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_IDLE);

    } else if (!open && ++wc->failed < wc->servers) {
        /* the next server at once, once lost() is told */
        ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_CONNECTING);

    } else {
        if (open && ngx_current_msec - wc->opened >= wc->delay) {
            wc->delay = wc->min;
        }

        wait = wc->delay + (ngx_msec_t) ngx_random() % (wc->delay / 2 + 1);
        wait = ngx_min(wait, wc->max);

        wc->delay = ngx_min(2 * wc->delay, wc->max);
        wc->failed = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                       "rpc: subscription upstream retry in %M", wait);

        ngx_rpc_wsclient_state_set(wc, NGX_RPC_WSC_BACKOFF);
        ngx_add_timer(&wc->timer, wait);
    }

    /*
     * a worker that shuts down runs posted events only after its next
     * wake-up: the calls waiting on the connection must not hold it
     */

    ngx_post_event(&wc->notify, (ngx_exiting || ngx_terminate)
                                ? &ngx_posted_next_events
                                : &ngx_posted_events);
}


/*
 * The connection and all of it: pool, out queue, timer; the buffers too
 * unless the read loop runs (it frees them as it ends).  A close frame
 * first if it is open and code says so, sent as far as the socket takes it
 * at once.
 */

static void
ngx_rpc_wsclient_close(ngx_rpc_wsclient_t *wc, ngx_int_t code)
{
    u_char              payload[2];
    size_t              len;
    ngx_chain_t        *next;
    ngx_connection_t   *c;

    c = wc->connection;

    if (c && code && wc->state == NGX_RPC_WSC_OPEN && !c->error) {
        len = 0;

        if (code != NGX_RPC_WS_NO_STATUS) {
            payload[0] = (u_char) (code >> 8);
            payload[1] = (u_char) code;
            len = 2;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                       "rpc: subscription upstream close %i", code);

        (void) ngx_rpc_wsclient_frame(wc, NGX_RPC_WS_CLOSE, payload, len, 1);
    }

    if (c) {
        wc->connection = NULL;
        wc->gen++;

#if (NGX_HTTP_SSL)
        if (c->ssl) {
            /* as nginx's upstream: close_notify, not waited for */
            c->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif

        ngx_close_connection(c);
    }

    if (wc->pool) {
        ngx_destroy_pool(wc->pool);
        wc->pool = NULL;
    }

    while (wc->out) {
        next = wc->out->next;
        ngx_free(wc->out);
        wc->out = next;
    }

    wc->last_out = &wc->out;
    wc->queued = 0;
    wc->connected = 0;
    wc->log.action = NULL;
    wc->log.connection = 0;

    if (wc->timer.timer_set) {
        ngx_del_timer(&wc->timer);
    }

    if (!wc->reading) {
        ngx_rpc_wsclient_free(wc);
    }
}


static void
ngx_rpc_wsclient_free(ngx_rpc_wsclient_t *wc)
{
    if (wc->buf) {
        ngx_free(wc->buf);
        wc->buf = NULL;
        wc->pos = NULL;
        wc->last = NULL;
    }

    if (wc->msg) {
        ngx_free(wc->msg);
        wc->msg = NULL;
        wc->msg_size = 0;
    }
}


static void
ngx_rpc_wsclient_state_set(ngx_rpc_wsclient_t *wc, ngx_uint_t state)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &wc->log, 0,
                   "rpc: subscription upstream %s -> %s",
                   ngx_rpc_wsclient_states[wc->state],
                   ngx_rpc_wsclient_states[state]);

    wc->state = state;
}


/* keys and masks: unpredictable (RFC 6455 5.3, 10.3) */

static ngx_int_t
ngx_rpc_wsclient_random(ngx_rpc_wsclient_t *wc, u_char *p, size_t n)
{
#if (NGX_OPENSSL)

    if (RAND_bytes(p, (int) n) != 1) {
        ngx_ssl_error(NGX_LOG_ALERT, &wc->log, 0, "RAND_bytes() failed");
        return NGX_ERROR;
    }

#else

    size_t  i;

    /* no OpenSSL, no wss:// either; the masks are ngx_random()'s */

    for (i = 0; i < n; i++) {
        p[i] = (u_char) ngx_random();
    }

#endif

    return NGX_OK;
}


/* nginx's messages and ours: what was under way, and with which server */

static u_char *
ngx_rpc_wsclient_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char              *p;
    ngx_rpc_wsclient_t  *wc;

    wc = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    if (wc->name.len) {
        p = ngx_snprintf(p, len, ", upstream: \"%s%V%V\"",
                         wc->sub->wss ? "wss://" : "ws://", &wc->name,
                         wc->sub->uri.len ? &wc->sub->uri
                                          : &ngx_rpc_wsclient_root);
    }

    return p;
}
