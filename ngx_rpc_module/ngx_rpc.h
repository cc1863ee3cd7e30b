
/*
 * ngx_rpc_module: JSON-RPC 2.0 gateway for nginx.
 * Types shared by all stages: parser, policy, upstream, response.
 */


#ifndef _NGX_RPC_H_INCLUDED_
#define _NGX_RPC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <yajl/yajl_parse.h>
#include <hiredis/hiredis.h>


/* JSON-RPC 2.0 error codes */
#define NGX_RPC_PARSE_ERROR             -32700
#define NGX_RPC_INVALID_REQUEST         -32600
#define NGX_RPC_METHOD_NOT_FOUND        -32601
#define NGX_RPC_INVALID_PARAMS          -32602

/* gateway error codes, see README "Error codes" */
#define NGX_RPC_UPSTREAM_UNAVAILABLE    -32000
#define NGX_RPC_UPSTREAM_TIMEOUT        -32001
#define NGX_RPC_UPSTREAM_CLOSED         -32002
#define NGX_RPC_UPSTREAM_STATUS         -32003
#define NGX_RPC_UPSTREAM_NOT_JSON       -32004
#define NGX_RPC_UPSTREAM_BAD_SHAPE      -32005
#define NGX_RPC_UPSTREAM_NO_RESULT      -32006
#define NGX_RPC_BATCH_TOO_LARGE         -32007
#define NGX_RPC_BODY_TOO_LARGE          -32008
#define NGX_RPC_UPSTREAM_TOO_LARGE      -32009
#define NGX_RPC_OVERLOADED              -32010
#define NGX_RPC_LIMITED                 -32011
#define NGX_RPC_TOO_MANY_SUBSCRIPTIONS  -32012

/* nesting limit for values the gateway reads: replies, Redis values */
#define NGX_RPC_VALUE_MAX_DEPTH         1024


/* JSON value types */
#define NGX_RPC_NONE                    0
#define NGX_RPC_NULL                    1
#define NGX_RPC_BOOL                    2
#define NGX_RPC_NUMBER                  3
#define NGX_RPC_STRING                  4
#define NGX_RPC_OBJECT                  5
#define NGX_RPC_ARRAY                   6


/* members of a request or response object the parser records */
#define NGX_RPC_M_JSONRPC               0
#define NGX_RPC_M_METHOD                1
#define NGX_RPC_M_PARAMS                2
#define NGX_RPC_M_ID                    3
#define NGX_RPC_M_RESULT                4
#define NGX_RPC_M_ERROR                 5
#define NGX_RPC_M_N                     6


/* a byte range in a parsed stream, as offsets from its first byte */
typedef struct {
    off_t                        start;
    off_t                        end;
} ngx_rpc_range_t;


typedef struct {
    ngx_rpc_range_t              range;
    ngx_uint_t                   type;
} ngx_rpc_value_t;


/* one element of a message: a request, or a response from upstream */
typedef struct {
    ngx_rpc_value_t              member[NGX_RPC_M_N];
    ngx_rpc_range_t              range;
    ngx_uint_t                   type;
    ngx_str_t                    method;
    ngx_int_t                    num;
    ngx_int_t                    code;
    unsigned                     version_ok:1;
    unsigned                     duplicate:1;
    unsigned                     code_key:1;
    unsigned                     code_ok:1;
} ngx_rpc_msg_t;


/* the head of a shared zone of keys: rpc_cache_zone, rpc_limit_zone */
typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;    /* least recently used last */
} ngx_rpc_shm_tree_t;


/* UTF-8 (RFC 3629) checked a byte at a time, across buffers */
typedef struct {
    ngx_uint_t                   left;   /* continuation bytes to come */
    u_char                       lo;
    u_char                       hi;
} ngx_rpc_utf8_t;


/*
 * a piece of the stream held in memory: parsed bytes are never moved; a
 * piece that follows the previous one in memory extends its segment
 */
typedef struct {
    u_char                      *start;
    off_t                        offset;
    size_t                       len;
} ngx_rpc_seg_t;


typedef struct {
    yajl_handle                  yajl;
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;
    ngx_array_t                  segs;   /* of ngx_rpc_seg_t, by offset */
    ngx_array_t                  msgs;
    ngx_rpc_msg_t               *msg;
    u_char                      *copy;   /* room for small pieces */
    u_char                      *copy_end;
    u_char                      *hold;   /* a long token yajl waits for */
    size_t                       hold_len;
    size_t                       hold_size;
    off_t                        hold_off;
    off_t                        token;  /* where an open token starts */
    ngx_uint_t                   lex;    /* NGX_RPC_LEX_* after the input */
    ngx_rpc_utf8_t               utf8;
    off_t                        base;
    off_t                        last;
    off_t                        end;    /* of the top-level value */
    off_t                        total;
    ngx_uint_t                   depth;
    ngx_uint_t                   max_depth;
    ngx_uint_t                   max_msgs;
    ngx_uint_t                   key;
    ngx_uint_t                   top;
    ngx_int_t                    error;
    unsigned                     complete:1;
    unsigned                     done:1;
    unsigned                     spaced:1;  /* white space between tokens */
} ngx_rpc_parser_t;


