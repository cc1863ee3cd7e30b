# Response cache in a shared-memory zone: keys, hits with the caller's id,
# expiry, what is never stored, batches with mixed hits, eviction, reload,
# two workers, bypass, and identical calls in flight collapsed into one.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use IO::Socket::INET;
use lib 't/lib';
use RPCTest;

my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_cache_zone one:1m;
rpc_cache_zone small:32k max_entry=3k;
EOF

my $config = <<'EOF';
location /rpc {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_seq test_echo test_big test_error update 1h;
    rpc_cache_valid test_sleep 1h;
    rpc_cache_valid test_whoami 300ms;
    rpc_cache_bypass $http_x_nocache;
}
location /small {
    rpc_pass backend;
    rpc_cache small;
    rpc_cache_valid * 1h;
}
location /nocache {
    rpc_pass backend;
}
EOF

my $log_lines = 0;

# the $rpc_cache_status of the next $want requests logged
sub statuses {
    my ($want) = @_;
    my $end = time + 5;
    my @lines;
    while (time < $end) {
        @lines = split /\n/, access_log_text();
        last if @lines >= $log_lines + ($want // 1);
        sleep 0.02;
    }
    my @new = @lines[$log_lines .. $#lines];
    $log_lines = @lines;
    return join ' ', map { /c=(\S+)/ ? $1 : '?' } @new;
}

# skips what was logged so far
sub flush {
    sleep 0.1;
    my @lines = split /\n/, access_log_text();
    $log_lines = @lines;
}

sub rpc {
    my ($body, %o) = @_;
    return http_post($body, %o)->{body};
}

sub seq_of {
    my ($body) = @_;
    return $body =~ /"result":"UPSTREAM:(\d+)"/ ? $1 : undef;
}

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');

# --- miss, then hit with the caller's own id
my $a = rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":1}');
like($a, qr/^\{"jsonrpc":"2.0","id":1,"result":"UPSTREAM:\d+"\}$/,
     'miss answered by the upstream');
is(statuses(), 'MISS', 'first call is a MISS');
my $seq = seq_of($a);

is(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":2}'),
   qq({"jsonrpc":"2.0","id":2,"result":"UPSTREAM:$seq"}),
   'hit: same result, the caller\'s id');
is(statuses(), 'HIT', 'second call is a HIT');

# --- odd ids spliced byte for byte
for my $id ('1e3', '-0', '1.50', '18446744073709551617', '"a\\u0000b"',
            'null', '"\\ud83d\\ude00"')
{
    is(rpc(qq({"id":$id,"params":[1],"method":"test_seq","jsonrpc":"2.0"})),
       qq({"jsonrpc":"2.0","id":$id,"result":"UPSTREAM:$seq"}),
       "hit answers id $id byte for byte");
}
flush();

# --- the key: whitespace outside strings does not count, the rest does
is(rpc(qq({"jsonrpc":"2.0","method":"test_seq","params":\n [ 1 ]\t,"id":3})),
   qq({"jsonrpc":"2.0","id":3,"result":"UPSTREAM:$seq"}),
   'whitespace in params does not change the key');
is(statuses(), 'HIT', 'whitespace variant is a HIT');

my $s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["a b"],"id":4}'));
my $s2 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["ab"],"id":5}'));
isnt($s1, $s2, 'whitespace inside strings is part of the key');

$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":{"a":1,"b":2},"id":6}'));
$s2 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":{"b":2,"a":1},"id":7}'));
isnt($s1, $s2, 'member order is part of the key');

$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","id":8}'));
$s2 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[],"id":9}'));
isnt($s1, $s2, 'absent params and [] are different keys');
is(seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","id":10}')), $s1,
   'absent params is a key of its own');
flush();

$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":1}',
                 path => '/small'));
isnt($s1, $seq, 'another zone has entries of its own');
flush();

# --- methods without rpc_cache_valid, locations without rpc_cache
my $n = upstream_calls('sum');
rpc('{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}') for 1 .. 2;
is(upstream_calls('sum') - $n, 2, 'a method rpc_cache_valid does not name '
   . 'is not cached');
is(statuses(2), '- -', 'and its $rpc_cache_status is "-"');

$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":1}',
                 path => '/nocache'));
isnt($s1, $seq, 'no rpc_cache, no cache');
flush();

