# Chaos: several clients at once send batches that repeat cacheable calls
# within a batch and across requests, single calls, notifications and
# invalid calls, with Content-Length or chunked, on fresh or kept-alive
# connections, and some hang up (after sending, halfway through the body,
# right after the headers); the upstream delays, resets before or in the
# middle of a reply and shuffles batch replies; Redis is killed, stopped,
# stalled, and holds some right answers.  Every answer that arrives is
# checked exactly, no answer is missing, nothing crashes.
#
# The run is random with a fixed seed (1) printed in the output:
# TEST_CHAOS_SEED=N runs another sequence, or replays it (timing aside).  TEST_CHAOS_ROUNDS=N sets the
# requests per client; TEST_CHAOS_NO_HANGUP=1 leaves hang-ups out and
# TEST_CHAOS_NO_REPEAT=1 cacheable calls repeated within a batch, to tell
# defects apart.  A crashed worker is listed with the hang-ups of the moment
# before it.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use POSIX ();
use lib 't/lib';
use RPCTest;

my $seed = $ENV{TEST_CHAOS_SEED} // 1;
srand($seed);
my $clients = $Valgrind ? 3 : 6;
my $rounds = $ENV{TEST_CHAOS_ROUNDS} // ($Valgrind ? 30 : 60);
diag("chaos seed $seed (TEST_CHAOS_SEED=$seed to replay), "
     . "$clients clients x $rounds requests");

my $json = JSON::PP->new->canonical->allow_nonref;

# --- the upstream of this test, by PID on a free port

my $up_port = port('CHAOS_PORT');
my $up_pid = fork // die "fork: $!";
if ($up_pid == 0) {
    setpgrp(0, 0);
    open STDERR, '>>', servroot() . '/chaos-upstream.log';
    exec $^X, 't/lib/chaos-upstream.pl', '--port', $up_port, '--seed', $seed;
    die "exec: $!";
}
for (1 .. 250) {
    last if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $up_port);
    sleep 0.02;
}

END {
    local $?;
    if ($up_pid) {
        kill 'TERM', -$up_pid;
        kill 'TERM', $up_pid;
        waitpid($up_pid, 0);
    }
}

my $http = <<'EOF';
upstream chaos { server 127.0.0.1:$CHAOS_PORT; keepalive 8; }
upstream chaos2 { server 127.0.0.1:$CHAOS_PORT; }
rpc_cache_zone chaos:1m;
rpc_cache_redis 127.0.0.1:$REDIS_PORT timeout=100ms;
EOF

my $config = <<'EOF';
location /rpc {
    rpc_pass chaos;
    rpc_cache chaos;
    rpc_cache_valid c_* 1s;
    rpc_cache_bypass $http_x_no_cache;
    rpc_deny_methods deny_*;
    rpc_upstream_batch 4 window=2ms;
    rpc_route u_* chaos2;
    rpc_timeout 1s;
    rpc_max_pending 64;
    rpc_max_batch 20;
}
location /single {
    rpc_pass chaos;
    rpc_cache chaos;
    rpc_cache_valid c_* 1s;
    rpc_cache_bypass $http_x_no_cache;
    rpc_deny_methods deny_*;
    rpc_timeout 1s;
    rpc_max_pending 64;
    rpc_max_batch 20;
}
location /tight {
    rpc_pass chaos;
    rpc_cache chaos;
    rpc_cache_valid c_* 1s;
    rpc_cache_bypass $http_x_no_cache;
    rpc_deny_methods deny_*;
    rpc_upstream_batch 2 window=0;
    rpc_route u_* chaos2;
    rpc_timeout 1s;
    rpc_max_pending 4;
    rpc_max_batch 20;
}
EOF

start_nginx(workers => 2, http_config => $http, config => $config)
    or BAIL_OUT('nginx');

# --- what clients send, and what each call may get

# raw ids, echoed byte for byte; these repeat within a batch
my @ids = ('7', '"s"', '"a\u0000b"', '1e400', '-0', '18446744073709551617',
           'null', '1.50', '"\u00e9\n"');

