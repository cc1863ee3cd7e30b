# Rate limits (rpc_limit_zone, rpc_limit, rpc_limit_cost, rpc_limit_log_level,
# rpc_limit_dry_run): exact admission counts of nginx's leaky bucket over
# real time; nodelay, the default delay and delay=N, timed; a batch that
# crosses its budget half-way; costs per method; several zones, none
# charged for a call another refuses; keys from a header, the empty key not
# limited; 429 with Retry-After only when every call is refused;
# notifications and cache hits charged, invalid and denied calls not;
# WebSocket messages charged against the same buckets; delayed calls that
# lose their client, hit rpc_timeout or count in rpc_max_pending; dry run
# and log levels; refusals in rpc_calls_total.  Then two workers: one
# budget for both, buckets kept across a reload, a flood of 100,000 keys
# into a 32k zone, two locations locking the same zones in opposite orders.
# Last, nginx -t on bad arguments.
use strict;
use warnings;
use Test::More;

# real clocks and worker processes: not under valgrind (one slow process)
BEGIN {
    plan(skip_all => 'timing and two workers: not under valgrind')
        if $ENV{TEST_NGINX_USE_VALGRIND};
}

use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use List::Util qw(sum0);
use JSON::PP;
use lib 't/lib';
use RPCTest;
use RPCFrame;

my $json = JSON::PP->new->canonical->allow_nonref;

# --- helpers

# a call; without an id, a notification
sub call {
    my ($m, $id, $p) = @_;
    $p //= '[1,2]';
    return qq({"jsonrpc":"2.0","method":"$m","params":$p}) unless defined $id;
    return qq({"jsonrpc":"2.0","method":"$m","params":$p,"id":$id});
}

sub batch { '[' . join(',', @_) . ']' }

# a batch of calls of sum with ids $from .. $to
sub sums {
    my ($from, $to) = @_;
    return batch(map { call('sum', $_) } $from .. $to);
}

# a POST to $path with "X-Key: $key" (none when undef)
sub post {
    my ($path, $key, $body, %o) = @_;
    my $h = defined $key ? "X-Key: $key\r\n" : '';
    $h .= $o{headers} // '';
    return http_post($body, %o, path => $path, headers => $h);
}