# --- errors and null results are never stored
$n = upstream_calls('test_error');
is(rpc('{"jsonrpc":"2.0","method":"test_error","id":1}'),
   '{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"upstream says no"}}',
   'upstream error answered');
rpc('{"jsonrpc":"2.0","method":"test_error","id":1}');
is(upstream_calls('test_error') - $n, 2, 'errors are not stored');

$n = upstream_calls('update');
is(rpc('{"jsonrpc":"2.0","method":"update","id":1}'),
   '{"jsonrpc":"2.0","id":1,"result":null}', 'null result answered');
rpc('{"jsonrpc":"2.0","method":"update","id":1}');
is(upstream_calls('update') - $n, 2, 'null results are not stored');
is(statuses(4), 'MISS MISS MISS MISS', 'each of them a MISS');

# --- notifications are never answered from the cache
$n = upstream_calls('test_seq');
my $r = http_post('{"jsonrpc":"2.0","method":"test_seq","params":[1]}');
is($r->{status}, 204, 'notification of a cached call: no answer');
is(upstream_calls('test_seq') - $n, 1, 'and it goes upstream');
is(statuses(), '-', 'notifications do not touch the cache');

# --- a batch: each call on its own, only misses go upstream, in order
rpc(join '', '[', join(',', map {
    qq({"jsonrpc":"2.0","method":"test_echo","params":["b$_"],"id":$_})
} 1 .. 7), ']');
flush();
$n = upstream_calls('test_echo');
my @order = (8, 1, 2, 9, 3, 4, 5, 10, 6, 7);
my $batch = '[' . join(',', map {
    qq({"jsonrpc":"2.0","method":"test_echo","params":["b$_"],"id":"x$_"})
} @order) . ']';
is(rpc($batch), '[' . join(',', map {
    qq({"jsonrpc":"2.0","id":"x$_","result":["b$_"]})
} @order) . ']', 'batch of 10 with 7 hits answered in request order');
is(upstream_calls('test_echo') - $n, 3, 'only the 3 misses went upstream');
is(statuses(), 'MISS,HIT,HIT,MISS,HIT,HIT,HIT,MISS,HIT,HIT',
   '$rpc_cache_status lists each call');

is(rpc($batch), '[' . join(',', map {
    qq({"jsonrpc":"2.0","id":"x$_","result":["b$_"]})
} @order) . ']', 'all 10 from the cache');
is(statuses(), join(',', ('HIT') x 10), 'all 10 are hits');

# --- a batch with the same call twice and an invalid call
is(rpc('[{"jsonrpc":"2.0","method":"test_echo","params":["b1"],"id":1},'
       . '{"jsonrpc":"2.0","method":"test_echo","params":["b1"],"id":2},'
       . '{"method":"test_echo","id":3}]'),
   '[{"jsonrpc":"2.0","id":1,"result":["b1"]},'
   . '{"jsonrpc":"2.0","id":2,"result":["b1"]},'
   . '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},'
   . '"id":3}]', 'hits beside an invalid call');
flush();

# --- expiry: an expired entry is never served
$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["short"],"id":1}'));
rpc('{"jsonrpc":"2.0","method":"test_whoami","id":1}');
is(seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["short"],"id":1}')),
   $s1, 'hit before expiry');
$n = upstream_calls('test_whoami');
rpc('{"jsonrpc":"2.0","method":"test_whoami","id":1}');
is(upstream_calls('test_whoami') - $n, 0, 'short entry hit while valid');
sleep 0.4;
rpc('{"jsonrpc":"2.0","method":"test_whoami","id":1}');
is(upstream_calls('test_whoami') - $n, 1, 'expired entry goes upstream');
is((split ' ', statuses(5))[-1], 'EXPIRED', 'and is reported EXPIRED');

# --- bypass: skips the lookup, still stores
$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":1}',
                 headers => "X-Nocache: 1\r\n"));
isnt($s1, $seq, 'bypass goes upstream');
is(statuses(), 'BYPASS', 'reported BYPASS');
is(seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":1}',
              headers => "X-Nocache: 0\r\n")),
   $s1, 'the bypassed answer was stored; "0" does not bypass');
is(statuses(), 'HIT', 'reported HIT');
$seq = $s1;

# --- max_entry and eviction in a small zone
$n = upstream_calls('test_big');
rpc('{"jsonrpc":"2.0","method":"test_big","params":[4000],"id":1}',
    path => '/small') for 1 .. 2;
