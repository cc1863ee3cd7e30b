# Parsing: the JSONTestSuite corpus, ids echoed byte for byte, bodies split
# across buffers at every byte, chunked bodies and bodies in temp files.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use lib 't/lib';
use RPCTest;

my $corpus = "$RPCTest::Root/../shared/corpora/JSONTestSuite/test_parsing";
my $parse_error =
    '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}';

start_nginx(
    http_config => 'upstream backend { server 127.0.0.1:$UPSTREAM_PORT; '
                 . 'keepalive 4; }',
    config => 'location /rpc { rpc_pass backend; }
               location /small { client_body_buffer_size 1k; rpc_pass backend; }',
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

# invalid JSON split at every byte is still a parse error, nothing more
@fail = ();
my $broken = '[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1},{"a":tru}]';
for my $k (1 .. length($broken) - 1) {
    my $r = http_post($broken, split => [[0, $k], [$k, length($broken) - $k]]);
    push @fail, "$k: $r->{body}" if $r->{body} ne $parse_error;
}
ok(!@fail, "invalid body split at every byte: -32700") or diag(join "\n", @fail);

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