sub pick { $_[int rand @_] }

sub rand_id { rand() < 0.5 ? int(rand 1000) : pick(@ids) }

# the flag param tells the upstream how to treat the upstream request the
# call travels in (see t/lib/chaos-upstream.pl)

sub flag {
    my $r = rand;
    return '""' if $r < 0.55;
    return pick('"d50"', '"d150"', '"d250"') if $r < 0.85;
    return '"d3000"' if $r < 0.89;
    return '"r"' if $r < 0.945;
    return '"m"';
}

# a call: [text, expectation]; expectation undef for no answer, otherwise
# { id => raw id, result => raw | error => raw | code => N, gw, must_fail }:
# the upstream's result or error byte for byte, or the gateway's error code
# N; gw: a gateway error (-32000..-32010) may come instead, must_fail: must,
# as the upstream never answers the call
sub upstream_call {
    my ($m, $k, $flag, $id) = @_;
    my $p = "[$k,$flag]";
    my $text = qq({"jsonrpc":"2.0","method":"$m","params":$p)
             . (defined $id ? qq(,"id":$id}) : '}');
    return [$text, undef] unless defined $id;
    my $params = $json->decode($p);
    my %e = (id => $id, gw => 1,
             must_fail => $flag =~ /^"(r|m|d3000)"$/ ? 1 : 0);
    if ($m eq 'c_val' || $m eq 'u_val') {
        $e{result} = $json->encode({ m => $m, p => $params });
    } elsif ($m eq 'c_null') {
        $e{result} = 'null';
    } elsif ($m eq 'c_err') {
        $e{error} = $json->encode({ code => 4242, message => 'no',
                                    data => $params });
    } elsif ($m eq 'c_err0') {
        $e{error} = $json->encode({ code => 0, message => 'zero',
                                    data => $params });
    }
    return [$text, \%e];
}

sub rand_call {
    my $r = rand;
    my $k = int rand 6;
    my $id = rand_id();
    return upstream_call('c_val', $k, flag(), $id) if $r < 0.45;
    return upstream_call('u_val', $k, flag(), $id) if $r < 0.55;
    return upstream_call('c_err', $k, flag(), $id) if $r < 0.60;
    return upstream_call('c_err0', $k, flag(), $id) if $r < 0.63;
    return upstream_call('c_null', $k, flag(), $id) if $r < 0.66;
    return upstream_call(pick('c_val', 'u_val'), $k, flag(), undef)
        if $r < 0.76;
    return [qq({"jsonrpc":"2.0","method":"deny_x","id":$id}),
            { id => $id, code => -32601 }] if $r < 0.80;
    return [qq({"jsonrpc":"2.0","method":"deny_x"}), undef] if $r < 0.82;
    return [qq({"jsonrpc":"1.0","method":"c_val","id":$id}),
            { id => $id, code => -32600 }] if $r < 0.86;
    return [qq({"jsonrpc":"2.0","method":"c_val","params":1,"id":$id}),
            { id => $id, code => -32600 }] if $r < 0.90;
    return ['1', { id => 'null', code => -32600 }] if $r < 0.93;
    return [qq({"jsonrpc":"2.0","id":$id}), { id => $id, code => -32600 }]
        if $r < 0.96;
    return [qq({"jsonrpc":"2.0","method":"c_val","params":[$k,""],"id":[]}),
            { id => 'null', code => -32600 }];
}