# what each call got, by id: "1:ok 2:ok 3:-32011" (ok: a result, else the
# error code, whoever set it)
sub outcomes {
    my ($body) = @_;
    my $v = eval { $json->decode($body) };
    return "<$body>" unless defined $v;
    $v = [$v] unless ref $v eq 'ARRAY';
    return join ' ', map {
        ($_->{id} // 'null') . ':'
        . (ref $_->{error} eq 'HASH' ? $_->{error}{code} : 'ok')
    } sort { ($a->{id} // 0) <=> ($b->{id} // 0) } @$v;
}

# the outcomes expected: ok for ids in $ok, -32011 for those in $refused
sub want {
    my ($ok, $refused, $other) = @_;
    my %o = ((map { $_ => 'ok' } @$ok), (map { $_ => -32011 } @$refused),
             %{ $other // {} });
    return join ' ', map { "$_:$o{$_}" } sort { num($a) <=> num($b) } keys %o;
}

# ids as outcomes() sorts them: null first
sub num { $_[0] =~ /^\d+$/ ? $_[0] : 0 }

sub sleep_until {
    my ($t) = @_;
    sleep($t - time) if $t > time;
}

# the calls admitted (not -32011) in a response
sub admitted {
    my ($body) = @_;
    return scalar grep { !/:-32011$/ } split / /, outcomes($body);
}

# a request as bytes
sub request_bytes {
    my ($path, $key, $body, $more) = @_;
    return "POST $path HTTP/1.1\r\nHost: localhost\r\n"
         . (defined $key ? "X-Key: $key\r\n" : '') . ($more // '')
         . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

sub parse_response {
    my ($raw, $t) = @_;
    my ($h, $b) = split /\r\n\r\n/, $raw, 2;
    my $res = { status => 0, headers => {}, body => $b // '', t => $t };
    return $res unless defined $h && $h =~ m{^HTTP/1\.\d (\d+)};
    $res->{status} = $1;
    for (split /\r\n/, $h) {
        $res->{headers}{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    if (($res->{headers}{'transfer-encoding'} // '') =~ /chunked/) {
        my ($in, $out) = ($res->{body}, '');
        while ($in =~ s/^([0-9a-f]+)\r\n//i) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($in, 0, $n);
            substr($in, 0, $n + 2) = '';
        }
        $res->{body} = $out;
    }
    return $res;
}

# each request ([path, key, body]) on a connection of its own, all sent at
# once; the responses in the same order, each with t, the seconds from the
# start to its end (99: none within $Wait seconds)
our $Wait = 10;

sub parallel {
    my (@reqs) = @_;
    my @c;
    for my $r (@reqs) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => port('SERVER_PORT'))
            or die "connect: $!";
        binmode $s;
        push @c, { s => $s, raw => '',
                   req => request_bytes(@$r, "Connection: close\r\n") };
    }
    my $t0 = time;
    syswrite($_->{s}, $_->{req}) for @c;
    my %by = map { fileno($_->{s}) => $_ } @c;
    my $sel = IO::Select->new(map { $_->{s} } @c);
    my $end = $t0 + $Wait;
    while ($sel->count && time < $end) {
        for my $s ($sel->can_read($end - time)) {
            my $c = $by{fileno $s};
            next if sysread($s, $c->{raw}, 65536, length $c->{raw});
            $c->{t} = time - $t0;
            $sel->remove($s);
            close $s;
        }
    }
    return map { parse_response($_->{raw}, $_->{t} // 99) } @c;
}

# requests pipelined on $conns keep-alive connections, as fast as nginx
# reads them: $make->($i) gives request $i (0 .. $n - 1); the status lines
# of the responses, counted by status
sub pipelined {
    my ($conns, $n, $make) = @_;
    my (@c, %status);
    for my $k (0 .. $conns - 1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => port('SERVER_PORT'))
            or die "connect: $!";
        binmode $s;
        $s->blocking(0);
        my $out = '';
        for (my $i = $k; $i < $n; $i += $conns) {
            $out .= $make->($i, $i + $conns >= $n);
        }
        push @c, { s => $s, out => $out, in => '' };
    }
    my %by = map { fileno($_->{s}) => $_ } @c;
    my $rsel = IO::Select->new(map { $_->{s} } @c);
    my $wsel = IO::Select->new(map { $_->{s} } @c);
    my $end = time + 30;
    while ($rsel->count && time < $end) {
        my ($r, $w) = IO::Select->select($rsel, $wsel->count ? $wsel : undef,
                                         undef, 1);
        for my $s (@{ $w // [] }) {
            my $c = $by{fileno $s};
            my $k = syswrite($s, $c->{out}, 262144);
            substr($c->{out}, 0, $k) = '' if $k;
            $wsel->remove($s) unless length $c->{out};
        }
        for my $s (@{ $r // [] }) {
            my $c = $by{fileno $s};
            my $k = sysread($s, $c->{in}, 262144, length $c->{in});
            next if $k || (!defined $k && $!{EAGAIN});
            $rsel->remove($s);
            $wsel->remove($s);
            close $s;
        }
    }
    for my $c (@c) {
        $status{$1}++ while $c->{in} =~ m{HTTP/1\.1 (\d{3}) }g;
    }
    return \%status;
}

# the -32011 calls rpc_calls_total counted so far, over every method
sub metric_refusals {
    my $m = http_request(method => 'GET', path => '/metrics')->{body};
    my $n = 0;
    $n += $1
        while $m =~ /^rpc_calls_total\{[^}]*outcome="-32011"[^}]*\} (\d+)$/mg;
    return $n;
}

# lines of error.log since $from that match $re
sub log_lines {
    my ($from, $re) = @_;
    return grep { /$re/ } split /\n/, error_log_text($from);
}

# fails on alert, crit, emerg and crashes in error.log since $from
sub no_alerts {
    my ($from, $name) = @_;
    my @bad = log_lines($from, qr/\[(alert|crit|emerg)\]|signal \d+|Sanitizer/);
    ok(!@bad, "$name: nothing at alert or crit in error.log")
        or diag(join "\n", @bad);
}

# the worker processes of the running nginx
sub workers {
    my $m = nginx_pid();
    return sort { $a <=> $b } map { /(\d+)/ ? $1 : () } `pgrep -P $m`;
}

# pids in the access log lines since $from
sub access_pids {
    my ($from) = @_;
    my %p = map { /p=(\d+)/ ? ($1 => 1) : () }
            split /\n/, access_log_text($from);
    return sort keys %p;
}

# --- one worker: the rules, call by call

my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_limit_zone $http_x_key zone=k:1m rate=2r/s;
rpc_limit_zone $http_x_key zone=m:1m rate=6r/m;
rpc_limit_zone $http_x_key zone=d:1m rate=5r/s;
rpc_limit_zone $http_x_key zone=n:1m rate=1r/m;
rpc_limit_zone $http_x_global zone=g:1m rate=1r/m;
rpc_limit_zone $http_x_key zone=t:1m rate=1r/s;
rpc_limit_zone $http_x_key zone=real:1m rate=2r/s;
rpc_limit_zone $http_x_key zone=dry:1m rate=2r/s;
rpc_cache_zone cz:1m;
rpc_metrics_zone metrics:1m;
EOF

my $config = <<'EOF';
rpc_limit zone=n burst=1 nodelay;
location /inherit { rpc_pass backend; }
location /rate    { rpc_pass backend; rpc_limit zone=k burst=3 nodelay; }
location /minute  { rpc_pass backend; rpc_limit zone=m; }
location /nodelay { rpc_pass backend; rpc_limit zone=d burst=5 nodelay; }
location /delay   { rpc_pass backend; rpc_limit zone=d burst=5; }
location /delay2  { rpc_pass backend; rpc_limit zone=d burst=5 delay=2; }
location /cost {
    rpc_pass backend;
    rpc_limit zone=n burst=10 nodelay;
    rpc_limit_cost test_whoami test_conns 0;
    rpc_limit_cost test_s* test_big 5;
    rpc_limit_cost test_e* 2;
    rpc_limit_cost test_echo 7;
}
location /zones {
    rpc_pass backend;
    rpc_limit zone=n burst=2 nodelay;
    rpc_limit zone=g burst=5 nodelay;
}
location /n2      { rpc_pass backend; rpc_limit zone=n burst=2 nodelay; }
location /policy {
    rpc_pass backend;
    rpc_limit zone=n burst=1 nodelay;
    rpc_deny_methods deny_*;
}
location /cache {
    rpc_pass backend;
    rpc_limit zone=n burst=2 nodelay;
    rpc_cache cz;
    rpc_cache_valid test_echo 1h;
}
location /ws {
    rpc_pass backend;
    rpc_websocket on;
    rpc_limit zone=n burst=2 nodelay;
}
location /real    { rpc_pass backend; rpc_limit zone=real burst=3 nodelay; }
location /dry {
    rpc_pass backend;
    rpc_limit zone=dry burst=3 nodelay;
    rpc_limit_dry_run on;
}
location /dry-delay {
    rpc_pass backend;
    rpc_limit zone=d burst=5;
    rpc_limit_dry_run on;
}
location /level {
    rpc_pass backend;
    rpc_limit zone=d burst=1;
    rpc_limit_log_level warn;
}
location /timeout {
    rpc_pass backend;
    rpc_limit zone=t burst=5;
    rpc_timeout 300ms;
}
location /hangup {
    rpc_pass backend;
    rpc_websocket on;
    rpc_limit zone=t burst=5;
}
location /pending {
    rpc_pass backend;
    rpc_websocket on;
    rpc_limit zone=d burst=10;
    rpc_max_pending 2;
}
location = /metrics { rpc_metrics; }
EOF

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');
my $from = 0;

# --- admission over time: rate=2r/s burst=3 nodelay; a fresh key takes
# 1 + burst calls at once, then one each 1/rate

{
    my $refusals = metric_refusals();
    my $t0 = time;
    my $r = post('/rate', 'r1', sums(1, 8));
    is($r->{status}, 200, 'a batch half refused: 200');
    is(outcomes($r->{body}), want([1 .. 4], [5 .. 8]),
       'a fresh key: 1 + burst calls of the batch admitted, in order');

    $r = post('/rate', 'r1', call('sum', 9));
    is($r->{status}, 429, 'a call refused whole: 429');
    is($r->{headers}{'retry-after'}, 1, '... with Retry-After: 1');
    is(outcomes($r->{body}), '9:-32011', '... and its error in the body');
    is($r->{headers}{'content-type'}, 'application/json',
       '... as JSON');
    is(metric_refusals() - $refusals, 5,
       'rpc_calls_total{outcome="-32011"} counts each refused call');

    sleep_until($t0 + 1.2);
    $r = post('/rate', 'r1', sums(1, 8));
    is(outcomes($r->{body}), want([1, 2], [3 .. 8]),
       '1.2 s later: 2 calls drained (2r/s), 2 admitted');

    sleep 2.05;
    $r = post('/rate', 'r1', sums(1, 8));
    is(outcomes($r->{body}), want([1 .. 4], [5 .. 8]),
       '2 s later: the bucket is empty again, 1 + burst admitted');

    my @s = map { post('/rate', 'r2', call('sum', $_))->{status} } 1 .. 5;
    is("@s", '200 200 200 200 429',
       'single calls one after the other: the fifth is refused');

    $r = post('/rate', 'r3', sums(1, 6));
    is(outcomes($r->{body}), want([1 .. 4], [5, 6]),
       'another key has a budget of its own');

    my @n = map { admitted(post('/rate', undef, sums(1, 8))->{body}) } 1 .. 2;
    is("@n", '8 8', 'no key (empty $http_x_key): not limited');
    @n = map { admitted(post('/rate', '', sums(1, 8))->{body}) } 1 .. 2;
    is("@n", '8 8', 'an empty X-Key header: not limited');
}

# --- rpc_limit of the server, for a location without one

is(outcomes(post('/inherit', 'in1', sums(1, 3))->{body}), want([1, 2], [3]),
   'rpc_limit inherited from the server');

# --- Retry-After in seconds, with a rate per minute

{
    is(post('/minute', 'm1', call('sum', 1))->{status}, 200,
       '6r/m: the first call passes');
    my $r = post('/minute', 'm1', call('sum', 2));
    is($r->{status}, 429, '6r/m burst=0: the second is refused');
    is($r->{headers}{'retry-after'}, 10,
       '... with Retry-After: 10 (one call each 10 s)');
}

# --- nodelay, the default delay (every call beyond the rate waits) and
# delay=2, at 5r/s: a call each 200 ms

{
    my @r = parallel(['/nodelay', 'dn', sums(1, 4)],
                     ['/delay2', 'd2', sums(1, 4)],
                     ['/delay', 'dd', sums(1, 4)],
                     ['/delay', 'd8', sums(1, 8)],
                     map { ['/delay', 'ds', call('sum', $_)] } 1 .. 4);

    is(outcomes($r[0]{body}), want([1 .. 4], []), 'nodelay: all answered');
    cmp_ok($r[0]{t}, '<', 0.3, 'nodelay: at once');

    is(outcomes($r[1]{body}), want([1 .. 4], []), 'delay=2: all answered');
    cmp_ok($r[1]{t}, '>=', 0.18, 'delay=2: the 4th call waits 200 ms');
    cmp_ok($r[1]{t}, '<', 0.45, 'delay=2: only the 4th waits');

    is(outcomes($r[2]{body}), want([1 .. 4], []), 'delay: all answered');
    cmp_ok($r[2]{t}, '>=', 0.58, 'delay: the 4th call waits 600 ms');
    cmp_ok($r[2]{t}, '<', 0.9, 'delay: ... not longer');

    is(outcomes($r[3]{body}), want([1 .. 6], [7, 8]),
       'delay: beyond the burst refused at once, the rest waits');
    cmp_ok($r[3]{t}, '>=', 0.98, 'delay: the 6th call waits 1 s');
    cmp_ok($r[3]{t}, '<', 1.3, 'delay: ... not longer');

    my @t = sort { $a <=> $b } map { $_->{t} } @r[4 .. 7];
    my @ok = grep { $_->{status} == 200 } @r[4 .. 7];
    is(scalar @ok, 4, 'four single calls at once: all answered');
    for my $i (0 .. 3) {
        my $want = 0.2 * $i;
        ok($t[$i] >= $want - 0.02 && $t[$i] < $want + 0.18,
           "four single calls at once: answer $i after ${want}s")
            or diag("times: @t");
    }
}

# --- costs: first matching rpc_limit_cost wins, 0 is free, default 1;
# 1r/m burst=10: nothing drains while the test runs

{
    my $r = post('/cost', 'c1', batch(
        call('sum', 1),                 # 0: a fresh key
        call('test_echo', 2),           # 2 (test_e*, not the later 7): 2
        call('test_seq', 3),            # 5: 7
        call('test_big', 4, '[1]'),     # 5: 12 > 10, refused
        call('test_echo', 5),           # 2: 9
        call('sum', 6),                 # 1: 10
        call('test_whoami', 7),         # 0: 10
        call('sum', 8),                 # 1: 11 > 10, refused
        call('test_conns', 9)));        # 0: 10
    is(outcomes($r->{body}), want([1 .. 3, 5 .. 7, 9], [4, 8]),
       'costs per method, charged in order');

    $r = post('/cost', 'c2', batch(call('test_whoami', 1),
                                  call('test_conns', 2),
                                  map { call('sum', $_) } 3 .. 14));
    is(outcomes($r->{body}), want([1 .. 13], [14]),
       'free calls first: still 1 + burst calls of cost 1 on a fresh key');
}

# --- several zones: per key (burst=2) and one budget for all keys
# (X-Global, burst=5); a call refused by one is charged to none

{
    my $g = "X-Global: g1\r\n";
    my $r = post('/zones', 'za', sums(1, 5), headers => $g);
    is(outcomes($r->{body}), want([1 .. 3], [4, 5]),
       'two zones: key a, 3 admitted by its own zone');
    $r = post('/zones', 'zb', sums(1, 5), headers => $g);
    is(outcomes($r->{body}), want([1 .. 3], [4, 5]),
       'two zones: key b, 3 too (a\'s refused calls cost the global '
       . 'zone nothing)');
    $r = post('/zones', 'zc', sums(1, 5), headers => $g);
    is(outcomes($r->{body}), want([], [1 .. 5]),
       'two zones: key c, the global budget (6) is spent');
    is($r->{status}, 429, 'two zones: key c gets 429');
    $r = post('/zones', 'zc', sums(1, 5), headers => "X-Global: g2\r\n");
    is(outcomes($r->{body}), want([1 .. 3], [4, 5]),
       'two zones: key c under another global key: its own zone was not '
       . 'charged for the refused calls');
}

# --- invalid and denied calls are not charged; 429 only when every call
# is refused; notifications are charged

{
    my $r = post('/policy', 'p1', batch(
        '{"jsonrpc":"2.0","id":1}', call('deny_x', 2), '{"foo":1}',
        call('sum', 3), call('deny_y', 4), call('sum', 5), call('sum', 6)));
    is(outcomes($r->{body}),
       want([3, 5], [6], { 1 => -32600, 2 => -32601, 4 => -32601,
                           null => -32600 }),
       'invalid and denied calls: answered, not charged');

    $r = post('/policy', 'p1', batch(call('deny_z', 7), call('sum', 8)));
    is($r->{status}, 200, 'a denied call and a refused one: 200');
    is(outcomes($r->{body}), want([], [8], { 7 => -32601 }),
       '... each with its error');

    $r = post('/policy', 'p1', sums(9, 10));
    is($r->{status}, 429, 'every call of a batch refused: 429');
    ok($r->{headers}{'retry-after'}, '... with Retry-After');

    $r = post('/n2', 'nt1', batch(call('notify_hello'), call('notify_hello'),
                                  call('sum', 1), call('sum', 2)));
    is(outcomes($r->{body}), want([1], [2]),
       'notifications are charged: the second call is beyond the burst');

    $r = post('/n2', 'nt1', call('notify_hello'));
    is($r->{status}, 429, 'a refused notification alone: 429');
    is($r->{body}, '', '... with nothing in the body');
}

# --- cache hits are charged

{
    my $echo = call('test_echo', 1, '["cached"]');
    like(post('/cache', 'cw0', $echo)->{body}, qr/"result":\["cached"\]/,
         'cache: the entry is stored');
    my $n = upstream_calls('test_echo');
    my $r = post('/cache', 'cw1', batch(map {
        call('test_echo', $_, '["cached"]') } 1 .. 5));
    is(outcomes($r->{body}), want([1 .. 3], [4, 5]),
       'cache hits are charged as any call');
    is(upstream_calls('test_echo'), $n, '... and they were hits');
}

# --- WebSocket: every call of every message charged, in the buckets HTTP
# uses

{
    my $refusals = metric_refusals();
    my ($s, $res) = ws_connect('/ws', headers => { 'X-Key' => 'w1' });
    is($res->{status}, 101, 'WebSocket: the handshake');
    is(outcomes(ws_rpc($s, call('sum', 1))), '1:ok', 'WebSocket: call 1');
    is(outcomes(ws_rpc($s, sums(2, 4))), want([2, 3], [4]),
       'WebSocket: a batch crosses the budget');
    is(outcomes(ws_rpc($s, call('sum', 5))), '5:-32011',
       'WebSocket: then a single call is refused');
    is(post('/n2', 'w1', call('sum', 6))->{status}, 429,
       'WebSocket: and so is the same key over HTTP');
    is(metric_refusals() - $refusals, 3,
       'WebSocket: rpc_calls_total counts its refusals');
    close $s;

    ($s) = ws_connect('/ws', headers => { 'X-Key' => 'w2' });
    ws_text($s, call('notify_hello'));
    is(outcomes(ws_rpc($s, sums(1, 3))), want([1, 2], [3]),
       'WebSocket: a notification is charged');
    close $s;
}

# --- dry run: logs what it would refuse, refuses and delays nothing; the
# bucket moves as the real one would (compared with /real, same settings)

{
    my $f = length error_log_text();
    my @refused;
    my $t0 = time;
    for my $round (1, 2) {
        my $r = post('/real', 'dr', sums(1, 10));
        push @refused, 10 - admitted($r->{body});
        $r = post('/dry', 'dr', sums(1, 10));
        is(outcomes($r->{body}), want([1 .. 10], []),
           "dry run, round $round: every call answered");
        sleep_until($t0 + 1.2) if $round == 1;
    }
    is("@refused", '6 8', 'the real limit: 6 refused, then 8');
    my @lines = log_lines($f, qr/dry run, limiting calls.*zone "dry"/);
    is(scalar @lines, 14, 'dry run: a line for each call the real limit '
                          . 'refuses, no more');
    my @e = log_lines($f, qr/\[error\].*dry run, limiting calls.*zone "dry"/);
    is(scalar @e, scalar @lines, 'dry run: at rpc_limit_log_level (error)');

    my ($r) = parallel(['/dry-delay', 'dd2', sums(1, 5)]);
    is(outcomes($r->{body}), want([1 .. 5], []), 'dry run with delay: '
                                                  . 'all answered');
    cmp_ok($r->{t}, '<', 0.3, 'dry run with delay: nothing delayed');
}

# --- rpc_limit_log_level: refusals at its level, delays one lower

{
    my $f = length error_log_text();
    my $r = post('/level', 'lv', batch(map { call('lvl_a', $_) } 1 .. 3));
    like(outcomes($r->{body}), qr/^1:-32601 2:-32601 3:-32011$/,
         'log level: 2 admitted (the second delayed), 1 refused');
    sleep 0.05;
    my $refused = qr/rpc: limiting calls, excess: 2\.000 by zone "d", /
                  . qr/method "lvl_a"/;
    is(scalar(log_lines($f, qr/\[warn\] .*$refused/)), 1,
       'rpc_limit_log_level warn: the refusal at warn');
    my $delayed = qr/rpc: delaying a call of "lvl_a" by 200 ms/;
    is(scalar(log_lines($f, qr/\[notice\] .*$delayed/)), 1,
       'rpc_limit_log_level warn: the delay at notice');

    # the default, error: the refusals and delays above
    $refused = qr/rpc: limiting calls, excess: 4\.000 by zone "k", /
               . qr/method "sum"/;
    ok(scalar(log_lines(0, qr/\[error\] .*$refused/)),
       'default level: refusals at error');
    $delayed = qr/rpc: delaying a call of "sum" by 600 ms/;
    ok(scalar(log_lines(0, qr/\[warn\] .*$delayed/)),
       'default level: delays at warn');
}

# --- a delayed call whose client hangs up, over HTTP and WebSocket; one
# that outlives rpc_timeout (1r/s burst=5: the second call waits 1 s)

{
    $from = length error_log_text();
    my $t0 = time;
    post('/hangup', 'h1', call('sum', 1));
    post('/hangup', 'h1', call('hang_http', 2), hang_up => 0.1);

    my ($s) = ws_connect('/hangup', headers => { 'X-Key' => 'h2' });
    ws_text($s, batch(call('sum', 1), call('hang_ws', 2)));
    sleep 0.1;
    ws_reset($s);

    my $t = time;
    my $r = post('/timeout', 'to', batch(call('sum', 1),
                                         call('hang_timeout', 2)));
    $t = time - $t;
    is(outcomes($r->{body}), '1:ok 2:-32001',
       'a call delayed past rpc_timeout: -32001');
    ok($t >= 0.28 && $t < 0.7, 'rpc_timeout: answered at 300 ms')
        or diag("after $t s");

    sleep_until($t0 + 1.5);
    is(upstream_calls('hang_http') + upstream_calls('hang_ws')
       + upstream_calls('hang_timeout'), 0,
       'delayed calls whose client left, or that timed out, never go '
       . 'upstream');
    is(outcomes(post('/hangup', 'h3', call('sum', 1))->{body}), '1:ok',
       'hang-ups: nginx still answers');
    no_alerts($from, 'hang-ups');
}

# --- rpc_max_pending 2 counts delayed calls (5r/s burst=10, WebSocket:
# one connection, one worker)

{
    my ($s) = ws_connect('/pending', headers => { 'X-Key' => 'pd' });
    is(outcomes(ws_rpc($s, call('sum', 0))), '0:ok',
       'rpc_max_pending: the first call, at once');
    ws_text($s, call('sum', 1));    # waits 200 ms: 1 held
    ws_text($s, sums(2, 3));        # 2 held (and delayed), 3 over the limit
    my @got = map { outcomes((ws_read_frame($s, 3) // {})->{payload} // '') }
              1, 2;
    is(join(' | ', sort @got), '1:ok | 2:ok 3:-32010',
       'rpc_max_pending: a delayed call holds its place');
    close $s;
}

no_alerts(0, 'one worker');

# --- two workers: one budget for both, kept across a reload; metrics from
# both

$http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_limit_zone $http_x_key zone=w:1m rate=1r/m;
rpc_limit_zone $http_x_key zone=flood:32k rate=1r/m;
rpc_cache_zone fc:1m;
rpc_metrics_zone metrics:1m;
keepalive_requests 1000000;
EOF

$config = <<'EOF';
location /shared { rpc_pass backend; rpc_limit zone=w burst=19 nodelay; }
location /flood {
    rpc_pass backend;
    rpc_limit zone=flood;
    rpc_cache fc;
    rpc_cache_valid test_echo 1h;
}
location /free { rpc_pass backend; }
location = /metrics { rpc_metrics; }
EOF

start_nginx(http_config => $http, config => $config, workers => 2)
    or BAIL_OUT('nginx, two workers');

{
    # ten keys, 40 connections at once for each: the workers' cached
    # clocks differ by a millisecond now and then, which must not matter
    my $refusals = metric_refusals();
    my $afrom = length access_log_text();
    my @admitted;
    for my $key (map { "sh$_" } 1 .. 10) {
        my @r = parallel(map { ['/shared', $key, call('sum', $_)] } 1 .. 40);
        push @admitted, scalar grep { $_->{status} == 200 } @r;
    }
    is("@admitted", join(' ', (20) x 10),
       'two workers: 1 + burst calls of each key admitted in all');
    my @p = access_pids($afrom);
    is(scalar @p, 2, 'two workers: both served') or diag("pids: @p");
    is(metric_refusals() - $refusals, 400 - sum0(@admitted),
       'two workers: rpc_calls_total counts the refusals of both');

    # reload: new workers, the same buckets
    is(outcomes(post('/shared', 'rl', sums(1, 21))->{body}),
       want([1 .. 20], [21]), 'reload: a key spent before');
    my @old = workers();
    reload_nginx();
    my $end = time + 5;
    my @new;
    while (time < $end) {
        @new = workers();
        my %o = map { $_ => 1 } @old;
        last if @new == 2 && !grep { $o{$_} } @new;
        sleep 0.05;
    }
    is(scalar(grep { my $n = $_; grep { $_ == $n } @old } @new), 0,
       'reload: new workers') or diag("old @old, new @new");
    $afrom = length access_log_text();
    my @r = parallel(map { ['/shared', 'rl', call('sum', $_)] } 1 .. 8);
    is(join(' ', map { $_->{status} } @r), join(' ', (429) x 8),
       'reload: the spent key is still refused');
    is(post('/shared', 'sh0', call('sum', 1))->{status}, 200,
       'reload: a fresh key passes');
    my %n = map { $_ => 1 } @new;
    my @served = access_pids($afrom);
    is(scalar(grep { !$n{$_} } @served), 0,
       'reload: answered by the new workers') or diag("@served vs @new");
}

# --- a flood of 100,000 keys into a 32k zone (1r/m, burst=0): every new
# key is admitted (cache hits, nothing goes upstream), the oldest keys go

{
    my $f = length error_log_text();
    my $echo = call('test_echo', 1, '["f"]');
    is(post('/flood', 'legit', $echo)->{status}, 200, 'flood: legit passes');
    is(post('/flood', 'legit', $echo)->{status}, 429,
       'flood: legit\'s second call is refused (1r/m)');

    my $t = time;
    my $st = pipelined(8, 100_000, sub {
        my ($i, $last) = @_;
        return request_bytes('/flood', "f$i", $echo,
                             $last ? "Connection: close\r\n" : '');
    });
    $t = time - $t;
    is(join(' ', map { "$_=$st->{$_}" } sort keys %$st), '200=100000',
       'flood: 100,000 new keys, each admitted');
    diag(sprintf 'flood: %.1f s', $t) if $t > 10;
    is(post('/flood', 'legit2', $echo)->{status}, 200,
       'flood: a new key afterwards passes');
    is(post('/free', undef, call('sum', 1))->{status}, 200,
       'flood: nginx answers');
    is(scalar(log_lines($f, qr/no room for a key/)), 0,
       'flood: the full zone made room every time');
    no_alerts($f, 'flood');
}

# --- two locations name the same two zones in opposite orders: workers
# must not wait on each other's zone for ever

{
    stop_nginx();
    start_nginx(workers => 2, http_config => <<'EOF', config => <<'EOF')
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_limit_zone $http_x_key zone=a:1m rate=1r/m;
rpc_limit_zone $http_x_key zone=b:1m rate=1r/m;
keepalive_requests 1000000;
access_log off;
EOF
rpc_limit_log_level info;
location /ab   { rpc_pass backend; rpc_limit zone=a; rpc_limit zone=b; }
location /ba   { rpc_pass backend; rpc_limit zone=b; rpc_limit zone=a; }
location /free { rpc_pass backend; }
EOF
        or BAIL_OUT('nginx, lock order');

    my $b = sums(1, 50);
    post('/ab', 'lock', $b);
    my @kids;
    for my $path (('/ab', '/ba') x 3) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => port('SERVER_PORT'))
                or POSIX::_exit(1);
            my $req = request_bytes($path, 'lock', $b);
            my $end = time + 1.5;
            local $SIG{ALRM} = sub { POSIX::_exit(2) };
            while (time < $end) {
                alarm 3;
                syswrite($s, $req x 10);
                my $in = '';
                while ((() = $in =~ m{HTTP/1\.1 }g) < 10) {
                    sysread($s, $in, 1 << 20, length $in) or POSIX::_exit(1);
                }
                alarm 0;
            }
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    waitpid($_, 0) for @kids;
    local $Wait = 2;
    my @r = parallel(map { ['/free', undef, call('sum', $_)] } 1 .. 4);
    my $ok = grep { $_->{status} == 200 } @r;
    is($ok, 4, 'zones locked in opposite orders: workers still answer');
    if ($ok < 4) {
        # deadlocked workers ignore TERM: end them, the master goes after
        kill 'KILL', workers();
        sleep 0.3;
    }
    stop_nginx();
}

# --- nginx -t: bad arguments name the file and the line ($CONF: the file;
# the first line of each configuration below is line 5 of it)

my @check = (
    [ 'rpc_limit without zone=',
      '"rpc_limit" must have "zone" parameter in $CONF:7', <<'EOF' ],
rpc_limit_zone $http_x zone=z:1m rate=1r/s;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit burst=3; } }
EOF
    [ 'rpc_limit_zone without zone=',
      '"rpc_limit_zone" must have "zone" parameter in $CONF:5', <<'EOF' ],
rpc_limit_zone $http_x rate=1r/s rate=2r/s;
EOF
    [ 'rpc_limit_zone with two arguments',
      'invalid number of arguments in "rpc_limit_zone" directive in $CONF:5',
      <<'EOF' ],
rpc_limit_zone $http_x rate=1r/s;
EOF
    [ 'a zone without a size',
      'invalid zone size "zone=z" in $CONF:5', <<'EOF' ],
rpc_limit_zone $http_x zone=z rate=1r/s;
EOF
    [ 'a zone too small',
      'zone "zone=z:4k" is too small in $CONF:5', <<'EOF' ],
rpc_limit_zone $http_x zone=z:4k rate=1r/s;
EOF
    (map { [ "rate=$_", "invalid rate \"rate=$_\" in \$CONF:5",
             "rpc_limit_zone \$http_x zone=z:1m rate=$_;\n" ] }
         '0r/s', '1r/h', 'r/s', 'fast', '-1r/m'),
    [ 'an unknown zone',
      qr/.*"nope".* in \$CONF:6/, <<'EOF' ],
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=nope; } }
EOF
    [ 'the same zone twice in a location',
      '"rpc_limit" directive is duplicate in $CONF:8', <<'EOF' ],
rpc_limit_zone $http_x zone=z:1m rate=1r/s;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=z;
    rpc_limit zone=z burst=2; } }
EOF
    [ 'burst=0',
      'invalid burst value "burst=0" in $CONF:7', <<'EOF' ],
rpc_limit_zone $http_x zone=z:1m rate=1r/s;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=z burst=0; } }
EOF
    [ 'delay=x',
      'invalid delay value "delay=x" in $CONF:7', <<'EOF' ],
rpc_limit_zone $http_x zone=z:1m rate=1r/s;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=z delay=x; } }
EOF
    [ 'an unknown parameter',
      'invalid parameter "fast" in $CONF:7', <<'EOF' ],
rpc_limit_zone $http_x zone=z:1m rate=1r/s;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=z fast; } }
EOF
    [ 'one zone name, two keys',
      'rpc_limit_zone "z" is already bound to key "$http_x" in $CONF:6',
      <<'EOF' ],
rpc_limit_zone $http_x zone=z:1m rate=1r/s;
rpc_limit_zone $http_y zone=z:1m rate=1r/s;
EOF
    [ 'a cost out of range',
      'invalid cost "-1": 0 to 1000000 in $CONF:6', <<'EOF' ],
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit_cost eth_call -1; } }
EOF
    [ 'a bad log level',
      'invalid value "debug" in $CONF:6', <<'EOF' ],
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit_log_level debug; } }
EOF
    [ 'rpc_limit naming an rpc_cache_zone',
      qr/.*"c".* in \$CONF:7/, <<'EOF' ],
