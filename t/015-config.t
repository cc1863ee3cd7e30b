# Configuration: every example in conf-examples/ passes nginx -t; a
# directive that would silently do nothing, or a bad value, fails nginx -t
# naming the directive, file and line; rpc_cache_key decides which
# locations share cache entries and calls in flight.
#
# A block with --- conf is a whole nginx.conf given to nginx -t ($MODULE is
# the module under test): --- emerg is the message it must fail with ($CONF
# is the file), --- ok that it passes.  Other blocks are requests, as in the
# other files.
use strict;
use warnings;
use Test::Base;
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use RPCTest;

# --- every example passes nginx -t, with the module and ports of the test

mkdir servroot() . '/run';

my @examples = glob("$RPCTest::Root/conf-examples/*.conf");
ok(@examples >= 2, 'conf-examples/ has its examples');

for my $example (@examples) {
    my ($name) = $example =~ m{([^/]+)$};
    open my $f, '<', $example or die "$example: $!";
    my $text = do { local $/; <$f> };
    close $f;

    my $loads = $text =~ s/^(\s*load_module\s+)\S+;/$1$RPCTest::Module;/mg;
    my $listens = $text =~ s/^(\s*listen\s+)\S+;/
                             "${1}127.0.0.1:" . RPCTest::free_port() . ';'/mge;
    is($loads, 1, "$name: loads the module once");
    ok($listens >= 1, "$name: listens");

    my $conf = servroot() . "/$name";
    open $f, '>', $conf or die "$conf: $!";
    print $f $text;
    close $f;

    my ($rc, $out) = nginx_test_config($conf);
    is($rc, 0, "$name: nginx -t passes") or diag($out);
    unlike($out, qr/\[(emerg|alert|crit)\]/, "$name: nothing worse than warn")
        or diag($out);
}

# --- quickstart.conf answers a call, as `make run` starts it

{
    my $example = "$RPCTest::Root/conf-examples/quickstart.conf";
    open my $f, '<', $example or die "$example: $!";
    my $text = do { local $/; <$f> };
    close $f;

    my $port = RPCTest::free_port();
    my $upstream = RPCTest::expand('$UPSTREAM_PORT');
    $text =~ s/^(\s*load_module\s+)\S+;/$1$RPCTest::Module;/m;
    $text =~ s/^(\s*listen\s+)\S+;/${1}127.0.0.1:$port;/m;
    is($text =~ s/\bserver 127\.0\.0\.1:8545;/server 127.0.0.1:$upstream;/,
       1, 'quickstart.conf: the demo upstream is on 127.0.0.1:8545');

    my $conf = servroot() . '/quickstart-run.conf';
    open $f, '>', $conf or die "$conf: $!";
    print $f $text;
    close $f;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', servroot() . '/quickstart.log';
        open STDOUT, '>>', servroot() . '/quickstart.log';
        RPCTest::asan_env();
        exec $RPCTest::Nginx, '-p', servroot() . '/', '-c', $conf, '-g',
             'daemon off; master_process off;' . ($> == 0 ? ' user root;' : '');
        die "exec: $!";
    }
    ok(RPCTest::wait_port($port, $pid), 'quickstart.conf: nginx starts')
        or diag(RPCTest::slurp(servroot() . '/quickstart.log'));

    my $r = RPCTest::http_request(port => $port, path => '/rpc',
        method => 'POST',
        body => '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}');
    is($r->{body}, '{"jsonrpc":"2.0","id":1,"result":19}',
       'quickstart.conf: the call of the README is answered');

    kill 'TERM', $pid;
    waitpid($pid, 0);
    my $log = RPCTest::slurp(servroot() . '/run/error.log');
    ok(length $log && $log !~ /\[(alert|crit|emerg)\]/,
       'quickstart.conf: its error.log, in run/, has no alert') or diag($log);
}

# --- the blocks

for my $block (blocks()) {
    my $conf = $block->can('conf') ? $block->conf : undef;

    if (!defined $conf) {
        RPCTest::run_block($block);
        next;
    }

    my $name = $block->name;
    my $file = servroot() . '/check.conf';
    $conf =~ s/\$MODULE\b/$RPCTest::Module/g;
    open my $f, '>', $file or die "$file: $!";
    # last, so that the lines above keep their numbers
    print $f $conf, "\npid ", servroot(), "/check.pid;\n";
    close $f;

    my ($rc, $out) = nginx_test_config($file);

    if ($block->can('ok') && defined $block->ok) {
        is($rc, 0, "$name - nginx -t passes") or diag($out);
        next;
    }

    (my $emerg = $block->emerg) =~ s/\n\z//;
    $emerg =~ s/\$CONF\b/$file/g;
    isnt($rc, 0, "$name - nginx -t fails");
    like($out, qr/\[emerg\] \d+#\d+: \Q$emerg\E$/m,
         "$name - the message names the directive, file and line")
        or diag($out);
}

