package RPCTest;

# Test harness for ngx_rpc_module, on Test::Base.
#
# Each block of a test file is a specification:
#
#   === TEST 1: name
#   --- http_config          (optional, inside http {})
#   upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 4; }
#   --- config               (inside server {})
#   location /rpc { rpc_pass backend; }
#   --- request              (the POST body; "--- request eval" for Perl)
#   --- method / --- path / --- more_headers / --- chunk_size
#   --- error_code           (HTTP status)
#   --- response_body        (exact) / --- response_body_like (regex)
#   --- response_json        (compared as JSON values)
#   --- error_log / --- no_error_log   (one literal string per line)
#   --- access_log           (literal strings the access log must show)
#   --- upstream_requests    (what the upstream UPSTREAM received while the
#                            block ran: for each HTTP request its request
#                            line, "Host: " and the host, and the body, one
#                            line each; compared exactly, ports substituted)
#
# A block without --- http_config, --- config, --- main_config or --- workers
# takes the previous block's.
#
# $SERVER_PORT, $UPSTREAM_PORT, $UPSTREAM2_PORT, $REDIS_PORT, $DEAD_PORT and
# $SERVROOT in configs are replaced; naming an upstream port starts
# t/lib/upstream.pl on it, naming $REDIS_PORT a redis-server.  nginx runs in the foreground under a temporary prefix, and any
# [alert], [crit] or [emerg] in error.log fails the test.
#
# $BLACK_HOLE is an ADDRESS:PORT that never answers a connect (for connect
# timeouts), $SINK_PORT a port on 127.0.0.1 whose connections are accepted
# by the kernel and never read (for send timeouts).  A black hole is real
# with "use RPCTest '-netns';" as root: the test file runs in a network
# namespace of its own (unshare -n) where 10.255.255.1 is routed to lo and
# not forwarded, so SYNs to it are dropped; it goes when the test ends.
# Elsewhere (or with TEST_NGINX_NO_NETNS=1) it is a listening socket on
# 127.0.0.1 whose accept queue is kept full, so that the kernel drops
# further SYNs.
#
# TEST_NGINX_USE_VALGRIND=1 runs nginx under valgrind (one process) and fails
# on any memcheck error or definite leak; TEST_NGINX_USE_ASAN=1 preloads
# libasan (with an ASan-built module in TEST_NGINX_MODULE) and fails on any
# sanitizer report.
#
# TEST_NGINX_BINARY=PATH runs that nginx instead of /usr/sbin/nginx; with
# TEST_NGINX_STATIC=1 it is one built with the module in (--add-module):
# no load_module line is written, and nginx_test_config() takes the
# "load_module $Module;" of a test's own file out (t/pkg/static.sh).

use strict;
use warnings;

use Test::Base ();
use Test::More ();
use IO::Socket::INET;
use IO::Select;
use File::Temp qw(tempdir);
use File::Spec;
use Cwd qw(abs_path);
use POSIX ();
use Time::HiRes qw(sleep time);
use JSON::PP;
use Exporter ();

our @ISA = ('Exporter');

our @EXPORT = qw(run_blocks start_block start_nginx stop_nginx quit_nginx
                 reload_nginx http_post
                 http_request port servroot upstream_conns upstream_calls
                 upstream_requests upstream_received
                 redis_start redis_stop redis_cli error_log_text
                 access_log_text json_is nginx_pid nginx_test_config
                 $Valgrind);

our $Root = abs_path(File::Spec->catdir((File::Spec->splitpath(
                abs_path(__FILE__)))[1], '..', '..'));
our $Nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $Module = $ENV{TEST_NGINX_MODULE} || "$Root/build/ngx_rpc_module.so";
our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 0;
our $Asan = $ENV{TEST_NGINX_USE_ASAN} ? 1 : 0;
our $Static = $ENV{TEST_NGINX_STATIC} ? 1 : 0;
our $Timeout = $Valgrind ? 60 : 10;

