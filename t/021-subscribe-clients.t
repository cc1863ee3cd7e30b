# Real subscribers against ganache through the gateway (rpc_subscribe_pass
# to ganache's ws://, calls to its HTTP through rpc_pass): ethers 6's
# WebSocketProvider on("block") and a log filter, viem's watchBlockNumber
# and watchBlocks over its webSocket transport, and 50 clients of the ws
# package subscribed to newHeads.  A block mined (evm_mine over HTTP to
# ganache) and a transaction that logs reach all of them, each event with
# the client's own subscription id; then ganache is killed (SIGKILL) and
# started again on the same port with the same chain: every client keeps
# its connection and gets the next blocks and logs with its original id;
# the libraries unsubscribe with true.  How many upstream subscriptions they
# cost is counted in t/020-subscribe.t (ganache cannot count them).  The
# work is done by t/js/subscribe.js.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use RPCTest;

my $js = "$RPCTest::Root/t/js";
-d "$js/node_modules/$_" or BAIL_OUT("t/js/node_modules/$_ is missing: run 'make deps'")
    for qw(ethers ganache viem ws);

# ganache is started, killed and started again by subscribe.js on this port
start_nginx(http_config => <<'EOF', config => <<'EOF') or BAIL_OUT('nginx');
upstream ganache { server 127.0.0.1:$GANACHE_PORT; keepalive 8; }
EOF
location /rpc {
    rpc_pass ganache;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$GANACHE_PORT/;
    rpc_subscribe_reconnect 100ms 500ms;
}
EOF

my $db = servroot() . '/ganache-db';
mkdir $db;
my $gw = 'ws://127.0.0.1:' . port('SERVER_PORT') . '/rpc';
my $log = servroot() . '/subscribe.js.log';
my $out = `timeout 150 node $js/subscribe.js $gw ${\ port('GANACHE_PORT')} $db 2>>$log`;
my $rc = $? >> 8;
my ($last) = $out =~ /([^\n]+)\n*\z/;
my $r = eval { decode_json($last // '') }
    or BAIL_OUT("subscribe.js printed no JSON ($rc): $out\n" . RPCTest::slurp($log));
is($rc, 0, 'subscribe.js ran to its end')
    or diag(join "\n", @{ $r->{errors} }, RPCTest::slurp($log));
is_deeply($r->{uncaught}, [], 'no library threw on a frame');

# subscriptions: ids the gateway made, one each
my $w = $r->{raw} // {};
is($w->{ids}, 50, 'ws: 50 subscribe answers, each "0x" and 32 hex digits')
    or diag(explain($w->{sample}));
is($w->{distinct}, 50, 'ws: 50 different ids');
my $l = $r->{libraries} // {};
is(scalar @{ $l->{ethers_subscriptions} // [] }, 2,
   'ethers: two subscriptions (block, log filter)');
is(scalar @{ $l->{viem_subscriptions} // [] }, 2,
   'viem: two subscriptions (watchBlockNumber, watchBlocks)');
is($l->{ids}, 4, 'ethers, viem: ids of the gateway');
is($l->{distinct_from_raw}, 4, "ethers, viem: ids none of the ws clients has");

# before the restart: a block, and a transaction that logs
my $b = $r->{before} // {};
my ($b1, $b2) = @{ $b->{mined} // [] };
ok($b->{reached}, "a block mined ($b1) and one with a log ($b2) reach every "
   . "client (in $b->{ms} ms)");
is($b->{raw_b1}, 50, "ws: all 50 got block $b1");
is($b->{raw_b2}, 50, "ws: all 50 got block $b2");
is_deeply($b->{ethers_blocks}, [$b1, $b2], 'ethers: on("block") got both');
is_deeply($b->{ethers_logs}, [{ data => '0xc0ffee01', block => $b2 }],
          'ethers: the log filter got the log');
is_deeply($b->{viem_numbers}, [$b1, $b2], 'viem: watchBlockNumber got both');
is_deeply($b->{viem_blocks}, [$b1, $b2], 'viem: watchBlocks got both');

# after ganache was killed and started again
my $a = $r->{after} // {};
note("ganache down for $a->{restart_ms} ms; every client got a block "
     . "$a->{resumed_ms} ms after it was back; blocks mined meanwhile: "
     . join(',', @{ $a->{mined} // [] }));
is_deeply($w->{closed}, [], 'ganache killed and restarted: no client '
          . 'connection was closed');
ok($a->{resumed_ms} < 10000, 'ganache restarted: blocks reach every client '
   . 'again (within 10 s)');
ok($a->{reached}, "ganache restarted: a transaction that logs (block "
   . "$a->{log_block}) reaches every client");
is($a->{raw_b3}, 50, 'ganache restarted: all 50 ws clients got that block');
ok((grep { $_ == $a->{log_block} } @{ $a->{ethers_blocks} // [] }),
   'ganache restarted: ethers on("block") got it');
is_deeply($a->{ethers_logs}, [{ data => '0xc0ffee02', block => $a->{log_block} }],
          'ganache restarted: the ethers log filter got the new log');
ok((grep { $_ == $a->{log_block} } @{ $a->{viem_numbers} // [] }),
   'ganache restarted: viem watchBlockNumber got it');
ok((grep { $_ == $a->{log_block} } @{ $a->{viem_blocks} // [] }),
   'ganache restarted: viem watchBlocks got it');
is(($a->{mined}[0] // 0), $b2 + 1, 'ganache restarted with its chain: the '
   . 'block numbers go on');

is($w->{own_id_only}, 50, 'ws: every event of every client carries the id '
   . 'it was given, before and after the restart');
is($w->{early}, 0, 'ws: no event before the subscribe answer');
is_deeply($l->{foreign_events}, [], 'ethers, viem: no event for an id they '
          . 'were not given');
is_deeply($w->{errors}, [], 'ws: no message other than answers and events');
is_deeply($r->{unsubscribe}, [ (JSON::PP::true) x 4 ],
          'ethers off(), viem unwatch: four eth_unsubscribe, each true');

RPCTest::check_error_log(0, 'ethers, viem and ws subscribers');
stop_nginx();