typedef struct {
    ngx_array_t                 *patterns;
    ngx_http_upstream_conf_t    *upstream;
    ngx_uint_t                   https;
} ngx_rpc_route_t;


/* WebSocket opcodes and the close codes the gateway sends (RFC 6455) */
#define NGX_RPC_WS_CONT                 0x0
#define NGX_RPC_WS_TEXT                 0x1
#define NGX_RPC_WS_BINARY               0x2
#define NGX_RPC_WS_CLOSE                0x8
#define NGX_RPC_WS_PING                 0x9
#define NGX_RPC_WS_PONG                 0xa

#define NGX_RPC_WS_NORMAL               1000
#define NGX_RPC_WS_GOING_AWAY           1001
#define NGX_RPC_WS_PROTOCOL_ERROR       1002
#define NGX_RPC_WS_UNSUPPORTED          1003
#define NGX_RPC_WS_NO_STATUS            1005
#define NGX_RPC_WS_BAD_DATA             1007
#define NGX_RPC_WS_POLICY               1008
#define NGX_RPC_WS_TOO_BIG              1009
#define NGX_RPC_WS_INTERNAL_ERROR       1011

/* what ngx_rpc_frame_read() found */
#define NGX_RPC_FRAME_DATA              1
#define NGX_RPC_FRAME_CONTROL           2


/* the frame reader of one connection: state across reads */
typedef struct {
    ngx_uint_t                   state;
    u_char                       head[14];
    size_t                       nhead;
    size_t                       need;
    ngx_uint_t                   opcode;
    uint64_t                     left;   /* payload bytes of the frame */
    u_char                       mask[4];
    ngx_uint_t                   mask_pos;
    off_t                        size;   /* of the text message so far */
    off_t                        max_size;
    ngx_rpc_utf8_t               utf8;
    u_char                       control[125];
    size_t                       ncontrol;
    ngx_str_t                    data;
    ngx_int_t                    code;
    char                        *reason;
    unsigned                     fin:1;
    unsigned                     message:1;  /* inside a text message */
    unsigned                     start:1;
    unsigned                     first:1;
    unsigned                     last:1;
    unsigned                     client:1;   /* frames from a server */
} ngx_rpc_frame_t;


/* $rpc_cache_status values */
#define NGX_RPC_CACHE_MISS              1
#define NGX_RPC_CACHE_BYPASS            2
#define NGX_RPC_CACHE_EXPIRED           3
#define NGX_RPC_CACHE_HIT               4
#define NGX_RPC_CACHE_REDIS             5
#define NGX_RPC_CACHE_COLLAPSED         6


typedef struct {
    ngx_array_t                 *patterns;
    ngx_msec_t                   valid;
} ngx_rpc_cache_valid_t;


/* rpc_limit: a zone of rpc_limit_zone, burst and delay in 1/1000 calls */
#define NGX_RPC_LIMITS_MAX              8

typedef struct {
    ngx_shm_zone_t              *zone;
    ngx_uint_t                   burst;
    ngx_uint_t                   delay;
} ngx_rpc_limit_t;


typedef struct {
    ngx_array_t                 *patterns;
    ngx_uint_t                   cost;
} ngx_rpc_limit_cost_t;


