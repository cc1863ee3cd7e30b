
/*
 * Redis client for the cache's second level: one connection per worker on
 * nginx's event loop, commands formatted and replies read by hiredis.
 * Replies come in command order, so each pops the oldest command.  Any
 * failure (refused, reset, slow past the timeout) fails every pending
 * command as a miss and closes the connection; the next command after
 * NGX_RPC_REDIS_RETRY reconnects.
 */


#include "ngx_rpc.h"


#define NGX_RPC_REDIS_RETRY     1000
#define NGX_RPC_REDIS_MAX_CMDS  4096
#define NGX_RPC_REDIS_MAX_ARGS  5

#define NGX_RPC_REDIS_KEY       1
#define NGX_RPC_REDIS_TTL       2


struct ngx_rpc_redis_cmd_s {
    ngx_queue_t                  queue;
    ngx_rpc_redis_handler_pt     handler;
    void                        *data;
    u_char                      *buf;
    size_t                       len;
    size_t                       sent;
    ngx_msec_t                   deadline;
    ngx_uint_t                   nreplies;
    ngx_uint_t                   nread;
    redisReply                  *reply[2];
};


static ngx_rpc_redis_cmd_t *ngx_rpc_redis_cmd(ngx_rpc_redis_t *rd,
    ngx_str_t *argv, ngx_uint_t argc, ngx_uint_t flags);
static ngx_int_t ngx_rpc_redis_connect(ngx_rpc_redis_t *rd);
static void ngx_rpc_redis_setup(ngx_rpc_redis_t *rd);
static ngx_int_t ngx_rpc_redis_setup_cmd(ngx_rpc_redis_t *rd,
    ngx_str_t *argv);
static void ngx_rpc_redis_setup_handler(void *data, redisReply **reply);
static void ngx_rpc_redis_write_handler(ngx_event_t *wev);
static void ngx_rpc_redis_read_handler(ngx_event_t *rev);
static void ngx_rpc_redis_timer(ngx_rpc_redis_t *rd);
static void ngx_rpc_redis_free(ngx_rpc_redis_cmd_t *cmd);
static void ngx_rpc_redis_fail(ngx_rpc_redis_t *rd);


/* GET and PTTL of prefix + key; NULL means a miss now */

ngx_rpc_redis_cmd_t *
ngx_rpc_redis_get(ngx_rpc_redis_t *rd, ngx_str_t *key,
    ngx_rpc_redis_handler_pt handler, void *data)
{
    ngx_str_t             argv[2];
    ngx_rpc_redis_cmd_t  *cmd;

    ngx_str_set(&argv[0], "GET");
    argv[1] = *key;

    cmd = ngx_rpc_redis_cmd(rd, argv, 2, NGX_RPC_REDIS_KEY|NGX_RPC_REDIS_TTL);

    if (cmd) {
        cmd->handler = handler;
        cmd->data = data;
    }

    return cmd;
}


/* SET prefix + key value PX ttl, its answer is not waited for */

void
ngx_rpc_redis_set(ngx_rpc_redis_t *rd, ngx_str_t *key, ngx_str_t *value,
    ngx_msec_t ttl)
{
    u_char     buf[NGX_INT_T_LEN];
    ngx_str_t  argv[5];

    ngx_str_set(&argv[0], "SET");
    argv[1] = *key;
    argv[2] = *value;
    ngx_str_set(&argv[3], "PX");
    argv[4].data = buf;
    argv[4].len = ngx_sprintf(buf, "%M", ttl) - buf;

    (void) ngx_rpc_redis_cmd(rd, argv, 5, NGX_RPC_REDIS_KEY);
}


/* the caller is gone: its reply will be read and dropped */

void
ngx_rpc_redis_cancel(ngx_rpc_redis_cmd_t *cmd)
{
    cmd->handler = NULL;
}


/*
 * With NGX_RPC_REDIS_KEY, argv[1] is a key, sent with the prefix; with
 * NGX_RPC_REDIS_TTL, a PTTL of that key follows, a second reply
 */