is(upstream_calls('test_big') - $n, 2, 'entries above max_entry are not stored');

for my $i (1 .. 40) {
    rpc(qq({"jsonrpc":"2.0","method":"test_big","params":[2000,$i],"id":$i}),
                     path => '/small');
    rpc(qq({"jsonrpc":"2.0","method":"test_seq","params":["e$i"],"id":$i}),
        path => '/small');
}
flush();
$n = upstream_calls('test_seq');
my $last = rpc('{"jsonrpc":"2.0","method":"test_seq","params":["e40"],"id":1}',
               path => '/small');
is(upstream_calls('test_seq') - $n, 0, 'the newest entry is still there');
rpc('{"jsonrpc":"2.0","method":"test_seq","params":["e1"],"id":1}',
    path => '/small');
is(upstream_calls('test_seq') - $n, 1, 'the oldest entry was evicted');
unlike(error_log_text(), qr/\[(crit|alert)\]/, 'a full zone evicts quietly');
flush();

# --- entries survive nginx -s reload
SKIP: {
    skip 'no graceful reload without a master process', 2 if $RPCTest::Valgrind;

    my $old = `pgrep -P ${\ nginx_pid()}`;
    reload_nginx();
    my $end = time + 10;
    while (time < $end) {
        my $new = `pgrep -P ${\ nginx_pid()}`;
        last if $new ne $old && $new =~ /\d/;
        sleep 0.05;
    }
    sleep 0.2;
    is(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":7}'),
       qq({"jsonrpc":"2.0","id":7,"result":"UPSTREAM:$seq"}),
       'entries survive a reload');
    is(statuses(), 'HIT', 'reported HIT after reload');
}

# --- bad configuration
my $bad = servroot() . '/bad.conf';
for my $case (['rpc_cache nope;', 'unknown rpc_cache_zone "nope"'],
              ['rpc_cache_valid eth_chainId 0;', 'invalid time value "0"'],
              ['rpc_cache_valid 1h;', 'invalid number of arguments'])
{
    open my $f, '>', $bad or die;
    print $f "load_module $RPCTest::Module; events {} http { rpc_cache_zone z:1m; server { location / {"
           . " rpc_pass 127.0.0.1:1; $case->[0] } } }\n";
    close $f;
    my ($rc, $out) = nginx_test_config($bad);
    ok($rc != 0 && index($out, $case->[1]) >= 0 && $out =~ /bad\.conf:1/,
       "nginx -t rejects '$case->[0]'") or diag($out);
}
for my $case (['rpc_cache_zone z;', 'invalid zone "z"'],
              ['rpc_cache_zone z:1k;', 'is too small'],
              ['rpc_cache_zone z:1m max_entry=1m;', 'invalid max_entry'],
              ['rpc_cache_zone z:1m; rpc_cache_zone z:1m;', 'duplicate zone'],
              ['rpc_cache_redis 127.0.0.1:6379 ttl=1;', 'invalid parameter "ttl=1"'])
{
    open my $f, '>', $bad or die;
    print $f "load_module $RPCTest::Module; events {} http { $case->[0] }\n";
    close $f;
    my ($rc, $out) = nginx_test_config($bad);
    ok($rc != 0 && index($out, $case->[1]) >= 0, "nginx -t rejects '$case->[0]'")
        or diag($out);
}

# --- collapsing: identical calls in flight wait for the first

# each body (or [body, http_post options]) from a client of its own, the
# first at once, the others 0.1 s later; returns the answers
sub parallel {
    my ($bodies, %o) = @_;
    my @pids;
    my $dir = servroot();
    for my $i (0 .. $#$bodies) {
        my $pid = fork // die;
        if ($pid == 0) {
            sleep $i ? 0.1 : 0;
            my ($req, @opt) = ref $bodies->[$i] ? @{$bodies->[$i]}
                                                : ($bodies->[$i]);
            my $body = '';
            if ($o{hang_up} && $i == 0) {
                my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => port('SERVER_PORT'));
                syswrite($s, "POST /rpc HTTP/1.1\r\nHost: localhost\r\n"
                    . "Content-Length: " . length($bodies->[0]) . "\r\n\r\n"
                    . $bodies->[0]);
                sleep $o{hang_up};
                close $s;
            } else {
                $body = http_post($req, @opt)->{body};
            }
            open my $f, '>', "$dir/par.$i";
            print $f $body;
            close $f;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    return map {
        open my $f, '<', "$dir/par.$_"; local $/; my $b = <$f>; $b
    } 0 .. $#$bodies;
}

$n = upstream_calls('test_sleep');
my @got = parallel([ map {
    qq({"jsonrpc":"2.0","method":"test_sleep","params":[500],"id":$_})
} 1 .. 5 ]);
is_deeply(\@got, [ map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) }
                   1 .. 5 ], 'five identical calls in flight, five answers');