RPCTest::stop_nginx();

# --- calls in flight collapse only when their keys are the same

# two calls of test_sleep with the same params, the second sent while the
# first is upstream: (upstream calls, their $rpc_cache_status sorted)
sub in_flight {
    my ($path1, $path2, $tag) = @_;
    my $body = qq({"jsonrpc":"2.0","method":"test_sleep","params":[1000,"$tag"],"id":1});
    my $n = RPCTest::upstream_calls('test_sleep');
    my $lines = my @before = split /\n/, access_log_text();

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = http_post($body, path => $path1);
        POSIX::_exit($r->{body} =~ /"result":"slept"/ ? 0 : 1);
    }
    Time::HiRes::sleep(0.2);
    my $r = http_post($body, path => $path2);
    waitpid($pid, 0);
    is($? >> 8, 0, "$tag: the first call is answered");
    like($r->{body}, qr/"result":"slept"/, "$tag: the second call is answered");

    # both lines are logged, maybe just after the answers went out
    my @log;
    my $end = Time::HiRes::time() + 5;
    do {
        @log = split /\n/, access_log_text();
    } while (@log < $lines + 2 && Time::HiRes::time() < $end
             && Time::HiRes::sleep(0.02));
    my @status = sort map { /c=(\S+)/ ? $1 : '?' } @log[$lines .. $#log];
    return (RPCTest::upstream_calls('test_sleep') - $n, "@status");
}

start_nginx(http_config => <<'EOF', config => <<'EOF') or BAIL_OUT('nginx');
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
rpc_cache_zone keys:1m;
rpc_cache_valid test_sleep 1h;
rpc_cache keys;
EOF
location /a  { rpc_pass backend; rpc_cache_key chain-a; }
location /a2 { rpc_pass backend; rpc_cache_key chain-a; }
location /b  { rpc_pass backend; rpc_cache_key chain-b; }
EOF

{
    my ($calls, $status) = in_flight('/a', '/b', 'different keys');
    is($calls, 2, 'different keys: both calls go upstream');
    is($status, 'MISS MISS', 'different keys: neither waits for the other');

    ($calls, $status) = in_flight('/a', '/a2', 'same key');
    is($calls, 1, 'same key: one call goes upstream');
    is($status, 'COLLAPSED MISS', 'same key: the second waits for the first');
}

__DATA__

=== TEST 1: rpc_route in a location without rpc_pass does nothing
--- conf
load_module $MODULE;
events {}
http {
    server {
        location /rpc {
            rpc_route eth_getLogs 127.0.0.1:1;
        }
    }
}
--- emerg
"rpc_route" has no effect without "rpc_pass" in $CONF:6



=== TEST 2: rpc_route inherited by a nested location with rpc_pass
--- conf
load_module $MODULE;
events {}
http {
    server {
        location /rpc {
            rpc_route eth_getLogs 127.0.0.1:1;
            location /rpc/main { rpc_pass 127.0.0.1:2; }
        }
    }
}
--- ok



=== TEST 3: rpc_cache_valid where rpc_pass has no rpc_cache does nothing
--- conf
load_module $MODULE;
events {}
http {
    rpc_cache_zone rpc:1m;
    server {
        location /rpc {
            rpc_pass 127.0.0.1:1;
            rpc_cache_valid eth_chainId 1h;
        }
    }
}
--- emerg
"rpc_cache_valid" has no effect without "rpc_cache" in $CONF:8



=== TEST 4: rpc_cache_valid and rpc_cache without rpc_pass do nothing
--- conf
load_module $MODULE;
events {}
http {
    rpc_cache_zone rpc:1m;
    server {
        location /rpc {
            rpc_cache rpc;
            rpc_cache_valid eth_chainId 1h;
            rpc_cache_valid net_version 1h;
        }
    }
}
--- emerg
"rpc_cache_valid" has no effect without "rpc_pass" in $CONF:8



=== TEST 5: rpc_cache_valid of http {} with rpc_cache off where rpc_pass is
--- conf
load_module $MODULE;
events {}
http {
    rpc_cache_zone rpc:1m;
    rpc_cache rpc;
    rpc_cache_valid eth_chainId 1h;
    server {
        location /static { }
        location /rpc {
            rpc_pass 127.0.0.1:1;
            rpc_cache off;
        }
    }
}
--- emerg
"rpc_cache_valid" has no effect without "rpc_cache" in $CONF:6