static ngx_rpc_redis_cmd_t *
ngx_rpc_redis_cmd(ngx_rpc_redis_t *rd, ngx_str_t *argv, ngx_uint_t argc,
    ngx_uint_t flags)
{
    int                   len[2];
    char                 *out[2];
    u_char               *p;
    size_t                lens[NGX_RPC_REDIS_MAX_ARGS];
    ngx_uint_t            i, n;
    const char           *args[NGX_RPC_REDIS_MAX_ARGS];
    ngx_rpc_redis_cmd_t  *cmd;

    if (rd->connection == NULL && ngx_rpc_redis_connect(rd) != NGX_OK) {
        return NULL;
    }

    if (rd->ncmds >= NGX_RPC_REDIS_MAX_CMDS) {
        return NULL;
    }

    p = NULL;

    for (i = 0; i < argc; i++) {
        args[i] = (const char *) argv[i].data;
        lens[i] = argv[i].len;
    }

    if (flags & NGX_RPC_REDIS_KEY) {
        p = ngx_alloc(rd->prefix.len + argv[1].len, ngx_cycle->log);
        if (p == NULL) {
            return NULL;
        }

        ngx_memcpy(ngx_cpymem(p, rd->prefix.data, rd->prefix.len),
                   argv[1].data, argv[1].len);

        args[1] = (const char *) p;
        lens[1] = rd->prefix.len + argv[1].len;
    }

    len[0] = redisFormatCommandArgv(&out[0], argc, args, lens);
    len[1] = 0;
    n = 1;

    if (flags & NGX_RPC_REDIS_TTL) {
        args[0] = "PTTL";
        lens[0] = 4;
        len[1] = redisFormatCommandArgv(&out[1], 2, args, lens);
        n = 2;
    }

    if (p) {
        ngx_free(p);
    }

    cmd = NULL;

    if (len[0] > 0 && len[1] >= 0) {
        cmd = ngx_alloc(sizeof(ngx_rpc_redis_cmd_t) + len[0] + len[1],
                        ngx_cycle->log);
    }

    if (cmd) {
        ngx_memzero(cmd, sizeof(ngx_rpc_redis_cmd_t));

        cmd->buf = (u_char *) &cmd[1];
        cmd->len = len[0] + len[1];
        cmd->nreplies = n;
        cmd->deadline = ngx_current_msec + rd->timeout;

        p = ngx_cpymem(cmd->buf, out[0], len[0]);

        if (n == 2) {
            ngx_memcpy(p, out[1], len[1]);
        }
    }

    for (i = 0; i < n; i++) {
        if (len[i] > 0) {
            redisFreeCommand(out[i]);
        }
    }

    if (cmd == NULL) {
        return NULL;
    }

    ngx_queue_insert_tail(&rd->cmds, &cmd->queue);
    rd->ncmds++;

    /* written from the event loop: handlers never run before we return */

    if (!rd->connecting) {
        ngx_post_event(rd->connection->write, &ngx_posted_events);
    }

    return cmd;
}


static ngx_int_t
ngx_rpc_redis_connect(ngx_rpc_redis_t *rd)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_peer_connection_t   pc;

    if (ngx_exiting || ngx_terminate
        || (ngx_msec_int_t) (rd->retry - ngx_current_msec) > 0)
    {
        return NGX_DECLINED;
    }

    rd->retry = ngx_current_msec + NGX_RPC_REDIS_RETRY;

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    pc.sockaddr = rd->addr.sockaddr;
    pc.socklen = rd->addr.socklen;
    pc.name = &rd->addr.name;
    pc.get = ngx_event_get_peer;
    pc.log = ngx_cycle->log;
    pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "rpc: cannot connect to redis %V, cache lookups "
                      "miss until it is back", &rd->addr.name);
        return NGX_DECLINED;
    }

    rd->reader = redisReaderCreate();
    if (rd->reader == NULL) {
        ngx_close_connection(pc.connection);
        return NGX_ERROR;
    }

    c = pc.connection;
    c->data = rd;
    c->read->handler = ngx_rpc_redis_read_handler;
    c->write->handler = ngx_rpc_redis_write_handler;

    /* closed, not waited for, when the worker shuts down */

    c->idle = 1;

    rd->connection = c;
    rd->connecting = 1;
    ngx_queue_init(&rd->cmds);
    rd->ncmds = 0;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, rd->timeout);
        return NGX_OK;
    }

    ngx_rpc_redis_setup(rd);

    return NGX_OK;
}