is(upstream_calls('test_sleep') - $n, 1, 'one upstream call for all five');
is(join(' ', sort split ' ', statuses(5)), 'COLLAPSED COLLAPSED COLLAPSED '
   . 'COLLAPSED MISS', 'the others are reported COLLAPSED');

# rpc_cache_bypass: an identical call in flight is not waited for either
$n = upstream_calls('test_sleep');
@got = parallel([
    '{"jsonrpc":"2.0","method":"test_sleep","params":[500,"b"],"id":1}',
    [ '{"jsonrpc":"2.0","method":"test_sleep","params":[500,"b"],"id":2}',
      headers => "X-Nocache: 1\r\n" ],
]);
is_deeply(\@got, [ map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) }
                   1, 2 ], 'a bypass beside the same call in flight: both answered');
is(upstream_calls('test_sleep') - $n, 2, 'the bypass went upstream itself');
is(join(' ', sort split ' ', statuses(2)), 'BYPASS MISS',
   'reported BYPASS, not COLLAPSED');

# the first client hangs up: a waiting call takes the lead and goes itself
$n = upstream_calls('test_sleep');
@got = parallel([ map {
    qq({"jsonrpc":"2.0","method":"test_sleep","params":[700],"id":$_})
} 1 .. 3 ], hang_up => 0.2);
is_deeply([ @got[1, 2] ], [ map { qq({"jsonrpc":"2.0","id":$_,"result":"slept"}) }
                            2, 3 ], 'waiting calls answered after the '
          . 'leader hung up');
is(upstream_calls('test_sleep') - $n, 2, 'the next waiter went upstream once');
flush();

# a batch waiting on a call in flight, with a hit beside it
@got = parallel([
    '{"jsonrpc":"2.0","method":"test_sleep","params":[400],"id":1}',
    '[{"jsonrpc":"2.0","method":"test_sleep","params":[400],"id":"w"},'
    . '{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":"h"}]',
]);
is($got[1], '[{"jsonrpc":"2.0","id":"w","result":"slept"},'
   . qq({"jsonrpc":"2.0","id":"h","result":"UPSTREAM:$seq"}]),
   'batch with a collapsed call and a hit');

# rpc_timeout of a waiting call answers it alone
start_nginx(http_config => $http, config => <<'EOF') or BAIL_OUT('nginx');
location /rpc {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_sleep 1h;
}
location /short {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_sleep 1h;
    rpc_timeout 200ms;
}
EOF
flush();
{
    my $dir = servroot();
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = http_post('{"jsonrpc":"2.0","method":"test_sleep","params":[800],"id":1}');
        open my $f, '>', "$dir/lead"; print $f $r->{body}; close $f;
        POSIX::_exit(0);
    }
    sleep 0.1;
    is(rpc('{"jsonrpc":"2.0","method":"test_sleep","params":[800],"id":2}',
           path => '/short'),
       '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Upstream timed out"},"id":2}',
       'a waiting call past its rpc_timeout gets the timeout error');
    waitpid($pid, 0);
    open my $f, '<', "$dir/lead"; local $/;
    is(<$f>, '{"jsonrpc":"2.0","id":1,"result":"slept"}',
       'the call it waited for is answered');
}

# --- rpc_max_pending refuses cache hits too
start_nginx(http_config => $http, config => <<'EOF') or BAIL_OUT('nginx');
location /rpc {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_seq 1h;
    rpc_max_pending 2;
}
EOF
flush();
$s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["held"],"id":1}'));
is(seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["held"],"id":1}')),
   $s1, 'an entry to hit');
