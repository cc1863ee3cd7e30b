# Real clients over WebSocket through the gateway, with upstream batches on
# and an HTTP upstream: ethers 6's WebSocketProvider and viem's webSocket
# transport make a wallet's calls against ganache (reads, transfers, a
# contract deployed, called and logging, logs, errors, the reads an
# application batches), and every answer must equal what the same client
# gets over HTTP from the gateway and from the node directly; 200 calls at
# once over one connection (more than rpc_websocket_max_calls), and answers
# that come back out of order (a slow call routed to an upstream that
# sleeps, sent before quick ones).  The ws package sends what a library may
# put on the wire: batches (the same bytes back as over HTTP), a
# notification, a 1 MiB message in 1,000+ fragments with a ping between two
# of them, pings and an unsolicited pong, closes with an application's code
# and without a code (echoed).  The work is done by t/js/websocket.js.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use RPCTest;

my $js = "$RPCTest::Root/t/js";
-d "$js/node_modules/$_" or BAIL_OUT("t/js/node_modules/$_ is missing: run 'make deps'")
    for qw(ethers ganache viem ws);

# ganache prints "ready" once it listens; stopped at the end
my @servers;
sub serve {
    my (@args) = @_;
    my $pid = open(my $out, '-|', 'node', @args) or BAIL_OUT("node: $!");
    push @servers, [$pid, $out];
    local $SIG{ALRM} = sub { BAIL_OUT("@args did not start") };
    alarm 60;
    my $line = <$out> // '';
    alarm 0;
    $line =~ /^ready/ or BAIL_OUT("@args did not start");
}
END { local $?; for (@servers) { kill 'TERM', $_->[0]; close $_->[1] } }

my $node_port = port('GANACHE_PORT');
serve("$js/ganache.js", $node_port);

# test_* (test_sleep: an answer after N ms) goes to t/lib/upstream.pl
start_nginx(http_config => <<'EOF', config => <<'EOF') or BAIL_OUT('nginx');
upstream ganache { server 127.0.0.1:$GANACHE_PORT; keepalive 8; }
log_format ws '$status $rpc_messages $rpc_calls $rpc_websocket_close';
EOF
location /rpc {
    rpc_pass ganache;
    rpc_websocket on;
    rpc_upstream_batch 16 window=2ms;
    rpc_deny_methods personal_*;
    rpc_route test_* 127.0.0.1:$UPSTREAM_PORT;
    access_log $SERVROOT/logs/ws.log ws;
}
EOF

