# Memory under a flood: many clients at once against a slow upstream, with
# calls that time out, clients that hang up mid-flight and calls refused
# beyond rpc_max_pending.  The worker's RSS must not grow from one round to
# the next once warm (memory is pooled and freed, not leaked), and the run
# must be valgrind clean (make test-valgrind).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use lib 't/lib';
use RPCTest;

start_nginx(
    http_config => 'upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 16; }',
    config => <<'EOF') or BAIL_OUT('nginx');
location /rpc {
    rpc_pass backend;
    rpc_upstream_batch 10 window=5ms;
    rpc_timeout 400ms;
    rpc_max_pending 150;
}
EOF

# the worker: nginx itself when it runs as one process (valgrind)
my $worker = nginx_pid();
for (1 .. 50) {
    my $kids = `pgrep -P $worker`;
    if ($kids =~ /^(\d+)/) { $worker = $1; last }
    last if $Valgrind;
    sleep 0.1;
}

sub rss {
    open my $f, '<', "/proc/$worker/status" or return 0;
    while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

my $clients = $Valgrind ? 8 : 40;

# each client sends a batch: a quick call, a slow one, one past the deadline;
# every third hangs up while its calls are upstream
sub flood {
    my @pids;
    for my $k (1 .. $clients) {
        my $pid = fork // die;
        if ($pid == 0) {
            my $body = '[{"jsonrpc":"2.0","method":"sum","params":[' . $k . '],"id":1},'
                . '{"jsonrpc":"2.0","method":"test_sleep","params":[150],"id":2},'
                . '{"jsonrpc":"2.0","method":"test_sleep","params":[600],"id":3}]';
            my $r = http_post($body, $k % 3 ? () : (hang_up => 0.1));
            # a batch is answered as a whole: calls sharing one with a slow
            # call may time out too
            my @ids = $r->{body} =~ /"id":(\d)\}?/g;
            my $ok = $k % 3 == 0
                || ("@ids" eq '1 2 3'
                    && $r->{body} !~ /"id":1,"result":(?!$k\b)/
                    && $r->{body} !~ /"code":-320(0[02-9]|1[1-9])/);
            print STDERR "client $k: $r->{body}\n" unless $ok;
            POSIX::_exit($ok ? 0 : 1);
        }
        push @pids, $pid;
    }
    my $bad = 0;
    for (@pids) { waitpid($_, 0); $bad++ if $? }
    return $bad;
}

my $bad = 0;
$bad += flood() for 1 .. 3;
sleep 1;
my $warm = rss();
my $rounds = $Valgrind ? 2 : 8;
$bad += flood() for 1 .. $rounds;
sleep 1;
my $after = rss();

is($bad, 0, "$clients clients x " . (3 + $rounds) . ' rounds: every client that stayed got its three answers');

SKIP: {
    skip 'RSS under valgrind is valgrind\'s', 1 if $Valgrind;
    skip 'ASan keeps freed memory in quarantine', 1 if $RPCTest::Asan;
    note("worker RSS: ${warm} kB warm, ${after} kB after $rounds more rounds");
    cmp_ok($after - $warm, '<', 2048,
           "worker RSS flat: $warm kB -> $after kB over $rounds rounds of $clients clients");
}

my $log = error_log_text();
like($log, qr/calls not answered within rpc_timeout 400/, 'deadlines passed during the flood');
unlike($log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, no crash');
