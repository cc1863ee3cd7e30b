# The cache's Redis second level, with a real redis-server: stores with a
# TTL, hits that fill the local zone, two nginx instances sharing entries,
# and Redis absent, slow, restarted or killed: a miss, never a client error.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use lib 't/lib';
use RPCTest;

my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_cache_zone one:1m;
rpc_cache_redis 127.0.0.1:$REDIS_PORT timeout=100ms;
EOF

my $config = <<'EOF';
location /rpc {
    rpc_pass backend;
    rpc_cache one;
    rpc_cache_valid test_seq test_echo 1h;
    rpc_cache_bypass $http_x_nocache;
}
EOF

sub rpc {
    my ($body, %o) = @_;
    return http_post($body, %o)->{body};
}

sub seq_call {
    my ($param, %o) = @_;
    my $b = rpc(qq({"jsonrpc":"2.0","method":"test_seq","params":[$param],"id":1}),
                %o);
    return $b =~ /"result":"?([^"}]*)"?\}$/ ? $1 : $b;
}

# the Redis key of test_seq with these params
sub key { my ($p, $prefix) = @_; ($prefix // 'rpc:') . qq(backend:0/\n"test_seq"\n[$p]) }

# a fresh key planted in Redis each try, until nginx answers with it
sub back_in_use {
    my ($tag) = @_;
    for my $i (1 .. 30) {
        redis_cli('SET', key(qq("$tag$i")), qq("$tag"), 'PX', 60000);
        return 1 if seq_call(qq("$tag$i")) eq $tag;
        sleep 0.2;
    }
    return 0;
}

sub last_status {
    sleep 0.05;
    my @l = split /\n/, access_log_text();
    return $l[-1] =~ /c=(\S+)/ ? $1 : '?';
}

start_nginx(http_config => $http, config => $config) or BAIL_OUT('nginx');

# --- stores go to Redis with the TTL of rpc_cache_valid
my $v = seq_call(1);
like($v, qr/^UPSTREAM:\d+$/, 'miss answered by the upstream');
my $end = time + 2;
sleep 0.02 while redis_cli('EXISTS', key(1)) ne '1' && time < $end;
is(redis_cli('GET', key(1)), qq("$v"), 'the result is stored in Redis');
my $ttl = redis_cli('PTTL', key(1));
ok($ttl > 3_590_000 && $ttl <= 3_600_000, "with PX of rpc_cache_valid ($ttl)");

# --- a Redis hit answers and fills the local zone
redis_cli('SET', key(42), '"from-redis"', 'PX', 60000);
is(rpc('{"jsonrpc":"2.0","method":"test_seq","params":[42],"id":"r"}'),
   '{"jsonrpc":"2.0","id":"r","result":"from-redis"}', 'answered from Redis');
is(last_status(), 'REDIS', 'reported REDIS');
redis_cli('DEL', key(42));
is(seq_call(42), 'from-redis', 'then from the local zone');
is(last_status(), 'HIT', 'reported HIT');

# the local copy lives no longer than the Redis entry had left
redis_cli('SET', key(43), '"short"', 'PX', 300);
is(seq_call(43), 'short', 'short-lived Redis entry served');
sleep 0.4;
like(seq_call(43), qr/^UPSTREAM:\d+$/, 'and not after its Redis TTL');
is(last_status(), 'EXPIRED', 'reported EXPIRED');

# --- rpc_cache_bypass: Redis is not read, the answer is still stored there

# GET commands Redis has served so far
sub redis_gets {
    return redis_cli('INFO', 'commandstats') =~ /^cmdstat_get:calls=(\d+)/m
           ? $1 : 0;
}

my $gets = redis_gets();
seq_call(47);
is(redis_gets() - $gets, 1, 'a plain local miss sends one GET (the count is real)');
redis_cli('SET', key(46), '"planted"', 'PX', 60000);
$gets = redis_gets();
my $n = upstream_calls('test_seq');
my $b = seq_call(46, headers => "X-Nocache: 1\r\n");
like($b, qr/^UPSTREAM:\d+$/, 'a bypass is answered by the upstream, not Redis');
is(upstream_calls('test_seq') - $n, 1, 'it went upstream');
is(redis_gets() - $gets, 0, 'no GET was sent to Redis');
is(last_status(), 'BYPASS', 'reported BYPASS');
$end = time + 2;
sleep 0.02 while redis_cli('GET', key(46)) ne qq("$b") && time < $end;
is(redis_cli('GET', key(46)), qq("$b"), 'its answer replaced the entry in Redis');
is(seq_call(46), $b, 'and the local zone has it');

# --- a batch: local hits, Redis hits and misses together, in order
redis_cli('SET', key(44), '"r44"', 'PX', 60000);
$n = upstream_calls('test_seq');
like(rpc('[{"jsonrpc":"2.0","method":"test_seq","params":[44],"id":1},'
         . '{"jsonrpc":"2.0","method":"test_seq","params":[1],"id":2},'
         . '{"jsonrpc":"2.0","method":"test_seq","params":[45],"id":3}]'),
     qr/^\[\{"jsonrpc":"2.0","id":1,"result":"r44"\},\{"jsonrpc":"2.0","id":2,"result":"$v"\},\{"jsonrpc":"2.0","id":3,"result":"UPSTREAM:\d+"\}\]$/,
     'batch of a Redis hit, a local hit and a miss');
is(upstream_calls('test_seq') - $n, 1, 'only the miss went upstream');
is(last_status(), 'REDIS,HIT,MISS', 'each reported');

# --- two nginx instances on one Redis see each other's entries
my $dir2 = servroot() . '/second';
mkdir $dir2;
mkdir "$dir2/logs";
my $port2 = port('SECOND_PORT');
my $up = port('UPSTREAM_PORT');
my $rp = port('REDIS_PORT');
open my $f, '>', "$dir2/nginx.conf" or die;
print $f <<"EOF";
load_module $RPCTest::Module;
pid $dir2/nginx.pid;
error_log $dir2/logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir2/client_body_temp;
    proxy_temp_path $dir2/proxy_temp;
    fastcgi_temp_path $dir2/fastcgi_temp;
    uwsgi_temp_path $dir2/uwsgi_temp;
    scgi_temp_path $dir2/scgi_temp;
    upstream backend { server 127.0.0.1:$up; }
    rpc_cache_zone two:1m;
    rpc_cache_redis 127.0.0.1:$rp timeout=100ms;
    server {
        listen 127.0.0.1:$port2;
        location /rpc {
            rpc_pass backend;
            rpc_cache two;
            rpc_cache_valid test_seq 1h;
        }
    }
}
EOF
close $f;
my $user = $> == 0 ? "-g 'user root;'" : '';
sub second_nginx {
    my ($args) = @_;
    local %ENV = %ENV;
    RPCTest::asan_env();
    return system("/usr/sbin/nginx -p $dir2/ -c $dir2/nginx.conf $user $args");
}
second_nginx('') == 0 or BAIL_OUT('second nginx');
$end = time + 5;
sleep 0.05 while !IO::Socket::INET->new("127.0.0.1:$port2") && time < $end;

my $w = seq_call('"shared"', port => $port2);
like($w, qr/^UPSTREAM:\d+$/, 'second nginx: miss');
$end = time + 2;
sleep 0.02 while redis_cli('EXISTS', key('"shared"')) ne '1' && time < $end;
is(seq_call('"shared"'), $w, 'first nginx answers with the second\'s entry');
is(last_status(), 'REDIS', 'from Redis');
my $x = seq_call('"back"');
$end = time + 2;
sleep 0.02 while redis_cli('EXISTS', key('"back"')) ne '1' && time < $end;
is(seq_call('"back"', port => $port2), $x, 'and the other way round');

# --- Redis slow past its timeout: a miss, at once
my $sleeper = fork // die;
if ($sleeper == 0) {
    redis_cli('DEBUG', 'SLEEP', '1.5');
    POSIX::_exit(0);
}
sleep 0.2;
my $t0 = time;
like(seq_call(50), qr/^UPSTREAM:\d+$/, 'slow Redis: answered by the upstream');
ok(time - $t0 < 1, 'without waiting for Redis');
waitpid($sleeper, 0);
like(error_log_text(), qr/redis 127.0.0.1:\d+ timed out/, 'timeout logged');

# it comes back by itself
ok(back_in_use('after-sleep'), 'Redis used again after the slow spell');

# --- Redis restarted
redis_stop();
like(seq_call(60), qr/^UPSTREAM:\d+$/, 'Redis down: answered by the upstream');
redis_start();
ok(back_in_use('after-restart'), 'Redis used again after a restart');

# --- Redis killed in the middle of a load run: no client call fails
{
    my $dir = servroot();
    my @pids;
    for my $c (1 .. 4) {
        my $pid = fork // die;
        if ($pid == 0) {
            my $bad = 0;
            for my $i (1 .. 150) {
                my $p = ($i * 7 + $c) % 40;
                my $b = rpc(qq([{"jsonrpc":"2.0","method":"test_echo","params":["l$p"],"id":$i},)
                            . qq({"jsonrpc":"2.0","method":"sum","params":[$c,$i],"id":"s"}]));
                $bad++ unless $b eq qq([{"jsonrpc":"2.0","id":$i,"result":["l$p"]},)
                                   . qq({"jsonrpc":"2.0","id":"s","result":@{[$c + $i]}}]);
            }
            open my $o, '>', "$dir/load.$c";
            print $o $bad;
            close $o;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    sleep 0.5;
    redis_stop('KILL');
    sleep 0.5;
    redis_start();
    waitpid($_, 0) for @pids;
    my $bad = 0;
    for my $c (1 .. 4) {
        open my $i, '<', "$dir/load.$c";
        $bad += <$i> // 1000;
    }
    is($bad, 0, 'Redis killed mid-load: every call answered correctly');
}

# --- Redis absent from the start
start_nginx(http_config => <<'EOF', config => $config) or BAIL_OUT('nginx');
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_cache_zone one:1m;
rpc_cache_redis 127.0.0.1:$DEAD_PORT;
EOF
like(seq_call(70), qr/^UPSTREAM:\d+$/, 'no Redis at all: answered');
like(seq_call(70), qr/^UPSTREAM:\d+$/, 'and the local zone still works');
is(last_status(), 'HIT', 'reported HIT');
like(error_log_text(), qr/cannot connect to redis|redis .* connect failed/,
     'the missing Redis is logged');

# --- password, db and prefix
redis_stop();
redis_start('--requirepass', 'sekret');
start_nginx(http_config => <<'EOF', config => $config) or BAIL_OUT('nginx');
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_cache_zone one:1m;
rpc_cache_redis 127.0.0.1:$REDIS_PORT prefix=gw: db=3 password=sekret;
EOF
$v = seq_call(80);
$end = time + 2;
my @auth = ('-a', 'sekret', '--no-auth-warning', '-n', 3);
sleep 0.02 while redis_cli(@auth, 'EXISTS', key(80, 'gw:')) ne '1' && time < $end;
is(redis_cli(@auth, 'GET', key(80, 'gw:')), qq("$v"),
   'stored in db 3 with the prefix, after AUTH');
unlike(error_log_text(), qr/refused AUTH/, 'AUTH accepted');

second_nginx('-s stop 2>/dev/null');
unlike(RPCTest::slurp("$dir2/logs/error.log"), qr/\[(alert|crit|emerg)\]/,
       'second nginx: no alert/crit/emerg');


