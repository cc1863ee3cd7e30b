# The life of a call: every call is answered once, for its own reasons, and
# a client that goes away at any step takes only its own calls with it:
# hang-ups with identical calls in one batch, in Redis lookups, in batchers
# and in flight; upstream errors without a usable code; values in Redis
# that are not one JSON value; a reply too large for one call of a batch;
# bodies read before the handler (mirror); log_subrequest with $rpc_*.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use lib 't/lib';
use RPCTest;

my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_cache_zone one:1m max_entry=2k;
rpc_cache_zone large:4m max_entry=2m;
rpc_cache_redis 127.0.0.1:$REDIS_PORT timeout=2s;
EOF

my $config = <<'EOF';
location /rpc {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_sleep test_seq 1h;
    rpc_timeout 5s;
}
location /large {
    rpc_pass backend;
    rpc_cache large;
    rpc_cache_valid test_seq 1h;
}
location /batched {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_sleep test_seq 1h;
    rpc_upstream_batch 8 window=300ms;
}
location /big {
    rpc_pass backend;
    rpc_max_reply_size 4k;
    rpc_upstream_batch 8 window=200ms;
}
location /bigoff {
    rpc_pass backend;
    rpc_max_reply_size 4k;
}
location /bigcache {
    rpc_pass backend;
    rpc_max_reply_size 2k;
    rpc_cache one;
    rpc_cache_valid test_seq 1h;
}
location /mirrored {
    mirror /copy;
    rpc_pass backend;
}
location /mirrored-file {
    mirror /copy;
    client_body_buffer_size 1k;
    rpc_pass backend;
}
location = /copy { internal; return 204; }
location /shadowed {
    mirror /shadow;
    rpc_pass backend;
}
location = /shadow { internal; rpc_pass backend; }
EOF

# upstream errors with odd codes, from this nginx itself
my @codes = ('0', '"x"', '1.5', 'null', '99999999999999999999999', '-32000');

for my $i (0 .. $#codes) {
    $config .= <<"EOF";
location /odd$i {
    rpc_pass http://127.0.0.1:\$SERVER_PORT/code$i;
    rpc_cache one;
    rpc_cache_valid * 1h;
}
location = /code$i {
    return 200 '[{"jsonrpc":"2.0","id":0,"error":{"code":$codes[$i],"message":"odd"}}]';
}
EOF
}

sub rpc {
    my ($body, %o) = @_;
    return http_post($body, %o)->{body};
}

sub call {
    my ($m, $p, $id) = @_;
    return qq({"jsonrpc":"2.0","method":"$m","params":$p,"id":$id});
}

my $from = 0;

# nginx still answers, and nothing crashed or was reported since the last
sub still_fine {
    my ($name) = @_;
    sleep 0.3;
    is(rpc(call('sum', '[1,2]', 7)), '{"jsonrpc":"2.0","id":7,"result":3}',
       "$name: nginx answers afterwards");
    my @bad = grep { /\[(alert|crit|emerg)\]|signal|Sanitizer|runtime error/ }
              split /\n/, error_log_text($from);
    ok(!@bad, "$name: no crash") or diag(join "\n", @bad);
    $from = length error_log_text();
}

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');

# --- a hang-up while a call leads and an identical one of the same batch
# waits for it: the waiting call goes with its request (was a use after
# free in the wake-up of the freed request)
my $two = '[' . call('test_sleep', '[400,"a"]', 1) . ','
              . call('test_sleep', '[400,"a"]', 2) . ']';
http_post($two, hang_up => 0.15);
still_fine('hang-up, two identical calls in one batch');

# the same, three times over, with the leader in a batcher's queue
my $three = '[' . join(',', map { call('test_sleep', '[200,"b"]', $_) } 1 .. 3)
          . ']';
http_post($three, path => '/batched', hang_up => 0.1);
still_fine('hang-up, identical calls queued in a batcher');

# the leader's request goes, the waiting request of another client takes
# the lead and is answered
{
    my $pid = fork // die;
    if ($pid == 0) {
        http_post(call('test_sleep', '[400,"c"]', 1), hang_up => 0.1);
        POSIX::_exit(0);
    }
    sleep 0.05;
    my $b = rpc('[' . call('test_sleep', '[400,"c"]', 5) . ','
                . call('test_sleep', '[400,"c"]', 6) . ']');
    waitpid($pid, 0);
    is($b, '[{"jsonrpc":"2.0","id":5,"result":"slept"},'
           . '{"jsonrpc":"2.0","id":6,"result":"slept"}]',
       'a waiting client takes the lead of a client that went away');
    still_fine('hang-up of a leader with waiters of another client');
}

