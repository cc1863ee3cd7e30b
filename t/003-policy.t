# Policy: request validation, method allow/deny, batch and depth limits,
# routing by method.
use strict;
use warnings;
use Test::Base;
use lib 't/lib';
use RPCTest;

run_blocks();

__DATA__

=== TEST 1: deny wins over allow
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; }
--- config
location /rpc {
    rpc_pass backend;
    rpc_allow_methods sum test_*;
    rpc_deny_methods test_reset*;
}
--- request
{"jsonrpc":"2.0","method":"test_reset","id":"r"}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"r"}
--- error_log
rpc: method "test_reset" not allowed

=== TEST 2: a method outside the allow list
--- request
{"jsonrpc":"2.0","method":"subtract","params":[2,1],"id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}

=== TEST 3: allowed and denied calls in one batch keep their order
--- request
[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1},
 {"jsonrpc":"2.0","method":"test_reset_mid","id":2},
 {"jsonrpc":"2.0","method":"test_echo","params":["e"],"id":3},
 {"jsonrpc":"2.0","method":"admin_x","id":4},
 {"jsonrpc":"2.0","method":"sum","params":[5]}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":3},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":2},{"jsonrpc":"2.0","id":3,"result":["e"]},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":4}]

=== TEST 4: a denied notification is not answered
--- config
location /rpc {
    rpc_pass backend;
    rpc_allow_methods sum test_*;
}
--- request
{"jsonrpc":"2.0","method":"admin_shutdown"}
--- error_code
204
--- response_body
--- error_log
rpc: method "admin_shutdown" not allowed

=== TEST 5: glob patterns: star anywhere
--- config
location /rpc {
    rpc_pass backend;
    rpc_allow_methods *_echo s*m;
}
--- request
[{"jsonrpc":"2.0","method":"test_echo","params":[1],"id":1},
 {"jsonrpc":"2.0","method":"sum","params":[1],"id":2},
 {"jsonrpc":"2.0","method":"summary","id":3},
 {"jsonrpc":"2.0","method":"test_echoes","id":4}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":[1]},{"jsonrpc":"2.0","id":2,"result":1},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":3},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":4}]

=== TEST 6: batch over rpc_max_batch
--- config
location /rpc { rpc_pass backend; rpc_max_batch 3; }
--- request
[{"jsonrpc":"2.0","method":"sum","id":1},{"jsonrpc":"2.0","method":"sum","id":2},
 {"jsonrpc":"2.0","method":"sum","id":3},{"jsonrpc":"2.0","method":"sum","id":4}]
--- error_code
200
--- response_body
{"jsonrpc":"2.0","error":{"code":-32007,"message":"Batch too large"},"id":null}
--- error_log
rpc: batch of more than 3 calls

=== TEST 7: batch at rpc_max_batch
--- request
[{"jsonrpc":"2.0","method":"sum","id":1},{"jsonrpc":"2.0","method":"sum","id":2},
 {"jsonrpc":"2.0","method":"sum","id":3}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":0},{"jsonrpc":"2.0","id":2,"result":0},{"jsonrpc":"2.0","id":3,"result":0}]

=== TEST 8: nesting over rpc_max_depth
--- config
location /rpc { rpc_pass backend; rpc_max_depth 4; }
--- request
{"jsonrpc":"2.0","method":"test_echo","params":[[[[1]]]],"id":1}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: JSON nested deeper than 4

=== TEST 9: nesting at rpc_max_depth
--- request
{"jsonrpc":"2.0","method":"test_echo","params":[[[1]]],"id":1}
--- response_body
{"jsonrpc":"2.0","id":1,"result":[[[1]]]}

=== TEST 10: default depth limit is 32
--- config
location /rpc { rpc_pass backend; }
--- request eval
'{"jsonrpc":"2.0","method":"test_echo","params":' . ('[' x 32) . (']' x 32) . ',"id":1}'
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 11: invalid requests keep a readable id; only valid calls go up
--- request
[{"jsonrpc":"1.0","method":"sum","id":1},
 {"method":"sum","id":2},
 {"jsonrpc":2.0,"method":"sum","id":3},
 {"jsonrpc":"2.0","method":"sum","params":7,"id":4},
 {"jsonrpc":"2.0","method":null,"id":5},
 {"jsonrpc":"2.0","id":6},
 {"jsonrpc":"2.0","method":"sum","id":{"a":1}},
 {"jsonrpc":"2.0","method":"sum","id":[7]},
 {"jsonrpc":"2.0","method":"sum","id":true},
 {"jsonrpc":"2.0","method":"sum","method":"sum","id":10},
 {"jsonrpc":"2.0","method":"sum","params":[],"extra":{"x":1},"id":11},
 "x", null, [], {}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":2},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":3},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":4},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":5},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":6},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":10},{"jsonrpc":"2.0","id":11,"result":0},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]
--- error_log
rpc: invalid request at position 0
--- upstream_requests
POST / HTTP/1.1
Host: backend
[{"jsonrpc":"2.0","id":0,"method":"sum","params":[]}]

=== TEST 11a: members other than these four are dropped, not forwarded
--- request
[{"extra":1,"jsonrpc":"2.0","method":"test_echo","params":[1],"id":"a"},
 {"jsonrpc":"2.0","x":{"id":9,"method":"m"},"method":"test_echo","params":{"id":2},"id":"b","y":[{"z":null}]},
 {"jsonrpc":"2.0","method":"sum","params":[3],"result":4,"error":{"code":1}}]
--- response_body
[{"jsonrpc":"2.0","id":"a","result":[1]},{"jsonrpc":"2.0","id":"b","result":{"id":2}}]
--- upstream_requests
POST / HTTP/1.1
Host: backend
[{"jsonrpc":"2.0","id":0,"method":"test_echo","params":[1]},{"jsonrpc":"2.0","id":1,"method":"test_echo","params":{"id":2}},{"jsonrpc":"2.0","method":"sum","params":[3]}]

=== TEST 12: escaped member names are the members they spell
--- request
{"jsonrpc":"2.0","m\u0065thod":"sum","params":[2,2],"\u0069d":"e"}
--- response_body
{"jsonrpc":"2.0","id":"e","result":4}

=== TEST 13: routing by method, across upstreams, in request order
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 2; }
upstream archive { server 127.0.0.1:$UPSTREAM2_PORT; keepalive 2; }
--- config
location /rpc {
    rpc_pass backend;
    rpc_route test_who* archive;
}
location /rpc2 {
    rpc_pass backend;
    rpc_route none archive;
    rpc_route test_whoami sum 127.0.0.1:$UPSTREAM2_PORT;
}
--- request
[{"jsonrpc":"2.0","method":"test_whoami","id":1},
 {"jsonrpc":"2.0","method":"test_echo","params":[2],"id":2},
 {"jsonrpc":"2.0","method":"test_whoami","id":3}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"},{"jsonrpc":"2.0","id":2,"result":[2]},{"jsonrpc":"2.0","id":3,"result":"UPSTREAM2"}]

=== TEST 14: routing to an address, second route
--- path
/rpc2
--- request
[{"jsonrpc":"2.0","method":"test_whoami","id":1},{"jsonrpc":"2.0","method":"test_echo","params":[2],"id":2}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":"UPSTREAM2"},{"jsonrpc":"2.0","id":2,"result":[2]}]
