# JSON-RPC over WebSocket (RFC 6455) on an rpc_pass location: the
# handshake; every text message one JSON-RPC message, answered like an HTTP
# body; the framing rules, each broken by a hand-made frame (t/lib/RPCFrame.pm)
# and answered with the close code the RFC gives; fragmentation at every
# byte boundary and a 1 MiB message in many fragments; ping, pong and the
# close handshake; the limits (message size, calls in flight, bytes queued
# for a slow reader, idle and ping timeouts); clients that vanish, reload
# and quit with connections open; the access log line of a connection.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX qw(ceil);
use JSON::PP;
use lib 't/lib';
use RPCTest;
use RPCFrame qw(:DEFAULT call notification result error);

# bounds for what must come: generous under valgrind; what must not come
# too early keeps its bound
my $slow = $Valgrind ? 5 : 1;
my $T = 3 * $slow;

my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
log_format ws '$status $uri $rpc_messages $rpc_calls $rpc_websocket_close';
access_log $SERVROOT/logs/ws.log ws;
EOF

my $config = <<'EOF';
location /ws {
    rpc_pass backend;
    rpc_websocket on;
    rpc_websocket_protocols jsonrpc foo.v2;
    rpc_websocket_max_message 128k;
    rpc_deny_methods deny_*;
    rpc_max_batch 10;
}
location /off { rpc_pass backend; }
location /noproto { rpc_pass backend; rpc_websocket on; }
location /big {
    rpc_pass backend;
    rpc_websocket on;
    rpc_websocket_max_message 2m;
    client_max_body_size 2m;
}
location /slow {
    rpc_pass backend;
    rpc_websocket on;
    rpc_websocket_max_queued 64k;
}
location /limited {
    rpc_pass backend;
    rpc_websocket on;
    rpc_websocket_max_calls 2;
}
location /idle {
    rpc_pass backend;
    rpc_websocket on;
    rpc_websocket_idle_timeout 1s;
}
location /ping {
    rpc_pass backend;
    rpc_websocket on;
    rpc_websocket_ping_interval 1s;
    rpc_websocket_ping_timeout 1s;
}
location /timeout { rpc_pass backend; rpc_websocket on; rpc_timeout 500ms; }
location /pending { rpc_pass backend; rpc_websocket on; rpc_max_pending 1; }
EOF

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');

my $json = JSON::PP->new->canonical->allow_nonref;

my $parse_error = error(-32700, 'Parse error', 'null');
my $invalid = error(-32600, 'Invalid Request', 'null');

sub ws_log_text { RPCTest::slurp(servroot() . '/logs/ws.log', @_) }

# the access log line of the request to $uri (each test its own), once
# it is there
sub ws_log_line {
    my ($uri) = @_;
    my $end = time + $T;
    while (time < $end) {
        my @l = grep { (split / /)[1] eq $uri } split /\n/, ws_log_text();
        return join "\n", @l if @l;
        sleep 0.02;
    }
    return 'no line';
}

# error.log since offset $from, once it has a line like $re (or $T passed)
sub error_log_wait {
    my ($from, $re) = @_;
    my $end = time + $T;
    my $log;
    while (time < $end) {
        $log = error_log_text($from);
        last if $log =~ $re;
        sleep 0.05;
    }
    return $log;
}

# no frame within $t seconds: "timeout"
sub quiet {
    my ($s, $t) = @_;
    my $f = ws_read_frame($s, $t);
    return $f ? ws_describe($f) : $RPCFrame::Why;
}

# ====================================================================
# The handshake
# ====================================================================

