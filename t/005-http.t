# HTTP edge: methods other than POST, body limits, log variables, keepalive,
# nginx -t messages, reload under load, clients that go away.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use RPCTest;
use POSIX ();
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

my $ok = start_nginx(
    http_config => 'upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
                    upstream nokeep { server 127.0.0.1:$UPSTREAM2_PORT; }
                    server {
                        listen 127.0.0.1:$H2_PORT http2;
                        location /rpc { rpc_pass backend; rpc_timeout 300ms; }
                    }',
    config => 'location /rpc { rpc_pass backend; client_max_body_size 200; }
               location /nokeep { rpc_pass nokeep; }');
ok($ok, "nginx starts") or BAIL_OUT("nginx did not start");

my $invalid = '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}';

# --- methods other than POST

for my $m (qw(GET PUT DELETE PATCH OPTIONS)) {
    my $r = http_request(method => $m, body => $m eq 'GET' ? '' : '{}');
    is($r->{status}, 405, "$m: 405");
    is($r->{headers}{allow}, 'POST', "$m: Allow: POST");
    is($r->{body}, $invalid, "$m: JSON-RPC error body");
}
my $r = http_request(method => 'HEAD');
is($r->{status}, 405, "HEAD: 405");
is($r->{body}, '', "HEAD: no body");
like(error_log_text(), qr/rpc: method "GET" not allowed/, "405 logged");

# --- client_max_body_size is honoured with a JSON-RPC error

$r = http_post('{"jsonrpc":"2.0","method":"sum","params":[' . ('1,' x 150) . '1],"id":1}');
is($r->{status}, 413, "body over client_max_body_size: 413");
is($r->{body}, '{"jsonrpc":"2.0","error":{"code":-32008,"message":"Request body too large"},"id":null}',
   "413 has a JSON-RPC error body");
like(error_log_text(), qr/client intended to send too large body/, "413 logged");
$r = http_post('{"jsonrpc":"2.0","method":"sum","params":[' . ('1,' x 150) . '1],"id":1}',
               chunk_size => 300);
is($r->{status}, 413, "chunked body over client_max_body_size: 413");
like($r->{body}, qr/-32008/, "chunked 413 has a JSON-RPC error body");
like(error_log_text(), qr/client intended to send too large chunked body/,
     "chunked 413 logged");
$r = http_post('{"jsonrpc":"2.0","method":"sum","params":[1],"id":1}');
is($r->{body}, '{"jsonrpc":"2.0","id":1,"result":1}', "a body under the limit passes");

# --- variables for log_format

my $from = length access_log_text();
http_post('{"jsonrpc":"2.0","method":"sum","params":[1],"id":"x1"}');
http_post('[{"jsonrpc":"2.0","method":"sum","id":1},{"jsonrpc":"2.0","method":"test_error","id":2},'
          . '{"jsonrpc":"2.0","method":"sum"},3]');
http_post('{bad');
sleep 0.1;
my $log = access_log_text($from);
my $up = port('UPSTREAM_PORT');
like($log, qr/^200 1 m=sum id=\\x22x1\\x22 e= u=127.0.0.1:$up s=200 c=- p=\d+$/m,
     "single call variables (nginx escapes the quotes)");
like($log, qr/^200 4 m=sum,test_error,sum,- id=1,2,-,- e=-32000,-32600 u=127.0.0.1:$up s=200 c=-,-,-,- p=\d+$/m,
     "batch variables");
like($log, qr/^200 0 m= id= e=-32700 u=- s=- c= p=\d+$/m, "parse error variables");

# --- keepalive: many requests, few upstream connections

my $before = upstream_conns('UPSTREAM');
my $good = 0;
for my $i (1 .. 60) {
    $r = http_post(qq({"jsonrpc":"2.0","method":"sum","params":[$i],"id":$i}));
    $good++ if $r->{body} eq qq({"jsonrpc":"2.0","id":$i,"result":$i});
}
is($good, 60, "60 calls answered");
my $opened = upstream_conns('UPSTREAM') - $before;
ok($opened <= 1, "keepalive: 60 calls opened $opened new upstream connections");

$before = upstream_conns('UPSTREAM2');
for my $i (1 .. 10) {
    http_post(qq({"jsonrpc":"2.0","method":"sum","params":[$i],"id":$i}), path => '/nokeep');
}
is(upstream_conns('UPSTREAM2') - $before, 10,
   "without keepalive every call opens a connection (the count is real)");

# --- clients that hang up while their calls are upstream

for (1 .. 5) {
    http_post('[{"jsonrpc":"2.0","method":"test_sleep","params":[300],"id":1}]', no_read => 1);
}
sleep 0.5;
$r = http_post('{"jsonrpc":"2.0","method":"sum","params":[2],"id":1}');
is($r->{body}, '{"jsonrpc":"2.0","id":1,"result":2}', "serves on after clients hung up");
like(error_log_text(), qr/client prematurely closed connection/, "hang-ups noticed");

# --- pipelined requests on one connection are answered in order

{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => port('SERVER_PORT'));
    my $req = '';
    for my $i (1 .. 3) {
        my $b = qq({"jsonrpc":"2.0","method":"test_sleep","params":[30],"id":$i});
        $req .= "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: " . length($b)
              . "\r\n" . ($i == 3 ? "Connection: close\r\n" : "") . "\r\n$b";
    }
    print $s $req;
    my $all = do { local $/; <$s> } // '';
    my @ids = $all =~ /"id":(\d+),"result":"slept"/g;
    is("@ids", "1 2 3", "pipelined requests answered in order");
}