# a hang-up while the calls wait for a slow Redis
{
    my $pid = fork // die;
    if ($pid == 0) {
        redis_cli('DEBUG', 'SLEEP', '0.5');
        POSIX::_exit(0);
    }
    sleep 0.05;
    http_post('[' . call('test_seq', '["r"]', 1) . ','
              . call('test_seq', '["r"]', 2) . ']', hang_up => 0.1);
    waitpid($pid, 0);
}
still_fine('hang-up during Redis lookups');

# --- an upstream error whose code is 0, missing, no integer or out of range
# stays an error for the caller and for the identical calls collapsed onto
# it, and is logged as such
my @logged = ('0', '-', '-', '-', '-', '-32000');

for my $i (0 .. $#codes) {
    my ($code, $logged) = ($codes[$i], $logged[$i]);
    my $err = qq("error":{"code":$code,"message":"odd"});
    my $b = rpc("[" . call("m", "[$i]", 1) . ","
                . call("m", "[$i]", 2) . "]", path => "/odd$i");
    is($b, qq([{"jsonrpc":"2.0","id":1,$err},{"jsonrpc":"2.0","id":2,$err}]),
       "error with code $code: both answers are errors");
    sleep 0.05;
    my @l = grep { /^200 2 m=m,m/ } split /\n/, access_log_text();
    like($l[-1] // '', qr/ e=\Q$logged,$logged\E /,
         "error with code $code: \$rpc_error_code is $logged,$logged");
}

# --- values in Redis are used only when they are one JSON value
sub key { qq(rpc:backend:0/\n"test_seq"\n[$_[0]]) }

for my $v ('not json', '1]},"id":666,"result":"x"', 'null', '"abc',
           '{"a":1}"', '[1,2', '1 2', qq("\xc0\xaf"), 'x' x 3000)
{
    (my $name = substr($v, 0, 30)) =~ s/\n/ /g;
    my $p = '"v' . length($v) . substr(unpack('H*', $v), 0, 16) . '"';
    redis_cli('SET', key($p), $v, 'PX', 60000);
    my $b = rpc(call('test_seq', "[$p]", 3));
    like($b, qr/^\{"jsonrpc":"2.0","id":3,"result":"UPSTREAM:\d+"\}$/,
         "Redis value '$name' is a miss, answered by the upstream");
    sleep 0.05;
    like(error_log_text($from), qr/\[warn\].*Redis value/,
         "Redis value '$name' is logged");
    $from = length error_log_text();
}

redis_cli('SET', key('"good"'), '{"ok":[1,"2"]}', 'PX', 60000);
is(rpc(call('test_seq', '["good"]', 4)),
   '{"jsonrpc":"2.0","id":4,"result":{"ok":[1,"2"]}}',
   'a Redis value that is one JSON value is served');

# a large value is checked without a record per element (an array of 300k
# elements cost 230 MB), and identical calls of a batch ask Redis once
sub redis_set {
    my ($k, $v) = @_;
    my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => port('REDIS_PORT')) or die;
    print $r join '', "*5\r\n", map { '$' . length($_) . "\r\n$_\r\n" }
                                  'SET', $k, $v, 'PX', '60000';
    my $ok = <$r>;
    close $r;
    return $ok;
}

sub redis_gets {
    return redis_cli('INFO', 'commandstats') =~ /cmdstat_get:calls=(\d+)/
           ? $1 : 0;
}

my $array = '[' . join(',', (1) x 300000) . ']';
like(redis_set(key('"array"'), $array), qr/^\+OK/, 'a 600 kB array in Redis');
my $gets = redis_gets();
my $b = rpc('[' . join(',', map { call('test_seq', '["array"]', $_) } 1 .. 20)
            . ']', path => '/large');
ok($b eq '[' . join(',', map { qq({"jsonrpc":"2.0","id":$_,"result":$array}) }
                      1 .. 20) . ']',
   'a batch of 20 identical calls is answered with the value from Redis');
is(redis_gets() - $gets, 1, 'one Redis lookup for the 20 identical calls');
sleep 0.05;
my ($worker) = access_log_text() =~ /.*p=(\d+)/s;
my ($hwm) = (RPCTest::slurp("/proc/$worker/status") =~ /VmHWM:\s+(\d+)/);
SKIP: {
    skip 'memory is not measured under valgrind or ASan', 1
        if $RPCTest::Valgrind || $ENV{TEST_NGINX_USE_ASAN};
    cmp_ok($hwm // 0, '<', 120_000,
           "the worker's peak memory stays small ($hwm kB)");
}