/*
 * AUTH and SELECT go before any command queued while connecting; nothing
 * is written until they are in place
 */

static void
ngx_rpc_redis_setup(ngx_rpc_redis_t *rd)
{
    u_char     buf[NGX_INT_T_LEN];
    ngx_str_t  argv[2];

    if (rd->db) {
        ngx_str_set(&argv[0], "SELECT");
        argv[1].data = buf;
        argv[1].len = ngx_sprintf(buf, "%i", rd->db) - buf;

        if (ngx_rpc_redis_setup_cmd(rd, argv) != NGX_OK) {
            return;
        }
    }

    if (rd->password.len) {
        ngx_str_set(&argv[0], "AUTH");
        argv[1] = rd->password;

        if (ngx_rpc_redis_setup_cmd(rd, argv) != NGX_OK) {
            return;
        }
    }

    rd->connecting = 0;
}


/* a setup command goes to the head of the queue */

static ngx_int_t
ngx_rpc_redis_setup_cmd(ngx_rpc_redis_t *rd, ngx_str_t *argv)
{
    ngx_rpc_redis_cmd_t  *cmd;

    cmd = ngx_rpc_redis_cmd(rd, argv, 2, 0);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_remove(&cmd->queue);
    ngx_queue_insert_head(&rd->cmds, &cmd->queue);
    cmd->handler = ngx_rpc_redis_setup_handler;
    cmd->data = rd;

    return NGX_OK;
}


static void
ngx_rpc_redis_setup_handler(void *data, redisReply **reply)
{
    ngx_rpc_redis_t  *rd = data;

    if (reply && reply[0]->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "rpc: redis %V refused AUTH or SELECT: %s",
                      &rd->addr.name, reply[0]->str);
    }
}


static void
ngx_rpc_redis_write_handler(ngx_event_t *wev)
{
    int                   err;
    ssize_t               n;
    socklen_t             len;
    ngx_queue_t          *q;
    ngx_rpc_redis_t      *rd;
    ngx_connection_t     *c;
    ngx_rpc_redis_cmd_t  *cmd;

    c = wev->data;
    rd = c->data;

    if (rd->connecting) {

        if (wev->timedout) {
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "rpc: redis %V connect timed out",
                          &rd->addr.name);
            ngx_rpc_redis_fail(rd);
            return;
        }

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_log_error(NGX_LOG_ERR, c->log, err,
                          "rpc: redis %V connect failed", &rd->addr.name);
            ngx_rpc_redis_fail(rd);
            return;
        }

        ngx_rpc_redis_setup(rd);
    }

    for (q = ngx_queue_head(&rd->cmds);
         q != ngx_queue_sentinel(&rd->cmds);
         q = ngx_queue_next(q))
    {
        cmd = ngx_queue_data(q, ngx_rpc_redis_cmd_t, queue);

        while (cmd->sent < cmd->len) {
            n = c->send(c, cmd->buf + cmd->sent, cmd->len - cmd->sent);

            if (n == NGX_AGAIN) {
                (void) ngx_handle_write_event(wev, 0);
                ngx_rpc_redis_timer(rd);
                return;
            }

            if (n == NGX_ERROR) {
                ngx_rpc_redis_fail(rd);
                return;
            }

            cmd->sent += n;
        }
    }

    ngx_rpc_redis_timer(rd);
}