# --- HTTP/2 clients (curl, prior knowledge)

my $h2 = "curl -s --http2-prior-knowledge -w ' %{http_version} %{http_code}' "
       . "http://127.0.0.1:" . port('H2_PORT') . "/rpc";
is(`$h2 -d '[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1},{"jsonrpc":"2.0","method":"get_data","id":2}]'`,
   '[{"jsonrpc":"2.0","id":1,"result":3},{"jsonrpc":"2.0","id":2,"result":["hello",5]}] 2 200',
   "HTTP/2: batch");
is(`$h2 -d '{"jsonrpc":"2.0","method":"test_sleep","params":[2000],"id":1}'`,
   '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":1} 2 200',
   "HTTP/2: rpc_timeout");
is(`$h2 -d '{"jsonrpc":"2.0","method":"update"}'`, ' 2 204', "HTTP/2: notification");
is(`$h2`, '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null} 2 405',
   "HTTP/2: GET");

# --- nginx -s reload while requests flow (valgrind runs nginx as a single
#     process, which has no graceful reload: master and workers only)

SKIP: {
skip "no graceful reload without a master process (valgrind mode)", 2
    if $Valgrind;
my $pid = fork // die;
if ($pid == 0) {
    my ($n, $bad) = (0, 0);
    my $end = time + 2;
    while (time < $end) {
        my $x = http_post(qq({"jsonrpc":"2.0","method":"sum","params":[$n],"id":$n}));
        $bad++ if $x->{body} ne qq({"jsonrpc":"2.0","id":$n,"result":$n});
        $n++;
    }
    POSIX::_exit($bad > 0 ? 1 : ($n < 20 ? 2 : 0));
}
sleep 0.5;
reload_nginx();
sleep 0.5;
reload_nginx();
waitpid($pid, 0);
is($? >> 8, 0, "every call answered correctly across two reloads");
like(error_log_text(), qr/reconfiguring/, "nginx did reload");
}

stop_nginx();

# --- nginx -t names the file and line of a bad directive

my @bad = (
    ['rpc_max_batch 0;', qr/value must be between 1 and 65535/],
    ['rpc_max_depth x;', qr/"rpc_max_depth" directive invalid number/],
    ['rpc_timeout forever;', qr/"rpc_timeout" directive invalid value/],
    ['rpc_next_upstream sometimes;', qr/invalid value "sometimes"/],
    ['rpc_route only_one;', qr/invalid number of arguments in "rpc_route"/],
    ['rpc_pass 127.0.0.1:1; rpc_pass 127.0.0.1:2;', qr/"rpc_pass" directive is duplicate/],
    ['rpc_allow_methods a; rpc_allow_methods b;', qr/"rpc_allow_methods" directive is duplicate/],
    ['rpc_pass 127.0.0.1:99999;', qr/invalid port/],
);
my $conf = servroot() . "/t.conf";
for my $b (@bad) {
    my ($directive, $re) = @$b;
    open my $f, '>', $conf or die;
    print $f "load_module $RPCTest::Module;\nevents {}\nhttp {\n  server {\n"
           . "    location /rpc {\n      $directive\n    }\n  }\n}\n";
    close $f;
    my ($rc, $out) = nginx_test_config($conf);
    isnt($rc, 0, "nginx -t fails for: $directive");
    like($out, qr/\[emerg\].*$re.* in \Q$conf\E:6/, "message names file and line: $directive")
        or diag($out);
}

# found when the location is merged: the line is where its block ends
{
    open my $f, '>', $conf or die;
    print $f "load_module $RPCTest::Module;\nevents {}\nhttp {\n  server {\n"
           . "    location /rpc {\n      rpc_pass https://127.0.0.1:1;\n"
           . "      rpc_ssl_verify on;\n    }\n  }\n}\n";
    close $f;
    my ($rc, $out) = nginx_test_config($conf);
    isnt($rc, 0, 'nginx -t fails for rpc_ssl_verify without a CA');
    like($out, qr/\[emerg\].*no "rpc_ssl_trusted_certificate" is defined for "rpc_ssl_verify" in \Q$conf\E:\d+/,
         'message names the file') or diag($out);
}
