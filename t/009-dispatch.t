# How calls are sent upstream: client batches split into upstream batches
# of at most rpc_upstream_batch sent in parallel, $rpc_upstream_batch,
# rpc_max_pending, and upstreams that refuse batches.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use lib 't/lib';
use RPCTest;

my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
upstream other { server 127.0.0.1:$UPSTREAM2_PORT; keepalive 8; }
upstream flaky { server 127.0.0.1:$UPSTREAM2_PORT; server 127.0.0.1:$UPSTREAM_PORT backup; }
log_format batch '$rpc_upstream_batch';
EOF

my $config = <<'EOF';
location /rpc {
    rpc_pass backend;
    rpc_upstream_batch 3;
    rpc_route test_whoami other;
    access_log $SERVROOT/logs/batch.log batch;
}
location /off {
    rpc_pass backend;
    access_log $SERVROOT/logs/batch.log batch;
}
location /one {
    rpc_pass backend;
    rpc_upstream_batch 1;
}
location /routes {
    rpc_pass backend;
    rpc_route test_sleep_routed other;
}
EOF

sub rpc {
    my ($body, %o) = @_;
    return http_post($body, %o)->{body};
}

sub batch_of {
    my (@calls) = @_;
    return '[' . join(',', @calls) . ']';
}

sub sum_call {
    my ($id) = @_;
    return qq({"jsonrpc":"2.0","method":"sum","params":[$id,1],"id":$id});
}

sub sum_answer {
    my ($id) = @_;
    return qq({"jsonrpc":"2.0","id":$id,"result":@{[$id + 1]}});
}

sub last_batch_log {
    sleep 0.05;
    my @l = split /\n/, RPCTest::slurp(servroot() . '/logs/batch.log');
    return $l[-1];
}

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');

# --- a batch of 7 goes up as 3 + 3 + 1, answered in request order
my $n = upstream_requests();
is(rpc(batch_of(map { sum_call($_) } 1 .. 7)),
   batch_of(map { sum_answer($_) } 1 .. 7), 'batch of 7 answered in order');
is(upstream_requests() - $n, 3, 'in 3 upstream requests');
is(last_batch_log(), '3,3,3,3,3,3,1', '$rpc_upstream_batch per call');

# a batch of exactly the size, and a single call
$n = upstream_requests();
is(rpc(batch_of(map { sum_call($_) } 1 .. 3)),
   batch_of(map { sum_answer($_) } 1 .. 3), 'batch of 3 answered');
is(upstream_requests() - $n, 1, 'in 1 upstream request');
is(rpc(sum_call(5)), sum_answer(5), 'single call answered');
is(last_batch_log(), '1', 'single call: $rpc_upstream_batch 1');

# notifications count toward the size; invalid calls do not go up
$n = upstream_requests();
is(rpc('[' . join(',', sum_call(1), '{"jsonrpc":"2.0","method":"sum","params":[1]}',
                  '{"jsonrpc":"2.0","method":"sum","params":[2]}', '{"x":1}',
                  sum_call(2)) . ']'),
   '[' . sum_answer(1) . ',{"jsonrpc":"2.0","error":{"code":-32600,'
   . '"message":"Invalid Request"},"id":null},' . sum_answer(2) . ']',
   'notifications and an invalid call among split calls');
is(upstream_requests() - $n, 2, 'four calls sent as 3 + 1');
is(last_batch_log(), '3,3,3,-,1', 'the invalid call did not go upstream');

# routes split on their own
my $n2 = upstream_requests('UPSTREAM2');
$n = upstream_requests();
is(rpc(batch_of(sum_call(1), '{"jsonrpc":"2.0","method":"test_whoami","id":"a"}',
                sum_call(2), '{"jsonrpc":"2.0","method":"test_whoami","id":"b"}',
                sum_call(3), sum_call(4))),
   batch_of(sum_answer(1), '{"jsonrpc":"2.0","id":"a","result":"UPSTREAM2"}',
            sum_answer(2), '{"jsonrpc":"2.0","id":"b","result":"UPSTREAM2"}',
            sum_answer(3), sum_answer(4)),
   'routed calls and split calls, in request order');
is(upstream_requests() - $n, 2, 'four calls to the default upstream: 3 + 1');
is(upstream_requests('UPSTREAM2') - $n2, 1, 'two calls to the route: 1');