# a message: (body, [expectations], batch)
sub rand_message {
    my $r = rand;
    if ($r < 0.25) {
        my $c = rand_call();
        return ($c->[0], [$c->[1] // ()], 0);
    }
    if ($r < 0.28) {
        return ('{"jsonrpc":"2.0","method":"c_val","params":[1,""],"id":1',
                [{ id => 'null', code => -32700 }], 0);
    }
    my @calls = map { rand_call() } 1 .. 1 + int rand 8;
    if ($ENV{TEST_CHAOS_NO_REPEAT}) {
        my %seen;
        @calls = grep { $_->[0] !~ /"method":"(c_\w+)","params":(\[[^]]*\])/
                        || !$seen{"$1$2"}++ } @calls;
    }

    # the same cacheable call twice or more in one batch
    if (rand() < 0.5 && !$ENV{TEST_CHAOS_NO_REPEAT}) {
        my $k = int rand 6;
        my $flag = rand() < 0.7 ? pick('"d100"', '"d200"') : flag();
        my $m = pick('c_val', 'c_val', 'c_err', 'c_err0', 'c_null');
        for (1 .. 2 + int rand 2) {
            splice @calls, int rand(@calls + 1), 0,
                upstream_call($m, $k, $flag, rand_id());
        }
    }
    return ('[' . join(',', map { $_->[0] } @calls) . ']',
            [map { $_->[1] // () } @calls], 1);
}

# --- a JSON value's bytes, as sent

sub skip_ws { ${$_[0]} =~ /\G[ \t\r\n]*/gc }

sub raw_value {
    my ($s) = @_;
    skip_ws($s);
    my $start = pos($$s) // 0;
    if ($$s =~ /\G"(?:[^"\\]|\\.)*"/gc
        || $$s =~ /\G-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/gc
        || $$s =~ /\G(?:true|false|null)/gc) {
        return substr($$s, $start, pos($$s) - $start);
    }
    if ($$s =~ /\G([\[{])/gc) {
        my $obj = $1 eq '{';
        my $close = $obj ? '}' : ']';
        skip_ws($s);
        if ($$s !~ /\G\Q$close\E/gc) {
            while (1) {
                if ($obj) {
                    defined raw_value($s) or return undef;
                    skip_ws($s);
                    $$s =~ /\G:/gc or return undef;
                }
                defined raw_value($s) or return undef;
                skip_ws($s);
                next if $$s =~ /\G,/gc;
                last if $$s =~ /\G\Q$close\E/gc;
                return undef;
            }
        }
        return substr($$s, $start, pos($$s) - $start);
    }
    return undef;
}

# the elements of a raw array, or the members of a raw object, as raw text
sub raw_items {
    my ($text) = @_;
    my $s = substr($text, 1);
    pos($s) = 0;
    my @out;
    skip_ws(\$s);
    return () if $s =~ /\G[\]}]/gc;
    while (1) {
        my $v = raw_value(\$s);
        return undef unless defined $v;
        if ($text =~ /^\{/) {
            skip_ws(\$s);
            $s =~ /\G:/gc or return undef;
            push @out, $json->decode($v), raw_value(\$s);
        } else {
            push @out, $v;
        }
        skip_ws(\$s);
        next if $s =~ /\G,/gc;
        last if $s =~ /\G[\]}]/gc;
        return undef;
    }
    return @out;
}

# '' when the answer is right for the expectation, or what is wrong
sub check_answer {
    my ($raw, $e) = @_;
    return 'an answer that cannot be read' unless defined $raw;
    return "not an object: $raw" unless $raw =~ /^\{/;
    my @m = raw_items($raw);
    my %m = @m;
    return "a member twice: $raw" if @m != 2 * keys %m;
    return "jsonrpc: $raw" unless ($m{jsonrpc} // '') eq '"2.0"';
    return "id $m{id}, want $e->{id}"
        unless defined $m{id} && $m{id} eq $e->{id};
    return "members: $raw" if keys %m != 3
        || !(exists $m{result} xor exists $m{error});
    if (exists $m{error}) {
        my $err = eval { $json->decode($m{error}) };
        my $code = ref $err eq 'HASH' ? $err->{code} : undef;
        return "bad error: $raw" unless defined $code;
        if (defined $e->{code}) {
            return $code == $e->{code} ? '' : "code $code, want $e->{code}";
        }
        return '' if defined $e->{error} && $m{error} eq $e->{error}
                     && !$e->{must_fail};
        return "error without a message: $raw"
            unless defined $err->{message} && !ref $err->{message};
        return '' if $e->{gw} && $code =~ /^-?\d+$/
                     && $code <= -32000 && $code >= -32010;
        return "error $m{error}, want "
               . ($e->{error} // "result $e->{result}");
    }
    return "result $m{result}, want an error (code $e->{code})"
        if defined $e->{code};
    return "result $m{result} for a call the upstream never answers"
        if $e->{must_fail};
    return '' if defined $e->{result} && $m{result} eq $e->{result};
    return "result $m{result}, want "
           . ($e->{result} // "error $e->{error}");
}

sub check_message {
    my ($res, $want, $batch) = @_;
    return "HTTP status $res->{status}: $res->{body}"
        unless $res->{status} == (@$want ? 200 : 204);
    my $body = $res->{body};
    return length $body ? "body for notifications only: $body" : ''
        unless @$want;
    return "not JSON: $body" unless eval { $json->decode($body); 1 };
    my @got = ($body);
    if ($batch) {
        return "not an array: $body" unless $body =~ /^\[/;
        @got = raw_items($body);
    }
    return scalar(@got) . " answers, want " . scalar(@$want) . ": $body"
        if @got != @$want;
    for my $i (0 .. $#got) {
        my $bad = check_answer($got[$i], $want->[$i]);
        return "answer $i: $bad" if $bad;
    }
    return '';
}

# --- one client: sends, hangs up sometimes, reads and parses the reply

# the body in 1 to 4 chunks, a little apart
sub chunked {
    my ($s, $body, $upto) = @_;
    my @cut = sort { $a <=> $b } map { int rand length $body } 1 .. rand 4;
    my $at = 0;
    for my $to (@cut, length $body) {
        next if $to <= $at;
        syswrite($s, sprintf("%x\r\n%s\r\n", $to - $at,
                             substr($body, $at, $to - $at)));
        $at = $to;
        return if $at >= $upto && $upto < length $body;
        sleep rand 0.005;
    }
    syswrite($s, "0\r\n\r\n");
}

# a client's kept-alive connection, reused by some of its requests
my $kept;

sub exchange {
    my ($path, $body, $hang) = @_;
    my $chunked = rand() < 0.25;
    my $keep = rand() < 0.4;
    my $twice = $keep && !$hang && !$chunked && rand() < 0.3;
    my $s = $keep && $kept ? $kept : IO::Socket::INET->new(
                PeerAddr => '127.0.0.1', PeerPort => port('SERVER_PORT'),
                Timeout => 5)
        or return { status => 0, error => "connect: $!" };
    $kept = undef;
    binmode $s;
    my $head = "POST $path HTTP/1.1\r\nHost: localhost\r\n"
             . "Connection: " . ($keep ? 'keep-alive' : 'close') . "\r\n"
             . "Content-Type: application/json\r\n"
             . (rand() < 0.1 ? "X-No-Cache: 1\r\n" : '')
             . ($chunked ? "Transfer-Encoding: chunked\r\n\r\n"
                : "Content-Length: " . length($body) . "\r\n\r\n");
    if ($hang eq 'headers') {
        syswrite($s, $head);
        sleep rand 0.05;
        close $s;
        return undef;
    }
    if ($hang eq 'half') {
        syswrite($s, $head);
        if ($chunked) {
            chunked($s, $body, length($body) / 2);
        } else {
            syswrite($s, substr($body, 0, length($body) / 2));
        }
        sleep rand 0.1;
        close $s;
        return undef;
    }
    if ($chunked) {
        syswrite($s, $head);
        chunked($s, $body, length $body);
    } else {
        # pipelined: the same request twice in one write
        syswrite($s, ($head . $body) x ($twice ? 2 : 1));
    }
    if ($hang eq 'flight') {
        sleep rand 0.3;
        close $s;
        return undef;
    }

    # one response: to its end, not to the end of the connection
    my ($raw, $eof, $start, $res, $first) = ('', 0, time);
    my $sel = IO::Select->new($s);
    my $end = $start + $RPCTest::Timeout;
    while (time < $end) {
        if ($res = parse_response($raw, $eof)) {
            last unless $twice && !$first && $res->{status};
            ($first, $res) = ($res, undef);
            substr($raw, 0, $first->{len}) = '';
            next;
        }
        last if $eof || !$sel->can_read($end - time);
        sysread($s, $raw, 65536, length $raw) or $eof = 1;
    }
    my $took = sprintf '%.2fs', time - $start;
    if (!$res) {
        close $s;
        return { status => 0, raw => $raw, error => ($first ? 'second ' : '')
                 . ($eof ? "whole answer missing, connection closed after"
                         : "whole answer missing after") . " $took" };
    }
    $res->{first} = $first;
    if ($keep && !$eof && !$res->{close}) {
        $kept = $s;
    } else {
        close $s;
    }
    return $res;
}

# a whole response at the start of $raw, or undef; {len} is its length
sub parse_response {
    my ($raw, $eof) = @_;
    my $at = index $raw, "\r\n\r\n";
    return undef if $at < 0;
    my $h = substr $raw, 0, $at;
    my $pos = $at + 4;
    return { status => 0, error => 'not an HTTP/1.1 response', raw => $raw }
        unless $h =~ m{^HTTP/1\.1 (\d+) };
    my $status = $1;
    my $res = { status => $status, body => '',
                close => scalar($h =~ /^Connection: close/mi) };
    if ($h =~ /^Transfer-Encoding: chunked/mi) {
        while (1) {
            my $eol = index $raw, "\r\n", $pos;
            return undef if $eol < 0;
            my $n = hex substr($raw, $pos, $eol - $pos);
            return undef if length($raw) < $eol + 2 + $n + 2;
            $res->{body} .= substr($raw, $eol + 2, $n);
            $pos = $eol + 2 + $n + 2;
            last if $n == 0;
        }
    } elsif ($h =~ /^Content-Length: (\d+)/mi) {
        return undef if length($raw) < $pos + $1;
        $res->{body} = substr $raw, $pos, $1;
        $pos += $1;
    } elsif ($status != 204) {
        return undef unless $eof;
        $res->{body} = substr $raw, $pos;
        $pos = length $raw;
    }
    $res->{len} = $pos;
    return $res;
}

sub client {
    my ($n, $report) = @_;
    srand($seed * 100 + $n);
    my ($want, $got, $hung, $twice, @bad, @hangs) = (0, 0, 0, 0);
    for my $i (1 .. $rounds) {
        my $path = pick(('/rpc') x 5, ('/single') x 3, ('/tight') x 2);
        my ($body, $expect, $batch) = rand_message();
        my $r = rand;
        $r = 1 if $ENV{TEST_CHAOS_NO_HANGUP};
        my $hang = $r < 0.18 ? 'flight' : $r < 0.22 ? 'half'
                 : $r < 0.25 ? 'headers' : '';
        my $res = exchange($path, $body, $hang);
        if ($hang) {
            $hung++;
            push @hangs, join "\t", time, "client $n request $i $path",
                                    $hang, $body;
            next;
        }
        $want++;
        if (!$res->{status}) {
            push @bad, "client $n request $i $path: $res->{error}\n"
                       . "  sent: $body\n  got:  " . ($res->{raw} // '');
            next;
        }
        $got++;
        my $bad = check_message($res, $expect, $batch);
        $twice++ if $res->{first};
        if (!$bad && $res->{first}) {
            $bad = check_message($res->{first}, $expect, $batch);
            $bad &&= "first of two pipelined: $bad";
        }
        push @bad, "client $n request $i $path: $bad\n  sent: $body\n"
                   . "  got:  $res->{body}" if $bad;
    }
    open my $f, '>', $report or die;
    print $f "$want $got $hung $twice\n", map { "$_\n" } @bad;
    close $f;
    open $f, '>', "$report.hangups" or die;
    print $f map { "$_\n" } @hangs;
    close $f;
}

my $dir = servroot();
my $started = time;
my @pids;
for my $n (1 .. $clients) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        # no END blocks here: they stop nginx and the upstream
        eval { client($n, "$dir/chaos-client-$n") };
        print STDERR "client $n: $@" if $@;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}

# Redis is killed, stopped or stalls (longer than its timeout) while the
# clients run, and holds right answers the local zone does not have yet
my ($restarts, $stalls) = (0, 0);
my $alive = @pids;
while ($alive) {
    for (1 .. 4) {
        my ($k, $flag) = (int rand 6, pick('""', '"d50"', '"d150"'));
        my $p = "[$k,$flag]";
        my $v = $json->encode({ m => 'c_val', p => $json->decode($p) });
        redis_cli('SET', qq(rpc:chaos:0/\n"c_val"\n$p), $v,
                  'PX', 200 + int rand 1000);
    }
    sleep 0.5 + rand 0.5;
    if (rand() < 0.3) {
        redis_cli('DEBUG', 'SLEEP', '0.3');
        $stalls++;
    } else {
        redis_stop(pick('KILL', 'TERM'));
        sleep 0.2 + rand 0.5;
        redis_start();
        $restarts++;
    }
    $alive = grep { waitpid($_, POSIX::WNOHANG()) == 0 } @pids;
}
diag(sprintf "clients done in %.1fs, Redis restarted %d times, stalled %d",
             time - $started, $restarts, $stalls);

# what the run went through, from the access log
my %seen;
for (split /\n/, access_log_text()) {
    $seen{$_}++ for /c=(\S+)/ ? grep { $_ ne '-' } split /,/, $1 : ();
    $seen{$_}++ for /e=(\S+)/ ? split /,/, $1 : ();
}
diag(join ', ', map { "$_ $seen{$_}" } sort keys %seen);

my ($want, $got, $hung, $twice, @bad) = (0, 0, 0, 0);
for my $n (1 .. $clients) {
    open my $f, '<', "$dir/chaos-client-$n" or do {
        push @bad, "client $n left no report";
        next;
    };
    my ($w, $g, $h, $t) = split ' ', scalar <$f>;
    $want += $w;
    $got += $g;
    $hung += $h;
    $twice += $t;
    push @bad, map { chomp; $_ } <$f>;
}
ok($want > 0, "clients sent $want messages to be answered ($twice of them "
              . "twice, pipelined), hung up on $hung");
is($got, $want, 'every client that stayed got an answer');
ok(!@bad, 'every answer exact') or diag(join "\n", @bad);

# --- the gateway still serves and nothing crashed

my $r = RPCTest::http_post('{"jsonrpc":"2.0","method":"u_val",'
                           . '"params":[99,""],"id":"end"}');
is($r->{body}, '{"jsonrpc":"2.0","id":"end","result":'
               . '{"m":"u_val","p":[99,""]}}', 'serves on after the chaos');

my @log = grep { /\[(alert|crit|emerg)\]|exited on signal|Sanitizer
                  |free\(\)|malloc|corrupted/x }
          split /\n/, error_log_text();
ok(!@log, 'no alert, crit or crashed worker in error.log')
    or diag(join "\n", @log[0 .. ($#log < 20 ? $#log : 19)]);

# for a crashed worker, the hang-ups of the moment before: the suspects
my @hangs = map { chomp; [split /\t/] }
            map { RPCTest::slurp("$dir/chaos-client-$_.hangups") =~ /.+\n/g }
            1 .. $clients;
for my $crash (grep { /exited on signal/ } @log) {
    my $at = substr $crash, 0, 19;
    my @suspects = grep {
        my $t = $_->[0];
        grep { POSIX::strftime('%Y/%m/%d %H:%M:%S', localtime $_) eq $at }
             $t, $t + 0.4;
    } @hangs;
    my $more = @suspects > 8 ? @suspects - 8 : 0;
    diag("$crash; hang-ups just before:\n"
         . join('', map { "  $_->[1] ($_->[2]): $_->[3]\n" }
                        @suspects[0 .. ($more ? 7 : $#suspects)])
         . ($more ? "  ($more more)\n" : ''));
}

stop_nginx();
