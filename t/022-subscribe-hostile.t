# Subscriptions under attack: what a hostile review of issue 14 broke, each
# case as it was found (the fixes of "Subscriptions, after an attack"),
# against t/js/wsnode.js as t/020-subscribe.t runs it.
#
#   - a failover group whose first server is down: the very first
#     subscribe waits for the second server and succeeds;
#   - a client closed with 1008 with frames still queued resets its TCP
#     connection: the worker lives (it read a freed queue link);
#   - events held for the subscriptions of a batch whose answer waits for
#     a slow HTTP call count per connection against
#     rpc_websocket_max_queued: 1008, not 31 times the cap kept;
#   - a node that never answers a subscribe: after rpc_timeout the gateway
#     takes the connection for broken and makes a new one, so that later
#     clients of the key get their subscription once the node behaves;
#   - a node that pings in a flood and reads nothing: the connection is
#     dropped and the worker's memory stays bounded;
#   - 64 keys with params of 200 KB and the node drops the connection: one
#     reconnect resubscribes them all (paced), and another client's events
#     come again at once;
#   - nginx -s quit while a subscribe waits for a node that delays its
#     answer, or that never answers the upgrade: the worker exits at once.
use strict;
use warnings;
use Test::Base;
use Test::More import => [qw(BAIL_OUT note)];
use Time::HiRes qw(sleep time);
use JSON::PP;
use List::Util qw(max);
use lib 't/lib';
use RPCTest;
use RPCFrame;
use RPCNode;

my $slow = $Valgrind ? 5 : 1;
my $T = 3 * $slow;
my $json = JSON::PP->new->canonical->allow_nonref;

# ====================================================================
# The nodes and clients are t/lib/RPCNode.pm's; the worker's memory
# ====================================================================

# the master's children: the worker processes
sub workers {
    my $m = nginx_pid() // return ();
    my @w;
    for my $d (glob '/proc/[0-9]*') {
        open my $f, '<', "$d/stat" or next;
        my $st = <$f> // '';
        push @w, $1 if $st =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $m;
    }
    return @w;
}

sub vmrss_kb {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/status" or return 0;
    while (<$f>) { return $1 if /^VmRSS:\s+(\d+) kB/ }
    return 0;
}

node_start('NODE');
node_start('NODE2');

my $Conf = 'hostile nodes and clients';
start_block($Conf) or BAIL_OUT('nginx');

# ====================================================================
# A group whose first server is down: the first subscribe fails over
# ====================================================================

# upstream subs { server DEAD; server NODE; }: the connect to the first
# server is refused, the second one is tried at once, and the subscribe
# waits for it instead of getting -32000 (the fix came with the final
# wsclient, before the others)
{
    my $from = length error_log_text();
    my $a = client('/failover');
    my $id = subscribe($a, '["failover"]');
    ok(valid_id($id), 'a group whose first server is down: the very first '
       . "subscribe succeeds on the second ($id)");
    is(key_stats('NODE', '/', '["failover"]')->{subscribes}, 1,
       'a group whose first server is down: the second server got the '
       . 'subscribe');
    my $e = node('NODE', 'emit', key => '["failover"]', path => '/');
    is(event_of(next_text($a)), "$id:$e->{seq}[0]",
       'a group whose first server is down: the events come');
    close $a;
    RPCTest::check_error_log($from, 'failover');
}

# ====================================================================
# A client closed with 1008, frames still queued, resets: no crash
# ====================================================================