my $Servroot = tempdir('ngx-rpc-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{KEEP});
my %Ports;
my %Upstreams;
my ($NginxPid, $RunningConf);
my $json = JSON::PP->new->canonical->allow_nonref;

die "module not built: $Module (run 'make')\n" unless $Static || -f $Module;

# a plan that counts as we go: Test::Base plans on its own otherwise
sub import {
    my ($class, @args) = @_;
    if (grep { $_ eq '-netns' } @args) {
        @args = grep { $_ ne '-netns' } @args;
        enter_netns();
    }
    Test::More::plan('no_plan') unless Test::Builder->new->has_plan;
    __PACKAGE__->export_to_level(1, $class, @args);
}

# runs the test file again in a network namespace of its own, as root;
# there, sets up lo and the black hole
my $NetnsHole;

sub enter_netns {
    return if $ENV{TEST_NGINX_NO_NETNS};
    my $ns = readlink '/proc/self/ns/net' // '';
    if (!$ENV{RPC_TEST_NETNS}) {
        return unless $> == 0
                      && system('unshare -n true >/dev/null 2>&1') == 0;
        $ENV{RPC_TEST_NETNS} = $ns;
        rmdir $Servroot;
        exec 'unshare', '-n', '--', $^X, $0, @ARGV;
        die "exec unshare: $!";
    }

    # only in a namespace of our own, with nothing but lo
    return if $ns eq $ENV{RPC_TEST_NETNS} || `ip -o link` =~ /^\d+: (?!lo:)/m;
    system('ip link set lo up') == 0 or return;
    if (open my $f, '>', '/proc/sys/net/ipv4/ip_forward') {
        print $f "0\n";
        close $f;
    }
    system('ip route add 10.255.255.0/24 dev lo') == 0 or return;
    my $t = time;
    my $s = IO::Socket::INET->new(PeerAddr => '10.255.255.1', PeerPort => 80,
                                  Timeout => 0.2);
    $NetnsHole = '10.255.255.1:80' if !$s && time - $t >= 0.15;
}

sub servroot { $Servroot }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1)
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub port {
    my ($name) = @_;
    return $Ports{$name} //= free_port();
}

sub wait_port {
    my ($p, $pid) = @_;
    my $end = time + $Timeout;
    while (time < $end) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $p, Timeout => 1);
        if ($s) { close $s; return 1 }
        return 0 if $pid && waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.02;
    }
    return 0;
}

# a real JSON-RPC upstream, started once per test file
sub upstream {
    my ($name) = @_;
    return $Upstreams{$name} if $Upstreams{$name};
    my $p = port("${name}_PORT");
    my $state = "$Servroot/$name.conns";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open STDERR, '>>', "$Servroot/$name.log";
        exec $^X, "$Root/t/lib/upstream.pl", '--port', $p, '--name', $name,
             '--state', $state;
        die "exec: $!";
    }
    wait_port($p, $pid) or die "upstream $name did not start";
    return $Upstreams{$name} = { pid => $pid, port => $p, state => $state };
}

# calls of a method the upstream served so far
sub upstream_calls {
    my ($method, $name) = @_;
    my $u = upstream($name // 'UPSTREAM');
    open my $f, '<', "$u->{state}.calls" or return 0;
    return scalar grep { $_ eq "$method\n" } <$f>;
}

# HTTP requests the upstream served so far
sub upstream_requests {
    my ($name) = @_;
    return upstream_calls('#request', $name);
}

# the HTTP requests the upstream received so far, from the $from'th on:
# { line => request line, host => Host header, body => body } each
sub upstream_received {
    my ($name, $from) = @_;
    my $u = upstream($name // 'UPSTREAM');
    open my $f, '<', "$u->{state}.requests" or return ();
    my @all = map { $json->decode($_) } <$f>;
    return @all[($from // 0) .. $#all];
}

# an address that never answers a connect; see the top of this file
my ($BlackHole, @BlackHoleSockets);

sub black_hole {
    return $BlackHole if $BlackHole;
    if ($NetnsHole) {
        Test::More::note("black hole: $NetnsHole in a network namespace");
        return $BlackHole = $NetnsHole;
    }
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1)
        or die "black hole: $!";
    listen($l, 0);
    push @BlackHoleSockets, $l;
    for (1 .. 8) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $l->sockport,
                                      Timeout => 0.2)
            or last;
        push @BlackHoleSockets, $c;
    }
    $BlackHole = '127.0.0.1:' . $l->sockport;
    Test::More::note("black hole: $BlackHole, a full accept queue");
    return $BlackHole;
}

# a port whose connections the kernel accepts and nobody reads
my $Sink;

sub sink_port {
    $Sink //= IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Listen => 128, ReuseAddr => 1)
        or die "sink: $!";
    return $Sink->sockport;
}

# a real redis-server on a free port, started by $REDIS_PORT in a config
my $Redis;

sub redis_start {
    my (@args) = @_;
    return $Redis->{port} if $Redis && !@args && kill 0, $Redis->{pid};
    my $p = port('REDIS_PORT');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$Servroot/redis.log";
        open STDERR, '>>', "$Servroot/redis.log";
        exec 'redis-server', '--port', $p, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', $Servroot,
             '--enable-debug-command', 'local', @args;
        die "exec: $!";
    }
    wait_port($p, $pid) or die "redis-server did not start";
    $Redis = { pid => $pid, port => $p };
    return $p;
}