# off: the message goes as it is
$n = upstream_requests();
is(rpc(batch_of(map { sum_call($_) } 1 .. 7), path => '/off'),
   batch_of(map { sum_answer($_) } 1 .. 7), 'off: answered');
is(upstream_requests() - $n, 1, 'off: one upstream request');
is(last_batch_log(), '7,7,7,7,7,7,7', 'off: $rpc_upstream_batch 7');

# --- the parts go out in parallel, not one after another
my $t0 = time;
is(rpc(batch_of(map {
       qq({"jsonrpc":"2.0","method":"test_sleep","params":[500],"id":$_})
   } 1 .. 4), path => '/one'),
   batch_of(map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) } 1 .. 4),
   'four sleeping calls in four upstream requests');
my $took = time - $t0;
ok($took < 1.5, sprintf('in parallel: %.2fs, not 2s', $took));

# calls of one batch routed to two upstreams go out in parallel too
$t0 = time;
is(rpc(batch_of('{"jsonrpc":"2.0","method":"test_sleep","params":[800],"id":1}',
                '{"jsonrpc":"2.0","method":"test_sleep_routed","params":[800],"id":2}'),
       path => '/routes'),
   batch_of(map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) } 1, 2),
   'two routes, answered in request order');
$took = time - $t0;
ok($took < 1.3, sprintf('routes in parallel: %.2fs, not 1.6s', $took));

# a failure of one part fails only its calls
is(rpc(batch_of(sum_call(1), '{"jsonrpc":"2.0","method":"test_http500","id":2}',
                sum_call(3)), path => '/one'),
   batch_of(sum_answer(1), '{"jsonrpc":"2.0","error":{"code":-32003,'
            . '"message":"Upstream replied with HTTP error status"},"id":2}',
            sum_answer(3)), 'a failing part fails its own calls only');

# --- bad configuration
my $bad = servroot() . '/bad.conf';
for my $case (['rpc_upstream_batch 0;', 'invalid batch size "0"'],
              ['rpc_upstream_batch 20 window=x;', 'invalid window "window=x"'],
              ['rpc_upstream_batch 20 wait=1ms;', 'invalid parameter "wait=1ms"'],
              ['rpc_upstream_batch off window=1ms;', 'takes no window when off'],
              ['rpc_upstream_batch 5; rpc_upstream_batch 6;', 'is duplicate'],
              ['rpc_max_pending x;', 'invalid number'])
{
    open my $f, '>', $bad or die;
    print $f "load_module $RPCTest::Module; events {} http { server { location / {"
           . " rpc_pass 127.0.0.1:1; $case->[0] } } }\n";
    close $f;
    my ($rc, $out) = nginx_test_config($bad);
    ok($rc != 0 && index($out, $case->[1]) >= 0 && $out =~ /bad\.conf:1/,
       "nginx -t rejects '$case->[0]'") or diag($out);
}

# --- rpc_max_pending: calls beyond it are refused at once
start_nginx(http_config => $http, config => <<'EOF') or BAIL_OUT('nginx');
location /rpc {
    rpc_pass backend;
    rpc_max_pending 2;
}
location /deadline {
    rpc_pass backend;
    rpc_max_pending 2;
    rpc_timeout 300ms;
}
EOF

my $dir = servroot();
my $pid = fork // die;
if ($pid == 0) {
    my $b = rpc(batch_of(map {
        qq({"jsonrpc":"2.0","method":"test_sleep","params":[800],"id":$_})
    } 1 .. 2));
    open my $f, '>', "$dir/held"; print $f $b; close $f;
    POSIX::_exit(0);
}
sleep 0.3;
$t0 = time;
is(rpc(sum_call(1)),
   '{"jsonrpc":"2.0","error":{"code":-32010,"message":"Gateway overloaded"},"id":1}',
   'a call beyond rpc_max_pending gets -32010');
ok(time - $t0 < 0.5, 'at once');
like(error_log_text(), qr/rpc: 1 calls refused, rpc_max_pending 2 reached/,
     'refusal logged');
