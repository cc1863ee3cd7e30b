# Prometheus metrics (rpc_metrics_zone, rpc_metrics): after a known mix of
# traffic over HTTP and WebSocket, the exact value of every series of every
# family; two workers' counts added up whichever worker is scraped; counts
# kept by a reload with the same labels and started again by one with
# other labels; hostile method names that add no series and break no line;
# label values from the configuration escaped; the output checked by
# promtool and scraped by a real Prometheus server.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use JSON::PP;
use lib 't/lib';
use RPCTest;
use RPCFrame;

my $PROMTOOL = '/usr/bin/promtool';
my $PROMETHEUS = '/usr/bin/prometheus';
my $PrometheusPid;

END { kill 'TERM', $PrometheusPid if $PrometheusPid }

# The method labels: the names of rpc_allow_methods, rpc_route,
# rpc_cache_valid and rpc_metrics_methods, the pattern eth_*, "other" and
# "invalid".  flaky has no keepalive: a connection for each request, and no
# second try of a request on a cached connection.  odd"name\, tiny"zone\
# and three of the methods are label values to escape.
my $http = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
upstream flaky { server 127.0.0.1:$UPSTREAM_PORT; }
upstream nobatch { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
upstream dead { server 127.0.0.1:$DEAD_PORT; }
upstream "odd\"name\\" { server 127.0.0.1:$UPSTREAM_PORT; }
log_format mx '$uri $pid';
access_log $SERVROOT/logs/mx.log mx;
rpc_metrics_zone metrics:1m;
rpc_cache_zone answers:1m;
rpc_cache_zone "tiny\"zone\\:32k" max_entry=3k;
rpc_cache_redis 127.0.0.1:$REDIS_PORT timeout=100ms;
rpc_metrics_methods test_reset test_reset_mid test_http500 test_garbage
                    test_shape test_big "q\"uote" "back\\slash" "new\nline"
                    eth_*;
EOF

my $config = <<'EOF';
location /rpc {
    rpc_pass backend;
    rpc_deny_methods admin_*;
    rpc_route test_echo "odd\"name\\";
    rpc_upstream_batch 2;
    rpc_cache answers;
    rpc_cache_valid test_seq test_sleep 1h;
    rpc_cache_valid test_whoami 200ms;
    rpc_cache_bypass $http_x_nocache;
}
location /tiny {
    rpc_pass backend;
    rpc_cache "tiny\"zone\\";
    rpc_cache_valid test_big 1h;
}
location /flaky {
    rpc_pass flaky;
    rpc_read_timeout 300ms;
    rpc_max_reply_size 1k;
}
location /dead { rpc_pass dead; }
location /nobatch {
    rpc_pass nobatch;
    rpc_allow_methods test_single get_data sum;
}
location /ws {
    rpc_pass backend;
    rpc_websocket on;
    rpc_upstream_batch 10 window=200ms;
}
location /wspending {
    rpc_pass backend;
    rpc_websocket on;
    rpc_max_pending 1;
}
location /hostile {
    rpc_pass backend;
    rpc_deny_methods hostile_*;
    rpc_max_batch 1000;
}
location = /metrics { rpc_metrics; }
EOF

my %conf = (http_config => $http, config => $config, workers => 2);

# --- reading the exposition

my $Label = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/;
my $Sample = qr/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{$Label(?:,$Label)*\})? (\S+)$/;