sub redis_stop {
    my ($sig) = @_;
    return unless $Redis;
    kill $sig // 'TERM', $Redis->{pid};
    waitpid($Redis->{pid}, 0);
    $Redis = undef;
}

# redis-cli on our server; returns its output, without the last newline
sub redis_cli {
    my (@args) = @_;
    my $p = port('REDIS_PORT');
    open my $f, '-|', 'redis-cli', '-p', $p, @args or die "redis-cli: $!";
    local $/;
    my $out = <$f> // '';
    close $f;
    $out =~ s/\n\z//;
    return $out;
}

sub upstream_conns {
    my ($name) = @_;
    my $u = upstream($name // 'UPSTREAM');
    open my $f, '<', $u->{state} or return 0;
    my $n = <$f>;
    return int($n // 0);
}

sub expand {
    my ($text) = @_;
    return '' unless defined $text;
    $text =~ s/\$SERVROOT\b/$Servroot/g;
    $text =~ s{\$(UPSTREAM\d*)_PORT\b}{upstream($1); port("$1_PORT")}ge;
    $text =~ s{\$REDIS_PORT\b}{redis_start()}ge;
    $text =~ s{\$BLACK_HOLE\b}{black_hole()}ge;
    $text =~ s{\$SINK_PORT\b}{sink_port()}ge;
    $text =~ s/\$(\w+_PORT)\b/port($1)/ge;
    return $text;
}

sub write_config {
    my (%o) = @_;
    my $workers = $o{workers} // 1;
    my $master = $Valgrind ? 'off' : 'on';
    my $user = $> == 0 ? 'user root;' : '';
    my $level = $o{log_level} // 'info';
    my $sp = port('SERVER_PORT');

    # so that connections from one client spread over the workers; not in
    # one process (valgrind): a socket per worker, and only one accepts
    my $reuseport = $workers > 1 && !$Valgrind ? ' reuseport' : '';
    my $http = expand($o{http_config});
    my $server = expand($o{config});
    my $main = expand($o{main_config});
    mkdir "$Servroot/logs";
    my $load = $Static ? '' : "load_module $Module;";
    my $conf = <<"EOF";
$load
daemon off;
master_process $master;
worker_processes $workers;
$user
pid $Servroot/nginx.pid;
error_log $Servroot/logs/error.log $level;
$main
events { worker_connections 1024; }
http {
    log_format rpc '\$status \$rpc_calls m=\$rpc_method id=\$rpc_id e=\$rpc_error_code u=\$upstream_addr s=\$upstream_status c=\$rpc_cache_status p=\$pid';
    access_log $Servroot/logs/access.log rpc;
    client_body_temp_path $Servroot/client_body_temp;
    proxy_temp_path $Servroot/proxy_temp;
    fastcgi_temp_path $Servroot/fastcgi_temp;
    uwsgi_temp_path $Servroot/uwsgi_temp;
    scgi_temp_path $Servroot/scgi_temp;
$http
    server {
        listen 127.0.0.1:$sp$reuseport;
        server_name localhost;
$server
    }
}
EOF
    open my $f, '>', "$Servroot/nginx.conf" or die $!;
    print $f $conf;
    close $f;
    return $conf;
}

sub nginx_pid { $NginxPid }

sub start_nginx {
    my (%o) = @_;
    stop_nginx() if $NginxPid;
    my $conf = write_config(%o);
    unlink "$Servroot/logs/error.log";
    my @cmd = ($Nginx, '-p', "$Servroot/", '-c', "$Servroot/nginx.conf");
    if ($Valgrind) {
        unshift @cmd, 'valgrind', '-q', '--tool=memcheck', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            '--num-callers=30', "--log-file=$Servroot/valgrind.log",
            "--suppressions=$Root/t/valgrind.supp";
    }
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', "$Servroot/stderr.log";
        open STDOUT, '>>', "$Servroot/stderr.log";
        asan_env();
        exec @cmd;
        die "exec: $!";
    }
    $NginxPid = $pid;
    $RunningConf = $o{key};
    if (!wait_port(port('SERVER_PORT'), $pid)) {
        my $log = error_log_text() . slurp("$Servroot/stderr.log");
        $NginxPid = undef;
        Test::More::diag("nginx did not start:\n$log");
        return 0;
    }
    return 1;
}

sub asan_env {
    return unless $Asan;
    chomp(my $lib = `gcc -print-file-name=libasan.so`);
    $ENV{LD_PRELOAD} = $lib;
    $ENV{ASAN_OPTIONS} = 'detect_leaks=0:abort_on_error=0';
}

# nginx -t on a configuration file: (exit code, output)
sub nginx_test_config {
    my ($conf) = @_;
    if ($Static) {
        my $text = slurp($conf);
        if ($text =~ s/\bload_module\s+\Q$Module\E\s*;//g) {
            open my $f, '>', $conf or die "$conf: $!";
            print $f $text;
            close $f;
        }
    }
    local %ENV = %ENV;
    asan_env();
    my $out = `$Nginx -t -p $Servroot/ -c $conf -g 'error_log stderr;' 2>&1`;
    return ($? >> 8, $out);
}

sub reload_nginx {
    kill 'HUP', $NginxPid if $NginxPid;
}

sub stop_nginx {
    return unless $NginxPid;
    kill 'TERM', $NginxPid;
    my $end = time + $Timeout;
    my $again = time + 2;
    while (time < $end) {
        last if waitpid($NginxPid, POSIX::WNOHANG()) == $NginxPid;
        sleep 0.02;

        # one process (valgrind) takes a signal that comes just before it
        # waits for events only with the next event: send it again if it
        # still waits
        if ($Valgrind && time > $again) {
            my $wchan = slurp("/proc/$NginxPid/wchan") // '';
            kill 'TERM', $NginxPid if $wchan =~ /epoll_wait/;
            $again = time + 2;
        }
    }
    if (kill 0, $NginxPid) {
        Test::More::fail("nginx did not exit on TERM");
        kill 'KILL', $NginxPid;
        waitpid($NginxPid, 0);
    }
    $NginxPid = undef;
    $RunningConf = undef;
    check_sanitizers();
}

# a graceful shutdown (nginx -s quit: SIGQUIT to the master): the seconds
# it took the master to exit, all its workers gone; undef if it still ran
# after $timeout seconds (then stopped as stop_nginx does).  $tick, if
# given, is called while it waits (clients that answer a close frame, say:
# nginx waits for a client to close a connection it closed, up to
# lingering_timeout)
sub quit_nginx {
    my ($timeout, $tick) = @_;
    return 0 unless $NginxPid;
    my $t0 = time;
    kill 'QUIT', $NginxPid;
    my $took;
    while (time - $t0 < $timeout) {
        if (waitpid($NginxPid, POSIX::WNOHANG()) == $NginxPid) {
            $took = time - $t0;
            last;
        }
        $tick ? $tick->() : sleep 0.02;
    }
    if (!defined $took) {
        stop_nginx();
        return undef;
    }
    $NginxPid = undef;
    $RunningConf = undef;
    check_sanitizers();
    return $took;
}

sub slurp {
    my ($file, $from) = @_;
    open my $f, '<', $file or return '';
    local $/;
    seek $f, $from, 0 if $from;
    my $t = <$f>;
    return $t // '';
}

sub error_log_text { slurp("$Servroot/logs/error.log", @_) }
sub access_log_text { slurp("$Servroot/logs/access.log", @_) }

# nginx sends stderr to error.log once it runs: reports can be in either
my $SanitizerRe = qr/AddressSanitizer|LeakSanitizer|runtime error:/;

sub check_sanitizers {
    my $err = slurp("$Servroot/stderr.log") . error_log_text();
    if ($err =~ $SanitizerRe) {
        Test::More::fail("sanitizer report");
        Test::More::diag($err);
    }
    unlink "$Servroot/stderr.log";
    if ($Valgrind) {
        my $v = slurp("$Servroot/valgrind.log");
        if ($v =~ /\S/) {
            Test::More::fail("valgrind report");
            Test::More::diag($v);
        } else {
            Test::More::pass("valgrind clean");
        }
        unlink "$Servroot/valgrind.log";
    }
}

# fails on [alert], [crit], [emerg] and sanitizer lines since offset $from
sub check_error_log {
    my ($from, $name) = @_;
    my @bad = grep { /\[(alert|crit|emerg)\]/ || $_ =~ $SanitizerRe }
              split /\n/, error_log_text($from);
    Test::More::ok(!@bad, "$name - no alert/crit/emerg in error.log")
        or Test::More::diag(join "\n", @bad);
}

sub http_request {
    my (%o) = @_;
    my $method = $o{method} // 'POST';
    my $path = $o{path} // '/rpc';
    my $body = $o{body} // '';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // port('SERVER_PORT'),
                                  Timeout => 5)
        or return { status => 0, body => '', error => "connect: $!" };
    binmode $s;
    my $head = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
             . "Connection: close\r\n";
    $head .= $o{headers} if $o{headers};
    my @pieces;
    if ($o{chunk_size}) {
        $head .= "Transfer-Encoding: chunked\r\n\r\n";
        for my $p (unpack "(a$o{chunk_size})*", $body) {
            push @pieces, sprintf("%x\r\n%s\r\n", length $p, $p);
        }
        push @pieces, "0\r\n\r\n";
    } elsif ($method eq 'POST' || length $body) {
        $head .= "Content-Type: application/json\r\n"
               . "Content-Length: " . length($body) . "\r\n\r\n";
        @pieces = defined $o{split} ? (map { substr($body, $_->[0], $_->[1]) }
                                       @{$o{split}}) : ($body);
    } else {
        $head .= "\r\n";
    }
    syswrite($s, $head);
    for my $p (@pieces) {
        syswrite($s, $p) if length $p;
        sleep $o{delay} if $o{delay};
    }
    return { status => 0, body => '' } if $o{no_read};
    if (defined $o{hang_up}) {
        sleep $o{hang_up};
        close $s;
        return { status => 0, body => '' };
    }
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $end = time + ($o{timeout} // $Timeout);
    while (time < $end) {
        last unless $sel->can_read($end - time);
        my $n = sysread($s, $raw, 65536, length $raw);
        last unless $n;
    }
    close $s;
    my ($h, $b) = split /\r\n\r\n/, $raw, 2;
    my $res = { raw => $raw, status => 0, body => $b // '', headers => {} };
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

sub http_post {
    my ($body, %o) = @_;
    return http_request(%o, body => $body);
}

sub json_is {
    my ($got, $expected, $name) = @_;
    my $g = eval { $json->decode($got) };
    my $e = $json->decode($expected);
    Test::More::is_deeply($g, $e, $name)
        or Test::More::diag("got: $got");
}

sub run_blocks {
    for my $block (Test::Base::blocks()) {
        run_block($block);
    }
    stop_nginx();
}

# nginx with the configuration of the block of that name (its own sections
# only), for tests that go on in Perl from a block's setup
sub start_block {
    my ($name) = @_;
    my ($b) = grep { $_->name eq $name } Test::Base::blocks();
    die "no block $name" unless $b;
    my %conf = map { $_ => section($b, $_) }
               qw(http_config config main_config workers);
    chomp $conf{workers} if defined $conf{workers};
    return start_nginx(%conf);
}

sub section {
    my ($block, $name) = @_;
    my $v = $block->can($name) ? $block->$name : undef;
    return $v;
}

my %LastConf;

sub run_block {
    my ($block) = @_;
    my $name = $block->name;
    my %conf;

    # a block without a config section runs with the previous block's
    for my $s (qw(http_config config main_config workers)) {
        $conf{$s} = $LastConf{$s} = section($block, $s) // $LastConf{$s};
    }
    chomp $conf{workers} if defined $conf{workers};
    my $key = join "\0", map { $_ // '' } @conf{qw(http_config config
                                                 main_config workers)};
    if (!$NginxPid || $RunningConf ne $key) {
        start_nginx(%conf, key => $key)
            or return Test::More::fail("$name - nginx starts");
    }
    my $from = -s "$Servroot/logs/error.log" // 0;
    my $afrom = -s "$Servroot/logs/access.log" // 0;
    my $ufrom = section($block, 'upstream_requests')
                ? scalar(my @r = upstream_received()) : 0;
    my $body = section($block, 'request') // '';
    $body =~ s/\n\z//;
    my $method = section($block, 'method');
    my $path = section($block, 'path');
    my $headers = section($block, 'more_headers');
    my $chunk = section($block, 'chunk_size');
    chomp($method, $path) if defined $method;
    chomp $path if defined $path;
    chomp $chunk if defined $chunk;
    $headers =~ s/\n/\r\n/g if defined $headers;
    my $res = http_request(method => $method // 'POST', path => $path,
                           body => $body, headers => $headers,
                           chunk_size => $chunk);
    my $v;
    if (defined($v = section($block, 'error_code'))) {
        chomp $v;
        Test::More::is($res->{status}, $v, "$name - status code");
    }
    if (defined($v = section($block, 'response_body'))) {
        $v =~ s/\n\z//;
        Test::More::is($res->{body}, $v, "$name - response body");
    }
    if (defined($v = section($block, 'response_body_like'))) {
        $v =~ s/\n\z//;
        Test::More::like($res->{body}, qr/$v/s, "$name - response body like");
    }
    if (defined($v = section($block, 'response_json'))) {
        json_is($res->{body}, $v, "$name - response JSON");
    }
    sleep 0.05 if section($block, 'error_log') || section($block, 'access_log');
    my $log = error_log_text($from);
    if (defined($v = section($block, 'error_log'))) {
        for my $line (grep { length } split /\n/, $v) {
            Test::More::ok(index($log, $line) >= 0,
                           "$name - error.log has \"$line\"");
        }
    }
    if (defined($v = section($block, 'no_error_log'))) {
        for my $line (grep { length } split /\n/, $v) {
            Test::More::ok(index($log, $line) < 0,
                           "$name - error.log has no \"$line\"");
        }
    }
    if (defined($v = section($block, 'access_log'))) {
        my $alog = access_log_text($afrom);
        for my $line (grep { length } split /\n/, $v) {
            Test::More::ok(index($alog, $line) >= 0,
                           "$name - access log has \"$line\"")
                or Test::More::diag("access log: $alog");
        }
    }
    if (defined($v = section($block, 'upstream_requests'))) {
        my $got = join '', map {
            "$_->{line}\nHost: " . ($_->{host} // '') . "\n$_->{body}\n"
        } upstream_received(undef, $ufrom);
        Test::More::is($got, expand($v), "$name - upstream received");
    }
    check_error_log($from, $name);
}

END {
    local $?;
    stop_nginx() if $NginxPid;
    redis_stop();
    for my $u (values %Upstreams) {
        kill 'TERM', -$u->{pid};
        kill 'TERM', $u->{pid};
        waitpid($u->{pid}, 0);
    }
}

1;
