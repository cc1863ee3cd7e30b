#!/usr/bin/perl
# A JSON-RPC 2.0 server over HTTP/1.1 keepalive that misbehaves on request,
# for t/014-chaos.t.  One process per connection.  What a call gets depends
# only on its method and params, so the test knows every right answer:
#
#   METHOD [K, FLAG]      METHOD one of
#     c_val, u_val        result {"m":METHOD,"p":PARAMS}
#     c_err               error {"code":4242,"message":"no","data":PARAMS}
#     c_err0              error {"code":0,"message":"zero","data":PARAMS}
#     c_null              result null
#     anything else       error -32601
#
#   FLAG (the second param) changes the whole upstream request the call
#   travels in:
#     "dN"   the reply waits N ms (the longest wait of the request counts)
#     "r"    the connection is reset once the request is read, no reply
#     "m"    half a reply, then a reset
#
# Calls without an id (notifications) are not answered; a batch reply comes
# in a random order half of the time.
#
#   chaos-upstream.pl --port N [--seed S]

use strict;
use warnings;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);
use JSON::PP;
use Time::HiRes qw(usleep);
use Getopt::Long;
use POSIX ();

my ($port, $seed) = (0, 1);
GetOptions('port=i' => \$port, 'seed=i' => \$seed)
    or die "usage: $0 --port N [--seed S]\n";

my $json = JSON::PP->new->canonical->allow_nonref;
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $port, Listen => 128, ReuseAddr => 1, Proto => 'tcp')
    or die "chaos-upstream: cannot listen on $port: $!\n";

$SIG{CHLD} = sub { 1 while waitpid(-1, POSIX::WNOHANG()) > 0 };
$SIG{TERM} = sub { kill 'TERM', -$$ if getpgrp() == $$; exit 0 };

my $accepted = 0;
while (1) {
    my $c = $listen->accept or next;
    $accepted++;
    my $pid = fork;
    if (!defined $pid) { close $c; next }
    if ($pid == 0) {
        $SIG{TERM} = 'DEFAULT';
        close $listen;
        srand($seed * 1000 + $accepted);
        serve($c);
        POSIX::_exit(0);
    }
    close $c;
}

sub serve {
    my ($c) = @_;
    binmode $c;
    my $buf = '';
    while (1) {
        my $body = read_request($c, \$buf);
        return unless defined $body;
        return unless handle($c, $body);
    }
}

sub read_request {
    my ($c, $buf) = @_;
    while ($$buf !~ /\r\n\r\n/) {
        my $n = sysread($c, $$buf, 65536, length $$buf);
        return undef unless $n;
    }
    $$buf =~ s/^(.*?)\r\n\r\n//s;
    my %h;
    for (split /\r\n/, $1) {
        my ($k, $v) = split /:\s*/, $_, 2;
        $h{lc $k} = $v if defined $v;
    }
    die "chaos-upstream: chunked request\n"
        if ($h{'transfer-encoding'} // '') =~ /chunked/i;
    my $len = $h{'content-length'} // 0;
    while (length $$buf < $len) {
        sysread($c, $$buf, 65536, length $$buf) or return undef;
    }
    my $body = substr($$buf, 0, $len);
    substr($$buf, 0, $len) = '';
    return $body;
}

sub reset_conn {
    my ($c) = @_;
    setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $c;
    return 0;
}

sub answer {
    my ($call) = @_;
    my ($m, $p, $id) = @$call{qw(method params id)};
    my $out = { jsonrpc => '2.0', id => $id };
    if ($m eq 'c_val' || $m eq 'u_val') {
        $out->{result} = { m => $m, p => $p };
    } elsif ($m eq 'c_err') {
        $out->{error} = { code => 4242, message => 'no', data => $p };
    } elsif ($m eq 'c_err0') {
        $out->{error} = { code => 0, message => 'zero', data => $p };
    } elsif ($m eq 'c_null') {
        $out->{result} = undef;
    } else {
        $out->{error} = { code => -32601, message => 'Method not found' };
    }
    return $out;
}

sub handle {
    my ($c, $body) = @_;
    my $in = eval { $json->decode($body) };
    my $batch = ref $in eq 'ARRAY';
    my @calls = grep { ref $_ eq 'HASH' } ($batch ? @$in : ($in));
    my ($wait, $reset, $mid) = (0, 0, 0);
    for my $call (@calls) {
        my $flag = ref $call->{params} eq 'ARRAY' ? $call->{params}[1] : '';
        $flag //= '';
        $wait = $1 if $flag =~ /^d(\d+)$/ && $1 > $wait;
        $reset = 1 if $flag eq 'r';
        $mid = 1 if $flag eq 'm';
    }
    usleep($wait * 1000) if $wait;
    return reset_conn($c) if $reset;
    if ($mid) {
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     . "Content-Length: 1000\r\n\r\n"
                     . '[{"jsonrpc":"2.0","res');
        usleep(20_000);
        return reset_conn($c);
    }
    my @out = map { answer($_) } grep { exists $_->{id} } @calls;
    my $head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    if (!@out) {
        syswrite($c, "HTTP/1.1 204 No Content\r\n\r\n");
        return 1;
    }
    if ($batch && rand() < 0.5) {
        for my $i (reverse 1 .. $#out) {
            my $j = int rand($i + 1);
            @out[$i, $j] = @out[$j, $i];
        }
    }
    my $reply = $json->encode($batch ? \@out : $out[0]);
    syswrite($c, $head . "Content-Length: " . length($reply) . "\r\n\r\n"
                 . $reply);
    return 1;
}