rpc_cache_zone c:1m;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=c; } }
EOF
    [ 'rpc_limit naming an rpc_metrics_zone',
      qr/.*"c".* in \$CONF:7/, <<'EOF' ],
rpc_metrics_zone c:1m;
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=c; } }
EOF
    [ 'rpc_limit_zone with the name of an rpc_cache_zone',
      qr/.*"c".* in \$CONF:6/, <<'EOF' ],
rpc_cache_zone c:1m;
rpc_limit_zone $http_x zone=c:1m rate=1r/s;
EOF
    [ 'rpc_limit before its rpc_limit_zone',
      undef, <<'EOF' ],
server { location / { rpc_pass 127.0.0.1:1;
    rpc_limit zone=later burst=2; } }
rpc_limit_zone $http_x zone=later:1m rate=1r/s;
EOF
    [ 'rpc_cache_zone with the name of an rpc_limit_zone',
      'duplicate zone "c" in $CONF:6', <<'EOF' ],
rpc_limit_zone $http_x zone=c:1m rate=1r/s;
rpc_cache_zone c:1m;
EOF
);

my $n = 0;
for my $case (@check) {
    my ($name, $emerg, $body) = @$case;
    my $file = servroot() . '/check' . $n++ . '.conf';
    open my $f, '>', $file or die "$file: $!";
    print $f "load_module $RPCTest::Module;\nevents {}\npid "
             . servroot() . "/check.pid;\nhttp {\n$body}\n";
    close $f;
    my ($rc, $out) = nginx_test_config($file);
    if (!defined $emerg) {
        is($rc, 0, "nginx -t: $name passes") or diag($out);
        next;
    }

    # a string is the message itself, a qr// what it must say
    my $re = ref $emerg ? "$emerg" : quotemeta $emerg;
    $re =~ s/\\\$CONF/\Q$file\E/;
    isnt($rc, 0, "nginx -t: $name fails");
    like($out, qr/\[emerg\] \d+#\d+: (?:$re)$/m,
         "nginx -t: $name: the message names file and line") or diag($out);
}

stop_nginx();
