# Many clients at once, two workers, a mix of good and bad input and of
# upstream failures: every answer is exactly right, nothing crashes or hangs.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use RPCTest;
use POSIX ();

start_nginx(
    workers => 2,
    http_config => 'upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }',
    config => 'location /rpc { rpc_pass backend; rpc_timeout 1s; rpc_max_batch 20; }')
    or BAIL_OUT("nginx did not start");

my $err = sub { qq({"jsonrpc":"2.0","error":{"code":$_[0],"message":"$_[1]"},"id":$_[2]}) };

# [body, expected answer]; $n is replaced by a number unique to the request
my @mix = (
    ['{"jsonrpc":"2.0","method":"sum","params":[$n],"id":$n}',
     '{"jsonrpc":"2.0","id":$n,"result":$n}'],
    ['[{"jsonrpc":"2.0","method":"sum","params":[$n,1],"id":"a$n"},{"jsonrpc":"2.0","method":"notify_hello"},'
     . '{"jsonrpc":"2.0","method":"test_echo","params":{"k":$n},"id":null}]',
     '[{"jsonrpc":"2.0","id":"a$n","result":' . '$n1' . '},{"jsonrpc":"2.0","id":null,"result":{"k":$n}}]'],
    ['{"jsonrpc":"2.0","method":"update","params":[$n]}', ''],
    ['{"jsonrpc":"2.0","method":"sum","params":[$n],"id":$n', $err->(-32700, 'Parse error', 'null')],
    ['[1,{"jsonrpc":"2.0","method":"sum","id":$n}]',
     '[' . $err->(-32600, 'Invalid Request', 'null') . ',{"jsonrpc":"2.0","id":$n,"result":0}]'],
    ['{"jsonrpc":"2.0","method":"test_reset","id":$n}',
     $err->(-32002, 'Upstream closed connection before reply was complete', '$n')],
    ['{"jsonrpc":"2.0","method":"test_garbage","id":$n}',
     $err->(-32004, 'Upstream reply is not valid JSON', '$n')],
    ['{"jsonrpc":"2.0","method":"test_sleep","params":[2500],"id":$n}',
     $err->(-32001, 'Upstream timed out', '$n')],
    ['[' . join(',', ('{"jsonrpc":"2.0","method":"sum","id":1}') x 21) . ']',
     $err->(-32007, 'Batch too large', 'null')],
    ['{"jsonrpc":"2.0","method":"test_sleep","params":[100],"id":$n}', undef],   # client hangs up
);

my $clients = 8;
my $each = $Valgrind ? 15 : 40;
my @pids;
for my $c (1 .. $clients) {
    my $pid = fork // die;
    if ($pid == 0) {
        srand($c);
        my $bad = 0;
        for my $i (1 .. $each) {
            my $n = $c * 1000 + $i;
            my ($body, $want) = @{$mix[int rand @mix]};
            $body =~ s/\$n/$n/g;
            if (!defined $want) {
                http_post($body, no_read => 1);
                next;
            }
            (my $w = $want) =~ s/\$n1/$n + 1/ge;
            $w =~ s/\$n/$n/g;
            my $r = http_post($body);
            if ($r->{body} ne $w) {
                print STDERR "client $c: $body\n  got:  $r->{body}\n  want: $w\n";
                $bad++;
            }
        }
        POSIX::_exit($bad ? 1 : 0);
    }
    push @pids, $pid;
}
my $failed = 0;
for (@pids) { waitpid($_, 0); $failed++ if $? }
is($failed, 0, "$clients clients x $each mixed requests: every answer exact");

my $log = error_log_text();
unlike($log, qr/\[(alert|crit|emerg)\]|exited on signal/, "no alert, no crash");

# still serving, and idle upstream connections were kept
my $r = http_post('{"jsonrpc":"2.0","method":"sum","params":[5],"id":5}');
is($r->{body}, '{"jsonrpc":"2.0","id":5,"result":5}', "serves on after the mix");

stop_nginx();