waitpid($pid, 0);
{
    open my $f, '<', "$dir/held"; local $/;
    is(<$f>, batch_of(map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) } 1 .. 2),
       'the calls that were in are answered');
}
is(rpc(sum_call(1)), sum_answer(1), 'once they are done, calls go through again');
is(rpc(batch_of(map { sum_call($_) } 1 .. 3)),
   batch_of(sum_answer(1), sum_answer(2),
            '{"jsonrpc":"2.0","error":{"code":-32010,"message":"Gateway overloaded"},"id":3}'),
   'a batch larger than the room left: the rest is refused');

# clients that hang up give their room back
for (1 .. 3) {
    http_post(batch_of(map {
        qq({"jsonrpc":"2.0","method":"test_sleep","params":[300],"id":$_})
    } 1 .. 2), no_read => 1);
}
sleep 0.6;
is(rpc(batch_of(sum_call(1), sum_call(2))), batch_of(sum_answer(1), sum_answer(2)),
   'room given back by clients that went away');

# calls past their deadline and clients that hang up give their room back
# at once, while the upstream still works on their calls (test_sleep_long:
# the tests below count test_sleep calls)
sub sleepers {
    return batch_of(map {
        qq({"jsonrpc":"2.0","method":"test_sleep_long","params":[3000],"id":$_})
    } 1 .. 2);
}
$t0 = time;
is(rpc(sleepers(), path => '/deadline'),
   batch_of(map { '{"jsonrpc":"2.0","error":{"code":-32001,'
                  . qq("message":"Upstream timed out"},"id":$_}) } 1 .. 2),
   'two calls past their 300ms deadline');
is(rpc(batch_of(sum_call(1), sum_call(2)), path => '/deadline'),
   batch_of(sum_answer(1), sum_answer(2)), 'their room is free at once');
ok(time - $t0 < 1.5, sprintf('%.2fs: long before the upstream is done', time - $t0));
$t0 = time;
http_post(sleepers(), path => '/deadline', hang_up => 0.1);
is(rpc(batch_of(sum_call(1), sum_call(2)), path => '/deadline'),
   batch_of(sum_answer(1), sum_answer(2)), 'a client hung up: its room is free at once');
ok(time - $t0 < 1.5, sprintf('%.2fs: long before the upstream is done', time - $t0));

# --- rpc_max_pending counts the calls of the whole worker, whatever their
# location: a location's limit is checked against all of them
start_nginx(http_config => $http, config => <<'EOF') or BAIL_OUT('nginx');
location /low {
    rpc_pass backend;
    rpc_max_pending 2;
}
location /high {
    rpc_pass backend;
    rpc_max_pending 10;
}
EOF
$pid = fork // die;
if ($pid == 0) {
    my $b = rpc(batch_of(map {
        qq({"jsonrpc":"2.0","method":"test_sleep","params":[800],"id":$_})
    } 1 .. 3), path => '/high');
    open my $f, '>', "$dir/held" or POSIX::_exit(1);
    print $f $b;
    close $f;
    POSIX::_exit(0);
}
sleep 0.3;
is(rpc(sum_call(1), path => '/low'),
   '{"jsonrpc":"2.0","error":{"code":-32010,"message":"Gateway overloaded"},"id":1}',
   'three calls held in /high: a call in /low (rpc_max_pending 2) is refused');
like(error_log_text(), qr/rpc: 1 calls refused, rpc_max_pending 2 reached/,
     'refusal logged with the limit of /low');
is(rpc(sum_call(2), path => '/high'), sum_answer(2),
   'a call in /high (rpc_max_pending 10) goes through');
waitpid($pid, 0);
{
    open my $f, '<', "$dir/held"; local $/;
    is(<$f>, batch_of(map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) } 1 .. 3),
       'the calls held in /high are answered');
}
is(rpc(sum_call(1), path => '/low'), sum_answer(1),
   'once they are done, /low takes calls again');

# --- calls of different clients coalesced into upstream batches