# the client does not read (a small receive buffer), 300 events of 30 KB
# go past rpc_websocket_max_queued (1m): the gateway queues a close 1008
# behind the frames it keeps; then the client resets its connection and
# the gateway frees that queue (twice)
{
    my $from = length error_log_text();
    my @w = workers();
    for my $round (1 .. 2) {
        my $rfrom = length error_log_text();
        my $s = client('/crash', rcvbuf => 4096);
        my $id = subscribe($s, '["crash"]');
        ok(valid_id($id), "queued frames, then a reset ($round): subscribed");
        my $e = node('NODE', 'emit', key => '["crash"]', path => '/crash',
                     n => 300, pad => 30000);
        is($e->{events}, 300, "queued frames, then a reset ($round): 300 "
           . 'events of 30 KB for a client that does not read');
        ok(wait_for(sub { error_log_text($rfrom) =~ /rpc: websocket.*(1008|queued)/ }),
           "queued frames, then a reset ($round): it is closed with 1008 "
           . '(logged)');
        ws_reset($s);
        sleep 0.3;
    }
    my $log = error_log_text($from);
    unlike($log, qr/exited on signal/, 'queued frames, then a reset: no '
           . 'worker crashed') or diag(join "\n", grep { /signal/ } split /\n/, $log);
    is_deeply([ workers() ], \@w, 'queued frames, then a reset: the same '
              . 'worker serves');
    my $a = client('/crash');
    my $id = subscribe($a, '["crash-after"]');
    my $e = node('NODE', 'emit', key => '["crash-after"]', path => '/crash');
    is(event_of(next_text($a)), "$id:" . ($e->{seq}[0] // '?'),
       'queued frames, then a reset: a new client subscribes and gets events');
    close $a;
    RPCTest::check_error_log($from, 'queued frames, then a reset');
}

# ====================================================================
# Events held before the subscribe answers count per connection
# ====================================================================

# rpc_websocket_max_queued 64k; a batch of 31 eth_subscribe of one live key
# and a call the HTTP upstream answers after 1.5 s: the subscribe answers
# wait for the batch's, so the key's events are held for the 31.  Three
# events of 20 KB: 60 KB each, 1.8 MB for the connection; it is closed with
# 1008 (once 64 KB are held), while a client that reads gets every event.
{
    my $from = length error_log_text();
    my $w = client('/held');
    my $idw = subscribe($w, '["held"]');
    my $s = client('/held');
    my @batch = map { call('eth_subscribe', '["held"]', $_) } 1 .. 31;
    push @batch, call('test_sleep', '[1500]', 99);
    ws_text($s, '[' . join(',', @batch) . ']');
    sleep 0.3;
    my $e = node('NODE', 'emit', key => '["held"]', n => 3, pad => 20000);
    my @got = map { event_of(next_text($w)) } 1 .. 3;
    is_deeply(\@got, [ map { "$idw:$_" } $e->{seq}[0] .. $e->{seq}[1] ],
              'held events: the reading client gets the 3 events of 20 KB');
    my @data = ws_closes($s, 1008, 'held events: 31 subscriptions waiting '
                         . 'for their answer, 60 KB held each, 64k max queued',
                         skip_data => 1, timeout => 1 + $T);
    note('held events: the batch client got ' . scalar(@data)
         . ' messages before the close');
    cmp_ok(length(join '', map { $_->{payload} } @data), '<=', 64 * 1024,
           'held events: the batch client got no more than 64 KB of them');
    $e = node('NODE', 'emit', key => '["held"]');
    is(event_of(next_text($w)), "$idw:$e->{seq}[0]",
       'held events: the reading client keeps getting events');
    close $w;
    RPCTest::check_error_log($from, 'held events');
}

# ====================================================================
# A node that never answers a subscribe
# ====================================================================

# rpc_timeout 500ms: the client gets -32001, and the gateway takes the
# connection for broken (a new connection, a new subscribe), so that once
# the node behaves later clients of the key are served
{
    my $from = length error_log_text();
    node('NODE', 'config', reset => 1, delay => 3600000);
    my $conns = lite('NODE', '/stuck')->{connections_ever};
    my $a = client('/stuck');
    is(rpc($a, call('eth_subscribe', '["stuck"]', 1)),
       error(-32001, 'Upstream timed out', 1),
       'a subscribe the node never answers: -32001 after rpc_timeout');
    ok(wait_for(sub { lite('NODE', '/stuck')->{connections_ever} > $conns }, 1.5),
       'a subscribe the node never answers: the gateway connects again');
    node('NODE', 'config', reset => 1);
    sleep 0.3;
    my @ids = map { subscribe(client('/stuck'), '["stuck"]', $_) } 2 .. 3;
    ok(valid_id($ids[0]), 'the node behaves again: a later client of the '
       . "key is subscribed ($ids[0])");
    ok(valid_id($ids[1]), "the node behaves again: and the next ($ids[1])");
    cmp_ok(key_stats('NODE', '/stuck', '["stuck"]')->{subscribes}, '>=', 2,
           'the node behaves again: it got a new subscribe of the key');
    like(error_log_text($from), qr/did not answer a subscribe within rpc_timeout/,
         'a subscribe the node never answers: logged');
    close $a;
    RPCTest::check_error_log($from, 'a subscribe never answered');
}

# ====================================================================
# A node that pings in a flood and does not read
# ====================================================================

SKIP: {
    skip 'worker memory: not under valgrind', 5 if $Valgrind;
    my $from = length error_log_text();
    my ($w) = workers();
    my $rss0 = vmrss_kb($w);
    node('NODE2', 'config', reset => 1, flood => 1);
    my $a = client('/flood');
    my $id = subscribe($a, '["flood"]');
    ok(valid_id($id), 'a node that floods pings: subscribed');
    my $worst = 0;
    my $end = time + 5;
    while (time < $end) {
        $worst = max($worst, vmrss_kb($w));
        sleep 0.1;
    }
    node('NODE2', 'config', reset => 1);
    my $st = lite('NODE2', '/flood');
    note(sprintf 'a node that floods pings: %d pings sent, %d connections, '
         . 'worker VmRSS %d kB before, %d kB at most', $st->{flooded},
         $st->{connections_ever}, $rss0, $worst);
    # under ASan, freed memory stays in its quarantine (256 MB) for a while
    my $bound = $RPCTest::Asan ? 600 : 200;
    cmp_ok($worst, '<', $bound * 1024, 'a node that floods pings and does not '
           . "read: the worker stays under $bound MB for 5 s");
    like(error_log_text($from), qr/subscription upstream: cannot send/,
         'a node that floods pings: the gateway drops the connection (logged)');
    # the flood is off: the key is live again once an event of the node
    # reaches the client with its original id (a connection still flooding
    # reads nothing, so emit until one does)
    my $got = '';
    wait_for(sub {
        my $e = node('NODE2', 'emit', key => '["flood"]', path => '/flood');
        return unless $e->{events};
        my $m;
        1 while ($m = next_text($a, 0.3)) =~ /^\{"jsonrpc":"2.0","id"/;
        $got = event_of($m) // '';
        return $got =~ /^\Q$id\E:/;
    }, 4 + $T);
    like($got, qr/^\Q$id\E:\d+$/,
         'the flood ends: the key is subscribed again, the client gets '
         . 'events with its original id')
        or diag(join "\n", grep { /subscription upstream/ }
                    split /\n/, error_log_text($from));
    close $a;
    RPCTest::check_error_log($from, 'a ping flood');
}

# ====================================================================
# Many large keys and a dropped connection: one reconnect
# ====================================================================

# a victim of newHeads, then two connections with 32 subscriptions each of
# params of 200 KB (12.8 MB of subscribes, rpc_websocket_max_queued 1m); the
# node drops the connection: the gateway resubscribes everything on one new
# connection, and the victim's events come again
{
    my $from = length error_log_text();
    my $v = client('/many');
    my $idv = subscribe($v, '["newHeads"]');
    my $pad = 'x' x 200000;
    my @keys = map { qq(["logs",{"i":$_,"pad":"$pad"}]) } 1 .. 64;
    my @c = map { client('/many') } 1 .. 2;
    my $ok = 0;
    for my $i (0 .. $#keys) {
        $ok++ if valid_id(subscribe($c[$i % 2], $keys[$i], $i + 1));
    }
    is($ok, 64, '64 keys with params of 200 KB: all subscribed');
    my $st = lite('NODE', '/many');
    my $conns = $st->{connections_ever};
    is($st->{live}, 65, '64 keys with params of 200 KB: 65 live on the node');

    node('NODE', 'drop', how => 'close', path => '/many');
    my $t0 = time;
    my $again = sub {
        my $k = lite('NODE', '/many')->{keys};
        grep { ($k->{lite_key($_)}{subscribes} // 0) == 2 }
             @keys, '["newHeads"]';
    };
    my $all = wait_for(sub { lite('NODE', '/many')->{live} == 65
                             && $again->() == 65 }, 2 + $T);
    ok($all, sprintf 'the node drops the connection: all 65 keys live again '
       . '(%.2f s)', time - $t0);
    sleep 0.5;
    $st = lite('NODE', '/many');
    is($st->{connections_ever}, $conns + 1,
       'the node drops the connection: one reconnect, no reconnect loop');
    my @twice = grep { ($st->{keys}{lite_key($_)}{subscribes} // 0) == 2 }
                @keys, '["newHeads"]';
    is(scalar @twice, 65, 'the node drops the connection: every key '
       . 'subscribed again, once')
        or diag(join ' ', map { $st->{keys}{lite_key($_)}{subscribes} // 0 }
                          @keys, '["newHeads"]');
    my $e = node('NODE', 'emit', key => '["newHeads"]', path => '/many');
    is(event_of(next_text($v, 0.5 * $slow)), "$idv:$e->{seq}[0]",
       'the node drops the connection: the newHeads client gets the next '
       . 'event at once');
    close $_ for $v, @c;
    RPCTest::check_error_log($from, 'many large keys');
}

# ====================================================================
# A node that refuses a key when it is subscribed again
# ====================================================================

# after a reconnect the node refuses one key: its client keeps its
# connection and id, and the gateway asks again after a backoff until the
# node takes it (it used to wait for the next reconnect, forever)
{
    my $from = length error_log_text();
    my $a = client('/retry');
    my $b = client('/retry');
    my $ida = subscribe($a, '["refuseme"]');
    my $idb = subscribe($b, '["other"]');
    node('NODE', 'config', reset => 1, refuse => '["refuseme"]',
         error => '{"code":-32000,"message":"busy"}');
    node('NODE', 'drop', how => 'close', path => '/retry');
    ok(wait_for(sub { error_log_text($from)
                      =~ /subscription upstream refused .*busy/ }),
       'the node refuses a key after a reconnect (logged)');
    sleep 0.3;
    node('NODE', 'config', reset => 1);
    ok(wait_for(sub { key_stats('NODE', '/retry', '["refuseme"]')->{live} }),
       'the refused key is asked again once the node takes it');
    my $e = node('NODE', 'emit', path => '/retry');
    is(event_of(next_text($a)), "$ida:$e->{seq}[0]",
       'the refused key: its client gets events again, with its id');
    is(event_of(next_text($b)), "$idb:$e->{seq}[0]",
       'the other key: its client got events throughout');
    close $_ for $a, $b;
}

# ====================================================================
# Events whose subscription member a client could read otherwise
# ====================================================================

# "subscription" twice (a client's JSON decoder takes the last), or with
# an escape in its name: the node's id would reach the client, so the
# event is dropped, logged; the next plain event comes
{
    my $from = length error_log_text();
    my $a = client('/retry');
    my $id = subscribe($a, '["dup"]');
    for my $t ('{"jsonrpc":"2.0","method":"eth_subscription","params":{'
               . '"subscription":{sub},"result":{"seq":{seq}},'
               . '"subscription":{sub}}}',
               '{"jsonrpc":"2.0","method":"eth_subscription","params":{'
               . '"result":{"seq":{seq}},"subscription":{sub},'
               . '"subscripti\\u006fn":{sub}}}') {
        node('NODE', 'emit', key => '["dup"]', path => '/retry',
             template => $t);
    }
    my $e = node('NODE', 'emit', key => '["dup"]', path => '/retry');
    is(event_of(next_text($a)), "$id:$e->{seq}[0]",
       'events with params.subscription twice, or once with an escape in '
       . 'its name, are dropped; the next one comes');
    my $n = () = error_log_text($from) =~ /without one plain params\.subscription/g;
    is($n, 2, 'both dropped events are logged');
    close $a;
}

RPCTest::check_error_log(0, 'hostile nodes and clients');

# ====================================================================
# nginx -s quit while a subscribe waits
# ====================================================================

# rpc_timeout and rpc_connect_timeout are 10 s: the worker must not wait
# for them (nor for the 1-hour delay of the node's answer) to exit.  The
# one client waits for its subscribe: no other I/O wakes the worker (a
# waiting call failed on a posted event used to wait for the next wake-up,
# a timer's).  It answers the gateway's close frame and closes, as
# libraries do, once the gateway has answered it (until then nothing of it
# is read).
SKIP: {
skip 'nginx -s quit: valgrind runs nginx without a master, which exits '
     . 'at once', 4 if $Valgrind;
for my $case ([ '/quit', 'a node that delays its subscribe answer' ],
              [ '/quit-sink', 'a node that never answers the upgrade' ]) {
    my ($path, $what) = @$case;
    start_block($Conf) or BAIL_OUT('nginx');
    node('NODE', 'config', reset => 1, delay => 3600000);
    my $a = client($path);
    ws_text($a, call('eth_subscribe', '["quit"]', 1));
    sleep 0.5;
    my @got;
    my $open = 1;
    my $tick = sub {
        my $f = ws_read_frame($a, 0.02);
        return if !$f && $RPCFrame::Why eq 'timeout';
        push @got, ws_describe($f);
        return if $f && $f->{opcode} != CLOSE;
        ws_send($a, ws_frame(CLOSE, $f->{payload})) if $f;
        close $a;
        $open = 0;
    };
    my $took = quit_nginx(3 * $slow, sub { $open ? $tick->() : sleep 0.02 });
    ok(defined $took && $took < 2 * $slow,
       sprintf "nginx -s quit, $what: the worker exits at once (%s)",
       defined $took ? sprintf('%.2f s', $took)
                     : 'still there after ' . 3 * $slow . ' s');
    node('NODE', 'config', reset => 1);
    for (1 .. 50) { last unless $open; $tick->() }
    is(join(', ', @got),
       'text ' . error(-32000, 'Upstream unavailable', 1) . ', close 1001',
       "nginx -s quit, $what: the waiting subscribe gets -32000, then close "
       . '1001');
}
}

__DATA__

=== hostile nodes and clients
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
upstream subs { server 127.0.0.1:$DEAD_PORT; server 127.0.0.1:$NODE_PORT; }
--- config
location /retry {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/retry;
    rpc_subscribe_linger 1s;
    rpc_subscribe_reconnect 100ms 400ms;
}
location /failover {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass subs;
    rpc_subscribe_linger 1s;
}
location /crash {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/crash;
    rpc_subscribe_linger 1s;
    rpc_websocket_max_queued 1m;
}
location /held {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/held;
    rpc_subscribe_linger 1s;
    rpc_websocket_max_queued 64k;
}
location /stuck {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/stuck;
    rpc_subscribe_linger 1s;
    rpc_subscribe_reconnect 100ms 200ms;
    rpc_timeout 500ms;
}
location /flood {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE2_PORT/flood;
    rpc_subscribe_linger 1s;
    rpc_subscribe_reconnect 100ms 400ms;
    rpc_websocket_max_queued 1m;
}
location /many {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/many;
    rpc_subscribe_linger 1s;
    rpc_subscribe_reconnect 100ms 400ms;
    rpc_websocket_max_queued 1m;
}
location /quit {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/quit;
    rpc_timeout 10s;
}
location /quit-sink {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$SINK_PORT/;
    rpc_timeout 10s;
    rpc_connect_timeout 10s;
}