/* an rpc_limit, checked after the configuration is read */
typedef struct {
    ngx_shm_zone_t              *zone;
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_rpc_limit_use_t;


typedef struct ngx_rpc_redis_cmd_s  ngx_rpc_redis_cmd_t;

typedef void (*ngx_rpc_redis_handler_pt)(void *data, redisReply **reply);


/* rpc_cache_redis: its settings and, per worker, its one connection */
typedef struct {
    ngx_addr_t                   addr;
    ngx_str_t                    prefix;
    ngx_str_t                    password;
    ngx_int_t                    db;
    ngx_msec_t                   timeout;
    ngx_connection_t            *connection;
    redisReader                 *reader;
    ngx_queue_t                  cmds;
    ngx_uint_t                   ncmds;
    ngx_msec_t                   retry;
    unsigned                     connecting:1;
} ngx_rpc_redis_t;


/*
 * rpc_metrics_zone and the labels: fixed once the configuration is read
 * (ngx_rpc_metrics.c); ncells counters a worker, laid out family by family
 * from the offsets below.
 */
typedef struct {
    ngx_shm_zone_t              *zone;
    ngx_cycle_t                 *cycle;
    ngx_array_t                  names;      /* literal method names */
    ngx_array_t                  patterns;   /* of rpc_metrics_methods */
    ngx_array_t                  methods;    /* the labels, in order */
    ngx_array_t                 *buckets;    /* of ngx_msec_t */
    ngx_array_t                  upstream_list;
    ngx_array_t                  cache_zones;  /* of ngx_shm_zone_t * */
    ngx_uint_t                   nnames;
    ngx_uint_t                   nlabels;
    ngx_uint_t                   nworkers;
    size_t                       max_label;
    ngx_uint_t                   hist_cells;
    ngx_uint_t                   upstream_cells;
    ngx_uint_t                   messages;
    ngx_uint_t                   message_calls;
    ngx_uint_t                   calls;
    ngx_uint_t                   latency;
    ngx_uint_t                   cache;
    ngx_uint_t                   upstreams;
    ngx_uint_t                   servers;
    ngx_uint_t                   gauges;
    ngx_uint_t                   ncells;
    uint32_t                     signature;
    u_char                      *shown_file; /* where rpc_metrics was */
    ngx_uint_t                   shown_line;
} ngx_rpc_metrics_t;


/* ngx_rpc_metrics_cache(): after the NGX_RPC_CACHE_* statuses */
#define NGX_RPC_MX_REDIS_MISS           6
#define NGX_RPC_MX_REDIS_ERROR          7
#define NGX_RPC_MX_STORE                8
#define NGX_RPC_MX_EVICT                9

/* ngx_rpc_metrics_gauge() */
#define NGX_RPC_MX_HELD                 0
#define NGX_RPC_MX_WEBSOCKETS           1
#define NGX_RPC_MX_SUBSCRIBERS          2
#define NGX_RPC_MX_SUBSCRIPTIONS        3


typedef struct {
    ngx_rpc_redis_t             *redis;
    ngx_rpc_metrics_t           *metrics;
    ngx_array_t                  limit_uses;
    ngx_array_t                  subscribes; /* of ngx_rpc_subscribe_t * */
    /* rpc_route and rpc_cache_valid as declared, checked after merge */
    ngx_array_t                  uses;
} ngx_rpc_main_conf_t;


typedef struct ngx_rpc_subscribe_s  ngx_rpc_subscribe_t;


typedef struct {
    ngx_http_upstream_conf_t     upstream;
    ngx_str_t                    uri;
    ngx_str_t                    host;
    ngx_uint_t                   https;
    ngx_str_t                    ssl_trusted_certificate;
#if (NGX_HTTP_SSL)
    ngx_ssl_t                   *ssl;
#endif
    ngx_array_t                 *routes;
    ngx_array_t                 *allow;
    ngx_array_t                 *deny;
    ngx_uint_t                   max_batch;
    ngx_uint_t                   max_depth;
    ngx_msec_t                   timeout;
    off_t                        max_body_size;
    off_t                        max_reply_size;
    ngx_uint_t                   upstream_batch;
    ngx_msec_t                   window;
    ngx_uint_t                   max_pending;
    ngx_shm_zone_t              *cache;
    ngx_array_t                 *cache_valid;
    ngx_array_t                 *cache_bypass;
    ngx_http_complex_value_t    *cache_key;
    ngx_array_t                 *limits;
    ngx_array_t                 *limit_costs;
    ngx_uint_t                   limit_log_level;
    ngx_flag_t                   limit_dry_run;
    ngx_flag_t                   websocket;
    ngx_array_t                 *ws_protocols;
    off_t                        ws_max_message;
    ngx_uint_t                   ws_max_calls;
    size_t                       ws_max_queued;
    ngx_msec_t                   ws_idle_timeout;
    ngx_msec_t                   ws_ping_interval;
    ngx_msec_t                   ws_ping_timeout;
    ngx_rpc_subscribe_t         *subscribe;
    ngx_str_t                    sub_methods[3];  /* subscribe, unsubscribe,
                                                     notification */
    ngx_uint_t                   sub_max;
    ngx_msec_t                   sub_linger;
    ngx_msec_t                   sub_reconnect_min;
    ngx_msec_t                   sub_reconnect_max;
    ngx_msec_t                   sub_stall;
} ngx_rpc_loc_conf_t;


typedef struct ngx_rpc_message_s  ngx_rpc_message_t;
typedef struct ngx_rpc_session_s  ngx_rpc_session_t;
typedef struct ngx_rpc_websocket_s  ngx_rpc_websocket_t;


typedef struct ngx_rpc_call_s  ngx_rpc_call_t;
typedef struct ngx_rpc_subscription_s  ngx_rpc_subscription_t;
typedef struct ngx_rpc_subscriber_s  ngx_rpc_subscriber_t;


/*
 * One upstream HTTP exchange: calls of one or more clients bound for one
 * upstream.  It lives in a pool of its own and runs as a subrequest of a
 * request of its own, on a connection without a socket, so that it outlives
 * any client; calls[] is indexed by gateway id, NULL once a call has left.
 * Each call answered from it holds a reference (refs), as its answer is a
 * slice of reply; the pool is freed by a posted event once the exchange is
 * done and refs is 0.
 */
typedef struct {
    ngx_pool_t                  *pool;
    ngx_http_request_t          *request;
    ngx_http_request_t          *sr;
    ngx_http_upstream_conf_t    *conf;
    ngx_rpc_call_t             **calls;
    ngx_chain_t                 *body;
    ngx_uint_t                   nsent;
    ngx_uint_t                   ncalls;
    ngx_uint_t                   live;
    ngx_uint_t                   refs;
    ngx_rpc_parser_t             reply;
    ngx_http_status_t            status;
    ngx_http_chunked_t           chunked;
    off_t                        content_length;
    ngx_int_t                    rc;
    ngx_int_t                    error;
    ngx_event_t                  free;
    unsigned                     batch:1;
    unsigned                     chunked_body:1;
    unsigned                     conn_close:1;
    unsigned                     invalid_header:1;
    unsigned                     too_large:1;
    unsigned                     complete:1;
    uint64_t                     fresh;  /* tries on a new connection */
    unsigned                     refused:1;
    unsigned                     done:1;
} ngx_rpc_exchange_t;


/*
 * Per worker, location and upstream: calls waiting to be sent together,
 * flushed when rpc_upstream_batch of them are queued or the window ends.
 */
typedef struct {
    ngx_http_upstream_conf_t    *conf;
    void                       **loc_conf;
    ngx_queue_t                  calls;
    ngx_uint_t                   ncalls;
    ngx_event_t                  flush;
    ngx_queue_t                  queue;
} ngx_rpc_batcher_t;


/*
 * A cacheable call on its way upstream (the leader) and the identical calls
 * of this worker that wait for its answer.  Heap memory: it outlives any
 * message; freed when it lands or when its last call leaves.
 */
typedef struct {
    ngx_str_node_t               sn;
    ngx_rpc_call_t              *leader;
    ngx_queue_t                  waiters;
} ngx_rpc_flight_t;


/*
 * Lifetimes, and who may touch what:
 *
 * A call lives in its message's ctx->calls and ends with it.  It is answered
 * exactly once, by ngx_rpc_call_done() (ngx_rpc_call.c; later calls do
 * nothing), which alone sets its outcome code, takes it out of ctx->pending
 * and of this worker's held calls, gives a flight it leads the same answer,
 * and posts ctx->wake when the last pending call of the message is done.
 * Before that, whoever answers may leave the answer's bytes: reply (a
 * response in its exchange's reply, kept alive by its reference on the
 * exchange), or answer (bytes in ctx->pool: a cache hit, a Redis value, a
 * collapsed call's share; an error object when answer_error).
 *
 * While waiting, a call is in exactly one of: an rpc_limit delay (delay,
 * a timer), a flight it waits on (flight, not leader), a Redis lookup
 * (lookup), a batcher queue (batcher), an exchange (exchange, slot); send
 * marks one that is to go upstream at the
 * next ngx_rpc_dispatcher_send().  A call that leads a flight (flight with
 * flight->leader == call) is in a lookup, a batcher or an exchange as well.
 * ngx_rpc_call_cancel() takes a call out of all of them.
 */
struct ngx_rpc_call_s {
    ngx_rpc_message_t           *ctx;
    ngx_rpc_msg_t               *msg;
    ngx_http_upstream_conf_t    *upstream;
    ngx_rpc_batcher_t           *batcher;
    ngx_queue_t                  link;
    ngx_rpc_exchange_t          *exchange;
    ngx_uint_t                   slot;
    ngx_chain_t                 *body;
    ngx_uint_t                   nbufs;
    ngx_uint_t                   batch_size;
    ngx_rpc_msg_t               *reply;
    ngx_str_t                    key;
    uint32_t                     hash;
    ngx_msec_t                   valid;
    ngx_str_t                    answer;
    ngx_int_t                    answer_code;
    ngx_rpc_flight_t            *flight;
    ngx_queue_t                  queue;
    ngx_rpc_redis_cmd_t         *lookup;
    ngx_event_t                  delay;     /* rpc_limit without nodelay */
    ngx_rpc_subscription_t      *subscription; /* waits on it (queue) */
    ngx_rpc_subscriber_t        *subscriber;   /* made for it */
    ngx_int_t                    error;
    unsigned                     notification:1;
    unsigned                     send:1;
    unsigned                     waiting:1;
    unsigned                     held:1;
    unsigned                     done:1;
    unsigned                     answer_error:1;
    unsigned                     answer_code_ok:1;
    unsigned                     cache_status:3;
    unsigned                     subscribe:2;   /* NGX_RPC_SUBSCRIBE_* */
};


/*
 * One client message and its calls: an HTTP body or a WebSocket text
 * message.  ctx and everything of the message live in ctx->pool, a pool of
 * its own; ngx_rpc_message_free() cancels every call still waiting and
 * only then deletes a posted wake (nothing can post it again once
 * responded is set) and frees the pool.  An HTTP message is freed by a
 * cleanup of the request's pool, a WebSocket one once it is answered or
 * its connection goes.
 */

struct ngx_rpc_message_s {
    ngx_rpc_session_t           *session;
    ngx_http_request_t          *request;   /* the session's */
    ngx_pool_t                  *pool;
    ngx_rpc_parser_t             parser;
    ngx_array_t                  calls;
    ngx_uint_t                   pending;
    ngx_uint_t                   lookups;
    ngx_uint_t                   limited;   /* calls refused by rpc_limit */
    ngx_msec_t                   retry;     /* when one might pass */
    ngx_event_t                  timer;
    ngx_event_t                  wake;
    ngx_queue_t                  queue;     /* in the session's messages */
    ngx_msec_t                   start;
    ngx_int_t                    error;
    off_t                        body_size;
    ngx_str_t                    codes;
    ngx_str_t                    key_prefix;   /* of its cache keys */
    ngx_http_upstream_srv_conf_t  *key_upstream;
    unsigned                     batch:1;
    unsigned                     responded:1;
    unsigned                     failed:1;
    unsigned                     too_large:1;
    unsigned                     copy_body:1;
    unsigned                     read_body:1;
};


/* the transport answers a message whose calls are done, or that failed */
typedef void (*ngx_rpc_answer_pt)(ngx_rpc_message_t *ctx);


/*
 * Where answers go: one HTTP request and its one message, or one WebSocket
 * connection and the messages it has in flight.  It lives in the client
 * request's pool and is the module's ctx of that request.
 */

struct ngx_rpc_session_s {
    ngx_http_request_t          *request;
    ngx_rpc_answer_pt            answer;
    ngx_rpc_message_t           *ctx;       /* HTTP: its message */
    ngx_rpc_websocket_t         *ws;
    ngx_uint_t                   messages;
    ngx_uint_t                   calls;
    ngx_str_t                    cache_key;  /* rpc_cache_key's value */
    ngx_str_t                   *limit_keys; /* of its rpc_limit zones */
    ngx_queue_t                  subscribers;
    ngx_uint_t                   nsubscribers;
    ngx_uint_t                   subscribing;  /* calls waiting for one */
    size_t                       held;    /* events held for subscribers */
    unsigned                     cache_key_set:1;
};


/* WebSocket client to the node, per worker (ngx_rpc_wsclient.c) */
typedef struct ngx_rpc_wsclient_s  ngx_rpc_wsclient_t;

#define NGX_RPC_WSC_IDLE                0
#define NGX_RPC_WSC_CONNECTING          1
#define NGX_RPC_WSC_OPEN                2
#define NGX_RPC_WSC_BACKOFF             3


/*
 * rpc_subscribe_pass of one location and, per worker, its subscriptions:
 * by key (method and params), and by the node's id while live on the
 * current connection.
 */
struct ngx_rpc_subscribe_s {
    ngx_http_upstream_srv_conf_t  *upstream;
    ngx_str_t                      uri;
    ngx_str_t                      host;
    ngx_uint_t                     wss;
    ngx_rpc_loc_conf_t            *conf;
    ngx_rpc_wsclient_t            *client;
    ngx_rbtree_t                   keys;
    ngx_rbtree_node_t              keys_sentinel;
    ngx_rbtree_t                   ids;
    ngx_rbtree_node_t              ids_sentinel;
    ngx_rbtree_t                   ops;      /* subscribes sent, by id */
    ngx_rbtree_node_t              ops_sentinel;
    ngx_queue_t                    all;
    ngx_uint_t                     nall;
    ngx_queue_t                    unsent;   /* subscribes to send */
    size_t                         inflight; /* their bytes, unanswered */
    ngx_uint_t                     next_op;
    ngx_event_t                    stall;
    ngx_event_t                    stop;
    ngx_msec_t                     last_event;
    unsigned                       ready:1;
};


/*
 * One subscription of the node, shared by the clients of this worker with
 * the same key.  Heap memory: freed when neither a subscriber nor a call
 * waits on it and its linger ends, or the node refused it.
 */
struct ngx_rpc_subscription_s {
    ngx_str_node_t                 sn;       /* key: method, params */
    ngx_str_node_t                 un;       /* the node's id, when live */
    ngx_rpc_subscribe_t           *sub;
    ngx_str_t                      method;
    ngx_str_t                      params;
    ngx_queue_t                    queue;    /* in sub->all */
    ngx_queue_t                    subscribers;
    ngx_queue_t                    calls;    /* waiting for the node */
    ngx_rbtree_node_t              op;       /* subscribe sent: key */
    ngx_queue_t                    unsent;   /* in sub->unsent */
    ngx_event_t                    linger;
    ngx_event_t                    wait;     /* for the node's answer */
    ngx_event_t                    retry;    /* after the node refused */
    ngx_msec_t                     backoff;
    unsigned                       live:1;
    unsigned                       sent:1;   /* in sub->ops */
    unsigned                       queued:1; /* in sub->unsent */
    unsigned                       busy:1;   /* being freed */
};


/*
 * A client's subscription, with the id the gateway made for it.  Events
 * before its subscribe answer went out are held.  Heap memory: freed on
 * unsubscribe or when its session ends.
 */
struct ngx_rpc_subscriber_s {
    u_char                         id[2 + 2 + 32]; /* "0x..." */
    ngx_rpc_subscription_t        *subscription;
    ngx_rpc_session_t             *session;
    ngx_queue_t                    queue;    /* in the subscription's */
    ngx_queue_t                    link;     /* in the session's */
    ngx_chain_t                   *held;
    ngx_chain_t                  **last_held;
    size_t                         held_size;
    unsigned                       active:1;
};


/* call->subscribe */
#define NGX_RPC_SUBSCRIBE               1
#define NGX_RPC_UNSUBSCRIBE             2


/* ngx_rpc_module.c */
ngx_shm_zone_t *ngx_rpc_conf_zone(ngx_conf_t *cf, ngx_str_t *value);
ngx_http_upstream_srv_conf_t *ngx_rpc_conf_upstream(ngx_conf_t *cf,
    ngx_str_t *url, ngx_str_t *uri, ngx_uint_t *tls, ngx_uint_t ws);

/* ngx_rpc_util.c */
ngx_int_t ngx_rpc_chain_add(ngx_pool_t *pool, ngx_chain_t ***ll,
    u_char *data, size_t len);
ngx_pool_t *ngx_rpc_pool_get(ngx_log_t *log);
void ngx_rpc_pool_free(void *data);
void ngx_rpc_pool_exit(void);
ngx_int_t ngx_rpc_utf8(ngx_rpc_utf8_t *u, u_char ch);
u_char *ngx_rpc_squeeze(u_char *p, u_char *last);
ngx_int_t ngx_rpc_json_member(u_char *start, u_char *last, ngx_str_t *name,
    ngx_rpc_range_t *range);
void *ngx_rpc_shm_tree(ngx_shm_zone_t *shm_zone, size_t size, char *name,
    ngx_rbtree_insert_pt insert);

/* ngx_rpc_frame.c */
void ngx_rpc_frame_init(ngx_rpc_frame_t *f, off_t max_size);
ngx_int_t ngx_rpc_frame_read(ngx_rpc_frame_t *f, u_char **pos, u_char *last);
u_char *ngx_rpc_frame_write_head(u_char *p, ngx_uint_t opcode, size_t len);
u_char *ngx_rpc_frame_write_masked(u_char *p, ngx_uint_t opcode,
    u_char *data, size_t len, u_char *mask);
void ngx_rpc_frame_accept(u_char *key, size_t len, u_char *accept);
ngx_int_t ngx_rpc_frame_response(u_char *p, u_char *last, u_char *accept,
    size_t *len, ngx_uint_t *status, char **reason);

/* ngx_rpc_parse.c */
ngx_int_t ngx_rpc_parse_init(ngx_rpc_parser_t *p, ngx_pool_t *pool,
    ngx_log_t *log, ngx_uint_t max_depth, ngx_uint_t max_msgs, ngx_uint_t n);
ngx_int_t ngx_rpc_parse_feed(ngx_rpc_parser_t *p, u_char *data, size_t len);
ngx_int_t ngx_rpc_parse_finish(ngx_rpc_parser_t *p);
ngx_int_t ngx_rpc_parse_slice(ngx_rpc_parser_t *p, ngx_pool_t *pool,
    ngx_rpc_range_t *range, ngx_chain_t ***ll);
ngx_int_t ngx_rpc_parse_copy(ngx_rpc_parser_t *p, ngx_rpc_range_t *range,
    ngx_str_t *out);
u_char *ngx_rpc_parse_copy_squeezed(ngx_rpc_parser_t *p,
    ngx_rpc_range_t *range, u_char *dst);
u_char *ngx_rpc_parse_copy_to(ngx_rpc_parser_t *p, ngx_rpc_range_t *range,
    u_char *dst);

/* ngx_rpc_policy.c */
ngx_int_t ngx_rpc_policy_check(ngx_rpc_loc_conf_t *rlcf, ngx_rpc_msg_t *msg);
ngx_http_upstream_conf_t *ngx_rpc_policy_route(ngx_rpc_loc_conf_t *rlcf,
    ngx_str_t *method);
ngx_int_t ngx_rpc_policy_match(ngx_array_t *patterns, ngx_str_t *name);
ngx_uint_t ngx_rpc_policy_glob(u_char *p, u_char *pe, u_char *s, u_char *se);

/* ngx_rpc_cache.c */
ngx_int_t ngx_rpc_cache_lookup(ngx_rpc_call_t *call);
void ngx_rpc_cache_update(ngx_rpc_exchange_t *ex);
void ngx_rpc_cache_stats(ngx_shm_zone_t *zone, uint64_t *entries,
    uint64_t *bytes);
char *ngx_rpc_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_rpc_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_rpc_cache_valid(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_rpc_flight.c */
ngx_int_t ngx_rpc_flight_join(ngx_rpc_call_t *call);
void ngx_rpc_flight_land(ngx_rpc_call_t *call);
void ngx_rpc_flight_leave(ngx_rpc_call_t *call);

/* ngx_rpc_call.c */
void ngx_rpc_call_wait(ngx_rpc_call_t *call);
void ngx_rpc_call_done(ngx_rpc_call_t *call, ngx_int_t code);
void ngx_rpc_call_cancel(ngx_rpc_call_t *call, ngx_int_t code);
void ngx_rpc_call_cancel_all(ngx_rpc_message_t *ctx, ngx_int_t code);
ngx_int_t ngx_rpc_call_hold(ngx_rpc_call_t *call, ngx_uint_t max);
ngx_int_t ngx_rpc_call_start(ngx_rpc_call_t *call);
void ngx_rpc_message_wake(ngx_rpc_message_t *ctx);

/* ngx_rpc_redis.c */
ngx_rpc_redis_cmd_t *ngx_rpc_redis_get(ngx_rpc_redis_t *rd, ngx_str_t *key,
    ngx_rpc_redis_handler_pt handler, void *data);
void ngx_rpc_redis_set(ngx_rpc_redis_t *rd, ngx_str_t *key,
    ngx_str_t *value, ngx_msec_t ttl);
void ngx_rpc_redis_cancel(ngx_rpc_redis_cmd_t *cmd);
void ngx_rpc_redis_close(ngx_rpc_redis_t *rd);
char *ngx_rpc_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_rpc_dispatcher.c */
ngx_int_t ngx_rpc_dispatcher_send(ngx_rpc_message_t *ctx);
void ngx_rpc_dispatcher_done(ngx_rpc_exchange_t *ex);
void ngx_rpc_dispatcher_cancel(ngx_rpc_call_t *call);
void ngx_rpc_dispatcher_release(ngx_rpc_message_t *ctx);

/* ngx_rpc_upstream.c */
ngx_int_t ngx_rpc_upstream_start(ngx_rpc_exchange_t *ex);
void ngx_rpc_upstream_abort(ngx_rpc_exchange_t *ex);
void ngx_rpc_upstream_states(ngx_rpc_exchange_t *ex, ngx_http_request_t *r);

/* ngx_rpc_response.c */
ngx_int_t ngx_rpc_response_body(ngx_rpc_message_t *ctx, ngx_chain_t *out);
ngx_int_t ngx_rpc_response_build(ngx_rpc_message_t *ctx, ngx_chain_t **out);
ngx_int_t ngx_rpc_response_send(ngx_rpc_message_t *ctx);
ngx_int_t ngx_rpc_response_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_int_t code);
u_char *ngx_rpc_error_message(ngx_int_t code);

/* ngx_rpc_message.c */
ngx_rpc_message_t *ngx_rpc_message_create(ngx_rpc_session_t *s);
ngx_int_t ngx_rpc_message_dispatch(ngx_rpc_message_t *ctx);
void ngx_rpc_message_answer(ngx_rpc_message_t *ctx);
void ngx_rpc_message_fail(ngx_rpc_message_t *ctx);
void ngx_rpc_message_free(void *data);

/* ngx_rpc_websocket.c */
ngx_uint_t ngx_rpc_websocket_upgrade(ngx_http_request_t *r);
ngx_int_t ngx_rpc_websocket_handler(ngx_http_request_t *r);
ngx_int_t ngx_rpc_websocket_close_code(ngx_rpc_session_t *s);
ngx_int_t ngx_rpc_websocket_event(ngx_rpc_session_t *s, ngx_chain_t *in);
char *ngx_rpc_websocket_protocols(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_rpc_subscribe.c */
ngx_uint_t ngx_rpc_subscribe_method(ngx_rpc_loc_conf_t *rlcf,
    ngx_str_t *name);
ngx_int_t ngx_rpc_subscribe_call(ngx_rpc_call_t *call);
void ngx_rpc_subscribe_cancel(ngx_rpc_call_t *call);
void ngx_rpc_subscribe_answered(ngx_rpc_message_t *ctx);
void ngx_rpc_subscribe_close(ngx_rpc_session_t *s);
void ngx_rpc_subscribe_open(ngx_rpc_subscribe_t *sub);
void ngx_rpc_subscribe_message(ngx_rpc_subscribe_t *sub, u_char *data,
    size_t len);
void ngx_rpc_subscribe_lost(ngx_rpc_subscribe_t *sub);
void ngx_rpc_subscribe_exit(ngx_cycle_t *cycle);
char *ngx_rpc_subscribe_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rpc_subscribe_methods(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rpc_subscribe_reconnect(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_rpc_wsclient.c */
ngx_int_t ngx_rpc_wsclient_start(ngx_rpc_subscribe_t *sub);
ngx_uint_t ngx_rpc_wsclient_state(ngx_rpc_subscribe_t *sub);
ngx_int_t ngx_rpc_wsclient_send(ngx_rpc_subscribe_t *sub, u_char *data,
    size_t len);
void ngx_rpc_wsclient_reset(ngx_rpc_subscribe_t *sub, char *reason);
void ngx_rpc_wsclient_stop(ngx_rpc_subscribe_t *sub);

/* ngx_rpc_limit.c */
ngx_int_t ngx_rpc_limit_call(ngx_rpc_call_t *call);
void ngx_rpc_limit_cancel(ngx_rpc_call_t *call);
ngx_int_t ngx_rpc_limit_init(ngx_conf_t *cf);
char *ngx_rpc_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_rpc_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_rpc_limit_cost_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_rpc_metrics.c */
void ngx_rpc_metrics_call(ngx_rpc_call_t *call);
void ngx_rpc_metrics_message(ngx_rpc_message_t *ctx);
void ngx_rpc_metrics_exchange(ngx_rpc_exchange_t *ex);
void ngx_rpc_metrics_fallback(ngx_http_upstream_conf_t *conf, ngx_uint_t n);
void ngx_rpc_metrics_cache(ngx_uint_t what);
void ngx_rpc_metrics_gauge(ngx_uint_t what, ngx_uint_t value);
ngx_int_t ngx_rpc_metrics_init_process(ngx_cycle_t *cycle);
void ngx_rpc_metrics_exit_process(void);
ngx_int_t ngx_rpc_metrics_name(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t patterns);
ngx_int_t ngx_rpc_metrics_add_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *uscf);
ngx_rpc_metrics_t *ngx_rpc_metrics_create(ngx_conf_t *cf);
ngx_int_t ngx_rpc_metrics_init(ngx_conf_t *cf);
ngx_int_t ngx_rpc_metrics_cache_zone(ngx_conf_t *cf, ngx_shm_zone_t *zone);
char *ngx_rpc_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_rpc_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_rpc_metrics_buckets(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rpc_metrics_methods(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_rpc_handler.c */
ngx_int_t ngx_rpc_handler(ngx_http_request_t *r);
ngx_int_t ngx_rpc_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
void ngx_rpc_handler_wake(ngx_http_request_t *r);

/* ngx_rpc_variables.c */
ngx_int_t ngx_rpc_add_variables(ngx_conf_t *cf);


extern ngx_module_t                     ngx_rpc_module;
extern ngx_http_request_body_filter_pt  ngx_rpc_next_request_body_filter;


#endif /* _NGX_RPC_H_INCLUDED_ */
