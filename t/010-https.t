# https upstreams: TLS to the upstream with keepalive, certificate
# verification against a CA, SNI, and routes mixing http and https.  The TLS
# server is a server block of the same nginx, with a certificate made for
# the test, in front of the test upstream.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use RPCTest;
use POSIX ();

my $dir = servroot();
for my $name (qw(good other)) {
    system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $dir/$name.key"
           . " -out $dir/$name.crt -days 2 -subj /CN=localhost"
           . " -addext subjectAltName=DNS:localhost 2>/dev/null") == 0
        or BAIL_OUT("openssl cannot make a test certificate");
}

my $http = <<"EOF";
log_format tls '\$connection \$ssl_server_name';
server {
    listen 127.0.0.1:\$TLS_PORT ssl;
    ssl_certificate $dir/good.crt;
    ssl_certificate_key $dir/good.key;
    access_log \$SERVROOT/logs/tls.log tls;
    location / {
        proxy_pass http://127.0.0.1:\$UPSTREAM_PORT;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
# kept-alive connections belong to an upstream {}: each TLS setting tested
# has an upstream of its own
upstream localhost { server 127.0.0.1:\$TLS_PORT; keepalive 4; }
upstream wronghost { server 127.0.0.1:\$TLS_PORT; }
upstream untrusted { server 127.0.0.1:\$TLS_PORT; }
upstream nosni { server 127.0.0.1:\$TLS_PORT; }
upstream named { server 127.0.0.1:\$TLS_PORT; }
EOF

my $config = <<"EOF";
location /rpc {
    rpc_pass https://localhost;
    rpc_ssl_verify on;
    rpc_ssl_trusted_certificate $dir/good.crt;
}
location /plain {
    rpc_pass https://127.0.0.1:\$TLS_PORT;
}
location /nosni {
    rpc_pass https://nosni;
    rpc_ssl_server_name off;
}
location /wrongca {
    rpc_pass https://untrusted;
    rpc_ssl_verify on;
    rpc_ssl_trusted_certificate $dir/other.crt;
}
location /named {
    rpc_pass https://named;
    rpc_ssl_name localhost;
    rpc_ssl_verify on;
    rpc_ssl_trusted_certificate $dir/good.crt;
}
location /wrongname {
    rpc_pass https://wronghost;
    rpc_ssl_verify on;
    rpc_ssl_trusted_certificate $dir/good.crt;
}
location /mixed {
    rpc_pass 127.0.0.1:\$UPSTREAM2_PORT;
    rpc_route sum https://localhost;
    rpc_ssl_verify on;
    rpc_ssl_trusted_certificate $dir/good.crt;
}
location /coalesced {
    rpc_pass https://localhost;
    rpc_upstream_batch 10 window=200ms;
}
EOF

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');

sub rpc { http_post(@_)->{body} }

sub tls_log {
    sleep 0.05;
    my @l = split /\n/, RPCTest::slurp(servroot() . '/logs/tls.log');
    return @l;
}

my $sum = '{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}';
my $three = '{"jsonrpc":"2.0","id":1,"result":3}';

is(rpc($sum), $three, 'a call over TLS, certificate verified');
is(rpc('[' . join(',', map { qq({"jsonrpc":"2.0","method":"sum","params":[$_],"id":$_}) } 1 .. 3) . ']'),
   '[' . join(',', map { qq({"jsonrpc":"2.0","id":$_,"result":$_}) } 1 .. 3) . ']',
   'a batch over TLS');

# keepalive: ten calls, one TLS connection
my $before = () = tls_log();
rpc($sum) for 1 .. 10;
my @l = tls_log();
my %conns = map { (split / /)[0] => 1 } @l[$before .. $#l];
is(scalar @l - $before, 10, 'ten calls reached the TLS server');
ok(keys %conns <= 2, 'over ' . (keys %conns) . ' kept-alive TLS connection(s)');

# SNI: the upstream host, unless turned off
is((split / /, (tls_log())[-1])[1], 'localhost', 'SNI carries the upstream host');
is(rpc($sum, path => '/nosni'), $three, 'rpc_ssl_server_name off: answered');
like((tls_log())[-1], qr/^\d+ (-|)$/, 'no SNI sent');

# an address as upstream: no SNI, no verification by default
is(rpc($sum, path => '/plain'), $three, 'https to an address, not verified');

# verification failures: the call gets -32000 and error.log says why
my $unavailable = '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Upstream unavailable"},"id":1}';
is(rpc($sum, path => '/wrongca'), $unavailable, 'an untrusted certificate: -32000');
like(error_log_text(), qr/\[error\].*upstream SSL certificate verify error/,
     'the verify error is logged');
is(rpc($sum, path => '/wrongname'), $unavailable, 'a certificate for another name: -32000');
like(error_log_text(), qr/upstream SSL certificate does not match "wronghost"/,
     'the name mismatch is logged');

# rpc_ssl_name: the name checked and sent, whatever the upstream's name
is(rpc($sum, path => '/named'), $three, 'rpc_ssl_name: verified against the name given');
is((split / /, (tls_log())[-1])[1], 'localhost', 'and sent as SNI');

# routes: calls of one batch to an http and an https upstream, in order
is(rpc('[{"jsonrpc":"2.0","method":"test_whoami","id":"a"},' . $sum . ']', path => '/mixed'),
   '[{"jsonrpc":"2.0","id":"a","result":"UPSTREAM2"},' . $three . ']',
   'http and https upstreams in one batch');

# coalesced calls of several clients go over TLS together
my $n = upstream_requests();
my @pids;
for my $k (1 .. 4) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $b = rpc(qq({"jsonrpc":"2.0","method":"sum","params":[$k],"id":$k}), path => '/coalesced');
        POSIX::_exit($b eq qq({"jsonrpc":"2.0","id":$k,"result":$k}) ? 0 : 1);
    }
    push @pids, $pid;
}
my $bad = 0;
for (@pids) { waitpid($_, 0); $bad++ if $? }
is($bad, 0, 'four clients answered over TLS');
is(upstream_requests() - $n, 1, 'in one upstream request');