# --- a response larger than rpc_max_reply_size fails only the call it
# answers, in an upstream batch of several clients' calls or of one client's
{
    my $requests = upstream_requests();
    my $pid = fork // die;
    if ($pid == 0) {
        my $b = rpc(call('test_big', '[5000]', 1), path => '/big');
        POSIX::_exit($b =~ /"code":-32009/ ? 0 : 1);
    }
    my $b = rpc(call('sum', '[2,3]', 9), path => '/big');
    waitpid($pid, 0);
    is($? >> 8, 0, 'the call with the large reply gets -32009');
    is($b, '{"jsonrpc":"2.0","id":9,"result":5}',
       'another client\'s call coalesced with it gets its result');
    is(upstream_requests() - $requests, 1,
       'the two clients\' calls went up in one request');
}

is(rpc('[' . call('test_big', '[5000]', 1) . ',' . call('sum', '[1,1]', 2)
       . ']', path => '/bigoff'),
   '[{"jsonrpc":"2.0","error":{"code":-32009,"message":"Upstream reply too '
   . 'large"},"id":1},{"jsonrpc":"2.0","id":2,"result":2}]',
   'a batch with one large reply: the other call gets its result');
sleep 0.05;
like(error_log_text($from),
     qr/\[error\].*upstream response for id 0 is larger than rpc_max_reply_size/,
     'the large response is logged');
$from = length error_log_text();

# a reply over rpc_max_reply_size for each of its calls is dropped whole:
# only its cacheable calls, safe to run twice, are sent again, never a
# call the upstream must not run twice, nor a notification
my %calls = map { $_ => upstream_calls($_) } qw(test_big test_seq update);
like(rpc('[' . call('test_big', '[9000]', 1) . ',' . call('test_seq', '["x"]', 2)
         . ',{"jsonrpc":"2.0","method":"update","params":[1]}]',
         path => '/bigcache'),
     qr/^\Q[{"jsonrpc":"2.0","error":{"code":-32009,"message":"Upstream reply too large"},"id":1},{"jsonrpc":"2.0","id":2,"result":"UPSTREAM:\E\d+"\}\]$/,
     'a reply too large for its batch: the cacheable call is sent again');
is(upstream_calls('test_seq') - $calls{test_seq}, 2,
   'the cacheable call ran twice');
is(upstream_calls('test_big') - $calls{test_big}, 1,
   'the call that is not cacheable ran once');
is(upstream_calls('update') - $calls{update}, 1,
   'the notification ran once');
sleep 0.05;
like(error_log_text($from), qr/\[warn\].*1 cacheable calls of the upstream batch are sent again/,
     'the resend is logged');
$from = length error_log_text();

# --- a body read before the content handler (mirror) is parsed
is(rpc(call('sum', '[1,2,3]', 1), path => '/mirrored'),
   '{"jsonrpc":"2.0","id":1,"result":6}', 'mirror: the call is answered');
is(rpc('[' . join(',', map { call('sum', "[$_,1]", $_) } 1 .. 60) . ']',
       path => '/mirrored-file'),
   '[' . join(',', map { qq({"jsonrpc":"2.0","id":$_,"result":@{[$_ + 1]}}) }
              1 .. 60) . ']',
   'mirror with the body in a temp file: the batch is answered');
like(rpc('{"jsonrpc":"2.0","method"', path => '/mirrored'),
     qr/"code":-32700/, 'mirror: a bad body is a parse error');

# --- log_subrequest on logs the exchanges' subrequests without $rpc_*
start_nginx(http_config => "$http\nlog_subrequest on;\n", config => $config)
    or BAIL_OUT('nginx');
is(rpc(call('sum', '[4]', 2)), '{"jsonrpc":"2.0","id":2,"result":4}',
   'log_subrequest on: answered');
still_fine('log_subrequest on');

# an rpc location run as a subrequest (a mirror) has its own variables
is(rpc(call('sum', '[5,6]', 42), path => '/shadowed'),
   '{"jsonrpc":"2.0","id":42,"result":11}', 'mirrored to an rpc location');
sleep 0.3;
my $lines = () = access_log_text() =~ /^200 1 m=sum id=42 /mg;
is($lines, 2, 'the mirror\'s subrequest logs its own $rpc_method and $rpc_id');

stop_nginx();