# GET /metrics: { text, series => { 'name{labels}' => value }, order =>
# [ series as printed ], bad => [ lines that are not of the format ],
# dup => [ series printed twice ], types => { family => type } }
sub scrape {
    my (%o) = @_;
    my $res = http_request(method => 'GET', path => '/metrics', %o);
    my $m = { status => $res->{status}, headers => $res->{headers},
              text => $res->{body}, series => {}, order => [], bad => [],
              dup => [], types => {} };
    for my $line (split /\n/, $res->{body}, -1) {
        if ($line =~ /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/) {
            $m->{types}{$2} = $3 if $1 eq 'TYPE';
        } elsif ($line =~ $Sample) {
            my ($key, $v) = ($1 . ($2 // ''), $3);
            push(@{ $m->{bad} }, $line), next
                unless $v =~ /^(?:[0-9]+(?:\.[0-9]+)?|\+Inf)$/;
            push @{ $m->{dup} }, $key if exists $m->{series}{$key};
            $m->{series}{$key} = $v;
            push @{ $m->{order} }, $key;
        } elsif ($line ne '') {
            push @{ $m->{bad} }, $line;
        }
    }
    push @{ $m->{bad} }, '(no newline at the end)' if $res->{body} !~ /\n\z/;
    return $m;
}

# the family of a series: its name without a histogram's suffix
sub family {
    my ($m, $key) = @_;
    my ($name) = $key =~ /^([^{]+)/;
    (my $base = $name) =~ s/_(bucket|sum|count)$//;
    return ($m->{types}{$base} // '') eq 'histogram' ? $base : $name;
}

# $expect lists series as the exposition prints them: each must have that
# value ("*": any); a counter or gauge family named in it must have those
# series and no other; of a histogram only the lines listed are compared
sub metrics_are {
    my ($m, $expect, $name) = @_;
    my (%want, @families);
    for my $line (split /\n/, $expect) {
        next if $line =~ /^\s*(#|$)/;
        my ($key, $v) = $line =~ /^(\S+(?:\{.*\})?) (\S+)$/
            or die "bad expectation: $line";
        $want{$key} = $v;
        my $f = family($m, $key);
        push @families, $f unless grep { $_ eq $f } @families;
    }
    for my $f (@families) {
        my $hist = ($m->{types}{$f} // '') eq 'histogram';
        my @keys = grep { family($m, $_) eq $f } @{ $m->{order} };
        @keys = grep { exists $want{$_} } @keys if $hist;
        my @missing = grep { family($m, $_) eq $f && !exists $m->{series}{$_} }
                      sort keys %want;
        my $got = join '', map {
            "$_ " . (($want{$_} // '') eq '*' ? '*' : $m->{series}{$_}) . "\n"
        } @keys;
        my $exp = join '', (map { "$_ $want{$_}\n" } @keys),
                           map { "$_ $want{$_}\n" } @missing;
        is($got, $exp, "$name: $f");
    }
}

# every line of the exposition is a comment or a sample, no series twice,
# every histogram's buckets add up to its count
sub well_formed {
    my ($m, $name) = @_;
    is(join("\n", @{ $m->{bad} }), '',
       "$name: every line is of the text format");
    is(join("\n", @{ $m->{dup} }), '', "$name: no series printed twice");
    my @wrong;
    for my $key (grep { /_count(\{|$)/ } @{ $m->{order} }) {
        my $f = family($m, $key);
        next unless ($m->{types}{$f} // '') eq 'histogram';
        my ($labels) = $key =~ /_count(\{.*\})?$/;
        $labels = $labels ? substr($labels, 1, -1) . ',' : '';
        my $inf = $m->{series}{"${f}_bucket{${labels}le=\"+Inf\"}"};
        my @b = map { $m->{series}{$_} }
                grep { /^${f}_bucket\{\Q$labels\Ele=/ } @{ $m->{order} };
        my $sorted = join(',', @b) eq join(',', sort { $a <=> $b } @b);
        push @wrong, $key unless defined $inf && $inf == $m->{series}{$key}
                                 && $sorted;
    }
    is(join("\n", @wrong), '', "$name: histograms add up");
}

# promtool check metrics on the text: its complaints, "" when none
sub promtool {
    my ($text) = @_;
    my $file = servroot() . '/scrape.txt';
    open my $f, '>', $file or die;
    print $f $text;
    close $f;
    my $out = `$PROMTOOL check metrics < $file 2>&1`;
    return $? == 0 ? $out : "exit " . ($? >> 8) . ": $out";
}

# a series' value, 0 when it is not printed
sub value {
    my ($m, $key) = @_;
    return $m->{series}{$key} // 0;
}

sub rpc {
    my ($body, %o) = @_;
    return http_post($body, %o)->{body};
}

sub call {
    my ($method, $params, $id) = @_;
    return qq({"jsonrpc":"2.0","method":"$method","params":$params,"id":$id});
}

# the worker processes now, once they are the only ones
sub workers {
    my ($n, @old) = @_;
    my %old = map { $_ => 1 } @old;
    my $end = time + 5;
    my @p;
    while (time < $end) {
        @p = sort split ' ', `pgrep -P ${\ nginx_pid()} -f 'worker process'`;
        last if @p == $n && !grep { $old{$_} } @p;
        sleep 0.05;
    }
    return @p;
}

# the pids that served each URI since the mx.log offset $from
sub served_by {
    my ($from) = @_;
    sleep 0.1;
    my %by;
    for (split /\n/, RPCTest::slurp(servroot() . '/logs/mx.log', $from)) {
        my ($uri, $pid) = split / /;
        $by{$uri}{$pid} = 1;
    }
    return map { $_ => scalar keys %{ $by{$_} } } keys %by;
}

ok(-x $PROMTOOL, "$PROMTOOL is there (t/deps.sh installs it)");

start_nginx(%conf) or BAIL_OUT('nginx');
my $conns = upstream_conns();

my $m = scrape();
is($m->{status}, 200, 'GET /metrics: 200');
is($m->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
   'in the text format 0.0.4');
is(http_request(path => '/metrics', body => '{}')->{status}, 405,
   'POST /metrics: 405');

# --- a known mix over HTTP

# the cache: a miss (a Redis miss too), a hit, a bypass, an expired entry
# (and a Redis miss), a Redis hit (stored in the zone), two identical calls
# of a batch collapsed into one (a miss and a Redis miss, then collapsed)
rpc(call('test_seq', '[1]', 1));
rpc(call('test_seq', '[1]', 2));
rpc(call('test_seq', '[1]', 3), headers => "X-Nocache: 1\r\n");
rpc(call('test_whoami', '[]', 4));
sleep 0.3;
rpc(call('test_whoami', '[]', 5));
redis_cli('SET', qq(rpc:backend:0/\n"test_seq"\n["r"]), '"planted"',
          'PX', 60000);
is(rpc(call('test_seq', '["r"]', 6)),
   '{"jsonrpc":"2.0","id":6,"result":"planted"}', 'a Redis hit');
rpc('[' . call('test_sleep', '[150]', 7) . ','
    . call('test_sleep', '[150]', 8) . ']');

# denied (not a label: "other"), without a method or with one that is not
# a string ("invalid"), a parse error and an empty batch (messages of no
# call), a notification, a method spelled with a JSON escape
rpc(call('admin_peers', '[]', 9));
rpc('{"jsonrpc":"2.0","id":10}');
rpc('{"jsonrpc":"2.0","method":5,"id":11}');
rpc('{"jsonrpc":"2.0","method":');
rpc('[]');
rpc('{"jsonrpc":"2.0","method":"sum","params":[1]}');
rpc(call('s\u0075m', '[1,2]', 12));

# a batch of 5 in upstream batches of 2: 2 + 2 + 1
rpc('[' . join(',', map { call('sum', "[$_]", $_) } 1 .. 5) . ']');

# an error object from the upstream (method "other"), a call of the
# pattern eth_*, a route, label values escaped
rpc(call('test_error', '[]', 13));
rpc(call('eth_chainId', '[]', 14));
rpc(call('test_echo', '["x"]', 15));
rpc(call('q\"uote', '[]', 16));
rpc(call('back\\\\slash', '[]', 17));
rpc(call('new\nline', '[]', 18));

# a batch the upstream refuses (one error object for the batch): its calls
# go again one by one
is(rpc('[' . call('test_single', '[]', 19) . ',' . call('get_data', '[]', 20)
       . ']', path => '/nobatch'),
   '[{"jsonrpc":"2.0","id":19,"result":"single"},'
   . '{"jsonrpc":"2.0","id":20,"result":["hello",5]}]',
   'a refused batch answered call by call');

# upstream failures of each kind: refused (nothing listens), reset before
# and while the reply comes, a status, two invalid replies, a timeout and
# a reply too large
rpc(call('sum', '[1,2]', 21), path => '/dead');
rpc(call($_, '[]', 22), path => '/flaky')
    for qw(test_reset test_reset_mid test_http500 test_garbage test_shape);
rpc(call('test_sleep', '[600]', 23), path => '/flaky');
rpc(call('test_big', '[3000]', 24), path => '/flaky');

# a call cancelled: its client hangs up while the upstream request runs
http_post(call('test_sleep', '[400]', 25), path => '/flaky', hang_up => 0.15);

# entries of a tiny zone evicted
rpc(call('test_big', "[2000,$_]", $_), path => '/tiny') for 1 .. 20;

# Redis slower than its timeout: a lookup fails, the call is a miss (last:
# for a while after, the worker asks Redis nothing)
my $sleeper = fork // die;
if ($sleeper == 0) {
    redis_cli('DEBUG', 'SLEEP', '0.5');
    POSIX::_exit(0);
}
sleep 0.1;
like(rpc(call('test_seq', '["slow"]', 26)), qr/"result":"UPSTREAM:\d+"/,
     'Redis too slow: a miss');
waitpid $sleeper, 0;

# --- and over WebSocket

my @ws = map { (ws_connect('/ws'))[0] } 1 .. 2;
my ($wsp) = ws_connect('/wspending');

# three messages within the window of rpc_upstream_batch: one upstream
# request; then a batch of 2, a notification with a call
ws_text($ws[0], call('sum', "[$_]", $_)) for 1 .. 3;
is(join(' ', sort map { ws_describe(ws_read_frame($ws[0])) } 1 .. 3),
   join(' ', map { qq(text {"jsonrpc":"2.0","id":$_,"result":$_}) } 1 .. 3),
   'WebSocket: three calls answered');
is(ws_rpc($ws[0], '[' . call('sum', '[4]', 4) . ',' . call('sum', '[5]', 5)
          . ']'),
   '[{"jsonrpc":"2.0","id":4,"result":4},{"jsonrpc":"2.0","id":5,"result":5}]',
   'WebSocket: a batch');
ws_text($ws[0], '{"jsonrpc":"2.0","method":"sum","params":[6]}');
is(ws_rpc($ws[0], call('sum', '[7]', 7)),
   '{"jsonrpc":"2.0","id":7,"result":7}',
   'WebSocket: a notification and a call');
is(ws_rpc($ws[1], '{"jsonrpc"'),
   '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}',
   'WebSocket: a parse error');

# rpc_max_pending 1: the first call of the batch is held, the second
# refused; the held call is seen while it waits
ws_text($wsp, '[' . call('test_sleep', '[600]', 1) . ','
              . call('sum', '[1]', 2) . ']');
sleep 0.2;
$m = scrape();
metrics_are($m, <<'EOF', 'while a call is held');
rpc_websocket_connections 3
EOF
is(join(' ', sort map { $m->{series}{qq(rpc_pending_calls{worker="$_"})} }
                  0, 1), '0 1', 'rpc_pending_calls: 1 in one worker');
is(ws_describe(ws_read_frame($wsp)),
   'text [{"jsonrpc":"2.0","id":1,"result":"slept"},{"jsonrpc":"2.0",'
   . '"error":{"code":-32010,"message":"Gateway overloaded"},"id":2}]',
   'WebSocket: a call held, a call refused');

for my $s (@ws, $wsp) {
    ws_send($s, ws_frame(CLOSE, ws_close_payload(1000)));
    ws_read_frame($s);
    close $s;
}

# --- the counts: exactly the mix

my $end = time + 3;
sleep 0.05 while time < $end
                 && value(scrape(), 'rpc_websocket_connections') != 0;
$m = scrape();
well_formed($m, 'after the mix');

my $expect = <<'EOF';
rpc_messages_total{transport="http",shape="single"} 46
rpc_messages_total{transport="http",shape="batch"} 3
rpc_messages_total{transport="http",shape="notification"} 1
rpc_messages_total{transport="http",shape="invalid"} 2
rpc_messages_total{transport="websocket",shape="single"} 4
rpc_messages_total{transport="websocket",shape="batch"} 2
rpc_messages_total{transport="websocket",shape="notification"} 1
rpc_messages_total{transport="websocket",shape="invalid"} 1

# calls in a message: 3 of none, 52 of 1, 4 of 2, 1 of 5
rpc_message_calls_bucket{le="1"} 55
rpc_message_calls_bucket{le="2"} 59
rpc_message_calls_bucket{le="5"} 60
rpc_message_calls_bucket{le="+Inf"} 60
rpc_message_calls_sum 65
rpc_message_calls_count 60

# calls by method and outcome (printed only when not 0): 24 methods and
# labels; -32601 and -32600 are the gateway's, "error" the upstream's
rpc_calls_total{method="back\\slash",outcome="error"} 1
rpc_calls_total{method="get_data",outcome="result"} 1
rpc_calls_total{method="new\nline",outcome="error"} 1
rpc_calls_total{method="q\"uote",outcome="error"} 1
rpc_calls_total{method="sum",outcome="result"} 12
rpc_calls_total{method="sum",outcome="notification"} 2
rpc_calls_total{method="sum",outcome="-32000"} 1
rpc_calls_total{method="sum",outcome="-32010"} 1
rpc_calls_total{method="test_big",outcome="result"} 20
rpc_calls_total{method="test_big",outcome="-32009"} 1
rpc_calls_total{method="test_echo",outcome="result"} 1
rpc_calls_total{method="test_garbage",outcome="-32004"} 1
rpc_calls_total{method="test_http500",outcome="-32003"} 1
rpc_calls_total{method="test_reset",outcome="-32002"} 1
rpc_calls_total{method="test_reset_mid",outcome="-32002"} 1
rpc_calls_total{method="test_seq",outcome="result"} 5
rpc_calls_total{method="test_shape",outcome="-32005"} 1
rpc_calls_total{method="test_single",outcome="result"} 1
rpc_calls_total{method="test_sleep",outcome="result"} 3
rpc_calls_total{method="test_sleep",outcome="cancelled"} 1
rpc_calls_total{method="test_sleep",outcome="-32001"} 1
rpc_calls_total{method="test_whoami",outcome="result"} 2
rpc_calls_total{method="eth_*",outcome="error"} 1
rpc_calls_total{method="other",outcome="error"} 1
rpc_calls_total{method="other",outcome="-32601"} 1
rpc_calls_total{method="invalid",outcome="-32600"} 2

# time from arrival to answer: test_sleep took 150 ms twice, was
# cancelled after 150 ms, timed out after 300 ms and slept 600 ms
rpc_call_duration_seconds_count{method="sum"} 16
rpc_call_duration_seconds_bucket{method="test_sleep",le="0.100"} 0
rpc_call_duration_seconds_bucket{method="test_sleep",le="0.250"} 3
rpc_call_duration_seconds_bucket{method="test_sleep",le="0.500"} 4
rpc_call_duration_seconds_bucket{method="test_sleep",le="1.000"} 5
rpc_call_duration_seconds_count{method="test_sleep"} 5
rpc_call_duration_seconds_count{method="invalid"} 2

# 24 misses: test_seq 1, test_whoami, test_sleep, 20 test_big and test_seq
# "slow"; Redis missed the first 23 and the expired entry, and was too slow
# for the last; stored: every cacheable answer from the upstream or from
# Redis (27: all but the hit and the collapsed call)
rpc_cache_total{event="miss"} 24
rpc_cache_total{event="bypass"} 1
rpc_cache_total{event="expired"} 1
rpc_cache_total{event="hit"} 1
rpc_cache_total{event="redis"} 1
rpc_cache_total{event="collapsed"} 1
rpc_cache_total{event="redis_miss"} 24
rpc_cache_total{event="redis_error"} 1
rpc_cache_total{event="store"} 27
rpc_cache_total{event="eviction"} EVICTIONS

rpc_cache_entries{zone="answers"} 5
rpc_cache_entries{zone="tiny\"zone\\"} ENTRIES

# backend: 16 requests for /rpc (the batch of 5 in 3), 20 for /tiny, 4
# over WebSocket; flaky: 8, the one whose call was cancelled too (it was
# sent); nobatch: the refused batch, then its 2 calls alone
rpc_upstream_requests_total{upstream="backend"} 40
rpc_upstream_requests_total{upstream="odd\"name\\"} 1
rpc_upstream_requests_total{upstream="flaky"} 8
rpc_upstream_requests_total{upstream="dead"} 1
rpc_upstream_requests_total{upstream="nobatch"} 3

rpc_upstream_request_calls_bucket{upstream="backend",le="1"} 35
rpc_upstream_request_calls_bucket{upstream="backend",le="2"} 39
rpc_upstream_request_calls_bucket{upstream="backend",le="5"} 40
rpc_upstream_request_calls_sum{upstream="backend"} 46
rpc_upstream_request_calls_count{upstream="backend"} 40
rpc_upstream_request_calls_count{upstream="flaky"} 8
rpc_upstream_request_calls_bucket{upstream="nobatch",le="1"} 2
rpc_upstream_request_calls_sum{upstream="nobatch"} 4
rpc_upstream_request_calls_count{upstream="nobatch"} 3

# failures by kind; a batch the upstream refuses counts as "status"
rpc_upstream_failures_total{upstream="backend",kind="refused"} 0
rpc_upstream_failures_total{upstream="backend",kind="timeout"} 0
rpc_upstream_failures_total{upstream="backend",kind="reset"} 0
rpc_upstream_failures_total{upstream="backend",kind="status"} 0
rpc_upstream_failures_total{upstream="backend",kind="invalid"} 0
rpc_upstream_failures_total{upstream="backend",kind="too_large"} 0
rpc_upstream_failures_total{upstream="odd\"name\\",kind="refused"} 0
rpc_upstream_failures_total{upstream="odd\"name\\",kind="timeout"} 0
rpc_upstream_failures_total{upstream="odd\"name\\",kind="reset"} 0
rpc_upstream_failures_total{upstream="odd\"name\\",kind="status"} 0
rpc_upstream_failures_total{upstream="odd\"name\\",kind="invalid"} 0
rpc_upstream_failures_total{upstream="odd\"name\\",kind="too_large"} 0
rpc_upstream_failures_total{upstream="flaky",kind="refused"} 0
rpc_upstream_failures_total{upstream="flaky",kind="timeout"} 1
rpc_upstream_failures_total{upstream="flaky",kind="reset"} 2
rpc_upstream_failures_total{upstream="flaky",kind="status"} 1
rpc_upstream_failures_total{upstream="flaky",kind="invalid"} 2
rpc_upstream_failures_total{upstream="flaky",kind="too_large"} 1
rpc_upstream_failures_total{upstream="dead",kind="refused"} 1
rpc_upstream_failures_total{upstream="dead",kind="timeout"} 0
rpc_upstream_failures_total{upstream="dead",kind="reset"} 0
rpc_upstream_failures_total{upstream="dead",kind="status"} 0
rpc_upstream_failures_total{upstream="dead",kind="invalid"} 0
rpc_upstream_failures_total{upstream="dead",kind="too_large"} 0
rpc_upstream_failures_total{upstream="nobatch",kind="refused"} 0
rpc_upstream_failures_total{upstream="nobatch",kind="timeout"} 0
rpc_upstream_failures_total{upstream="nobatch",kind="reset"} 0
rpc_upstream_failures_total{upstream="nobatch",kind="status"} 1
rpc_upstream_failures_total{upstream="nobatch",kind="invalid"} 0
rpc_upstream_failures_total{upstream="nobatch",kind="too_large"} 0

rpc_upstream_fallback_calls_total{upstream="backend"} 0
rpc_upstream_fallback_calls_total{upstream="odd\"name\\"} 0
rpc_upstream_fallback_calls_total{upstream="flaky"} 0
rpc_upstream_fallback_calls_total{upstream="dead"} 0
rpc_upstream_fallback_calls_total{upstream="nobatch"} 2

# each try of each request timed under its server; servers as configured
rpc_upstream_duration_seconds_count{upstream="backend",server="127.0.0.1:$UP"} 40
rpc_upstream_duration_seconds_count{upstream="backend",server="other"} 0
rpc_upstream_duration_seconds_count{upstream="odd\"name\\",server="127.0.0.1:$UP"} 1
rpc_upstream_duration_seconds_count{upstream="odd\"name\\",server="other"} 0
rpc_upstream_duration_seconds_bucket{upstream="flaky",server="127.0.0.1:$UP",le="0.250"} 7
rpc_upstream_duration_seconds_bucket{upstream="flaky",server="127.0.0.1:$UP",le="0.500"} 8
rpc_upstream_duration_seconds_count{upstream="flaky",server="127.0.0.1:$UP"} 8
rpc_upstream_duration_seconds_count{upstream="flaky",server="other"} 0
rpc_upstream_duration_seconds_count{upstream="dead",server="127.0.0.1:$DEAD"} 1
rpc_upstream_duration_seconds_count{upstream="dead",server="other"} 0
rpc_upstream_duration_seconds_count{upstream="nobatch",server="127.0.0.1:$UP"} 3
rpc_upstream_duration_seconds_count{upstream="nobatch",server="other"} 0

rpc_pending_calls{worker="0"} 0
rpc_pending_calls{worker="1"} 0
rpc_websocket_connections 0
EOF

my $tiny = value($m, 'rpc_cache_entries{zone="tiny\"zone\\\\"}');
ok($tiny > 0 && $tiny < 20, "the tiny zone holds some of its 20 ($tiny)");
$expect =~ s/ENTRIES/$tiny/;
$expect =~ s/EVICTIONS/20 - $tiny/e;
$expect =~ s/\$UP\b/port('UPSTREAM_PORT')/ge;
$expect =~ s/\$DEAD\b/port('DEAD_PORT')/ge;
metrics_are($m, $expect, 'the mix');

# connections: as many as the upstream accepted (those of backend depend on
# which worker served what)
my $opened = 0;
$opened += value($m, qq(rpc_upstream_connections_total{upstream="$_"}))
    for 'backend', 'odd\"name\\\\', 'flaky', 'nobatch';
is($opened, upstream_conns() - $conns, 'rpc_upstream_connections_total: '
   . 'the connections the upstream accepted');
metrics_are($m, <<'EOF', 'the mix');
rpc_upstream_connections_total{upstream="backend"} *
rpc_upstream_connections_total{upstream="odd\"name\\"} 1
rpc_upstream_connections_total{upstream="flaky"} 8
rpc_upstream_connections_total{upstream="dead"} 0
rpc_upstream_connections_total{upstream="nobatch"} 2
EOF

# the bytes of the cache zones, in whole pages
my $page = POSIX::sysconf(POSIX::_SC_PAGESIZE());
for my $zone ('answers', 'tiny\"zone\\\\') {
    my $b = value($m, qq(rpc_cache_bytes{zone="$zone"}));
    ok($b > 0 && $b % $page == 0, "rpc_cache_bytes of $zone: $b, whole pages");
}

is(promtool($m->{text}), '', 'promtool check metrics: no complaint');

# --- two workers: each counts in a slot of its own, either shows the sum

my $sum = 'rpc_calls_total{method="sum",outcome="result"}';
my ($before, $from, @old, @new);

SKIP: {
    skip 'valgrind runs one process', 7 if $Valgrind;

    $before = value($m, $sum);
    $from = -s servroot() . '/logs/mx.log';
    rpc(call('sum', '[1,2]', $_)) for 1 .. 40;
    my @texts = map { scrape()->{text} } 1 .. 20;
    my %served = served_by($from);
    is($served{'/rpc'}, 2, '40 calls on 40 connections: both workers served');
    is($served{'/metrics'}, 2, '20 scrapes: both workers answered');
    is(value(scrape(), $sum), $before + 40, 'the sum counts all 40 calls');
    is(scalar(grep { $_ ne $texts[0] } @texts), 0,
       'every scrape the same, whichever worker answered');

    # --- a reload with the same labels keeps the counts

    @old = workers(2);
    my $text = scrape()->{text};
    reload_nginx();
    @new = workers(2, @old);
    is(scalar @new, 2, 'reload: two new workers');
    is(scrape()->{text}, $text, 'reload: every count as it was');
    rpc(call('sum', '[1,2]', 1));
    is(value(scrape(), $sum), $before + 41, 'reload: and counting on');
}

# --- hostile method names: no series, no byte of them in the output

$m = scrape();
my $series = scalar @{ $m->{order} };
my $other = value($m, 'rpc_calls_total{method="other",outcome="error"}');
my $denied = value($m, 'rpc_calls_total{method="other",outcome="-32601"}');
my $eth = value($m, 'rpc_calls_total{method="eth_*",outcome="error"}');

# quotes, backslashes, control characters (JSON escapes), a line of the
# exposition, a method the pattern eth_* matches: the upstream does not
# know them; invalid UTF-8 is a parse error
my @evil = ('evil\"q', 'evil\\\\b', 'evil\n\r\t', 'evil\u0000z',
            'evil\u2028\u00e9', 'evil\"} 1\nrpc_fake{a=\"b', 'eth_*\n');
for my $i (0 .. $#evil) {
    like(rpc(call($evil[$i], '[]', $i)), qr/"code":-32601/,
         "hostile method $i: the upstream's error");
}
like(rpc(call("evil\xff\xfe\xc3", '[]', 9)), qr/"code":-32700/,
     'hostile method of invalid UTF-8: a parse error');

# 10,000 names denied, 1,000 names of eth_* sent upstream
for my $b (0 .. 9) {
    rpc('[' . join(',', map { call("hostile_$_", '[]', $_) }
                        $b * 1000 .. $b * 1000 + 999) . ']',
        path => '/hostile');
}
rpc('[' . join(',', map { call("eth_evil_$_", '[]', $_) } 1 .. 1000) . ']',
    path => '/hostile');

$m = scrape();
well_formed($m, 'hostile names');
is(scalar @{ $m->{order} }, $series, "hostile names: still $series series");
is(value($m, 'rpc_calls_total{method="other",outcome="-32601"}') - $denied,
   10_000, 'hostile names: 10,000 denied calls of "other"');
is(value($m, 'rpc_calls_total{method="eth_*",outcome="error"}') - $eth,
   1001, 'hostile names: 1,001 calls of "eth_*"');
is(value($m, 'rpc_calls_total{method="other",outcome="error"}') - $other,
   6, 'hostile names: the 6 others, "other"');
unlike($m->{text}, qr/evil|hostile|rpc_fake/,
       'hostile names: not in the output');
my $copy = $m->{text};
ok(utf8::decode($copy), 'hostile names: the output is UTF-8');
is(promtool($m->{text}), '', 'hostile names: promtool check metrics');

# --- a real Prometheus server scrapes the gateway

if (ok(-x $PROMETHEUS, "$PROMETHEUS is there (t/deps.sh installs it)")) {
    my $pp = port('PROMETHEUS_PORT');
    my $dir = servroot() . '/prometheus';
    mkdir $dir;
    open my $f, '>', "$dir/prometheus.yml" or die;
    print $f <<"EOF";
global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
  - job_name: rpc
    static_configs:
      - targets: ['127.0.0.1:${\ port('SERVER_PORT')}']
EOF
    close $f;
    my $pid = $PrometheusPid = fork // die;
    if ($pid == 0) {
        open STDERR, '>', "$dir/log";
        open STDOUT, '>&', \*STDERR;
        { exec $PROMETHEUS, "--config.file=$dir/prometheus.yml",
               "--storage.tsdb.path=$dir/data",
               "--web.listen-address=127.0.0.1:$pp" }
        POSIX::_exit(1);
    }
    my $json = JSON::PP->new;
    my $query = sub {
        my ($q) = @_;
        $q =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
        my $r = http_request(method => 'GET', port => $pp,
                             path => "/api/v1/query?query=$q", timeout => 2);
        my $d = eval { $json->decode($r->{body}) } or return undef;
        my $v = $d->{data}{result}[0]{value}[1];
        return $v;
    };
    my $want = value($m, $sum);
    my ($got, $samples);
    my $end = time + 15;
    while (time < $end) {
        $got = $query->($sum);
        $samples = $query->('scrape_samples_scraped{job="rpc"}');
        last if defined $got && $got == $want;
        sleep 0.2;
    }
    is($got, $want, "Prometheus: $sum is $want");
    is($samples, $series, "Prometheus: every one of the $series samples "
       . 'taken in a scrape');
    is($query->('count({__name__=~"rpc_.+"})'), $series,
       "Prometheus: $series series stored");
    kill 'TERM', $pid;
    waitpid $pid, 0;
    $PrometheusPid = undef;
}

# --- a reload with other labels: every count starts from zero

SKIP: {
    skip 'no reload in one process (valgrind)', 13 if $Valgrind;

    RPCTest::write_config(%conf,
        http_config => "$http\nrpc_metrics_methods eth_chainId;\n"
                       . "rpc_metrics_buckets 0.1 0.35 2.5;\n");
    @old = workers(2);
    reload_nginx();
    @new = workers(2, @old);
    is(scalar @new, 2, 'reload with other labels: two new workers');
    $m = scrape();
    well_formed($m, 'reload with other labels');
    is(join('', map { "$_ $m->{series}{$_}\n" }
                grep { /_total\{/ && $m->{series}{$_} != 0 } @{ $m->{order} }),
       '', 'reload with other labels: every counter 0');
    metrics_are($m, <<~'EOF', 'reload with other labels');
    rpc_messages_total{transport="http",shape="single"} 0
    rpc_messages_total{transport="http",shape="batch"} 0
    rpc_messages_total{transport="http",shape="notification"} 0
    rpc_messages_total{transport="http",shape="invalid"} 0
    rpc_messages_total{transport="websocket",shape="single"} 0
    rpc_messages_total{transport="websocket",shape="batch"} 0
    rpc_messages_total{transport="websocket",shape="notification"} 0
    rpc_messages_total{transport="websocket",shape="invalid"} 0
    rpc_message_calls_count 0
    rpc_upstream_duration_seconds_bucket{upstream="dead",server="other",le="0.100"} 0
    rpc_upstream_duration_seconds_bucket{upstream="dead",server="other",le="0.350"} 0
    rpc_upstream_duration_seconds_bucket{upstream="dead",server="other",le="2.500"} 0
    rpc_upstream_duration_seconds_bucket{upstream="dead",server="other",le="+Inf"} 0
    rpc_upstream_duration_seconds_count{upstream="dead",server="other"} 0
    rpc_cache_entries{zone="answers"} 5
    rpc_cache_entries{zone="tiny\"zone\\"} *
    EOF
    ok(!grep({ /^rpc_calls_total/ } @{ $m->{order} }),
       'reload with other labels: no call counted');
    rpc(call('eth_chainId', '[]', 1));
    rpc(call('eth_blockNumber', '[]', 2));
    metrics_are(scrape(), <<~'EOF', 'reload with other labels: counting on');
    rpc_calls_total{method="eth_chainId",outcome="error"} 1
    rpc_calls_total{method="eth_*",outcome="error"} 1
    EOF
    is(promtool($m->{text}), '',
       'reload with other labels: promtool check metrics');
}

# --- labels that could come twice: methods named like the labels "other"
# and "invalid", two upstreams of one host

ok(start_nginx(workers => 1, http_config => <<'EOF', config => <<'EOF'),
rpc_metrics_zone metrics:1m;
rpc_metrics_methods other invalid;
EOF
location /a { rpc_pass 127.0.0.1:$UPSTREAM_PORT; }
location /b { rpc_pass 127.0.0.1:$DEAD_PORT; }
location = /metrics { rpc_metrics; }
EOF
   'labels that could come twice: nginx starts');
rpc(call('other', '[]', 1), path => '/a');
rpc(call('unknown', '[]', 2), path => '/a');
rpc('{"jsonrpc":"2.0","id":3}', path => '/a');
rpc(call('sum', '[1,2]', 4), path => '/b');
$m = scrape();
well_formed($m, 'labels that could come twice');
my @requests = grep { /^rpc_upstream_requests_total\{/ } split /\n/, $m->{text};
is(join(' ', sort map { /(\S+)$/ } @requests), '1 2',
   'two upstreams of one host counted apart');

# --- reloads that start more processes: every worker counts (cache
# manager and loader processes with proxy_cache_path, and more workers
# than the zone was first laid out for)

my $small = <<'EOF';
upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 8; }
rpc_metrics_zone metrics:1m;
proxy_cache_path $SERVROOT/pcache keys_zone=pages:1m;
EOF
my %small = (http_config => $small, config => <<'EOF');
location /rpc { rpc_pass backend; rpc_allow_methods sum; }
location = /metrics { rpc_metrics; }
EOF

SKIP: {
    skip 'no reload in one process (valgrind)', 6 if $Valgrind;

    start_nginx(%small, workers => 1) or BAIL_OUT('nginx');
    @new = workers(1);
    for my $n (3, 3) {
        RPCTest::write_config(%small, workers => $n);
        @old = @new;
        $from = -s servroot() . '/logs/error.log';
        reload_nginx();
        @new = workers($n, @old);
        is(scalar @new, $n, "reload to $n workers: $n new workers");
        $before = value(scrape(), $sum);
        rpc(call('sum', '[1,2]', $_)) for 1 .. 30;
        is(value(scrape(), $sum), $before + 30,
           "reload to $n workers: 30 calls on 30 connections, 30 counted");
        unlike(error_log_text($from), qr/no slot left/,
               "reload to $n workers: every worker has a slot");
    }
}

stop_nginx();