is(statuses(2), 'MISS HIT', 'stored, then a HIT');
{
    my $dir = servroot();
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = http_post('[{"jsonrpc":"2.0","method":"test_sleep","params":[800],"id":1},'
                          . '{"jsonrpc":"2.0","method":"test_sleep","params":[801],"id":2}]');
        open my $f, '>', "$dir/held"; print $f $r->{body}; close $f;
        POSIX::_exit(0);
    }
    sleep 0.3;
    is(rpc('[{"jsonrpc":"2.0","method":"test_seq","params":["held"],"id":"h"}]'),
       '[{"jsonrpc":"2.0","error":{"code":-32010,"message":"Gateway overloaded"},"id":"h"}]',
       'two calls held: a call that would hit is refused');
    like(error_log_text(), qr/rpc: 1 calls refused, rpc_max_pending 2 reached/,
         'refusal logged');
    waitpid($pid, 0);
    open my $f, '<', "$dir/held"; local $/;
    is(<$f>, '[{"jsonrpc":"2.0","id":1,"result":"slept"},'
       . '{"jsonrpc":"2.0","id":2,"result":"slept"}]', 'the held calls are answered');
}
is(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["held"],"id":3}'),
   qq({"jsonrpc":"2.0","id":3,"result":"UPSTREAM:$s1"}),
   'then the same call is a hit again');

# --- answers of every size about the point where they stop being copied
# into the answer's block (1 KiB) and where blocks end (2 KiB): forwarded,
# then from the cache, byte for byte, among error objects, a notification
# and ids of many lengths; then a batch of small answers over three blocks
start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');
{
    my @n = (0, 1, 1019, 1020, 1021, 1022, 1023, 1024, 2000, 2044, 2045,
             2046, 2047, 2048, 3000, 5);
    my (@req, @want);
    for my $i (0 .. $#n) {
        my $id = '"' . ('i' x $i) . '"';
        push @req, qq({"jsonrpc":"2.0","method":"test_big","params":[$n[$i]],"id":$id});
        push @want, qq({"jsonrpc":"2.0","id":$id,"result":") . ('x' x $n[$i]) . '"}';
        if ($i % 5 == 2) {
            push @req, '{"jsonrpc":"2.0","method":"test_error","id":' . (1000 + $i) . '}';
            push @want, '{"jsonrpc":"2.0","id":' . (1000 + $i)
                . ',"error":{"code":-32000,"message":"upstream says no"}}';
            push @req, '{"jsonrpc":"2.0","method":"test_big","params":[1500]}';
            push @req, '7';
            push @want, '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}';
        }
    }
    my $body = '[' . join(',', @req) . ']';
    my $want = '[' . join(',', @want) . ']';
    flush();
    my $n = upstream_calls('test_big');
    is(rpc($body), $want, 'answers about the copy and block sizes, forwarded');
    ok(upstream_calls('test_big') - $n >= @n, 'they went upstream');
    $n = upstream_calls('test_big');
    is(rpc($body), $want, 'the same answers from the cache');
    is(upstream_calls('test_big') - $n, 3,
       'only the notifications went upstream again');

    my @small = map { qq({"jsonrpc":"2.0","method":"test_big","params":[$_],"id":$_}) } 0 .. 59;
    $want = '[' . join(',', map { qq({"jsonrpc":"2.0","id":$_,"result":") . ('x' x $_) . '"}' } 0 .. 59) . ']';
    is(rpc('[' . join(',', @small) . ']'), $want, '60 small answers, about 4.5 KiB');
    is(rpc('[' . join(',', @small) . ']'), $want, 'and again from the cache');
}

# --- two workers share one zone
SKIP: {
    skip 'valgrind runs one process', 2 if $RPCTest::Valgrind;

    start_nginx(http_config => $http, workers => 2, config => <<'EOF')
location /rpc {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_seq 1h;
}
EOF
        or BAIL_OUT('nginx');
    flush();
    $s1 = seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["w"],"id":1}'));
    my %pids;
    my $same = 1;
    for my $i (1 .. 200) {
        $same &&= seq_of(rpc('{"jsonrpc":"2.0","method":"test_seq","params":["w"],"id":1}'))
                  eq $s1;
        sleep 0.01;
        my @l = split /\n/, access_log_text();
        $pids{$1} = 1 if $l[-1] =~ /c=HIT p=(\d+)/;
        last if keys %pids >= 2 && $i >= 10;
    }
    ok($same, 'every worker answers from the shared entry');
    is(scalar keys %pids, 2, 'hits were served by both workers');
}