my $gw = '127.0.0.1:' . port('SERVER_PORT') . '/rpc';
my $out = `timeout 150 node $js/websocket.js ws://$gw http://$gw http://127.0.0.1:$node_port/`;
is($?, 0, 'websocket.js ran') or BAIL_OUT("websocket.js failed: $out");
# its findings are the last line (a library may print before)
my ($last) = $out =~ /([^\n]+)\n*\z/;
my $r = eval { decode_json($last // '') } or BAIL_OUT("websocket.js printed no JSON: $out");
note("websocket.js took $r->{ms} ms");

for my $lib (qw(ethers viem raw)) {
    ok(!$r->{"${lib}_failed"}, "$lib: every step ran")
        or diag($r->{"${lib}_failed"});
}
is_deeply($r->{malformed}, [], 'ethers, viem: every frame JSON')
    or diag(join "\n", @{$r->{malformed}});
is_deeply($r->{uncaught}, [], 'no library threw on a frame')
    or diag(join "\n", @{$r->{uncaught}});

# each call as each client gets it over WebSocket, over HTTP, from the node
for my $lib (qw(ethers viem)) {
    for my $c (@{$r->{$lib}}) {
        is_deeply($c->{ws}, $c->{http}, "$lib: $c->{name}: over ws:// as over HTTP")
            or diag(explain($c));
        if ($c->{gateway_only}) {
            is($c->{ws}{rpc_error}{code}, -32601, "$lib: $c->{name}: the gateway's -32601");
        } else {
            is_deeply($c->{ws}, $c->{node}, "$lib: $c->{name}: over ws:// as from the node")
                or diag(explain($c));
        }
    }
}
is(scalar @{$r->{ethers} // []}, 25, 'ethers: all 25 calls compared');
is(scalar @{$r->{viem} // []}, 15, 'viem: all 15 calls compared');

is($r->{ethers_transfer}{status}, 1, 'ethers: a transfer sent over ws:// is mined');
is_deeply($r->{ethers_log}, { status => 1, logs => 1, data => '0xc0ffee' },
          'ethers: a contract deployed and called over ws:// logs its calldata');
is($r->{viem_transfer}{status}, 'success', 'viem: a transfer sent over ws:// is mined');
is_deeply($r->{ethers_errors}, [], 'ethers: no answer for an unknown id, nothing unexpected');

# half of them eth_call to a contract that returns its calldata, a number
# of each call: an answer given to the wrong call shows
for my $lib (qw(ethers viem)) {
    my $c = $r->{"${lib}_concurrent"} // {};
    is($c->{same}, 200, "$lib: 200 calls at once over one ws://, every answer the node's");
    is($c->{echoed}, 100, "$lib: the 100 eth_calls among them each got its own number back");
}

# the slow call left first and was answered last; the quick ones still
# found their calls
for my $lib (qw(ethers viem)) {
    my $o = $r->{"${lib}_out_of_order"} // {};
    is($o->{slow}, 'slept', "$lib: a slow call answered");
    is($o->{same}, 10, "$lib: the 10 quick calls sent after it answered right");
    ok(defined $o->{slow_sent} && $o->{slow_sent} == 0
       && defined $o->{answers} && $o->{slow_received} == $o->{answers} - 1,
       "$lib: the slow call left first and came back last (out of order)")
        or diag(explain($o));
}
note("viem keepAlive calls (id null) answered: " . ($r->{viem_keepalive_answers} // '-'));

# the ws package: raw frames (texts inside the findings are characters)
my $w = $r->{raw};
my $J = JSON::PP->new->allow_nonref;
sub dec { my ($t) = @_; defined $t ? eval { $J->decode($t) } : undef }
is_deeply($w->{handshake}, { extensions => '', protocol => '' },
          'ws: no extension (permessage-deflate offered) and no subprotocol taken');
for my $name ('batch of reads', 'mixed batch', 'single') {
    is($w->{$name}{ws}, $w->{$name}{http}, "ws: $name: the bytes HTTP gives");
}
for my $name ('batch of reads', 'single') {
    is_deeply(dec($w->{$name}{ws}), dec($w->{$name}{node}),
              "ws: $name: the node's answer");
}
my $mixed = dec($w->{'mixed batch'}{ws}) // [];
is_deeply([map { $_->{error} ? $_->{error}{code} : 'result' } @$mixed[0 .. 2]],
          ['result', -32601, -32600],
          'ws: mixed batch: a result, the denied and the invalid element answered by the gateway');
is(scalar @$mixed, 4, 'ws: mixed batch: the notification left out');
is_deeply(dec($w->{after_notification}),
          { jsonrpc => '2.0', id => 'after', result => '0x539' },
          'ws: a call after a notification answered');
my $f = $w->{fragmented} // {};
ok($f->{bytes} == 1048576 && $f->{fragments} > 1000, "ws: a message of $f->{bytes} bytes in $f->{fragments} fragments");
is_deeply(dec($f->{ws}), dec($f->{node}),
          "ws: its answer the node's (in $f->{ms} ms)");
is_deeply($f->{pongs}, [unpack('H*', 'between fragments')], 'ws: a ping between two fragments: its pong');
is_deeply($w->{pongs}{got}, $w->{pongs}{want}, 'ws: pings of 0, 5 and 125 bytes: pongs with their payloads');
is_deeply(dec($w->{after_pings}), { jsonrpc => '2.0', id => 7, result => '0x539' },
          'ws: an unsolicited pong ignored, the next call answered');
is($w->{close}{code}, 4000, 'ws: close 4000: the gateway echoes 4000');
is($w->{logged_close}, 4001, 'ws: close 4001: echoed');
is($w->{empty_close}{code}, 1005, 'ws: a close without a code: an empty close back');
is_deeply(dec($w->{after_empty_close}), { jsonrpc => '2.0', id => 'next', result => '0x539' },
          'ws: and the next connection is served');
is_deeply($w->{extra}, [], 'ws: no frame that answers nothing sent');

# one access-log line per connection: 2 messages, 4 calls, close code
select(undef, undef, undef, 0.2);
my $log = RPCTest::slurp(servroot() . '/logs/ws.log');
like($log, qr/^101 2 4 4001$/m, 'access log: the connection: 101, 2 messages, 4 calls, close 4001')
    or diag("WebSocket lines of the access log:\n", join "\n", grep { /^101 / } split /\n/, $log);

RPCTest::check_error_log(0, 'ethers, viem and ws over ws://');
stop_nginx();
