# Subscriptions over WebSocket (rpc_subscribe_pass and its directives, issue
# 14), against t/js/wsnode.js: a WebSocket node that counts every subscribe
# and unsubscribe it receives and emits events when told, over an HTTP
# control port.  The clients are hand-made (t/lib/RPCFrame.pm), so that
# every frame the gateway sends is seen as it is.
#
# Over HTTP, and over WebSocket without rpc_subscribe_pass, the subscribe
# methods get -32601 and are not forwarded; allow/deny and rpc_limit apply
# to them.  The first client of a key (method and params without
# insignificant whitespace) makes one upstream subscribe, later clients
# join it; each client subscription has its own id (0x + 32 hex), its
# answer comes before its first event, and events are the node's bytes with
# only params.subscription replaced.  Unsubscribe answers true for the
# caller's own ids only, -32602 for bad params; the upstream unsubscribe
# goes only after rpc_subscribe_linger, and not at all when a client comes
# back within it; a closed socket releases its subscriptions;
# rpc_subscribe_max gives -32012.  The node dropping connections (close
# frame, FIN, RST), refusing them, stalling, or not answering pings: the
# clients keep their connections and ids, the gateway reconnects and
# resubscribes, events for old upstream ids are dropped, and a subscribe
# while no node can be reached gets -32000 at once.  Fragmented events,
# upstream subscribe errors, a subscribe not answered within rpc_timeout,
# a client gone before the answer, a slow subscriber closed with 1008
# while another gets every event in time, batches mixing subscriptions and
# calls, another dialect (rpc_subscribe_methods), and two workers with one
# upstream subscription each.  Last, no upstream subscription is left on
# the node once every client has gone.  The configuration is in the blocks
# of __DATA__: TEST 1's serves the HTTP blocks and the WebSocket tests.
use strict;
use warnings;
use Test::Base;
use Test::More import => [qw(BAIL_OUT note)];
use Time::HiRes qw(sleep time);
use JSON::PP;
use List::Util qw(max min);
use lib 't/lib';
use RPCTest;
use RPCFrame;
use RPCNode;

# bounds for what must come: generous under valgrind; what must not come
# too early keeps its bound
my $slow = $Valgrind ? 5 : 1;
my $T = 3 * $slow;
my $json = JSON::PP->new->canonical->allow_nonref;

# ====================================================================
# The node (t/lib/RPCNode.pm starts and steers it): what it received
# ====================================================================

