# Real clients against a real node: ethers, the most used Ethereum client
# library, talks to ganache, an Ethereum node, through the gateway with
# upstream batches on.  Every answer must equal the one the node gives
# ethers directly; single calls of many clients travel in upstream batches.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use RPCTest;

my $js = "$RPCTest::Root/t/js";
-d "$js/node_modules/ethers" && -d "$js/node_modules/ganache"
    or BAIL_OUT("t/js/node_modules is missing: run 'make deps'");

# the node, stopped by PID at the end
my $node_port = port('GANACHE_PORT');
my $node = open(my $from_node, '-|', 'node', "$js/ganache.js", $node_port)
    or BAIL_OUT("node: $!");
{
    local $SIG{ALRM} = sub { BAIL_OUT('ganache did not start') };
    alarm 60;
    my $line = <$from_node> // '';
    alarm 0;
    $line =~ /^ready/ or BAIL_OUT('ganache did not start');
}
END { if ($node) { kill 'TERM', $node; close $from_node } }

start_nginx(http_config => <<'EOF', config => <<'EOF') or BAIL_OUT('nginx');
upstream ganache { server 127.0.0.1:$GANACHE_PORT; keepalive 8; }
log_format batch '$rpc_method $rpc_upstream_batch';
EOF
location /rpc {
    rpc_pass ganache;
    rpc_upstream_batch 16 window=2ms;
    rpc_deny_methods personal_*;
    access_log $SERVROOT/logs/batch.log batch;
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

RPCTest::check_error_log(0, 'ethers');