=== TEST 6: rpc_cache_valid of http {} used by one location of several
--- conf
load_module $MODULE;
events {}
http {
    rpc_cache_zone rpc:1m;
    rpc_cache_valid eth_chainId 1h;
    server {
        location /static { }
        location /uncached { rpc_pass 127.0.0.1:1; }
        location /rpc {
            rpc_pass 127.0.0.1:1;
            rpc_cache rpc;
        }
    }
}
--- ok



=== TEST 7: rpc_max_batch 0 is refused, naming the directive
--- conf
load_module $MODULE;
events {}
http {
    server {
        location /rpc {
            rpc_pass 127.0.0.1:1;
            rpc_max_batch 0;
        }
    }
}
--- emerg
"rpc_max_batch" directive value must be between 1 and 65535 in $CONF:7



=== TEST 8: rpc_max_depth above its bound is refused, naming the directive
--- conf
load_module $MODULE;
events {}
http {
    rpc_max_depth 65536;
}
--- emerg
"rpc_max_depth" directive value must be between 1 and 65535 in $CONF:4



=== TEST 9: rpc_cache_key takes one value
--- conf
load_module $MODULE;
events {}
http {
    rpc_cache_key a b;
}
--- emerg
invalid number of arguments in "rpc_cache_key" directive in $CONF:4



=== TEST 10: a miss in a location keyed "chain-a"
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
rpc_cache_zone keys:1m;
rpc_cache_valid test_seq 1h;
--- config
location /a {
    rpc_pass backend;
    rpc_cache keys;
    rpc_cache_key chain-a;
}
location /a2 {
    rpc_pass backend;
    rpc_cache keys;
    rpc_cache_key chain-a;
}
location /b {
    rpc_pass backend;
    rpc_cache keys;
    rpc_cache_key chain-b;
}
location /header {
    rpc_pass backend;
    rpc_cache keys;
    rpc_cache_key chain-$http_x_chain;
}
--- path
/a
--- request
{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":1}
--- response_body_like
^\{"jsonrpc":"2.0","id":1,"result":"UPSTREAM:\d+"\}$
--- access_log
c=MISS



=== TEST 11: the same call there is a hit
--- path
/a
--- request
{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":2}
--- access_log
c=HIT



=== TEST 12: the same upstream keyed "chain-b" does not see it
--- path
/b
--- request
{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":3}
--- access_log
c=MISS



=== TEST 13: another location keyed "chain-a" shares it
--- path
/a2
--- request
{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":4}
--- access_log
c=HIT



=== TEST 14: a key with a variable: "chain-a" from a header shares it
--- path
/header
--- more_headers
X-Chain: a
--- request
{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":5}
--- access_log
c=HIT



=== TEST 15: another value of the header is another key
--- path
/header
--- more_headers
X-Chain: c
--- request
{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":6}
--- access_log
c=MISS



=== TEST 16: rpc_websocket_max_calls 0 is refused, naming the directive
--- conf
load_module $MODULE;
events {}
http {
    server {
        location /rpc {
            rpc_pass 127.0.0.1:1;
            rpc_websocket on;
            rpc_websocket_max_calls 0;
        }
    }
}
--- emerg
"rpc_websocket_max_calls" directive value must be between 1 and 65535 in $CONF:8



=== TEST 17: rpc_websocket_protocols is given once
--- conf
load_module $MODULE;
events {}
http {
    rpc_websocket_protocols jsonrpc;
    rpc_websocket_protocols jsonrpc2.0;
}
--- emerg
"rpc_websocket_protocols" directive is duplicate in $CONF:5



=== TEST 18: rpc_websocket takes on or off
--- conf
load_module $MODULE;
events {}
http {
    rpc_websocket yes;
}
--- emerg
invalid value "yes" in "rpc_websocket" directive, it must be "on" or "off" in $CONF:4



=== TEST 19: rpc_metrics without rpc_metrics_zone is refused
--- conf
load_module $MODULE;
events {}
http {
    server {
        location = /metrics { rpc_metrics; }
    }
}
--- emerg
"rpc_metrics" needs "rpc_metrics_zone" in $CONF:5



=== TEST 20: rpc_metrics_buckets must grow
--- conf
load_module $MODULE;
events {}
http {
    rpc_metrics_buckets 0.1 0.05;
}
--- emerg
invalid bucket "0.05": seconds, at most 3 decimals, increasing in $CONF:4
