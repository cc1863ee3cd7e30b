# Parsing: the JSONTestSuite corpus, ids echoed byte for byte, bodies split
# across buffers at every byte, chunked bodies and bodies in temp files;
# nothing but white space after the value, the first fault in the stream
# decides the answer however the body is split, and a body read in small
# pieces costs time in proportion to its size.
use strict;
use warnings;
use Test::Base;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use lib 't/lib';
use RPCTest;

my $corpus = "$RPCTest::Root/t/corpora/JSONTestSuite/test_parsing";
my $parse_error =
    '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}';

start_nginx(
    http_config => 'upstream backend { server 127.0.0.1:$UPSTREAM_PORT; '
                 . 'keepalive 4; }',
    config => 'location /rpc { rpc_pass backend; }
               location /small { client_body_buffer_size 1k; rpc_pass backend; }
               location /batch2 { rpc_max_batch 2; rpc_pass backend; }',
    log_level => 'debug')
    or BAIL_OUT("nginx did not start");

# --- JSONTestSuite: n_ rejected with -32700, y_ never, nothing crashes

opendir my $d, $corpus or BAIL_OUT("no corpus at $corpus");
my @files = sort grep { /^[yni]_.*\.json$/ } readdir $d;
ok(@files > 300, "corpus has " . scalar(@files) . " files");
my (%bad, %count);
for my $f (@files) {
    open my $fh, '<:raw', "$corpus/$f" or die "$f: $!";
    my $body = do { local $/; <$fh> };
    my $res = http_post($body);
    my $kind = substr($f, 0, 1);
    $count{$kind}++;
    if ($res->{status} != 200) {
        push @{$bad{status}}, "$f: $res->{status}";
    } elsif ($kind eq 'n' && $res->{body} ne $parse_error) {
        push @{$bad{n}}, "$f: $res->{body}";
    } elsif ($kind eq 'y' && $res->{body} eq $parse_error) {
        push @{$bad{y}}, $f;
    } elsif ($kind eq 'i' && $res->{body} !~ /^[\[{]/) {
        push @{$bad{i}}, "$f: $res->{body}";
    }
}
ok(!$bad{status}, "every corpus body answered with 200")
    or diag(join "\n", @{$bad{status}});
ok(!$bad{n}, "all $count{n} n_ files rejected with -32700")
    or diag(join "\n", @{$bad{n}});
ok(!$bad{y}, "no y_ file of $count{y} rejected with -32700")
    or diag(join "\n", @{$bad{y}});
ok(!$bad{i}, "every i_ file of $count{i} gets a JSON-RPC answer")
    or diag(join "\n", @{$bad{i}});
unlike(error_log_text(), qr/exited on signal|\[alert\]|\[crit\]/,
       "no worker crashed on the corpus");

# --- ids are echoed byte for byte

for my $id ('0', '-1', '1.5', '1e400', '-0', '1E+2', '18446744073709551617',
            '"a\u0000b"', '"\ud83d\ude00 \"q\" \\\\ \/"', '""', 'null',
            '"' . ('x' x 3000) . '"')
{
    my $res = http_post(qq({"jsonrpc":"2.0","method":"sum","params":[1,2],)
                        . qq("id":$id}));
    is($res->{body}, qq({"jsonrpc":"2.0","id":$id,"result":3}),
       "id " . substr($id, 0, 30) . " echoed byte for byte");
}

my $res = http_post(qq({"jsonrpc":"2.0","method":"nope","id":-1.5e-7}),
                    path => '/rpc');
like($res->{body}, qr/^\{"jsonrpc":"2.0","id":-1\.5e-7,"error":\{"code":-32601,/,
     "id echoed in upstream error");

# duplicate client ids in one batch each get their own answer
$res = http_post('[{"jsonrpc":"2.0","method":"sum","params":[1],"id":7},'
               . '{"jsonrpc":"2.0","method":"sum","params":[2],"id":7}]');
is($res->{body}, '[{"jsonrpc":"2.0","id":7,"result":1},'
               . '{"jsonrpc":"2.0","id":7,"result":2}]',
   "duplicate client ids answered in order");

# --- a body split across buffers at every byte

my $body = '[{"jsonrpc":"2.0","method":"test_echo","params":{"a":[1,"x\"y"],'
         . '"b":{"c":null}},"id":"q\u00e9"},{"jsonrpc" : "2.0", "method":'
         . '"sum","params":[1,2],"id":18446744073709551617}]';
my $want = '[{"jsonrpc":"2.0","id":"q\u00e9","result":{"a":[1,"x\"y"],'
         . '"b":{"c":null}}},{"jsonrpc":"2.0","id":18446744073709551617,'
         . '"result":3}]';

my $from = length error_log_text();
$res = http_post($body, chunk_size => 1, delay => 0.001);
is($res->{body}, $want, "chunked body in 1-byte chunks");
my $fed = () = error_log_text($from) =~ /rpc: parse 1 bytes/g;
ok($fed >= length($body) / 2, "parser was fed $fed one-byte buffers");

my @fail;
for my $k (1 .. length($body) - 1) {
    my $r = http_post($body, split => [[0, $k], [$k, length($body) - $k]],
                      delay => 0.01);
    push @fail, "$k: $r->{body}" if $r->{body} ne $want;
}
ok(!@fail, "body split in two at each of " . (length($body) - 1)
           . " boundaries") or diag(join "\n", @fail);

# UTF-8 of 2, 3 and 4 bytes, split at every byte, is checked as a whole
my $utf8 = qq({"jsonrpc":"2.0","method":"sum","params":[1,2],)
         . qq("id":"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"});
@fail = ();
for my $k (1 .. length($utf8) - 1) {
    my $r = http_post($utf8, split => [[0, $k], [$k, length($utf8) - $k]],
                      delay => 0.005);
    push @fail, "$k: $r->{body}"
        if $r->{body} ne qq({"jsonrpc":"2.0","id":"\xc3\xa9\xe2\x82\xac)
                         . qq(\xf0\x9f\x98\x80","result":3});
}
ok(!@fail, "UTF-8 split at every byte") or diag(join "\n", @fail);

# invalid JSON split at every byte is still a parse error, nothing more
@fail = ();
my $broken = '[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1},{"a":tru}]';
for my $k (1 .. length($broken) - 1) {
    my $r = http_post($broken, split => [[0, $k], [$k, length($broken) - $k]]);
    push @fail, "$k: $r->{body}" if $r->{body} ne $parse_error;
}
ok(!@fail, "invalid body split at every byte: -32700") or diag(join "\n", @fail);

# a string left open after the value is not more input to wait for: split
# anywhere, the body is a parse error
@fail = ();
my $call = '{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}';
my $open = qq([$call] "no closing quote);
for my $k (1 .. length($open) - 1) {
    my $r = http_post($open, split => [[0, $k], [$k, length($open) - $k]]);
    push @fail, "$k: $r->{body}" if $r->{body} ne $parse_error;
}
ok(!@fail, "a string open after the value, split at every byte: -32700")
    or diag(join "\n", @fail);

for my $tail ('"', ' "abc', 'tru', '1', '-', '/') {
    my $r = http_post($call . $tail,
                      split => [[0, length $call], [length $call, 9]],
                      delay => 0.05);
    is($r->{body}, $parse_error, "'$tail' after the value, in a read of "
                                 . "its own: -32700");
}

# --- the first fault in the stream decides, however the body is split:
# a form feed after a batch that is too large, and one before it

my $batch3 = '[' . join(',', ($call) x 3) . ']';
my $too_large = '{"jsonrpc":"2.0","error":{"code":-32007,'
              . '"message":"Batch too large"},"id":null}';
for my $case (["$batch3\f", $too_large, 'form feed after a batch of 3'],
              ["$batch3 \x0b", $too_large, 'vertical tab after a batch of 3'],
              ["[$call,\f$call,$call]", $parse_error,
               'form feed in a batch of 3 before its third call'])
{
    my ($b, $want, $name) = @$case;
    my %got;
    for my $k (0 .. length($b) - 1) {
        my $r = http_post($b, path => '/batch2',
                          split => $k ? [[0, $k], [$k, length($b) - $k]]
                                      : undef);
        push @{$got{$r->{body}}}, $k;
    }
    is_deeply([keys %got], [$want], "$name, split at every byte")
        or diag(join "\n", map { "$_ at @{$got{$_}}" } keys %got);
}

# --- bodies nginx writes to a temp file are parsed, from copies, as they
# arrive

my $big = '[' . join(',', map {
    qq({"jsonrpc":"2.0","method":"test_echo","params":[") . ('p' x 500)
    . qq(",$_],"id":$_}) } 1 .. 90) . ']';
$from = length error_log_text();
$res = http_post($big, path => '/small');
my $got = eval { JSON::PP->new->decode($res->{body}) } || [];
is(scalar @$got, 90, "temp-file body: 90 answers");
is_deeply([map { $_->{result}[1] } @$got], [1 .. 90],
          "temp-file body: results in request order");
like(error_log_text($from), qr/a client request body is buffered to a temporary file/,
     "body really was in a temp file");

$res = http_post($big, path => '/small', chunk_size => 1000);
$got = eval { JSON::PP->new->decode($res->{body}) } || [];
is(scalar @$got, 90, "chunked temp-file body: 90 answers");

# --- a bad body is known bad before its end: the parse error is logged
# while the client still sends, and the rest is dropped, not kept
{
    my $len = 300000;
    my $head = '[{"jsonrpc":"2.0",}';
    $from = length error_log_text();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => port('SERVER_PORT'))
        or die "connect: $!";
    syswrite($s, "POST /small HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\nContent-Length: $len\r\n\r\n$head");
    my $seen = 0;
    for (1 .. 100) {
        last if $seen = error_log_text($from) =~ /rpc: invalid JSON/;
        sleep 0.05;
    }
    ok($seen, 'a bad body: the parse error is logged before the body ends');
    syswrite($s, 'x' x ($len - length $head));
    my $raw = '';
    1 while sysread($s, $raw, 65536, length $raw);
    close $s;
    like($raw, qr/\r\n\r\n\Q$parse_error\E$/, 'and answered -32700 once it has');
}

# --- empty and whitespace bodies

is(http_post('')->{body}, $parse_error, "empty body: parse error");
is(http_post(" \n\t ")->{body}, $parse_error, "blank body: parse error");
is(http_post('"jsonrpc"')->{body},
   '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}',
   "a string body: invalid request");

stop_nginx();

run_blocks();

# --- a body read in small pieces is parsed in time proportional to its
# size, and so is an upstream reply.  client_body_buffer_size 64 makes nginx
# read the body 64 bytes at a time, as it would a body that a client
# trickles in, but every time: 3.2 MB of white space before a value took
# 60 s when each token's start was looked for from the first piece on,
# 0.4 s now (2.4 s under valgrind).  An upstream reply in 1-byte chunks
# with 300 kB of white space took 54 s, 0.1 s now (1 s under valgrind).
# A long string read in pieces was lexed again from its start by yajl with
# each piece (16 MB in 8 kB reads took 9 s): it is held until it ends.

my $reply = '{"jsonrpc":"2.0","id":0,"result":' . (' ' x 300_000) . '1}';
my $trickler = reply_once("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                          . "Transfer-Encoding: chunked\r\n\r\n"
                          . join('', map { "1\r\n$_\r\n" } split //, $reply)
                          . "0\r\n\r\n");
my $long = 'x' x 2_000_000;
my $long_reply = '{"jsonrpc":"2.0","id":0,"result":"' . $long . '"}';
my $long_trickler = reply_once("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                               . "Transfer-Encoding: chunked\r\n\r\n"
                               . join('', map { sprintf("%x\r\n%s\r\n",
                                                        length, $_) }
                                      unpack('(a16)*', $long_reply))
                               . "0\r\n\r\n", 'LONG_PORT');
start_nginx(
    http_config => 'upstream backend { server 127.0.0.1:$UPSTREAM_PORT; }',
    config => 'location /rpc { client_body_buffer_size 64;
                               client_max_body_size 4m;
                               rpc_pass backend; }
               location /denied { client_body_buffer_size 64;
                                  client_max_body_size 8m;
                                  rpc_deny_methods m;
                                  rpc_pass backend; }
               location /trickle { rpc_pass 127.0.0.1:$TRICKLE_PORT; }
               location /long { rpc_pass 127.0.0.1:$LONG_PORT; }')
    or BAIL_OUT("nginx did not start");
for my $case (['/rpc', '{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":'
                       . (' ' x 3_200_000) . '1}',
               '{"jsonrpc":"2.0","id":1,"result":3}',
               '3.2 MB of white space read 64 bytes at a time'],
              ['/trickle', '{"jsonrpc":"2.0","method":"m","id":1}',
               '{"jsonrpc":"2.0","id":1,"result":1}',
               'a reply with 300 kB of white space in 1-byte chunks'],
              ['/denied', '{"jsonrpc":"2.0","method":"m","params":["'
                          . ('y' x 4_000_000) . '"],"id":1}',
               '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method '
               . 'not found"},"id":1}',
               'a 4 MB string read 64 bytes at a time'],
              ['/long', '{"jsonrpc":"2.0","method":"m","id":1}',
               '{"jsonrpc":"2.0","id":1,"result":"' . $long . '"}',
               'a reply with a 2 MB string in 16-byte chunks'])
{
    my ($path, $body, $want, $name) = @$case;
    my $start = time;
    my $res = http_post($body, path => $path, timeout => 15);
    my $took = time - $start;
    ok($res->{body} eq $want, "$name: answered")
        or diag(substr($res->{body}, 0, 300));
    ok($took < 15, sprintf("$name: in %.1f s, under 15 s", $took));

    # a worker that is still parsing would outlive the test
    kill 'KILL', worker_pids() if !$res->{status};
}
stop_nginx();
kill 'TERM', $trickler, $long_trickler;
waitpid($_, 0) for $trickler, $long_trickler;


# a server on $TRICKLE_PORT (or $name) that reads one request, sends $raw
sub reply_once {
    my ($raw, $name) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => port($name // 'TRICKLE_PORT'),
                                  Listen => 1, ReuseAddr => 1)
        or die "listen: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 60;
        my $c = $l->accept or POSIX::_exit(1);
        my $in = '';
        while (sysread($c, $in, 65536, length $in)) {
            my $end = index($in, "\r\n\r\n");
            last if $end >= 0 && $in =~ /Content-Length: (\d+)/i
                    && length($in) >= $end + 4 + $1;
        }
        syswrite($c, $raw);
        close $c;
        POSIX::_exit(0);
    }
    close $l;
    return $pid;
}


sub worker_pids {
    my $pid = nginx_pid() or return;
    return $pid if $Valgrind;
    open my $f, '<', "/proc/$pid/task/$pid/children" or return;
    return split ' ', <$f> // '';
}


__DATA__

=== TEST 1: a quote after the value is a parse error, not ignored
--- http_config
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
server {
    listen 127.0.0.1:$JUNK_PORT;
    location /quote { return 200 '{"jsonrpc":"2.0","id":0,"result":1}"'; }
    location /open { return 200 '[{"jsonrpc":"2.0","id":0,"result":1}] "abc'; }
    location /space { return 200 '{"jsonrpc":"2.0","id":0,"result":1} \t\r\n'; }
}
--- config
location /rpc { rpc_pass backend; }
location /quote { rpc_pass http://127.0.0.1:$JUNK_PORT/quote; }
location /open { rpc_pass http://127.0.0.1:$JUNK_PORT/open; }
location /space { rpc_pass http://127.0.0.1:$JUNK_PORT/space; }
location /batch2 { rpc_max_batch 2; rpc_pass backend; }
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}"
--- error_code
200
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: data after the value at byte 54,

=== TEST 2: a batch with a string open after it
--- request
[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}] "no closing quote
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: data after the value at byte 57,

=== TEST 3: a string open after the value, in chunks
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}"abc
--- chunk_size
5
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 4: a string after a string
--- request
"jsonrpc""
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 5: a literal cut short after the value
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}tru
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 6: a number after the value
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}1
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 7: a minus after the value
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1} -
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 8: a slash after the value
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}/
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 9: JSON white space after the value is fine
--- request eval
qq({"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1} \t\r\n \n)
--- response_body
{"jsonrpc":"2.0","id":1,"result":3}

=== TEST 10: a form feed after the value is not JSON white space
--- request eval
qq({"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}\f)
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: form feed or vertical tab at byte 54,

=== TEST 11: a batch too large, then a form feed: the batch is first
--- path
/batch2
--- request eval
'[' . ('{"jsonrpc":"2.0","method":"sum","id":1},' x 2)
    . '{"jsonrpc":"2.0","method":"sum","id":1}]' . "\f"
--- response_body
{"jsonrpc":"2.0","error":{"code":-32007,"message":"Batch too large"},"id":null}
--- error_log
rpc: batch of more than 2 calls
--- no_error_log
form feed

=== TEST 12: a vertical tab, then a batch too large: the tab is first
--- path
/batch2
--- request eval
"[\x0b" . ('{"jsonrpc":"2.0","method":"sum","id":1},' x 2)
    . '{"jsonrpc":"2.0","method":"sum","id":1}]'
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: form feed or vertical tab at byte 1,
--- no_error_log
rpc: batch of more than

=== TEST 13: yajl's message is one line of error.log
--- request
{"jsonrpc":"2.0","method":"sum","params":[tru]}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: lexical error: invalid string in json text., client: 127.0.0.1,

=== TEST 14: an upstream reply with a quote after it is not JSON
--- path
/quote
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":7}
--- response_body
{"jsonrpc":"2.0","error":{"code":-32004,"message":"Upstream reply is not valid JSON"},"id":7}
--- error_log
rpc: invalid JSON: data after the value at byte 35 
rpc: upstream reply is not valid JSON

=== TEST 15: an upstream reply to a batch with a string open after it
--- path
/open
--- request
[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":7},{"jsonrpc":"2.0","method":"sum","params":[3],"id":8}]
--- response_body
[{"jsonrpc":"2.0","error":{"code":-32004,"message":"Upstream reply is not valid JSON"},"id":7},{"jsonrpc":"2.0","error":{"code":-32004,"message":"Upstream reply is not valid JSON"},"id":8}]
--- error_log
rpc: upstream reply is not valid JSON

=== TEST 16: an upstream reply with white space after it is fine
--- path
/space
--- request
{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":7}
--- response_body
{"jsonrpc":"2.0","id":7,"result":1}


=== TEST 17: an overlong UTF-8 form is a parse error (yajl lets it through)
--- config
location /rpc { rpc_pass backend; }
--- request eval
qq({"jsonrpc":"2.0","method":"test_echo","params":["\xc0\xaf"],"id":1})
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: invalid UTF-8 in a string at byte 49

=== TEST 18: a UTF-16 surrogate written as UTF-8 is a parse error
--- request eval
qq({"jsonrpc":"2.0","method":"test_echo","params":["\xed\xa0\x80"],"id":1})
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}
--- error_log
rpc: invalid JSON: invalid UTF-8 in a string at byte 50

=== TEST 19: a code point past U+10FFFF is a parse error
--- request eval
qq({"jsonrpc":"2.0","method":"test_echo","params":["\xf4\x90\x80\x80"],"id":1})
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 20: a lead byte F5 is a parse error, and so is a method with C0 80
--- request eval
qq([{"jsonrpc":"2.0","method":"test_echo","params":["\xf7\xbf\xbf\xbf"],"id":1},)
. qq({"jsonrpc":"2.0","method":"test_echo\xc0\x80","id":2}])
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 21: a sequence cut short by the closing quote is a parse error
--- request eval
qq({"jsonrpc":"2.0","method":"sum","params":[1],"id":"\xe2\x82"})
--- response_body
{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}

=== TEST 22: the largest code points of each length are fine
--- request eval
qq({"jsonrpc":"2.0","method":"sum","params":[1],"id":"\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\xed\x9f\xbf"})
--- response_body eval
qq({"jsonrpc":"2.0","id":"\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\xed\x9f\xbf","result":1})

=== TEST 23: yajl's buffers grow as it needs: a 360 KB string of escapes and arrays 150 deep, there and back
--- config
location /rpc { rpc_pass backend; client_max_body_size 4m; rpc_max_depth 200; }
--- request eval
'{"jsonrpc":"2.0","method":"test_echo","params":["' . ('a\\n\\"\\u0041\\t' x 30000)
    . '",' . ('[' x 150) . '"\\u0041"' . (']' x 150) . '],"id":1}'
--- response_body eval
'{"jsonrpc":"2.0","id":1,"result":["' . ('a\\n\\"A\\t' x 30000)
    . '",' . ('[' x 150) . '"A"' . (']' x 150) . ']}'