# RFC 6455 section 1.3: the key of its example and the accept value it gives
{
    my ($s, $res) = ws_connect('/ws', headers => {
        'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==' });
    is($res->{status}, 101, 'handshake: 101 Switching Protocols');
    is($res->{headers}{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
       'handshake: Sec-WebSocket-Accept of the RFC example key');
    like($res->{headers}{upgrade} // '', qr/^websocket$/i,
         'handshake: Upgrade: websocket');
    like($res->{headers}{connection} // '', qr/^upgrade$/i,
         'handshake: Connection: upgrade');
    ok(!exists $res->{headers}{'sec-websocket-protocol'},
       'handshake: no subprotocol when the client asks for none');
    is(ws_rpc($s, call('subtract', '[42,23]', 1)), result(1, 19),
       'handshake: a call is answered on the connection');
    close $s;
}

{
    my ($s, $res) = ws_connect('/ws');
    is($res->{headers}{'sec-websocket-accept'}, ws_accept($res->{key}),
       'handshake: Sec-WebSocket-Accept of a random key');
    close $s;
}

{
    my ($s, $res) = ws_connect('/ws', headers => {
        Upgrade => 'WebSocket', Connection => 'keep-alive, Upgrade' });
    is($res->{status}, 101,
       'handshake: Upgrade in any case, upgrade among Connection tokens');
    close $s;
}

{
    my ($s, $res) = ws_connect('/ws', headers => {
        'Sec-WebSocket-Version' => '8' });
    is($res->{status}, 426, 'handshake: version 8 -> 426');
    is($res->{headers}{'sec-websocket-version'}, '13',
       'handshake: 426 says Sec-WebSocket-Version: 13');
    close $s;
}

for my $key (undef, 'abc', encode_b64_15()) {
    my ($s, $res) = ws_connect('/ws', headers => { 'Sec-WebSocket-Key' => $key });
    is($res->{status}, 400, 'handshake: Sec-WebSocket-Key '
       . (defined $key ? "\"$key\" (not 16 bytes)" : 'missing') . ' -> 400');
    close $s;
}

sub encode_b64_15 { MIME::Base64::encode_base64('x' x 15, '') }

{
    my ($s, $res) = ws_connect('/off');
    is($res->{status}, 405, 'handshake: rpc_websocket off -> 405');
    close $s;
    ($s, $res) = ws_connect('/ws', http => '1.0');
    is($res->{status}, 405, 'handshake: HTTP/1.0 -> 405');
    close $s;
    ($s, $res) = ws_connect('/ws', headers => { Upgrade => undef });
    is($res->{status}, 405, 'handshake: a GET without Upgrade -> 405');
    close $s;
}

# subprotocols: the first of the client's list that is configured, alone
for my $t (['bar, foo.v2, jsonrpc', '/ws', 'foo.v2'],
           ['jsonrpc, foo.v2', '/ws', 'jsonrpc'],
           ['bar, baz', '/ws', undef],
           ['jsonrpc', '/noproto', undef])
{
    my ($offer, $path, $want) = @$t;
    my ($s, $res) = ws_connect($path, headers => {
        'Sec-WebSocket-Protocol' => $offer });
    my @echoed = $res->{head} =~ /^Sec-WebSocket-Protocol:\s*(.*?)\s*$/mig;
    is_deeply(\@echoed, [ $want // () ],
              "subprotocol: $path offered \"$offer\" -> "
              . ($want // 'no header'));
    is($res->{status}, 101, "subprotocol: $path offered \"$offer\" -> 101");
    close $s;
}

# ====================================================================
# Messages: each text message is one JSON-RPC message
# ====================================================================

{
    my ($s) = ws_connect('/ws');
    is(ws_rpc($s, call('sum', '[1,2,4]', '"a"')), result('"a"', 7),
       'a single call gets one text frame: its answer');

    my $batch = '[' . call('sum', '[1,2,4]', '"1"') . ','
              . notification('notify_hello', '[7]') . ','
              . call('subtract', '[42,23]', '"2"') . ',{"foo":"boo"},'
              . call('foo.get', '{"name":"myself"}', '"5"') . ','
              . call('get_data', '[]', '"9"') . ']';
    json_is(ws_rpc($s, $batch), <<'EOF', 'a batch gets one text frame: an array');
[
    {"jsonrpc": "2.0", "result": 7, "id": "1"},
    {"jsonrpc": "2.0", "result": 19, "id": "2"},
    {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
    {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
    {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
]
EOF

    # a notification gets no frame: the next frame answers the next call
    my $updates = upstream_calls('update');
    ws_text($s, notification('update', '[1,2,3]'));
    is(ws_rpc($s, call('sum', '[5]', 2)), result(2, 5),
       'a notification gets no frame: the next one answers the next call');
    ws_text($s, '[' . notification('update', '[4]') . ','
                . notification('notify_sum', '[1]') . ']');
    is(ws_rpc($s, call('sum', '[6]', 3)), result(3, 6),
       'a batch of notifications gets no frame either');
    is(quiet($s, 0.3), 'timeout', 'and nothing comes later');
    is(upstream_calls('update') - $updates, 2,
       'the notifications went to the upstream');

    is(ws_rpc($s, '{"jsonrpc":"2.0","method"'), $parse_error,
       'text that is not JSON gets -32700');
    is(ws_rpc($s, call('sum', '[1]', 4)), result(4, 1),
       'and the connection stays usable');
    is(ws_rpc($s, '{"jsonrpc": "2.0", "method": 1, "params": "bar"}'),
       $invalid, 'an invalid request gets -32600');
    is(ws_rpc($s, '[]'), $invalid, 'an empty batch gets -32600');
    close $s;
}

# every answer is the body HTTP gives for the same message
{
    my ($s) = ws_connect('/ws');
    for my $t (
        [ 'a call', call('subtract', '{"minuend":42,"subtrahend":23}', 3) ],
        [ 'a string id', call('sum', '[1]', '"x\u00e9"') ],
        [ 'a denied method', call('deny_this', '[]', 1) ],
        [ 'a batch over rpc_max_batch',
          '[' . join(',', map { call('sum', "[$_]", $_) } 1 .. 11) . ']' ],
        [ 'nesting over rpc_max_depth',
          call('test_echo', '[' x 33 . ']' x 33, 1) ],
        [ 'an upstream error', call('test_error', '[]', 8) ],
        [ 'a batch of invalid elements', '[1,2,3]' ],
        [ 'trailing garbage', call('sum', '[1]', 1) . 'x' ],
        [ 'two values', call('sum', '[1]', 1) . call('sum', '[2]', 2) ],
    ) {
        my ($name, $body) = @$t;
        my $want = http_post($body, path => '/ws')->{body};
        is(ws_rpc($s, $body), $want, "the same answer as over HTTP: $name");
    }
    close $s;
}

# messages sent one behind the other are all answered, in any order
{
    my ($s) = ws_connect('/ws');
    ws_send($s, ws_frame(TEXT, call('test_sleep', '[300,"p"]', 1)),
                ws_frame(TEXT, call('sum', '[2,2]', 2)),
                ws_frame(TEXT, call('sum', '[3,3]', 3)));
    my @got = sort map { ws_rpc_next($s) } 1 .. 3;
    is_deeply(\@got, [ sort(result(1, '"slept"'), result(2, 4), result(3, 6)) ],
              'three messages in one write: three answers');
    close $s;
}

# the text of the next frame, or "<description>"
sub ws_rpc_next {
    my ($s, $t) = @_;
    my $f = ws_read_frame($s, $t);
    return $f->{payload} if $f && $f->{opcode} == TEXT && $f->{fin}
                            && !$f->{masked} && !$f->{rsv};
    return '<' . ws_describe($f) . '>';
}

# ====================================================================
# Bytes that come with the handshake
# ====================================================================

{
    my ($s, $res) = ws_connect('/ws',
        extra => ws_frame(TEXT, call('sum', '[1,1]', 1))
               . ws_frame(TEXT, call('sum', '[2,2]', 2)));
    is($res->{status}, 101, 'frames in the handshake\'s write: 101');
    my @got = sort map { ws_rpc_next($s, $T) } 1 .. 2;
    is_deeply(\@got, [ result(1, 2), result(2, 4) ],
              'frames in the same write as the handshake are answered');
    close $s;
}

{
    my $frame = ws_frame(TEXT, call('sum', '[3,4]', 7));
    my ($s) = ws_connect('/ws', extra => substr($frame, 0, 9));
    sleep 0.1;
    ws_send($s, substr($frame, 9));
    is(ws_rpc_next($s, $T), result(7, 7),
       'a frame begun in the handshake\'s write and ended later is answered');
    close $s;
}

# ====================================================================
# Fragmentation
# ====================================================================

# a message with 2-, 3- and 4-byte UTF-8 sequences, split into two
# fragments at every byte boundary (empty first or last fragment included)
{
    my ($s) = ws_connect('/ws');
    my @bad;
    my $n = 0;
    for (my $p = 0; ; $p++) {
        my $m = call('test_echo', qq(["a\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9ez"]), $p);
        last if $p > length $m;
        $n++;
        ws_send($s, ws_frame(TEXT, substr($m, 0, $p), fin => 0),
                    ws_frame(CONT, substr($m, $p)));
        my $got = ws_rpc_next($s, $T);
        my $want = result($p, qq(["a\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9ez"]));
        push @bad, "split at $p: $got" if $got ne $want;
        last if $got =~ /^</;
    }
    ok(!@bad, "one message split in two at each of its $n boundaries: "
              . 'each answered') or diag(join "\n", @bad);
    close $s;
}

# a frame written one byte per write; a message of three fragments and a
# ping between them, one byte per write too
{
    my ($s) = ws_connect('/ws');
    my $bytes = ws_frame(TEXT, call('sum', '[10,20]', 1));
    for my $b (split //, $bytes) { ws_send($s, $b); sleep 0.002 }
    is(ws_rpc_next($s, $T), result(1, 30),
       'a frame written one byte at a time is answered');

    my $m = call('sum', '[1,2,3]', 2);
    $bytes = ws_frame(TEXT, substr($m, 0, 10), fin => 0)
           . ws_frame(PING, 'in between')
           . ws_frame(CONT, substr($m, 10, 10), fin => 0)
           . ws_frame(CONT, substr($m, 20));
    for my $b (split //, $bytes) { ws_send($s, $b); sleep 0.002 }
    is(ws_describe(ws_read_frame($s, $T)), 'pong in between',
       'byte by byte: the ping between fragments gets its pong');
    is(ws_rpc_next($s, $T), result(2, 6),
       'byte by byte: the fragmented message is answered');
    close $s;
}

{
    my ($s) = ws_connect('/ws');
    my $m = call('sum', '[4,5]', 3);
    ws_send($s, ws_frame(TEXT, '', fin => 0), ws_frame(CONT, '', fin => 0),
                ws_frame(CONT, $m, fin => 0), ws_frame(CONT, ''));
    is(ws_rpc_next($s, $T), result(3, 9),
       'empty fragments at the start, in the middle and at the end');
    ws_send($s, ws_frame(TEXT, substr($m, 0, 5), fin => 0),
                ws_frame(PING, 'p1'), ws_frame(PONG, 'unsolicited'),
                ws_frame(CONT, substr($m, 5, 5), fin => 0),
                ws_frame(PING, ''),
                ws_frame(CONT, substr($m, 10)));
    is(ws_describe(ws_read_frame($s, $T)), 'pong p1',
       'a ping between two fragments: pong with its payload');
    is(ws_describe(ws_read_frame($s, $T)), 'pong ',
       'an empty ping between fragments: an empty pong');
    is(ws_rpc_next($s, $T), result(3, 9),
       'the message around the pings (and an unsolicited pong) is answered');
    close $s;
}

# UTF-8 checked across fragment boundaries: valid sequences split at each
# of their inner boundaries are answered
for my $c ("\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e") {
    my ($s) = ws_connect('/ws');
    for my $i (1 .. length($c) - 1) {
        my $head = '{"jsonrpc":"2.0","method":"test_echo","params":["' . substr($c, 0, $i);
        my $tail = substr($c, $i) . '"],"id":1}';
        ws_send($s, ws_frame(TEXT, $head, fin => 0), ws_frame(CONT, $tail));
        is(ws_rpc_next($s, $T), result(1, qq(["$c"])),
           sprintf('UTF-8 %s split after byte %d: answered', ws_hex($c), $i));
    }
    close $s;
}

# ====================================================================
# Frames the gateway closes on (RFC 6455 sections 5, 7.4, 8.1)
# ====================================================================

my $c1 = call('sum', '[1,2]', 1);
my @violations = (
    # 1002: protocol error
    [ 'an unmasked text frame', 1002, ws_frame(TEXT, $c1, mask => 0) ],
    [ 'an unmasked ping', 1002, ws_frame(PING, 'x', mask => 0) ],
    (map { [ "RSV bit $_->[0] set", 1002, ws_frame(TEXT, $c1, rsv => $_->[1]) ] }
         [1, 4], [2, 2], [3, 1]),
    [ 'RSV1 set on a ping', 1002, ws_frame(PING, 'x', rsv => 4) ],
    [ 'RSV1 set on a continuation', 1002,
      ws_frame(TEXT, '[', fin => 0) . ws_frame(CONT, ']', rsv => 4) ],
    (map { [ sprintf('reserved opcode 0x%X', $_), 1002, ws_frame($_, 'x') ] }
         3 .. 7, 0xB .. 0xF),
    [ 'a ping of 126 bytes', 1002, ws_frame(PING, 'p' x 126) ],
    [ 'a pong of 126 bytes', 1002, ws_frame(PONG, 'p' x 126) ],
    [ 'a close of 126 bytes', 1002,
      ws_frame(CLOSE, ws_close_payload(1000, 'r' x 124)) ],
    [ 'a fragmented ping', 1002,
      ws_frame(PING, 'x', fin => 0) . ws_frame(CONT, 'y') ],
    [ 'a fragmented close', 1002, ws_frame(CLOSE, ws_close_payload(1000), fin => 0) ],
    [ 'a continuation without a start', 1002, ws_frame(CONT, $c1) ],
    [ 'a continuation after a finished message', 1002,
      ws_frame(TEXT, notification('update', '[]')) . ws_frame(CONT, ' ') ],
    [ 'a text frame inside a fragmented message', 1002,
      ws_frame(TEXT, '[', fin => 0) . ws_frame(TEXT, $c1) ],
    [ 'a binary frame inside a fragmented message', 1002,
      ws_frame(TEXT, '[', fin => 0) . ws_frame(BINARY, $c1) ],
    [ 'the 16-bit length for 5 bytes', 1002,
      ws_frame(TEXT, '[1,2]', len16 => 1) ],
    [ 'the 64-bit length for 5 bytes', 1002,
      ws_frame(TEXT, '[1,2]', len64 => 1) ],
    [ 'the 64-bit length for 200 bytes', 1002,
      ws_frame(TEXT, ' ' x 190 . '[1,2]', len64 => 1) ],
    [ 'a ping with the 16-bit length for 3 bytes', 1002,
      ws_frame(PING, 'abc', len16 => 1) ],
    [ 'a 64-bit length with the top bit set', 1002,
      ws_frame(TEXT, '', length => (1 << 63) | 5, head_only => 1) ],
    [ 'a close with a 1-byte payload', 1002, ws_frame(CLOSE, "\x03") ],
    (map { [ "close code $_", 1002, ws_frame(CLOSE, ws_close_payload($_)) ] }
         0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535),

    # 1003: data it cannot accept
    [ 'a binary frame', 1003, ws_frame(BINARY, $c1) ],
    [ 'a binary message\'s first fragment', 1003,
      ws_frame(BINARY, '[', fin => 0) ],

    # 1007: text that is not UTF-8
    (map { [ 'text with ' . $_->[0] . ' (' . ws_hex($_->[1]) . ')', 1007,
             ws_frame(TEXT, call('test_echo', qq(["$_->[1]"]), 1)) ] }
         [ 'an overlong 2-byte sequence', "\xc0\xaf" ],
         [ 'an overlong 3-byte sequence', "\xe0\x80\xaf" ],
         [ 'an overlong 4-byte sequence', "\xf0\x80\x80\xaf" ],
         [ 'a surrogate', "\xed\xa0\x80" ],
         [ 'a code point over U+10FFFF', "\xf4\x90\x80\x80" ],
         [ 'a lone continuation byte', "\x80" ],
         [ 'the byte 0xFF', "\xff" ],
         [ 'a 2-byte sequence cut short', "\xc3" ],
         [ 'a 4-byte sequence cut short', "\xf0\x9d\x84" ]),
    (map { [ 'UTF-8 ' . ws_hex($_) . ' ended by "A" in the next fragment',
             1007, ws_frame(TEXT, '{"jsonrpc":"2.0","method":"test_echo",'
                                . '"params":["' . $_, fin => 0)
                 . ws_frame(CONT, 'A"],"id":1}') ] }
         "\xc3", "\xe2\x82", "\xf0\x9d\x84"),
    [ 'a message ending inside a 3-byte sequence', 1007,
      ws_frame(TEXT, qq(["\xe2\x82)) ],
    [ 'a fragmented message ending inside a 4-byte sequence', 1007,
      ws_frame(TEXT, '["a', fin => 0) . ws_frame(CONT, "\xf0\x9d") ],
    [ 'a close reason that is not UTF-8', 1007,
      ws_frame(CLOSE, ws_close_payload(1000, "\xc0\xaf")) ],
);

for my $v (@violations) {
    my ($name, $code, $bytes) = @$v;
    my $from = length error_log_text();
    my ($s) = ws_connect('/ws');
    ws_send($s, $bytes);
    ws_closes($s, $code, $name, timeout => $T,
              diag => 'sent: ' . ws_hex(substr($bytes, 0, 64)));
    like(error_log_wait($from, qr/rpc: websocket/),
         qr/\[info\] .*rpc: websocket/, "$name: logged at info");
}

# the same rules, broken after a message was answered
{
    my ($s) = ws_connect('/ws');
    is(ws_rpc($s, $c1), result(1, 3), 'a call answered');
    ws_send($s, ws_frame(TEXT, $c1, mask => 0));
    ws_closes($s, 1002, 'then an unmasked frame', timeout => $T);
}

# lengths in a longer encoding than needed are allowed where they are the
# minimal one
{
    my ($s) = ws_connect('/ws');
    my $m = call('test_echo', '["' . 'x' x 150 . '"]', 1);
    ws_send($s, ws_frame(TEXT, $m));
    is(ws_rpc_next($s, $T), result(1, '["' . 'x' x 150 . '"]'),
       'a 16-bit length for a frame of 126 bytes or more: answered');
    $m = call('test_echo', '["' . 'y' x 70000 . '"]', 2);
    ws_send($s, ws_frame(TEXT, $m));
    is(ws_rpc_next($s, $T), result(2, '["' . 'y' x 70000 . '"]'),
       'a 64-bit length for a frame of 65536 bytes or more: answered');
    ws_send($s, ws_frame(PING, 'z' x 125));
    is(ws_describe(ws_read_frame($s, $T)), 'pong ' . 'z' x 125,
       'a ping of 125 bytes: pong with the same 125 bytes');
    close $s;
}

# ====================================================================
# rpc_websocket_max_message: 1009 as soon as a frame header shows it
# ====================================================================

# a message of exactly 128k bytes, in two fragments
sub sized_call {
    my ($size, $id) = @_;
    my $m = call('test_echo', '[""]', $id);
    return call('test_echo', '["' . 'm' x ($size - length $m) . '"]', $id);
}

{
    my ($s) = ws_connect('/ws');
    my $m = sized_call(131072, 1);
    ws_send($s, ws_frame(TEXT, substr($m, 0, 100000), fin => 0),
                ws_frame(CONT, substr($m, 100000)));
    my $got = ws_rpc_next($s, $T);
    ok($got =~ /^\Q{"jsonrpc":"2.0","id":1,"result":["mmm\E/,
       'a message of exactly rpc_websocket_max_message (128k): answered')
        or diag(substr($got, 0, 200));
    close $s;

    # the frame header alone: the close must come without the payload
    ($s) = ws_connect('/ws');
    ws_send($s, ws_frame(TEXT, '', length => 131073, head_only => 1));
    ws_closes($s, 1009, 'a frame header of 128k + 1 bytes, payload unsent',
              timeout => $T);

    ($s) = ws_connect('/ws');
    $m = sized_call(131073, 1);
    ws_send($s, ws_frame(TEXT, substr($m, 0, 100000), fin => 0),
                ws_frame(CONT, '', length => 31073, head_only => 1));
    ws_closes($s, 1009, 'fragments adding up to 128k + 1: at the last '
              . 'fragment\'s header', timeout => $T);

    ($s) = ws_connect('/ws');
    ws_send($s, ws_frame(TEXT, '', length => 1 << 40, head_only => 1));
    ws_closes($s, 1009, 'a frame header of 1 TiB', timeout => $T);
}

# ====================================================================
# Ping, pong and the close handshake
# ====================================================================

{
    my ($s) = ws_connect('/ws');
    ws_send($s, ws_frame(PING, 'abc'));
    is(ws_describe(ws_read_frame($s, $T)), 'pong abc',
       'ping -> pong with the same payload');
    ws_send($s, ws_frame(PING, "\x00\xff\x01"));
    my $f = ws_read_frame($s, $T);
    is($f && $f->{opcode} == PONG ? $f->{payload} : ws_describe($f),
       "\x00\xff\x01", 'ping with binary payload -> pong with the same bytes');
    ws_send($s, ws_frame(PONG, 'nobody asked'));
    is(ws_rpc($s, $c1), result(1, 3), 'an unsolicited pong is ignored');
    close $s;
}

for my $code (1000, 1001, 1011, 3000, 4999) {
    my ($s) = ws_connect('/ws');
    is(ws_rpc($s, $c1), result(1, 3), "close $code: a call first");
    ws_send($s, ws_frame(CLOSE, ws_close_payload($code, 'bye')));
    ws_closes($s, $code, "the client closes with $code: echoed",
              timeout => $T);
}

{
    my ($s) = ws_connect('/ws');
    ws_send($s, ws_frame(CLOSE, ''));
    ws_closes($s, '', 'the client closes with an empty close: echoed',
              timeout => $T);
}

# ====================================================================
# A 1 MiB message in many fragments, with pings between them
# ====================================================================

{
    my $str = ('x' x 91 . "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e") x 10486;  # 1 MiB
    my $m = '[' . call('test_echo', qq(["$str"]), 1) . ','
          . call('sum', '[1,2]', 2) . ']';
    my @sizes = (1, 2, 3, 125, 126, 127, 4093, 65535, 65536, 65537, 1000, 7);
    my ($bytes, $at, $n) = ('', 0, 0);
    while ($at < length $m) {
        my $size = $sizes[$n % @sizes];
        my $last = $at + $size >= length $m;
        $bytes .= ws_frame($n ? CONT : TEXT, substr($m, $at, $size),
                           fin => $last ? 1 : 0);
        $bytes .= ws_frame(PING, "p$n") if $n % 20 == 10;
        $at += $size;
        $n++;
    }
    my ($s) = ws_connect('/big');
    ws_send($s, $bytes);
    my (@pongs, $f);
    while (($f = ws_read_frame($s, 10 * $slow)) && $f->{opcode} == PONG) {
        push @pongs, $f->{payload};
    }
    is_deeply(\@pongs, [ map { "p$_" } grep { $_ % 20 == 10 } 0 .. $n - 1 ],
              "a 1 MiB message in $n fragments: each ping between them "
              . 'gets its pong');
    my $want = '[' . result(1, qq(["$str"])) . ',' . result(2, 3) . ']';
    my $got = $f && $f->{opcode} == TEXT ? $f->{payload} : ws_describe($f);
    ok($got eq $want, "a 1 MiB message in $n fragments: answered")
        or diag('got ' . length($got) . ' bytes: ' . substr($got, 0, 100));
    my $http_answer = http_post($m, path => '/big')->{body};
    ok($got eq $http_answer, 'the same answer as over HTTP')
        or diag('HTTP gave ' . length($http_answer) . ' bytes: '
                . substr($http_answer, 0, 100));
    close $s;
}

# ====================================================================
# Limits
# ====================================================================

# rpc_websocket_max_calls 2: a client sending 8 slow calls at once is
# slowed down, never more than 2 in flight: with each call taking 300 ms
# at the upstream, the k-th answer cannot come before ceil(k/2) * 300 ms
{
    my ($s) = ws_connect('/limited');
    my $t0 = time;
    ws_send($s, map { ws_frame(TEXT, call('test_sleep', "[300,$_]", $_)) }
                    1 .. 8);
    my (@at, @got);
    for (1 .. 8) {
        push @got, ws_rpc_next($s, 5 * $slow);
        push @at, time - $t0;
    }
    is_deeply([ sort @got ],
              [ sort map { result($_, '"slept"') } 1 .. 8 ],
              'rpc_websocket_max_calls 2: all 8 calls answered');
    my @early = grep { $at[$_ - 1] < ceil($_ / 2) * 0.3 - 0.01 } 1 .. 8;
    ok(!@early, 'rpc_websocket_max_calls 2: never more than 2 calls in flight')
        or diag('answers came at ' . join(', ', map { sprintf '%.3f', $_ } @at)
                . ' s');
    close $s;
}

# rpc_websocket_max_queued 64k: a client that sends calls with large
# answers and reads nothing is closed with 1008
{
    my $from = length error_log_text();
    my ($s) = ws_connect('/slow', rcvbuf => 4096);
    ws_send($s, map { ws_frame(TEXT, call('test_big', '[100000]', $_)) }
                    1 .. 40);
    my $log = error_log_wait($from, qr/rpc: websocket.*(1008|queued)/);
    like($log, qr/rpc: websocket.*(1008|queued)/,
         'a slow reader over rpc_websocket_max_queued is logged');
    my @data = ws_closes($s, 1008, 'a slow reader over rpc_websocket_max_queued',
                         skip_data => 1, timeout => $T);
    my $x = 'x' x 100000;
    my @bad = grep { $_->{payload} !~ /^\{"jsonrpc":"2.0","id":\d+,"result":"$x"\}$/ }
              @data;
    ok(!@bad, 'the answers sent before the close are whole ('
              . scalar(@data) . ' of 40)');
    cmp_ok(scalar @data, '<', 40, 'not all 40 answers were sent');
    RPCTest::check_error_log($from, 'slow reader');
}

# rpc_timeout applies to a call over WebSocket
{
    my ($s) = ws_connect('/timeout');
    my $t0 = time;
    is(ws_rpc($s, call('test_sleep', '[1500]', 1), $T),
       error(-32001, 'Upstream timed out', 1),
       'rpc_timeout 500ms: a slow call gets -32001');
    cmp_ok(time - $t0, '<', 1.4 * $slow, 'rpc_timeout: in time');
    is(ws_rpc($s, $c1, $T), result(1, 3), 'rpc_timeout: the connection stays');
    close $s;
}

# rpc_max_pending applies to calls over WebSocket
{
    my ($s) = ws_connect('/pending');
    ws_send($s, ws_frame(TEXT, call('test_sleep', '[300]', 1)),
                ws_frame(TEXT, call('sum', '[1]', 2)));
    my @got = sort map { ws_rpc_next($s, $T) } 1 .. 2;
    is_deeply(\@got, [ sort(error(-32010, 'Gateway overloaded', 2),
                            result(1, '"slept"')) ],
              'rpc_max_pending 1: the second call in flight gets -32010');
    close $s;
}

# ====================================================================
# Timers
# ====================================================================

# rpc_websocket_idle_timeout 1s: no message and nothing in flight
{
    my ($s) = ws_connect('/idle');
    is(ws_rpc($s, $c1), result(1, 3), 'idle: a call answered');
    my $t0 = time;
    is(quiet($s, 0.8), 'timeout', 'idle: nothing before the idle timeout');
    ws_closes($s, 1000, 'idle: closed after rpc_websocket_idle_timeout',
              timeout => $T);
    cmp_ok(time - $t0, '<', 2 * $slow, 'idle: in time');

    ($s) = ws_connect('/idle');
    is(ws_rpc($s, call('test_sleep', '[1500]', 2), $T), result(2, '"slept"'),
       'idle: a call in flight longer than the idle timeout is answered');
    ws_closes($s, 1000, 'idle: then the connection is closed', timeout => $T);
}

# rpc_websocket_ping_interval 1s, ping_timeout 1s: a client that never
# answers the gateway's pings is gone after the timeout, one that answers
# stays
{
    my %c = (silent => { s => (ws_connect('/ping'))[0] },
             answering => { s => (ws_connect('/ping'))[0] });
    my $t0 = time;
    while (time < $t0 + 3.5) {
        for my $name (sort keys %c) {
            my $c = $c{$name};
            next if $c->{gone};
            my $f = ws_read_frame($c->{s}, 0.02);
            if (!$f) {
                $c->{gone} = time - $t0 if $RPCFrame::Why ne 'timeout';
                $c->{why} = $RPCFrame::Why;
                next;
            }
            push @{ $c->{frames} }, [ time - $t0, $f ];
            ws_send($c->{s}, ws_frame(PONG, $f->{payload}))
                if $name eq 'answering' && $f->{opcode} == PING;
        }
    }
    my $silent = $c{silent};
    my ($first, @after) = @{ $silent->{frames} // [] };
    is($first ? ws_describe({ %{ $first->[1] }, payload => '' }) : 'nothing',
       'ping ', 'ping interval: the gateway pings a quiet client');
    my $pinged = $first ? $first->[0] : 0;
    ok($pinged > 0.9 && $pinged < 1.5 * $slow,
       sprintf('ping interval: after 1 s (%.2f)', $pinged));
    is($silent->{why}, 'EOF',
       'ping timeout: a client that does not answer is disconnected');
    my $gone = ($silent->{gone} // 99) - $pinged;
    ok($gone > 0.9 && $gone < 1.5 * $slow,
       sprintf('ping timeout: 1 s after the ping (%.2f)', $gone));
    note('then, before EOF: ' . join(', ', map { ws_describe($_->[1]) } @after))
        if @after;

    my $answering = $c{answering};
    ok(!$answering->{gone}, 'ping timeout: a client that answers stays')
        or diag("gone: $answering->{why}");
    my @pings = grep { $_->[1]{opcode} == PING } @{ $answering->{frames} };
    cmp_ok(scalar @pings, '>=', 2, 'ping interval: pinged again after its pong');
    is(ws_rpc($answering->{s}, $c1, $T), result(1, 3),
       'the client that answers pings is served');
    close $_->{s} for values %c;
}

# ====================================================================
# Clients that vanish, the access log, reload and quit
# ====================================================================

# a client that vanishes mid-call: its connection ends at once, without
# waiting for the call (1 s at the upstream); the answers that come later
# find nothing to crash on, and the next client is served.  A message cut
# off by the hang-up was not received: it is not counted.
{
    my $from = length error_log_text();
    my $n = 0;
    for my $t (['closes', sub { close $_[0] }],
               ['resets', sub { ws_reset($_[0]) }],
               ['closes in the middle of a frame', sub {
                    ws_send($_[0], substr(ws_frame(TEXT, $c1), 0, 12));
                    close $_[0] }],
               ['closes in the middle of a fragmented message', sub {
                    ws_send($_[0], ws_frame(TEXT, '[', fin => 0));
                    close $_[0] }])
    {
        my ($how, $vanish) = @$t;
        my $uri = '/ws/vanish-' . ++$n;
        my ($s) = ws_connect($uri);
        ws_text($s, call('test_sleep', '[1000]', 1));
        sleep 0.1;
        my $t0 = time;
        $vanish->($s);
        is(ws_log_line($uri), "101 $uri 1 1 -",
           "a client that $how mid-call: logged, 1 message, 1 call");
        cmp_ok(time - $t0, '<', 0.5,
               "a client that $how mid-call: its connection ends at once");
    }
    sleep 1;
    my ($s) = ws_connect('/ws');
    is(ws_rpc($s, $c1, $T), result(1, 3),
       'after clients that vanished mid-call, the next client is served');
    close $s;
    RPCTest::check_error_log($from, 'clients that vanished mid-call');
}

# one access log line per connection, when it closes
{
    my ($s) = ws_connect('/ws/log-1000');
    ws_rpc($s, $c1);
    ws_rpc($s, '[' . call('sum', '[1]', 1) . ',' . call('sum', '[2]', 2) . ','
               . notification('update', '[]') . ']');
    ws_text($s, notification('update', '[]'));
    ws_send($s, ws_frame(CLOSE, ws_close_payload(1000)));
    ws_closes($s, 1000, 'access log: the client closes', timeout => $T);
    is(ws_log_line('/ws/log-1000'), '101 /ws/log-1000 3 5 1000',
       'access log: 101, 3 messages, 5 calls, close code 1000');

    ($s) = ws_connect('/ws/log-1002');
    ws_rpc($s, $c1);
    ws_send($s, ws_frame(TEXT, $c1, mask => 0));
    ws_closes($s, 1002, 'access log: an unmasked frame', timeout => $T);
    is(ws_log_line('/ws/log-1002'), '101 /ws/log-1002 1 1 1002',
       'access log: the close code the gateway sent, 1002');

    ($s) = ws_connect('/ws/log-empty');
    ws_send($s, ws_frame(CLOSE, ''));
    ws_closes($s, '', 'access log: an empty close', timeout => $T);
    is(ws_log_line('/ws/log-empty'), '101 /ws/log-empty 0 0 1005',
       'access log: an empty close echoed is logged as 1005');

    http_post('[' . call('sum', '[1]', 1) . ',' . call('sum', '[2]', 2) . ']',
              path => '/ws/log-http');
    is(ws_log_line('/ws/log-http'), '200 /ws/log-http 1 2 -',
       'access log: an HTTP request is 1 message, without close code');
}

# reload: a call in flight on the old worker is answered, then its
# connections are closed with 1001; the new worker serves
SKIP: {
    skip 'no reload in one process (valgrind)', 7 if $Valgrind;
    my ($busy) = ws_connect('/ws');
    my ($idle) = ws_connect('/ws');
    is(ws_rpc($idle, $c1), result(1, 3), 'reload: an idle connection');
    ws_text($busy, call('test_sleep', '[700]', 2));
    sleep 0.2;
    reload_nginx();
    ws_closes($idle, 1001, 'reload: the idle connection is closed',
              timeout => $T);
    is(ws_rpc_next($busy, $T), result(2, '"slept"'),
       'reload: the call in flight is answered');
    ws_closes($busy, 1001, 'reload: then the old worker closes', timeout => $T);
    my ($s) = ws_connect('/ws');
    is(ws_rpc($s, $c1, $T), result(1, 3), 'reload: the new worker serves');
    close $s;
}

# quit: the same, as nginx exits
SKIP: {
    skip 'no graceful quit in one process (valgrind)', 3 if $Valgrind;
    sleep 0.5;
    my ($busy) = ws_connect('/ws');
    ws_text($busy, call('test_sleep', '[500]', 3));
    sleep 0.2;
    kill 'QUIT', nginx_pid();
    is(ws_rpc_next($busy, $T), result(3, '"slept"'),
       'quit: the call in flight is answered');
    ws_closes($busy, 1001, 'quit: then the connection is closed',
              timeout => $T);
}

RPCTest::check_error_log(0, 'the whole file');
stop_nginx();
