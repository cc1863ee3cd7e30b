# The request/response examples of the JSON-RPC 2.0 specification, section 7,
# sent through the gateway to an upstream that implements their methods.
use strict;
use warnings;
use Test::Base;
use lib 't/lib';
use RPCTest;

run_blocks();

__DATA__

=== TEST 1: rpc call with positional parameters
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
--- config
location /rpc { rpc_pass backend; }
--- request
{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}
--- error_code
200
--- response_json
{"jsonrpc": "2.0", "result": 19, "id": 1}

=== TEST 2: positional parameters, again
--- request
{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}
--- response_json
{"jsonrpc": "2.0", "result": -19, "id": 2}

=== TEST 3: rpc call with named parameters
--- request
{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}
--- response_json
{"jsonrpc": "2.0", "result": 19, "id": 3}

=== TEST 4: named parameters, order swapped
--- request
{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}
--- response_json
{"jsonrpc": "2.0", "result": 19, "id": 4}

=== TEST 5: a notification gets no body
--- request
{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}
--- error_code
204
--- response_body

=== TEST 6: another notification
--- request
{"jsonrpc": "2.0", "method": "foobar"}
--- error_code
204
--- response_body

=== TEST 7: rpc call of non-existent method (answered by the upstream)
--- request
{"jsonrpc": "2.0", "method": "foobar", "id": "1"}
--- response_json
{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}

=== TEST 8: rpc call with invalid JSON
--- request
{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]
--- error_code
200
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON

=== TEST 9: rpc call with invalid Request object
--- request
{"jsonrpc": "2.0", "method": 1, "params": "bar"}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}

=== TEST 10: rpc call Batch, invalid JSON
--- request
[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 11: rpc call with an empty Array
--- request
[]
--- response_body
{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}

=== TEST 12: rpc call with an invalid Batch (but not empty)
--- request
[1]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]

=== TEST 13: rpc call with invalid Batch
--- request
[1,2,3]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]

=== TEST 14: rpc call Batch
--- request
[
    {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
    {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
    {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
    {"foo": "boo"},
    {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
    {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
]
--- response_json
[
    {"jsonrpc": "2.0", "result": 7, "id": "1"},
    {"jsonrpc": "2.0", "result": 19, "id": "2"},
    {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
    {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
    {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
]

=== TEST 15: rpc call Batch (all notifications)
--- request
[
    {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
    {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
]
--- error_code
204
--- response_body
