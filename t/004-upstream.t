# Upstream exchange: every failure is a per-call error with its own code,
# replies of every framing, keepalive, failover, timeouts.  As root it runs
# in a network namespace of its own, for a black hole (see RPCTest.pm).
use strict;
use warnings;
use Test::Base;
use lib 't/lib';
use RPCTest '-netns';

run_blocks();

__DATA__

=== TEST 1: connection refused: upstream unavailable
--- config
location /rpc { rpc_pass 127.0.0.1:$DEAD_PORT; }
--- request
{"jsonrpc":"2.0","method":"sum","id":1}
--- error_code
200
--- response_body
{"jsonrpc":"2.0","error":{"code":-32000,"message":"Upstream unavailable"},"id":1}
--- error_log
Connection refused

=== TEST 2: reset before the reply
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
--- config
location /rpc { rpc_pass backend; }
--- request
[{"jsonrpc":"2.0","method":"test_reset","id":1},{"jsonrpc":"2.0","method":"sum","id":2}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32002,"message":"Upstream closed connection before reply was complete"},"id":1},{"jsonrpc":"2.0","error":{"code":-32002,"message":"Upstream closed connection before reply was complete"},"id":2}]
--- error_log
Connection reset by peer

=== TEST 3: reset in the middle of the reply
--- request
{"jsonrpc":"2.0","method":"test_reset_mid","id":"m"}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32002,"message":"Upstream closed connection before reply was complete"},"id":"m"}
--- error_log
Connection reset by peer