static void
ngx_rpc_redis_read_handler(ngx_event_t *rev)
{
    u_char                buf[16384];
    void                 *reply;
    ssize_t               n;
    ngx_queue_t          *q;
    ngx_rpc_redis_t      *rd;
    ngx_connection_t     *c;
    ngx_rpc_redis_cmd_t  *cmd;

    c = rev->data;
    rd = c->data;

    if (rd->connecting) {
        /* a refused connect is reported as readable first */
        ngx_rpc_redis_write_handler(c->write);
        return;
    }

    if (c->close) {
        ngx_rpc_redis_fail(rd);
        return;
    }

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                      "rpc: redis %V timed out, cache lookups miss",
                      &rd->addr.name);
        ngx_rpc_redis_fail(rd);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "rpc: redis %V closed the connection",
                          &rd->addr.name);
            ngx_rpc_redis_fail(rd);
            return;
        }

        if (redisReaderFeed(rd->reader, (char *) buf, n) != REDIS_OK) {
            break;
        }
    }

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(rd->reader, &reply) != REDIS_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "rpc: redis %V sent an invalid reply: %s",
                          &rd->addr.name, rd->reader->errstr);
            ngx_rpc_redis_fail(rd);
            return;
        }

        if (reply == NULL) {
            break;
        }

        if (ngx_queue_empty(&rd->cmds)) {
            freeReplyObject(reply);
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "rpc: redis %V sent a reply to no command",
                          &rd->addr.name);
            ngx_rpc_redis_fail(rd);
            return;
        }

        q = ngx_queue_head(&rd->cmds);
        cmd = ngx_queue_data(q, ngx_rpc_redis_cmd_t, queue);
        cmd->reply[cmd->nread++] = reply;

        if (cmd->nread < cmd->nreplies) {
            continue;
        }

        ngx_queue_remove(q);
        rd->ncmds--;

        if (cmd->handler) {
            cmd->handler(cmd->data, cmd->reply);
        }

        ngx_rpc_redis_free(cmd);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_rpc_redis_fail(rd);
        return;
    }

    ngx_rpc_redis_timer(rd);
}


/* the read timer runs while commands wait, set to the oldest's deadline */

static void
ngx_rpc_redis_timer(ngx_rpc_redis_t *rd)
{
    ngx_msec_int_t        left;
    ngx_event_t          *rev;
    ngx_rpc_redis_cmd_t  *cmd;

    rev = rd->connection->read;

    if (ngx_queue_empty(&rd->cmds)) {
        if (rev->timer_set) {
            ngx_del_timer(rev);
        }

        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&rd->cmds), ngx_rpc_redis_cmd_t,
                         queue);

    left = cmd->deadline - ngx_current_msec;

    ngx_add_timer(rev, left > 0 ? (ngx_msec_t) left : 1);
}


static void
ngx_rpc_redis_free(ngx_rpc_redis_cmd_t *cmd)
{
    ngx_uint_t  i;

    for (i = 0; i < cmd->nread; i++) {
        freeReplyObject(cmd->reply[i]);
    }

    ngx_free(cmd);
}


/* every pending command is answered as a miss */

static void
ngx_rpc_redis_fail(ngx_rpc_redis_t *rd)
{
    ngx_queue_t          *q;
    ngx_rpc_redis_cmd_t  *cmd;

    ngx_rpc_redis_close(rd);

    while (!ngx_queue_empty(&rd->cmds)) {
        q = ngx_queue_head(&rd->cmds);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_rpc_redis_cmd_t, queue);

        if (cmd->handler) {
            cmd->handler(cmd->data, NULL);
        }

        ngx_rpc_redis_free(cmd);
    }

    rd->ncmds = 0;
}


void
ngx_rpc_redis_close(ngx_rpc_redis_t *rd)
{
    if (rd->connection) {
        ngx_close_connection(rd->connection);
        rd->connection = NULL;
    }

    if (rd->reader) {
        redisReaderFree(rd->reader);
        rd->reader = NULL;
    }

    rd->connecting = 0;
}


/* rpc_cache_redis ADDRESS [prefix=STR] [timeout=TIME] [db=N] [password=STR] */

char *
ngx_rpc_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rpc_main_conf_t  *rmcf = conf;

    ngx_str_t        *value, s;
    ngx_url_t         u;
    ngx_uint_t        i;
    ngx_rpc_redis_t  *rd;

    if (rmcf->redis) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rd = ngx_pcalloc(cf->pool, sizeof(ngx_rpc_redis_t));
    if (rd == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of \"rpc_cache_redis\"",
                               u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    rd->addr = u.addrs[0];
    rd->timeout = 50;
    ngx_str_set(&rd->prefix, "rpc:");
    ngx_queue_init(&rd->cmds);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            rd->prefix.data = value[i].data + 7;
            rd->prefix.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rd->password.data = value[i].data + 9;
            rd->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            rd->timeout = ngx_parse_time(&s, 0);

            if (rd->timeout == (ngx_msec_t) NGX_ERROR || rd->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            rd->db = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (rd->db == NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    rmcf->redis = rd;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}