# runs each [body, options] as a client of its own, `at` seconds after the
# first; returns [seconds taken, body] for each
sub clients {
    my (@jobs) = @_;
    my $dir = servroot();
    my @pids;
    for my $k (0 .. $#jobs) {
        my ($body, %o) = @{$jobs[$k]};
        my $pid = fork // die;
        if ($pid == 0) {
            sleep $o{at} if $o{at};
            my $t0 = time;
            my $r = http_post($body, %o);
            open my $f, '>', "$dir/client.$k" or POSIX::_exit(1);
            print $f sprintf("%.3f\n", time - $t0), $r->{body};
            close $f;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    return map {
        open my $f, '<', "$dir/client.$_" or die;
        local $/;
        my ($t, $b) = split /\n/, <$f>, 2;
        unlink "$dir/client.$_";
        [$t, $b // '']
    } 0 .. $#jobs;
}

start_nginx(http_config => $http
            . "upstream shape { server 127.0.0.1:\$UPSTREAM_PORT; }\n"
            . "rpc_cache_zone calls:1m;\n",
            config => <<'EOF') or BAIL_OUT('nginx');
location /rpc {
    rpc_pass backend;
    rpc_upstream_batch 10 window=300ms;
    access_log $SERVROOT/logs/batch.log batch;
}
location /two {
    rpc_pass backend;
    rpc_upstream_batch 2 window=10s;
}
location /now {
    rpc_pass backend;
    rpc_upstream_batch 10 window=0;
}
location /deadline {
    rpc_pass backend;
    rpc_upstream_batch 10 window=400ms;
    rpc_timeout 1000ms;
}
location /retry {
    rpc_pass flaky;
    rpc_upstream_batch 10 window=100ms;
    rpc_next_upstream error timeout non_idempotent;
}
location /fallback {
    rpc_pass other;
    rpc_upstream_batch 10 window=0;
    access_log $SERVROOT/logs/batch.log batch;
}
location /shape {
    rpc_pass shape;
    rpc_upstream_batch 10 window=0;
}
location /cached {
    rpc_pass backend;
    rpc_upstream_batch 10 window=300ms;
    rpc_cache calls;
    rpc_cache_valid sum 1m;
}
EOF

# ten clients at once: one upstream request of ten calls
$n = upstream_requests();
my @r = clients(map { [sum_call($_)] } 1 .. 10);
is_deeply([map { $_->[1] } @r], [map { sum_answer($_) } 1 .. 10],
          'ten clients, each answered its own result');
is(upstream_requests() - $n, 1, 'ten clients: one upstream request');
{
    sleep 0.05;
    my @l = split /\n/, RPCTest::slurp(servroot() . '/logs/batch.log');
    is_deeply([@l[-10 .. -1]], [('10') x 10], '$rpc_upstream_batch 10 for each');
}

# with the cache: identical calls in flight are collapsed, the rest are
# coalesced, and then all are hits
$n = upstream_requests();
my $sums = upstream_calls('sum');
my @jobs = map { [sum_call($_), path => '/cached'] } 1, 1, 1, 2, 3, 4;
@r = clients(@jobs);
is_deeply([map { $_->[1] } @r], [map { sum_answer($_) } 1, 1, 1, 2, 3, 4],
          'cached location: six clients answered');
is(upstream_requests() - $n, 1, 'in one upstream request');
is(upstream_calls('sum') - $sums, 4, 'of four calls: the three identical ones collapsed');
@r = clients(@jobs);
is_deeply([map { $_->[1] } @r], [map { sum_answer($_) } 1, 1, 1, 2, 3, 4],
          'again: answered from the cache');
is(upstream_requests() - $n, 1, 'no upstream request');

# a batch and single calls of other clients travel together, in order
$n = upstream_requests();
@r = clients([batch_of(map { sum_call($_) } 1 .. 3)],
             (map { [sum_call($_), at => 0.05] } 4 .. 6));
is_deeply([map { $_->[1] } @r],
          [batch_of(map { sum_answer($_) } 1 .. 3), map { sum_answer($_) } 4 .. 6],
          'a client batch and three single calls');
is(upstream_requests() - $n, 1, 'six calls of four clients: one upstream request');

# a lone call waits for the window, no longer
@r = clients([sum_call(7)]);
is($r[0][1], sum_answer(7), 'a lone call is answered');
ok($r[0][0] >= 0.25 && $r[0][0] < 3, "after the window: $r[0][0]s");
is(last_batch_log(), '1', 'alone in its upstream request');

# a full batch goes at once, without waiting for the window
@r = clients([sum_call(1), path => '/two'], [sum_call(2), path => '/two']);
is_deeply([map { $_->[1] } @r], [sum_answer(1), sum_answer(2)],
          'size 2: two clients answered');
ok($r[0][0] < 3 && $r[1][0] < 3, 'before the 10s window');

# window=0: calls of one event loop turn go together, nothing waits
@r = clients([sum_call(1), path => '/now']);
is($r[0][1], sum_answer(1), 'window=0: answered at once');

# --- a client that goes away takes only its own calls

# hung up while its call was queued: the call is not sent
my $echo = upstream_calls('test_echo');
$n = upstream_calls('sum');
@r = clients(['{"jsonrpc":"2.0","method":"test_echo","params":[1],"id":1}',
              hang_up => 0.05],
             [sum_call(3), at => 0.15]);
is($r[1][1], sum_answer(3), 'the other client is answered');
is(upstream_calls('test_echo') - $echo, 0, 'the call of the client that left was not sent');
is(upstream_calls('sum') - $n, 1, 'the call of the other was');

# hung up while the upstream works on the batch: the rest is answered
$n = upstream_requests();
@r = clients(['{"jsonrpc":"2.0","method":"test_sleep","params":[500],"id":1}',
              hang_up => 0.4],
             [sum_call(4), at => 0.1]);
is($r[1][1], sum_answer(4), 'a client that hung up mid-flight: the other is answered');
is(upstream_requests() - $n, 1, 'they were in one upstream request');

# hung up, then its batch is sent again to the next server: the bytes of
# its call were copied when it left (valgrind checks they are not read
# from the client's freed memory; the upstream would reject garbage)
my $slept = upstream_calls('test_sleep') + upstream_calls('test_sleep', 'UPSTREAM2');
@r = clients(['{"jsonrpc":"2.0","method":"test_sleep","params":[300],"id":1}',
              path => '/retry', hang_up => 0.25],
             ['{"jsonrpc":"2.0","method":"test_fail_on","params":["UPSTREAM2","reset"],"id":2}',
              path => '/retry', at => 0.02]);
is($r[1][1], '{"jsonrpc":"2.0","id":2,"result":"UPSTREAM"}',
   'after a reset the batch is sent to the next server and answered');
is(upstream_calls('test_sleep') + upstream_calls('test_sleep', 'UPSTREAM2') - $slept, 2,
   'with the call of the client that left, copied');

# --- every call keeps its own deadline in a shared upstream batch

@r = clients(['{"jsonrpc":"2.0","method":"test_sleep","params":[700],"id":1}',
              path => '/deadline'],
             [sum_call(5), path => '/deadline', at => 0.3]);
is($r[0][1], '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1}',
   'the call past its deadline gets the timeout error');
is($r[1][1], sum_answer(5), 'the call still in time gets its result from the same batch');
like(error_log_text(), qr/calls not answered within rpc_timeout 1000/, 'timeout logged');

# --- an upstream that refuses batches gets the calls one by one

$n = upstream_requests('UPSTREAM2');
is(rpc(batch_of('{"jsonrpc":"2.0","method":"test_single","id":1}', sum_call(2)),
       path => '/fallback'),
   batch_of('{"jsonrpc":"2.0","id":1,"result":"single"}', sum_answer(2)),
   'a batch answered with one error object is sent again call by call');
is(upstream_requests('UPSTREAM2') - $n, 3, 'the batch, then two single calls');
like(error_log_text(), qr/\[warn\].*rpc: upstream refused a batch, its 2 calls are sent one by one/,
     'the refusal is logged');
is(last_batch_log(), '1,1', '$rpc_upstream_batch: they went alone');

$n = upstream_requests('UPSTREAM2');
is(rpc(batch_of(map { sum_call($_) } 1 .. 3), path => '/fallback'),
   batch_of(map { sum_answer($_) } 1 .. 3), 'the next batch is answered');
is(upstream_requests('UPSTREAM2') - $n, 3,
   'the upstream is remembered: its calls go one by one from the start');

# a batch answered with a JSON value that is neither an array nor an object
$n = upstream_requests();
is(rpc(batch_of('{"jsonrpc":"2.0","method":"test_shape","id":1}', sum_call(2)),
       path => '/shape'),
   batch_of('{"jsonrpc":"2.0","error":{"code":-32005,"message":'
            . '"Upstream reply is not a valid response"},"id":1}', sum_answer(2)),
   'a batch answered with a string: sent again call by call');
is(upstream_requests() - $n, 3, 'the batch, then two single calls');