=== TEST 4: rpc_timeout answers with the timeout error
--- config
location /rpc { rpc_pass backend; rpc_timeout 200ms; }
--- request
[{"jsonrpc":"2.0","method":"test_sleep","params":[1500],"id":1},{"jsonrpc":"2.0","method":"sum","id":2}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1},{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":2}]
--- error_log
rpc: calls not answered within rpc_timeout 200

=== TEST 5: rpc_read_timeout is an upstream timeout too
--- config
location /rpc { rpc_pass backend; rpc_read_timeout 200ms; }
--- request
{"jsonrpc":"2.0","method":"test_sleep","params":[1500],"id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1}
--- error_log
upstream timed out

=== TEST 6: HTTP 500 from upstream
--- config
location /rpc { rpc_pass backend; }
--- request
{"jsonrpc":"2.0","method":"test_http500","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32003,"message":"Upstream replied with HTTP error status"},"id":1}
--- error_log
rpc: upstream replied with HTTP status 500

=== TEST 7: a reply that is not JSON
--- request
{"jsonrpc":"2.0","method":"test_garbage","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32004,"message":"Upstream reply is not valid JSON"},"id":1}
--- error_log
rpc: upstream reply is not valid JSON

=== TEST 8: a reply of the wrong shape
--- request
{"jsonrpc":"2.0","method":"test_shape","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32005,"message":"Upstream reply is not a valid response"},"id":1}
--- error_log
rpc: upstream reply to a single call is not an object

=== TEST 9: an error with a null id answers a single call
--- request
{"jsonrpc":"2.0","method":"test_null_id","id":"x"}
--- response_body
{"jsonrpc":"2.0","id":"x","error":{"code":-32700,"message":"cannot read it"}}

=== TEST 9b: in a batch, it answers no call
--- request
[{"jsonrpc":"2.0","method":"test_null_id","id":1},{"jsonrpc":"2.0","method":"sum","params":[2],"id":2}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32006,"message":"Upstream reply has no response for call"},"id":1},{"jsonrpc":"2.0","id":2,"result":2}]
--- error_log
rpc: upstream reply has a response with an unknown id at position 0

=== TEST 10: a missing id is that call's error only
--- request
[{"jsonrpc":"2.0","method":"sum","params":[1],"id":1},{"jsonrpc":"2.0","method":"test_drop_id","id":2},{"jsonrpc":"2.0","method":"sum","params":[3],"id":3}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","error":{"code":-32006,"message":"Upstream reply has no response for call"},"id":2},{"jsonrpc":"2.0","id":3,"result":3}]
--- error_log
rpc: upstream reply has no response for id 1

=== TEST 11: duplicate and extra ids: the first answer counts
--- request
[{"jsonrpc":"2.0","method":"test_dup_id","id":"a"},{"jsonrpc":"2.0","method":"test_extra_id","id":"b"}]
--- response_body
[{"jsonrpc":"2.0","id":"a","result":"dup_id"},{"jsonrpc":"2.0","id":"b","result":"extra_id"}]
--- error_log
rpc: upstream reply has id 0 more than once
rpc: upstream reply has a response with an unknown id

=== TEST 12: error responses from upstream pass through byte for byte
--- request
{"jsonrpc":"2.0","method":"test_error","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"upstream says no"}}

=== TEST 13: chunked reply
--- request
[{"jsonrpc":"2.0","method":"test_chunked","id":1},{"jsonrpc":"2.0","method":"test_echo","params":["abcdefghijklmnopqrstuvwxyz"],"id":2}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":"chunked"},{"jsonrpc":"2.0","id":2,"result":["abcdefghijklmnopqrstuvwxyz"]}]

=== TEST 14: reply delimited by connection close
--- request
{"jsonrpc":"2.0","method":"test_close","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"close"}

=== TEST 15: a large reply read in many buffers
--- config
location /rpc { rpc_pass backend; rpc_buffer_size 1k; }
--- request
[{"jsonrpc":"2.0","method":"test_big","params":[300000],"id":1},{"jsonrpc":"2.0","method":"sum","params":[4],"id":2}]
--- response_body eval
'[{"jsonrpc":"2.0","id":1,"result":"' . ('x' x 300000) . '"},{"jsonrpc":"2.0","id":2,"result":4}]'

=== TEST 16: rpc_next_upstream fails over to the next server
--- http_config
upstream backend {
    server 127.0.0.1:$DEAD_PORT;
    server 127.0.0.1:$UPSTREAM2_PORT;
}
--- config
location /rpc { rpc_pass backend; }
--- request
[{"jsonrpc":"2.0","method":"test_whoami","id":1}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"}]

=== TEST 17: failover again (round robin starts at the other server)
--- request
[{"jsonrpc":"2.0","method":"test_whoami","id":1}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"}]

=== TEST 17a: rpc_next_upstream_tries 1: the dead first server is the only try
--- http_config
upstream backend {
    server 127.0.0.1:$DEAD_PORT;
    server 127.0.0.1:$UPSTREAM2_PORT;
}
--- config
location /rpc { rpc_pass backend; rpc_next_upstream_tries 1; }
--- request
[{"jsonrpc":"2.0","method":"test_whoami","id":1}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32000,"message":"Upstream unavailable"},"id":1}]

=== TEST 18: rpc_next_upstream off: no failover, not even to a backup
--- http_config
upstream backend {
    server 127.0.0.1:$DEAD_PORT max_fails=0;
    server 127.0.0.1:$UPSTREAM2_PORT backup;
}
--- config
location /rpc { rpc_pass backend; rpc_next_upstream off; }
location /on { rpc_pass backend; }
--- request
{"jsonrpc":"2.0","method":"test_whoami","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32000,"message":"Upstream unavailable"},"id":1}
--- error_log
Connection refused

=== TEST 18a: the same group fails over to the backup by default
--- path
/on
--- request
{"jsonrpc":"2.0","method":"test_whoami","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"}

=== TEST 19: a reset after the request was sent is not retried by default
--- http_config
upstream backend {
    server 127.0.0.1:$UPSTREAM_PORT;
    server 127.0.0.1:$UPSTREAM2_PORT;
}
--- config
location /rpc { rpc_pass backend; }
--- request
{"jsonrpc":"2.0","method":"test_fail_on","params":["UPSTREAM","reset"],"id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32002,"message":"Upstream closed connection before reply was complete"},"id":1}
--- error_log
Connection reset by peer

=== TEST 20: with non_idempotent it is retried on the next server
--- config
location /rpc { rpc_pass backend; rpc_next_upstream error timeout non_idempotent; }
--- request
{"jsonrpc":"2.0","method":"test_fail_on","params":["UPSTREAM","reset"],"id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"}
--- error_log
Connection reset by peer

=== TEST 21: http_500 in rpc_next_upstream: the other server answers
--- config
location /rpc { rpc_pass backend; rpc_next_upstream error http_500 non_idempotent; }
--- request
{"jsonrpc":"2.0","method":"test_fail_on","params":["UPSTREAM","http500"],"id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"}

=== TEST 22: rpc_pass with a URI: calls are POSTed to it, Host as proxy_pass
--- config
location /rpc { rpc_pass http://127.0.0.1:$UPSTREAM_PORT/some/path?a=1; }
--- request
{"jsonrpc":"2.0","method":"test_echo","params":{"k":"v"},"id":"c"}
--- response_body
{"jsonrpc":"2.0","id":"c","result":{"k":"v"}}
--- upstream_requests
POST /some/path?a=1 HTTP/1.1
Host: 127.0.0.1:$UPSTREAM_PORT
{"jsonrpc":"2.0","id":0,"method":"test_echo","params":{"k":"v"}}

=== TEST 22a: without a URI: POST /, Host is the upstream's name
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; }
--- config
location /rpc { rpc_pass backend; }
--- request
[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":"x"},{"jsonrpc":"2.0","method":"sum","params":[3]}]
--- response_body
[{"jsonrpc":"2.0","id":"x","result":3}]
--- upstream_requests
POST / HTTP/1.1
Host: backend
[{"jsonrpc":"2.0","id":0,"method":"sum","params":[1,2]},{"jsonrpc":"2.0","method":"sum","params":[3]}]

=== TEST 23: a reply over rpc_max_reply_size fails only its own call
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
--- config
location /rpc { rpc_pass backend; rpc_max_reply_size 4k; }
--- request
[{"jsonrpc":"2.0","method":"test_big","params":[5000],"id":1},{"jsonrpc":"2.0","method":"sum","params":[1],"id":2}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32009,"message":"Upstream reply too large"},"id":1},{"jsonrpc":"2.0","id":2,"result":1}]
--- error_log
rpc: upstream response for id 0 is larger than rpc_max_reply_size 4096

=== TEST 24: a reply under rpc_max_reply_size
--- request
[{"jsonrpc":"2.0","method":"test_big","params":[3000],"id":1}]
--- response_body_like
^\[\{"jsonrpc":"2.0","id":1,"result":"x{3000}"\}\]$

=== TEST 25: an upstream "100 Continue" before the final status is skipped
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
--- config
location /rpc { rpc_pass backend; rpc_read_timeout 1s; }
location /small { rpc_pass backend; rpc_buffer_size 1k; rpc_read_timeout 1s; }
--- request
{"jsonrpc":"2.0","method":"test_continue","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"continue"}

=== TEST 26: 100, 102 and 103 with headers, read with the final reply
--- request
[{"jsonrpc":"2.0","method":"test_informational","id":1},{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":2}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":"informational"},{"jsonrpc":"2.0","id":2,"result":3}]

=== TEST 26a: 3000 of them, more than a buffer holds
--- request
{"jsonrpc":"2.0","method":"test_many_continues","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"many_continues"}

=== TEST 26b: and with a buffer of 1k
--- path
/small
--- request
{"jsonrpc":"2.0","method":"test_many_continues","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"many_continues"}

=== TEST 27: and the connection is still good for the next call
--- request
{"jsonrpc":"2.0","method":"sum","params":[4],"id":3}
--- response_body
{"jsonrpc":"2.0","id":3,"result":4}

=== TEST 28: 101 Switching Protocols was not asked for: a bad reply
--- request
{"jsonrpc":"2.0","method":"test_switch","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32005,"message":"Upstream reply is not a valid response"},"id":1}
--- error_log
rpc: upstream sent unexpected status 101

=== TEST 29: a bad status line is a bad reply
--- request
{"jsonrpc":"2.0","method":"test_bad_status","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32005,"message":"Upstream reply is not a valid response"},"id":1}
--- error_log
rpc: upstream sent no valid HTTP/1.x status line

=== TEST 30: a header larger than rpc_buffer_size is a bad reply
--- path
/small
--- request
{"jsonrpc":"2.0","method":"test_big_header","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32005,"message":"Upstream reply is not a valid response"},"id":1}
--- error_log
rpc: upstream sent a header larger than rpc_buffer_size 1024

=== TEST 31: so is a status line larger than rpc_buffer_size
--- path
/small
--- request
{"jsonrpc":"2.0","method":"test_big_status","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32005,"message":"Upstream reply is not a valid response"},"id":1}
--- error_log
rpc: upstream sent a header larger than rpc_buffer_size 1024

=== TEST 32: the same header under the default rpc_buffer_size is fine
--- request
{"jsonrpc":"2.0","method":"test_big_header","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"big_header"}

=== TEST 33: a duplicate Content-Length is a bad reply (nginx 1.23 rejects it too)
--- request
{"jsonrpc":"2.0","method":"test_dup_length","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32005,"message":"Upstream reply is not a valid response"},"id":1}
--- error_log
rpc: upstream sent duplicate "Content-Length" header

=== TEST 34: rpc_connect_timeout: an upstream that never answers a connect
--- http_config
upstream hole { server $BLACK_HOLE max_fails=0; }
upstream backup {
    server $BLACK_HOLE max_fails=0;
    server 127.0.0.1:$UPSTREAM_PORT backup;
}
--- config
location /rpc { rpc_pass hole; rpc_connect_timeout 300ms; }
location /backup { rpc_pass backup; rpc_connect_timeout 300ms; }
location /nut {
    rpc_pass backup;
    rpc_connect_timeout 300ms;
    rpc_next_upstream_timeout 200ms;
}
--- request
[{"jsonrpc":"2.0","method":"sum","id":1},{"jsonrpc":"2.0","method":"sum","id":2}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1},{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":2}]
--- error_log
upstream timed out (110: Connection timed out) while connecting to upstream

=== TEST 35: a connect timeout is a reason to try the next server
--- path
/backup
--- request
{"jsonrpc":"2.0","method":"test_whoami","id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":"UPSTREAM"}
--- error_log
upstream timed out (110: Connection timed out) while connecting to upstream

=== TEST 36: but not once rpc_next_upstream_timeout has passed
--- path
/nut
--- request
{"jsonrpc":"2.0","method":"test_whoami","id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1}
--- error_log
upstream timed out (110: Connection timed out) while connecting to upstream

=== TEST 37: rpc_send_timeout: an upstream that does not read the request
--- http_config
--- config
location /rpc {
    rpc_pass 127.0.0.1:$SINK_PORT;
    rpc_send_timeout 300ms;
    client_max_body_size 32m;
}
--- request eval
'{"jsonrpc":"2.0","method":"test_echo","params":['
. ('123456789,' x 1_200_000) . '0],"id":1}'
--- response_body
{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1}
--- error_log
upstream timed out (110: Connection timed out) while sending request to upstream