# the texts the node received on a path, from the $from'th on; in scalar
# context, how many
sub received {
    my ($name, $path, $from) = @_;
    my @r = map { $_->{text} } @{ node($name, 'stats', path => $path)->{received} };
    return scalar @r unless wantarray;
    return @r[($from // 0) .. $#r];
}

# the node's live upstream ids of a key
sub upstream_ids {
    my ($name, $path, $key) = @_;
    return map { $_->{id} } grep { $_->{live} && $_->{key} eq $key }
           @{ node($name, 'stats', path => $path)->{subs} };
}


# ====================================================================
# Clients (more in t/lib/RPCNode.pm)
# ====================================================================

# the messages a client gets in $t seconds, the gateway's pings answered
# meanwhile (a "<what>" last when the connection ended)
sub pump {
    my ($s, $t) = @_;
    my @got;
    my $end = time + $t;
    while ((my $left = $end - time) > 0) {
        my $m = next_text($s, $left);
        last if $m eq '<timeout>';
        push @got, $m;
        last if $m =~ /^</;
    }
    return @got;
}

# "timeout" if no message comes within $t seconds
sub quiet {
    my ($s, $t) = @_;
    my $m = next_text($s, $t);
    return $m eq '<timeout>' ? 'timeout' : $m;
}

sub unsubscribe {
    my ($s, $sub, $id) = @_;
    return rpc($s, call('eth_unsubscribe', qq(["$sub"]), $id // 1));
}

# the node's text of an event with the upstream id at params.subscription
# (its $nth occurrence, 1 by default) replaced by the client's, as the
# client must get it
sub spliced {
    my ($text, $up, $client, $nth) = @_;
    my $from = JSON::PP->new->allow_nonref->encode($up);
    my $at = -1;
    for (1 .. $nth // 1) {
        $at = index($text, $from, $at + 1);
        die "no $from in $text\n" if $at < 0;
    }
    substr($text, $at, length $from) = qq("$client");
    return $text;
}


# ====================================================================
# HTTP: -32601, never forwarded (the blocks of __DATA__)
# ====================================================================

node_start('NODE');
node_start('NODE2');

for my $b (blocks()) {
    RPCTest::run_block($b) if defined RPCTest::section($b, 'request');
}

# the blocks' configuration runs on; the WebSocket tests below use it
start_block('TEST 1: over HTTP, eth_subscribe and eth_unsubscribe get -32601 and are not forwarded')
    or BAIL_OUT('nginx');

# ====================================================================
# WebSocket without rpc_subscribe_pass, allow/deny, rpc_limit
# ====================================================================

{
    my $calls = upstream_calls('eth_subscribe');
    my $s = client('/plain');
    is(rpc($s, call('eth_subscribe', '["newHeads"]', 1)),
       error(-32601, 'Method not found', 1),
       'no rpc_subscribe_pass: eth_subscribe over WebSocket gets -32601');
    is(rpc($s, call('eth_unsubscribe', '["0x01"]', 2)),
       error(-32601, 'Method not found', 2),
       'no rpc_subscribe_pass: eth_unsubscribe over WebSocket gets -32601');
    is(upstream_calls('eth_subscribe') + upstream_calls('eth_unsubscribe')
       - $calls, 0, 'no rpc_subscribe_pass: neither went to the HTTP upstream');
    is(rpc($s, call('sum', '[1,2]', 3)), result(3, 3),
       'no rpc_subscribe_pass: other calls go on');
    close $s;

    $s = client('/denied');
    is(rpc($s, call('eth_subscribe', '["newHeads"]', 1)),
       error(-32601, 'Method not found', 1),
       'rpc_deny_methods eth_subscribe: -32601');
    is(node('NODE', 'stats', path => '/denied')->{connections_ever}, 0,
       'rpc_deny_methods eth_subscribe: the node was not even connected');
    close $s;

    $s = client('/limited', headers => { 'X-Key' => 'k1' });
    ok(valid_id(subscribe($s, '["limited"]', 1)),
       'rpc_limit 1r/m: the first subscribe passes');
    is(rpc($s, call('eth_subscribe', '["limited",2]', 2)),
       error(-32011, 'Rate limit exceeded', 2),
       'rpc_limit 1r/m: the second subscribe gets -32011');
    is(key_stats('NODE', '/limited', '["limited",2]')->{subscribes}, 0,
       'rpc_limit: the refused subscribe did not reach the node');
    close $s;
}

# ====================================================================
# One upstream subscribe per key; ids; answers; the events' bytes
# ====================================================================

{
    my ($a, $b, $c) = map { client('/rpc') } 1 .. 3;
    my $ida1 = subscribe($a, '["newHeads"]', 1);
    ok(valid_id($ida1), 'subscribe: the answer is "0x" and 32 lowercase hex '
                        . "digits ($ida1)");
    my @got = received('NODE', '/node');
    is(scalar @got, 1, 'the first client of a key: one upstream message');
    like($got[0] // '',
         qr/^\{"jsonrpc":"2\.0","id":\d+,"method":"eth_subscribe","params":\["newHeads"\]\}$/,
         'the first client of a key: an upstream subscribe with a numeric id '
         . 'of the gateway and the params');
    my $h = node('NODE', 'stats', path => '/node')->{handshakes}[0] // {};
    is("$h->{path} $h->{host}", '/node 127.0.0.1:' . port('NODE_PORT'),
       'the upstream connection: the URI of rpc_subscribe_pass, its Host');

    my $idb = subscribe($b, '["newHeads"]', 7);
    my $idc = subscribe($c, '[ "newHeads" ]', '"c"');
    my $ida2 = subscribe($a, '["newHeads"]', 2);
    ok(valid_id($_), "a client joining the key: its own id ($_)")
        for $idb, $idc, $ida2;
    my $k = key_stats('NODE', '/node', '["newHeads"]');
    is($k->{subscribes}, 1, 'four subscriptions of a key, one with '
       . 'whitespace in its params: one upstream subscribe');
    my $idd = subscribe($b, '["newPendingTransactions"]', 8);
    is(key_stats('NODE', '/node', '["newPendingTransactions"]')->{subscribes},
       1, 'another key: an upstream subscribe of its own');
    my %ids = map { $_ => 1 } $ida1, $ida2, $idb, $idc, $idd;
    is(scalar keys %ids, 5, 'five subscriptions, five different ids');
    is(node('NODE', 'stats', path => '/node')->{connections_ever}, 1,
       'one upstream connection carries them all');

    # an event reaches each subscription once, with its own id
    my $e = node('NODE', 'emit', key => '["newHeads"]');
    my ($up) = map { $_->{sub} } @{ $e->{texts} };
    my $text = $e->{texts}[0]{text};
    my $seq = $e->{seq}[0];
    my @a = sort map { next_text($a) } 1 .. 2;
    is_deeply(\@a, [ sort map { spliced($text, $up, $_) } $ida1, $ida2 ],
              'an event: the client with two subscriptions of the key gets '
              . 'it once for each of its ids');
    is(next_text($b), spliced($text, $up, $idb),
       'an event: the second client gets it with its id');
    is(next_text($c), spliced($text, $up, $idc),
       'an event: the third client gets it with its id');
    is(quiet($b, 0.2), 'timeout', 'an event of another key does not go '
       . 'to the subscription of the second key');
    close $_ for $a, $b, $c;
}

# the answer comes before the first event: the node sends three events in
# the same write as its answer; and clients that join a key whose events
# come every 2 ms
{
    node('NODE', 'config', reset => 1, burst => 3);
    my $a = client('/rpc');
    ws_text($a, call('eth_subscribe', '["burst"]', 1));
    my @got = map { next_text($a) } 1 .. 4;
    node('NODE', 'config', reset => 1);
    my ($id) = ($got[0] // '') =~ /"result":"(0x[0-9a-f]{32})"/;
    like($got[0], qr/^\{"jsonrpc":"2.0","id":1,"result":"0x[0-9a-f]{32}"\}$/,
         'answer and events in one upstream write: the answer first');
    my @subs = map { (split /:/, event_of($_))[0] } @got[1 .. 3];
    is_deeply(\@subs, [ ($id // 'id') x 3 ],
              'answer and events in one upstream write: then the 3 events');
    close $a;

    my $first = client('/rpc');
    subscribe($first, '["stream"]');
    node('NODE', 'stream', every => 2, key => '["stream"]');
    sleep 0.05;
    my @bad;
    for my $n (1 .. 20) {
        my $s = client('/rpc');
        ws_text($s, call('eth_subscribe', '["stream"]', $n));
        my $answer = next_text($s);
        my ($sid) = $answer =~ /^\{"jsonrpc":"2.0","id":$n,"result":"(0x[0-9a-f]{32})"\}$/;
        my $next = next_text($s);
        push @bad, "client $n: $answer then $next"
            unless $sid && event_of($next) =~ /^\Q$sid\E:\d+$/;
        close $s;
    }
    node('NODE', 'stream', every => 0);
    ok(!@bad, '20 clients join a key with an event every 2 ms: each gets '
              . 'its answer, then events with its id') or diag(join "\n", @bad);
    close $first;
}

# the bytes of events: only params.subscription changes
{
    my $a = client('/rpc');
    my $b = client('/rpc');
    my $ida = subscribe($a, '["bytes"]');
    my $idb = subscribe($b, '["bytes"]');
    my ($up) = upstream_ids('NODE', '/node', '["bytes"]');
    my @templates = (
        [ 'result members named like it, the id again inside the result, '
          . 'escapes and UTF-8', 1,
          '{"jsonrpc":"2.0","method":"eth_subscription","params":{'
          . '"subscription":{sub},"result":{"sub":{sub},'
          . '"subscription":"0xinner","text":"caf\u00e9 ' . "\x{e9} \x{2713} "
          . '\"q\" \\\\","n":-1.5e+3,"empty":{},"list":[null,true,false],'
          . '"seq":{seq}}}}' ],
        [ 'whitespace everywhere, params first, subscription after a result '
          . 'that has the id under that name too', 2,
          " {\t\"params\" : { \"result\" : { \"seq\" : {seq} ,"
          . ' "subscription" : {sub} } ,' . "\n"
          . ' "subscription" : {sub} } , "method" : "eth_subscription" , '
          . '"jsonrpc" : "2.0" } ' ],
        [ 'a result of 100,000 bytes', 1,
          '{"jsonrpc":"2.0","method":"eth_subscription","params":{'
          . '"subscription":{sub},"result":{"seq":{seq},"data":"'
          . 'ab' x 50000 . '"}}}' ],
    );
    for my $t (@templates) {
        my ($name, $nth, $template) = @$t;
        my $e = node('NODE', 'emit', key => '["bytes"]', template => $template);
        my $text = $e->{texts}[0]{text};
        my $got = next_text($a);
        ok($got eq spliced($text, $up, $ida, $nth),
           "event bytes: $name: the node's, with the client's id")
            or diag("node: " . substr($text, 0, 300) . "\ngot:  "
                    . substr($got, 0, 300));
        $got = next_text($b);
        ok($got eq spliced($text, $up, $idb, $nth),
           "event bytes: $name: the second client's, with its id");
    }
    close $_ for $a, $b;

    # a node that gives numeric ids: the client still gets its "0x..." id
    node('NODE', 'config', reset => 1, numeric => 1);
    $a = client('/rpc');
    my $id = subscribe($a, '["numeric"]');
    node('NODE', 'config', reset => 1);
    ok(valid_id($id), "a node that answers a numeric id: the client's id ($id)");
    my ($nup) = upstream_ids('NODE', '/node', '["numeric"]');
    my $e = node('NODE', 'emit', key => '["numeric"]');
    is(next_text($a), spliced($e->{texts}[0]{text}, $nup, $id),
       "a numeric upstream id in an event: replaced by the client's string id");
    close $a;
}

# ====================================================================
# Unsubscribe, linger, clients that close
# ====================================================================

{
    my $a = client('/rpc');
    my $b = client('/rpc');
    my $ida = subscribe($a, '["unsub"]');
    my $idb = subscribe($b, '["unsub"]');
    is(unsubscribe($a, $idb, 10), result(10, 'false'),
       "unsubscribe another connection's id: false");
    is(unsubscribe($a, '0x' . '0' x 32, 11), result(11, 'false'),
       'unsubscribe an unknown id: false');
    is(unsubscribe($a, 'hello', 12), result(12, 'false'),
       'unsubscribe a string that is no id: false');
    is(unsubscribe($a, $ida, 13), result(13, 'true'),
       'unsubscribe its own id: true');
    is(unsubscribe($a, $ida, 14), result(14, 'false'),
       'unsubscribe its own id again: false');
    for my $p ('[]', '[1]', '[null]', qq(["$idb","$ida"]), qq({"id":"$idb"}),
               '[["x"]]') {
        is(rpc($a, call('eth_unsubscribe', $p, 20)),
           error(-32602, 'Invalid params', 20),
           "unsubscribe with params $p: -32602");
    }
    is(rpc($a, '{"jsonrpc":"2.0","method":"eth_unsubscribe","id":21}'),
       error(-32602, 'Invalid params', 21),
       'unsubscribe without params: -32602');

    my $e = node('NODE', 'emit', key => '["unsub"]');
    is(event_of(next_text($b)), "$idb:$e->{seq}[0]",
       'after all that, the other client still gets its events');
    is(quiet($a, 0.3), 'timeout', 'the unsubscribed client gets none');
    sleep 1.3;
    is(key_stats('NODE', '/node', '["unsub"]')->{unsubscribes}, 0,
       'no upstream unsubscribe while a client of the key is left');
    close $_ for $a, $b;
}

# rpc_subscribe_linger 1s: the upstream unsubscribe 1 s after the last
# client left, once
{
    my $a = client('/rpc');
    my $id = subscribe($a, '["linger"]');
    my ($up) = upstream_ids('NODE', '/node', '["linger"]');
    my $from = scalar received('NODE', '/node');
    is(unsubscribe($a, $id), result(1, 'true'), 'linger: the last client leaves');
    my $t0 = time;
    sleep 0.6;
    is(key_stats('NODE', '/node', '["linger"]')->{unsubscribes}, 0,
       'linger: no upstream unsubscribe 0.6 s later');
    wait_for(sub { key_stats('NODE', '/node', '["linger"]')->{unsubscribes} },
             1 + $T);
    my $after = time - $t0;
    my @got = grep { /\Q$up\E|"params":\["linger"\]/ }
              received('NODE', '/node', $from);
    is(scalar @got, 1, 'linger: then one upstream message about the key');
    like($got[0] // '', qr/^\{"jsonrpc":"2\.0","id":\d+,"method":"eth_unsubscribe","params":\["\Q$up\E"\]\}$/,
         'linger: an upstream unsubscribe of the upstream id');
    ok($after >= 0.9 && $after < 1 + $T,
       sprintf 'linger: after rpc_subscribe_linger (%.2f s)', $after);
    sleep 0.5;
    is(key_stats('NODE', '/node', '["linger"]')->{unsubscribes}, 1,
       'linger: only one');

    ok(valid_id(subscribe($a, '["linger"]', 2)),
       'linger: a client subscribing after it');
    is(key_stats('NODE', '/node', '["linger"]')->{subscribes}, 2,
       'linger: makes a new upstream subscribe');
    close $a;
}

# a client back within the linger time: no upstream call at all
{
    my $a = client('/rpc');
    my $ida = subscribe($a, '["relinger"]');
    unsubscribe($a, $ida);
    sleep 0.4;
    my $b = client('/rpc');
    my $idb = subscribe($b, '["relinger"]');
    ok(valid_id($idb), 'a client subscribing within the linger time');
    my $e = node('NODE', 'emit', key => '["relinger"]');
    is(event_of(next_text($b)), "$idb:$e->{seq}[0]",
       'within the linger time: it gets the events of the kept subscription');
    sleep 1.2;
    my $k = key_stats('NODE', '/node', '["relinger"]');
    is("$k->{subscribes} $k->{unsubscribes}", '1 0',
       'within the linger time: no upstream subscribe nor unsubscribe');
    close $b;
    wait_for(sub { key_stats('NODE', '/node', '["relinger"]')->{unsubscribes} },
             1 + $T);
    is(key_stats('NODE', '/node', '["relinger"]')->{unsubscribes}, 1,
       'when that client goes too: one upstream unsubscribe after linger');
}

# a client whose socket closes: all its subscriptions are released
{
    my $a = client('/rpc');
    my $b = client('/rpc');
    subscribe($a, '["close"]', 1);
    subscribe($a, '["close-own"]', 2);
    my $idb = subscribe($b, '["close"]', 1);
    close $a;
    wait_for(sub { key_stats('NODE', '/node', '["close-own"]')->{unsubscribes} },
             1 + $T);
    is(key_stats('NODE', '/node', '["close-own"]')->{unsubscribes}, 1,
       'a client closes its socket: its key alone is unsubscribed upstream '
       . 'after linger');
    is(key_stats('NODE', '/node', '["close"]')->{unsubscribes}, 0,
       'a client closes its socket: a key another client has is kept');
    my $e = node('NODE', 'emit', key => '["close"]');
    is(event_of(next_text($b)), "$idb:$e->{seq}[0]",
       'a client closes its socket: the other client gets the events');

    ws_send($b, ws_frame(CLOSE, ws_close_payload(1000)));
    ws_closes($b, 1000, 'the last client sends a close frame', timeout => $T);
    wait_for(sub { key_stats('NODE', '/node', '["close"]')->{unsubscribes} },
             1 + $T);
    is(key_stats('NODE', '/node', '["close"]')->{unsubscribes}, 1,
       'the last client closed: the key is unsubscribed upstream');
}

# a client that leaves before the node answered its subscribe: the late
# answer leaves no upstream subscription behind
{
    my $from = length error_log_text();
    node('NODE', 'config', reset => 1, delay => 300);
    my $a = client('/rpc');
    ws_text($a, call('eth_subscribe', '["gone"]', 1));
    sleep 0.05;
    close $a;
    sleep 0.4;
    node('NODE', 'config', reset => 1);
    ok(wait_for(sub { !key_stats('NODE', '/node', '["gone"]')->{live} }, 2 + $T),
       'a client gone before the answer: the upstream subscription does not '
       . 'outlive the linger time');
    my $b = client('/rpc');
    ok(valid_id(subscribe($b, '["gone"]')),
       'a client gone before the answer: the key can be subscribed again');
    close $b;
    RPCTest::check_error_log($from, 'a client gone before the answer');
}

# rpc_subscribe_max 4: the fifth subscription of a connection gets -32012
{
    my $a = client('/rpc');
    my @ids = map { subscribe($a, qq(["max",$_]), $_) } 1 .. 4;
    is(scalar(grep { valid_id($_) } @ids), 4, 'rpc_subscribe_max 4: four '
       . 'subscriptions');
    is(rpc($a, call('eth_subscribe', '["max",5]', 5)),
       error(-32012, 'Too many subscriptions', 5),
       'rpc_subscribe_max 4: the fifth gets -32012');
    is(key_stats('NODE', '/node', '["max",5]')->{subscribes}, 0,
       'rpc_subscribe_max: the refused one did not reach the node');
    is(rpc($a, call('eth_subscribe', '["max",1]', 6)),
       error(-32012, 'Too many subscriptions', 6),
       'rpc_subscribe_max: also for a key the connection already has');
    my $b = client('/rpc');
    ok(valid_id(subscribe($b, '["max",5]', 1)),
       'rpc_subscribe_max: per connection: another one may subscribe');
    unsubscribe($a, $ids[0], 7);
    ok(valid_id(subscribe($a, '["max",5]', 8)),
       'rpc_subscribe_max: after an unsubscribe, a new subscription fits');
    close $_ for $a, $b;
}

# ====================================================================
# Events the gateway must drop, notifications, fragments, errors
# ====================================================================

{
    my $from = length error_log_text();
    my $a = client('/rpc');
    my $id = subscribe($a, '["unknown"]');
    node('NODE', 'emit', path => '/node', sub => '0x' . 'ab' x 16);
    node('NODE', 'emit', path => '/node', sub => '99999');
    my $e = node('NODE', 'emit', key => '["unknown"]');
    is(event_of(next_text($a)), "$id:$e->{seq}[0]",
       'events for upstream ids the gateway never had are dropped');
    close $a;
    RPCTest::check_error_log($from, 'events for unknown upstream ids');

    my $b = client('/rpc');
    ws_text($b, call('eth_subscribe', '["notified"]'));
    is(rpc($b, call('sum', '[1,2]', 2)), result(2, 3),
       'a subscribe without id (a notification): no answer');
    is(key_stats('NODE', '/node', '["notified"]')->{subscribes}, 0,
       'a subscribe without id: no upstream subscribe');
    close $b;
}

{
    my $a = client('/rpc');
    my $id = subscribe($a, '["fragments"]');
    my ($up) = upstream_ids('NODE', '/node', '["fragments"]');
    my $template = '{"jsonrpc":"2.0","method":"eth_subscription","params":{'
                 . '"subscription":{sub},"result":{"seq":{seq},"text":"'
                 . "\x{e9}\x{20ac}\x{1d11e}" x 20 . '"}}}';
    for my $t ([7, 0], [1, 1], [3, 0], [1000, 1]) {
        my ($size, $ping) = @$t;
        my $e = node('NODE', 'emit', key => '["fragments"]', template => $template,
                     fragment => $size, ping => $ping);
        is(next_text($a), spliced($e->{texts}[0]{text}, $up, $id),
           "an event in fragments of $size bytes"
           . ($ping ? ', a ping between each two' : '') . ': whole, one message');
    }
    close $a;
}

# the node answers a subscribe with an error: the clients waiting get it as
# the node sent it, and nothing is kept
{
    my $err = '{"code": -32602, "message": "unknown subscription type '
            . '\"refused\"", "data": {"x": [1, 2.50]}}';
    node('NODE', 'config', reset => 1, delay => 300, refuse => '["refused"]',
         error => $err);
    my $a = client('/rpc');
    my $b = client('/rpc');
    ws_text($a, call('eth_subscribe', '["refused"]', 1));
    sleep 0.05;
    ws_text($b, call('eth_subscribe', '["refused"]', '"b"'));
    is(next_text($a), qq({"jsonrpc":"2.0","id":1,"error":$err}),
       'an upstream subscribe error: the client gets it as the node sent it');
    is(next_text($b), qq({"jsonrpc":"2.0","id":"b","error":$err}),
       'an upstream subscribe error: so does a client that joined the key '
       . 'while it waited');
    is(key_stats('NODE', '/node', '["refused"]')->{subscribes}, 1,
       'an upstream subscribe error: one upstream subscribe for both');
    node('NODE', 'config', reset => 1);
    ok(valid_id(subscribe($a, '["refused"]', 2)),
       'after an upstream subscribe error, the key may be subscribed again');
    is(key_stats('NODE', '/node', '["refused"]')->{subscribes}, 2,
       'after an upstream subscribe error: a new upstream subscribe');
    close $_ for $a, $b;
}

# rpc_timeout 500ms: a subscribe the node does not answer in time
{
    node('NODE', 'config', reset => 1, delay => 2000);
    my $a = client('/timeout');
    my $t0 = time;
    is(rpc($a, call('eth_subscribe', '["late"]', 1)),
       error(-32001, 'Upstream timed out', 1),
       'rpc_timeout 500ms: a subscribe the node answers after 2 s gets -32001');
    my $took = time - $t0;
    ok($took > 0.4 && $took < 1.5 * $slow,
       sprintf 'rpc_timeout 500ms: after 0.5 s (%.2f)', $took);
    node('NODE', 'config', reset => 1);
    is(quiet($a, 2), 'timeout', 'rpc_timeout: nothing for it comes later');
    close $a;
}

# ====================================================================
# Batches mixing subscriptions and calls
# ====================================================================

{
    my $a = client('/rpc');
    my $calls = upstream_calls('sum');
    my $subs = upstream_calls('eth_subscribe');
    my $answer = rpc($a, '[' . call('eth_subscribe', '["batch"]', 1) . ','
                         . call('sum', '[1,2]', 2) . ']');
    my ($id) = $answer =~ /"result":"(0x[0-9a-f]{32})"/;
    is($answer, '[' . result(1, '"' . ($id // '0x?') . '"') . ','
                . result(2, 3) . ']',
       'a batch of eth_subscribe and a call: both answered, in order');
    is(upstream_calls('sum') - $calls, 1,
       'a batch of eth_subscribe and a call: the call went to the HTTP upstream');
    is(upstream_calls('eth_subscribe') - $subs, 0,
       'a batch of eth_subscribe and a call: the subscribe did not');
    is(key_stats('NODE', '/node', '["batch"]')->{subscribes}, 1,
       'a batch of eth_subscribe and a call: the subscribe went to the node');
    my $e = node('NODE', 'emit', key => '["batch"]');
    is(event_of(next_text($a)), ($id // '') . ":$e->{seq}[0]",
       'a subscription made in a batch gets its events');
    is(rpc($a, '[' . call('eth_unsubscribe', qq(["$id"]), 3) . ','
               . call('sum', '[2,3]', 4) . ']'),
       '[' . result(3, 'true') . ',' . result(4, 5) . ']',
       'a batch of eth_unsubscribe and a call');
    close $a;

    # the batch answer waits for a call of 300 ms; the key's events, every
    # 10 ms, must not reach the new subscription before it
    my $x = client('/rpc');
    subscribe($x, '["batch-slow"]');
    node('NODE', 'stream', every => 10, key => '["batch-slow"]');
    my $b = client('/rpc');
    ws_text($b, '[' . call('eth_subscribe', '["batch-slow"]', 1) . ','
                . call('test_sleep', '[300]', 2) . ']');
    my $first = next_text($b);
    my ($bid) = $first =~ /"result":"(0x[0-9a-f]{32})"/;
    is($first, '[' . result(1, '"' . ($bid // '0x?') . '"') . ','
               . result(2, '"slept"') . ']',
       'a batch with a subscribe and a slow call: its answer comes first');
    $bid //= 'none';
    like(event_of(next_text($b)), qr/^\Q$bid\E:\d+$/,
         'a batch with a subscribe and a slow call: then the events');
    node('NODE', 'stream', every => 0);
    close $_ for $x, $b;
}

# another dialect: rpc_subscribe_methods foo_subscribe foo_unsubscribe
# foo_subscription
{
    my $a = client('/dialect');
    my $id = subscribe($a, '["d"]', 1, 'foo_subscribe');
    ok(valid_id($id), 'rpc_subscribe_methods: foo_subscribe answered');
    like((received('NODE', '/dialect'))[0] // '',
         qr/^\{"jsonrpc":"2\.0","id":\d+,"method":"foo_subscribe","params":\["d"\]\}$/,
         'rpc_subscribe_methods: foo_subscribe went to the node');
    my ($up) = upstream_ids('NODE', '/dialect', '["d"]');
    my $e = node('NODE', 'emit', key => '["d"]', path => '/dialect');
    is(next_text($a), spliced($e->{texts}[0]{text}, $up, $id),
       'rpc_subscribe_methods: a foo_subscription event with the client\'s id');
    is(rpc($a, call('foo_unsubscribe', qq(["$id"]), 2)), result(2, 'true'),
       'rpc_subscribe_methods: foo_unsubscribe');
    close $a;
}

# ====================================================================
# The node goes away: clients stay, keep their ids, get events again
# ====================================================================

for my $how (qw(close end reset)) {
    my $key = qq(["drop-$how"]);
    my $a = client('/rpc');
    my $b = client('/rpc');
    my $ida = subscribe($a, $key);
    my $idb = subscribe($b, $key);
    my ($up1) = upstream_ids('NODE', '/node', $key);
    my $conns = node('NODE', 'stats', path => '/node')->{connections_ever};
    my $from = scalar received('NODE', '/node');
    my $what = { close => 'a close frame', end => 'a TCP close',
                 reset => 'a TCP reset' }->{$how};

    node('NODE', 'drop', how => $how, path => '/node');
    ok(wait_for(sub { key_stats('NODE', '/node', $key)->{subscribes} == 2 }),
       "the node ends the connection with $what: the key is subscribed again");
    is(node('NODE', 'stats', path => '/node')->{connections_ever}, $conns + 1,
       "$what: on a new connection");
    ok((grep { /^\{"jsonrpc":"2\.0","id":\d+,"method":"eth_subscribe","params":\Q$key\E\}$/ }
        received('NODE', '/node', $from)),
       "$what: the resubscribe carries the key's params");
    my ($up2) = upstream_ids('NODE', '/node', $key);
    is(scalar(() = upstream_ids('NODE', '/node', $key)), 1,
       "$what: one live upstream subscription for the key");
    is(quiet($a, 0.1), 'timeout', "$what: the client was told nothing");

    node('NODE', 'emit', path => '/node', sub => $up1);
    my $e = node('NODE', 'emit', key => $key);
    is(event_of(next_text($a)), "$ida:$e->{seq}[0]",
       "$what: an event for the old upstream id is dropped; the client gets "
       . 'the next one, with its original id');
    is(event_of(next_text($b)), "$idb:$e->{seq}[0]",
       "$what: so does the other client, with its original id");
    is(unsubscribe($a, $ida), result(1, 'true'),
       "$what: the original id can be unsubscribed");
    close $_ for $a, $b;
}

# the node cannot be reached (NODE2 refuses connections): a new subscribe
# gets -32000 at once, clients subscribed stay, and everything comes back
{
    my $a = client('/down');
    my $ida = subscribe($a, '["down"]');
    ok(valid_id($ida), 'a subscription on /down');
    node('NODE2', 'refuse', ms => 60000);
    sleep 0.5;
    my $c = client('/down');
    my $t0 = time;
    is(rpc($c, call('eth_subscribe', '["down"]', 1)),
       error(-32000, 'Upstream unavailable', 1),
       'no node can be reached: a subscribe of a live key gets -32000');
    is(rpc($c, call('eth_subscribe', '["down2"]', 2)),
       error(-32000, 'Upstream unavailable', 2),
       'no node can be reached: a subscribe of a new key gets -32000');
    my $took = time - $t0;
    ok($took < 0.3 * $slow, sprintf 'no node can be reached: at once (%.3f s '
       . 'for both)', $took);
    is(rpc($a, call('sum', '[1,2]', 9)), result(9, 3),
       'no node can be reached: the subscribed client is still connected '
       . 'and its calls go on');
    is(quiet($a, 0.3), 'timeout', 'no node can be reached: it was told nothing');

    node('NODE2', 'refuse', ms => 0);
    ok(wait_for(sub { key_stats('NODE2', '/down', '["down"]')->{subscribes} == 2 },
                0.5 + $T),
       'the node is back: the live key is subscribed again');
    my $e = node('NODE2', 'emit', key => '["down"]');
    is(event_of(next_text($a)), "$ida:$e->{seq}[0]",
       'the node is back: the client gets events with its original id');
    is(key_stats('NODE2', '/down', '["down2"]')->{subscribes}, 0,
       'the node is back: the subscribe that got -32000 left nothing behind');
    ok(valid_id(subscribe($c, '["down"]', 3)),
       'the node is back: new subscribes work');
    close $_ for $a, $c;
}

# an address nobody listens on: the first subscribe gets -32000 once the
# connect failed, the next one at once
{
    my $a = client('/dead');
    is(rpc($a, call('eth_subscribe', '["dead"]', 1)),
       error(-32000, 'Upstream unavailable', 1),
       'rpc_subscribe_pass to a closed port: -32000');
    my $t0 = time;
    is(rpc($a, call('eth_subscribe', '["dead"]', 2)),
       error(-32000, 'Upstream unavailable', 2),
       'rpc_subscribe_pass to a closed port: again');
    ok(time - $t0 < 0.3 * $slow, 'rpc_subscribe_pass to a closed port: '
       . 'the second at once');
    close $a;
}

# rpc_subscribe_stall 1s: no event for 1 s is a dead connection
{
    my $a = client('/stall');
    my $id = subscribe($a, '["stall"]');
    my $conns = node('NODE', 'stats', path => '/stall')->{connections_ever};
    node('NODE', 'stream', every => 200, count => 12, key => '["stall"]');
    my @got = map { event_of(next_text($a)) } 1 .. 12;
    is(scalar(grep { /^\Q$id\E:\d+$/ } @got), 12,
       'rpc_subscribe_stall 1s: 12 events 200 ms apart reach the client');
    is(node('NODE', 'stats', path => '/stall')->{connections_ever}, $conns,
       'rpc_subscribe_stall 1s: events 200 ms apart keep the connection '
       . '(2.4 s)');
    my $t0 = time;
    sleep 0.6;
    is(node('NODE', 'stats', path => '/stall')->{connections_ever}, $conns,
       'rpc_subscribe_stall 1s: no new connection 0.6 s after the last event');
    ok(wait_for(sub { key_stats('NODE', '/stall', '["stall"]')->{subscribes} == 2 },
                1 + $T),
       'rpc_subscribe_stall 1s: then the key is subscribed again');
    my $after = time - $t0;
    is(node('NODE', 'stats', path => '/stall')->{connections_ever}, $conns + 1,
       sprintf 'rpc_subscribe_stall 1s: on a new connection (%.2f s after '
       . 'the last event)', $after);
    is(quiet($a, 0.1), 'timeout', 'rpc_subscribe_stall: the client was told '
       . 'nothing');
    my $e = node('NODE', 'emit', key => '["stall"]');
    is(event_of(next_text($a)), "$id:$e->{seq}[0]",
       'rpc_subscribe_stall: the client gets events with its original id');
    close $a;
}

# a node that stops answering pings (ping interval and timeout 500 ms on
# /ping, no stall timeout): the connection is taken for dead and made
# again; a node that answers them keeps it.  The client answers the
# gateway's pings all along (the same directives apply to it).
{
    my $a = client('/ping');
    my $id = subscribe($a, '["ping"]');
    my $st = node('NODE', 'stats', path => '/ping');
    my ($conns, $pings) = @{$st}{qw(connections_ever pings)};
    my @got = pump($a, 2.6);
    $st = node('NODE', 'stats', path => '/ping');
    cmp_ok($st->{pings} - $pings, '>=', 2,
           'rpc_websocket_ping_interval 500ms: the gateway pings a silent '
           . 'node (2.6 s)');
    is($st->{connections_ever}, $conns,
       'a node that answers pings keeps its connection');
    node('NODE', 'stall', on => 1, pongs => 0);
    my $t0 = time;
    ok(wait_for(sub { push @got, pump($a, 0.05);
                      node('NODE', 'stats', path => '/ping')->{connections_ever}
                      > $conns }, 2 + $T),
       sprintf 'a node that stops answering pings: a new connection (%.2f s)',
       time - $t0);
    node('NODE', 'stall', on => 0);
    ok(wait_for(sub { push @got, pump($a, 0.05);
                      key_stats('NODE', '/ping', '["ping"]')->{live} == 1 }),
       'a node that stops answering pings: the key is subscribed again');
    is_deeply(\@got, [], 'a node that stops answering pings: the client was '
              . 'told nothing');
    my $e = node('NODE', 'emit', key => '["ping"]');
    is(event_of(next_text($a)), "$id:$e->{seq}[0]",
       'a node that stopped answering pings: the client gets events with its '
       . 'original id');
    close $a;
}

# ====================================================================
# A slow subscriber is closed with 1008; the others get every event in time
# ====================================================================

SKIP: {
    skip 'megabytes of events timed: not under valgrind', 7 if $Valgrind;
    my $from = length error_log_text();
    my $s = client('/slow', rcvbuf => 4096);
    my $f = client('/slow');
    subscribe($s, '["slow"]', 1);
    subscribe($s, '["slow-own"]', 2);
    my $idf = subscribe($f, '["slow"]');

    # 400 events of 16 KB, one every 5 ms: 6.4 MB the slow one never reads
    my $n = 400;
    my $first = node('NODE', 'stream', every => 5, count => $n, key => '["slow"]',
                     pad => 16000)->{seq};
    my (@seqs, @late, $worst);
    for (1 .. $n) {
        my $t = next_text($f, $T);
        my ($sub, $seq, $sent) = substr($t, 0, 300)
            =~ /"subscription":"(0x[0-9a-f]+)","result":\{"seq":(\d+),"sent":([\d.]+)/
            or do { push @late, substr($t, 0, 80); last };
        push @seqs, $seq;
        my $delay = time * 1000 - $sent;
        $worst = max($worst // 0, $delay);
        push @late, sprintf('%d after %.0f ms', $seq, $delay)
            if $delay > 500 || $sub ne $idf;
    }
    is_deeply(\@seqs, [ $first .. $first + $n - 1 ],
              "a reading client next to a slow one: all $n events, in order");
    ok(!@late, sprintf('a reading client next to a slow one: each within '
                       . '500 ms (worst %.0f ms)', $worst // -1))
        or diag(join ', ', @late[0 .. min(9, $#late)]);
    like(error_log_text($from), qr/rpc: websocket.*(1008|queued)/,
         'the slow subscriber over rpc_websocket_max_queued is logged');
    my @data = ws_closes($s, 1008, 'a subscriber that does not read',
                         skip_data => 1, timeout => $T);
    cmp_ok(scalar @data, '<', $n, 'the slow subscriber got part of the events');
    ok(wait_for(sub { key_stats('NODE', '/slow', '["slow-own"]')->{unsubscribes} },
                1 + $T),
       'the slow subscriber closed: its own key is unsubscribed upstream');
    close $f;
}

# ====================================================================
# Nothing left behind
# ====================================================================

# the gauges of /metrics: three clients, four subscriptions of two keys,
# then none once they have gone and the linger time is over
sub gauges {
    my $m = http_request(method => 'GET', path => '/metrics')->{body};
    my %g = $m =~ /^(rpc_subscriptions|rpc_upstream_subscriptions) (\d+)$/mg;
    return "$g{rpc_subscriptions}/$g{rpc_upstream_subscriptions}";
}

{
    my $base = gauges();
    my ($a, $b, $c) = map { client('/rpc') } 1 .. 3;
    subscribe($_, '["gauge"]') for $a, $b, $c;
    subscribe($a, '["gauge",2]');
    my ($cs, $us) = split m{/}, $base;
    is(gauges(), ($cs + 4) . '/' . ($us + 2),
       'metrics: rpc_subscriptions counts the clients\' subscriptions, '
       . 'rpc_upstream_subscriptions the keys held on the node');
    close $_ for $a, $b, $c;
}

# every client has gone: after the linger time the node has no live
# subscription from the gateway (none leaked by drops, errors, late
# answers, stalls)
{
    my $left = wait_for(sub {
        my @l = grep { $_->{live} } @{ node('NODE', 'stats')->{subs} };
        push @l, grep { $_->{live} } @{ node('NODE2', 'stats')->{subs} };
        @l ? undef : 'none';
    }, 2 + $T);
    my @l = grep { $_->{live} } @{ node('NODE', 'stats')->{subs} },
                                @{ node('NODE2', 'stats')->{subs} };
    is(scalar @l, 0, 'every client gone: no upstream subscription left on the '
       . 'nodes after the linger time')
        or diag(join "\n", map { "$_->{path} $_->{key} $_->{id}" } @l);
    is_deeply([ map { $_->{error} } @{ node('NODE', 'stats')->{errors} } ], [],
              'the node saw no protocol error (masked frames, UTF-8, ...)');
    is(gauges(), '0/0', 'metrics: both subscription gauges back to 0');
}

RPCTest::check_error_log(0, 'subscriptions, one worker');
stop_nginx();

# ====================================================================
# Two workers: one upstream subscription each
# ====================================================================

SKIP: {
    skip 'two workers: not in one process (valgrind)', 5 if $Valgrind;
    start_block('two workers') or BAIL_OUT('nginx, two workers');
    my $alog = length access_log_text();
    my @c = map { client('/rpc') } 1 .. 40;
    my @ids = map { subscribe($_, '["two"]') } @c;
    is(scalar(grep { valid_id($_) } @ids), 40, 'two workers: 40 clients subscribed');
    my $k = key_stats('NODE', '/two', '["two"]');
    my $e = node('NODE', 'emit', key => '["two"]', path => '/two');
    my @bad = grep { event_of(next_text($c[$_])) ne "$ids[$_]:$e->{seq}[0]" }
              0 .. $#c;
    ok(!@bad, 'two workers: an event reaches all 40') or diag("clients @bad");
    close $_ for @c;
    my $st = node('NODE', 'stats', path => '/two');
    wait_for(sub { access_log_text($alog) =~ tr/\n// >= 40 });
    my %pids = map { $_ => 1 } access_log_text($alog) =~ /^101 .* p=(\d+)$/mg;
    note('workers that served the clients: ' . scalar keys %pids);
    is($k->{subscribes}, scalar keys %pids,
       'two workers: one upstream subscribe per worker that had clients');
    cmp_ok($st->{connections_ever}, '<=', 2,
           'two workers: at most one upstream connection each');
    RPCTest::check_error_log(0, 'two workers');
    stop_nginx();
}

__DATA__

=== TEST 1: over HTTP, eth_subscribe and eth_unsubscribe get -32601 and are not forwarded
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_limit_zone $http_x_key zone=subs:1m rate=1r/m;
rpc_metrics_zone metrics:1m;
--- config
location = /metrics { rpc_metrics; }
location /rpc {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/node;
    rpc_subscribe_linger 1s;
    rpc_subscribe_max 4;
    rpc_subscribe_reconnect 100ms 400ms;
}
location /plain { rpc_pass backend; rpc_websocket on; }
location /denied {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/denied;
    rpc_subscribe_linger 1s;
    rpc_deny_methods eth_subscribe;
}
location /limited {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/limited;
    rpc_subscribe_linger 1s;
    rpc_limit zone=subs nodelay;
}
location /timeout {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/timeout;
    rpc_subscribe_linger 1s;
    rpc_timeout 500ms;
}
location /dialect {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/dialect;
    rpc_subscribe_linger 1s;
    rpc_subscribe_methods foo_subscribe foo_unsubscribe foo_subscription;
}
location /down {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE2_PORT/down;
    rpc_subscribe_linger 1s;
    rpc_subscribe_reconnect 100ms 200ms;
}
location /dead {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$DEAD_PORT/;
    rpc_subscribe_linger 1s;
}
location /stall {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/stall;
    rpc_subscribe_linger 1s;
    rpc_subscribe_stall 1s;
    rpc_subscribe_reconnect 100ms 200ms;
}
location /ping {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/ping;
    rpc_subscribe_linger 1s;
    rpc_subscribe_stall 0;
    rpc_subscribe_reconnect 100ms 200ms;
    rpc_websocket_ping_interval 500ms;
    rpc_websocket_ping_timeout 500ms;
}
location /slow {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/slow;
    rpc_subscribe_linger 1s;
    rpc_websocket_max_queued 64k;
}
--- request
[{"jsonrpc":"2.0","method":"eth_subscribe","params":["newHeads"],"id":1},
 {"jsonrpc":"2.0","method":"sum","params":[1,2],"id":2},
 {"jsonrpc":"2.0","method":"eth_unsubscribe","params":["0x01"],"id":3}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1},{"jsonrpc":"2.0","id":2,"result":3},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":3}]
--- upstream_requests
POST / HTTP/1.1
Host: backend
[{"jsonrpc":"2.0","id":0,"method":"sum","params":[1,2]}]


=== TEST 2: over HTTP, a single eth_subscribe
--- request
{"jsonrpc":"2.0","method":"eth_subscribe","params":["newHeads"],"id":"s"}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"s"}


=== TEST 3: over HTTP without rpc_subscribe_pass: not forwarded either
--- path
/plain
--- request
[{"jsonrpc":"2.0","method":"eth_subscribe","params":["newHeads"],"id":1},
 {"jsonrpc":"2.0","method":"eth_unsubscribe","params":["0x01"],"id":2},
 {"jsonrpc":"2.0","method":"sum","params":[2,2],"id":3}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":2},{"jsonrpc":"2.0","id":3,"result":4}]
--- upstream_requests
POST / HTTP/1.1
Host: backend
[{"jsonrpc":"2.0","id":0,"method":"sum","params":[2,2]}]


=== TEST 4: over HTTP, a notification of eth_subscribe is dropped, not forwarded
--- request
[{"jsonrpc":"2.0","method":"eth_subscribe","params":["newHeads"]},
 {"jsonrpc":"2.0","method":"sum","params":[3,3],"id":1}]
--- response_body
[{"jsonrpc":"2.0","id":1,"result":6}]
--- upstream_requests
POST / HTTP/1.1
Host: backend
[{"jsonrpc":"2.0","id":0,"method":"sum","params":[3,3]}]


=== two workers
--- workers
2
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
--- config
location /rpc {
    rpc_pass backend;
    rpc_websocket on;
    rpc_subscribe_pass ws://127.0.0.1:$NODE_PORT/two;
    rpc_subscribe_linger 1s;
}
