# Real clients against real servers, through the gateway with upstream
# batches on.  ethers, the most used Ethereum client library, talks to
# ganache, an Ethereum node; jayson, a plain JSON-RPC 2.0 library, is client
# and server.  Every answer must equal the one the client gets directly;
# single calls of many clients travel in upstream batches.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use RPCTest;

my $js = "$RPCTest::Root/t/js";
-d "$js/node_modules/ethers" && -d "$js/node_modules/ganache"
    or BAIL_OUT("t/js/node_modules is missing: run 'make deps'");

# a node process that prints "ready" once it listens; stopped at the end
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
END { for (@servers) { kill 'TERM', $_->[0]; close $_->[1] } }

my $node_port = port('GANACHE_PORT');
serve("$js/ganache.js", $node_port);
serve("$js/jayson.js", 'server', port('JAYSON_PORT'));

start_nginx(http_config => <<'EOF', config => <<'EOF') or BAIL_OUT('nginx');
upstream ganache { server 127.0.0.1:$GANACHE_PORT; keepalive 8; }
upstream jayson { server 127.0.0.1:$JAYSON_PORT; keepalive 8; }
log_format batch '$rpc_method $rpc_upstream_batch';
EOF
location /rpc {
    rpc_pass ganache;
    rpc_upstream_batch 16 window=2ms;
    rpc_deny_methods personal_*;
    access_log $SERVROOT/logs/batch.log batch;
}
location /plain {
    rpc_pass jayson;
    rpc_upstream_batch 8 window=1ms;
}
EOF

my $gateway = 'http://127.0.0.1:' . port('SERVER_PORT') . '/rpc';
my $out = `timeout 300 node $js/clients.js $gateway http://127.0.0.1:$node_port/`;
is($?, 0, 'the ethers script ran') or BAIL_OUT("clients.js failed: $out");
my $r = decode_json($out);

ok($r->{reads}{same}, "a batch of $r->{reads}{calls} reads: the node's answers");
is($r->{transaction}{status}, 1, 'a transaction sent through the gateway is mined');
is($r->{transaction}{received}, '1000', 'its value arrived');
ok($r->{transaction}{seen}, 'and the gateway finds it by hash');
is($r->{singles}{same}, $r->{singles}{calls},
   "32 clients x 5 rounds of single calls: all $r->{singles}{calls} answers the node's");
# ganache answers an unknown method with -32700 and a null id
is_deeply($r->{errors}{unknown}, [-32700, -32700],
          'an unknown method: the node\'s own error, passed through');
is($r->{errors}{denied}, -32601, 'a denied method: the gateway\'s -32601');

# the single calls of many clients went up in shared batches
my @sizes = map { /^eth_getBalance (\d+)$/ ? $1 : () }
            split /\n/, RPCTest::slurp(servroot() . '/logs/batch.log');
my $max = 0;
$max = $_ > $max ? $_ : $max for @sizes;
ok($max > 4, "single calls of many clients shared upstream batches (up to $max)");

# jayson, a plain JSON-RPC 2.0 library, as client and as server: calls
# with positional and named params, the server's own errors, notifications
# and a batch mixing them, through the gateway and directly
my $plain = 'http://127.0.0.1:' . port('SERVER_PORT') . '/plain';
$out = `timeout 120 node $js/jayson.js client $plain http://127.0.0.1:@{[port('JAYSON_PORT')]}/`;
is($?, 0, 'the jayson script ran') or BAIL_OUT("jayson.js failed: $out");
$r = decode_json($out);
is($r->{gateway}{notified}{result}, 2, 'jayson: the gateway delivered both notifications');
is($r->{direct}{notified}{result}, 4, 'and so did the direct calls after them');
delete $_->{notified} for $r->{gateway}, $r->{direct};
is_deeply($r->{gateway}, $r->{direct}, 'jayson: every answer as the server gives it')
    or diag(explain($r));
is_deeply($r->{gateway}{error}, { error => { code => 4711, message => 'no luck', data => [1] } },
          'the server\'s own error, data and all');

RPCTest::check_error_log(0, 'ethers and jayson');
