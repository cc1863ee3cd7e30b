#!/usr/bin/perl
# A JSON-RPC 2.0 server over HTTP/1.1 keepalive, for the tests and the
# quickstart demo.  One process per connection.  Besides the methods of the
# JSON-RPC 2.0 specification's examples it has test_* methods that make it
# misbehave on purpose (delay, reset, garbage, dropped or duplicated ids,
# 1xx replies first, a bad status line, a header too big, Content-Length
# twice, a 101 nobody asked for).
#
#   upstream.pl --port N [--name NAME] [--state FILE]
#
# --state: file that holds the number of connections accepted so far;
# FILE.calls gets the method of every call served, one a line, and a line
# "#request" for every HTTP request; FILE.requests gets every HTTP request
# as it came (request line, Host header and body), one JSON object a line.

use strict;
use warnings;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);
use JSON::PP;
use Time::HiRes qw(usleep);
use Getopt::Long;
use POSIX ();

my ($port, $name, $state) = (8545, 'upstream', '');
GetOptions('port=i' => \$port, 'name=s' => \$name, 'state=s' => \$state)
    or die "usage: $0 --port N [--name NAME] [--state FILE]\n";

my $json = JSON::PP->new->canonical->allow_nonref;
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $port, Listen => 128, ReuseAddr => 1, Proto => 'tcp')
    or die "upstream: cannot listen on $port: $!\n";

$SIG{CHLD} = sub { 1 while waitpid(-1, POSIX::WNOHANG()) > 0 };
$SIG{TERM} = sub { kill 'TERM', -$$ if getpgrp() == $$; exit 0 };

# test_MODE: the reply as a whole misbehaves (see handle())
my $Modes = join '|', qw(reset reset_mid garbage http500 shape single chunked
    close drop_id dup_id extra_id continue informational many_continues
    big_header big_status dup_length bad_status switch);

my $accepted = 0;
write_state();
print STDERR "upstream $name listening on 127.0.0.1:$port\n";

while (1) {
    my $c = $listen->accept or next;
    $accepted++;
    write_state();
    my $pid = fork;
    if (!defined $pid) { close $c; next }
    if ($pid == 0) {
        $SIG{TERM} = 'DEFAULT';
        close $listen;
        serve($c);
        exit 0;
    }
    close $c;
}

sub write_state {
    return unless $state;
    open my $f, '>', "$state.tmp" or return;
    print $f "$accepted\n";
    close $f;
    rename "$state.tmp", $state;
}

# appends the method to FILE.calls, returns how many calls came before
sub log_call {
    my ($m) = @_;
    return 0 unless $state && open my $f, '+>>', "$state.calls";
    flock($f, 2);
    seek($f, 0, 0);
    my $n = () = <$f>;
    print $f "$m\n";
    close $f;
    return $n;
}

# appends the request to FILE.requests
sub log_request {
    my ($req) = @_;
    return unless $state && open my $f, '>>', "$state.requests";
    flock($f, 2);
    print $f $json->encode({ line => $req->{line},
                             host => $req->{headers}{host},
                             body => $req->{body} }), "\n";
    close $f;
}

sub read_state {
    return 0 unless $state && open my $f, '<', $state;
    my $n = <$f>;
    return int($n // 0);
}

sub serve {
    my ($c) = @_;
    binmode $c;
    my $buf = '';
    while (1) {
        my $req = read_request($c, \$buf) or return;
        my ($keep) = handle($c, $req);
        return unless $keep;
    }
}

sub read_request {
    my ($c, $buf) = @_;
    while ($$buf !~ /\r\n\r\n/) {
        my $n = sysread($c, $$buf, 65536, length $$buf);
        return undef unless $n;
    }
    $$buf =~ s/^(.*?)\r\n\r\n//s;
    my @lines = split /\r\n/, $1;
    my $line = shift @lines;
    my %h;
    for (@lines) { my ($k, $v) = split /:\s*/, $_, 2; $h{lc $k} = $v }
    my $body = '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            while ($$buf !~ /\r\n/) {
                sysread($c, $$buf, 65536, length $$buf) or return undef;
            }
            $$buf =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//;
            my $size = hex $1;
            while (length $$buf < $size + 2) {
                sysread($c, $$buf, 65536, length $$buf) or return undef;
            }
            $body .= substr($$buf, 0, $size);
            substr($$buf, 0, $size + 2) = '';
            last if $size == 0;
        }
    } else {
        my $len = $h{'content-length'} // 0;
        while (length $$buf < $len) {
            sysread($c, $$buf, 65536, length $$buf) or return undef;
        }
        $body = substr($$buf, 0, $len);
        substr($$buf, 0, $len) = '';
    }
    return { line => $line, headers => \%h, body => $body };
}

# %o: close, chunked; interim: 1xx replies sent first (after a pause with
# pause); headers: more header lines; dup_length: Content-Length twice
sub reply {
    my ($c, $status, $body, %o) = @_;
    my $reason = { 200 => 'OK', 204 => 'No Content', 500 => 'Oops' }->{$status}
        // 'Status';
    my $head = "HTTP/1.1 $status $reason\r\nContent-Type: application/json\r\n";
    $head .= $o{headers} if $o{headers};
    $head .= "Content-Length: " . length($body) . "\r\n" if $o{dup_length};
    if ($o{interim}) {
        if ($o{pause}) {
            syswrite($c, $o{interim});
            usleep(50_000);
        } else {
            $head = $o{interim} . $head;
        }
    }
    if ($o{close}) {
        $head .= "Connection: close\r\n\r\n";
        syswrite($c, $head . $body);
        return 0;
    }
    if ($o{chunked}) {
        $head .= "Transfer-Encoding: chunked\r\n\r\n";
        syswrite($c, $head);
        for my $piece (unpack '(a7)*', $body) {
            syswrite($c, sprintf("%x\r\n%s\r\n", length $piece, $piece));
        }
        syswrite($c, "0\r\n\r\n");
        return 1;
    }
    $head .= "Content-Length: " . length($body) . "\r\n\r\n";
    syswrite($c, $head . $body);
    return 1;
}

sub reset_conn {
    my ($c) = @_;
    setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $c;
    return 0;
}

sub result { { jsonrpc => '2.0', result => $_[1], id => $_[0] } }

sub error {
    { jsonrpc => '2.0', error => { code => $_[1], message => $_[2] },
      id => $_[0] }
}

sub call {
    my ($req, $mode) = @_;
    return error(undef, -32600, 'Invalid Request')
        unless ref $req eq 'HASH' && defined $req->{method};
    my ($m, $p, $id) = ($req->{method}, $req->{params}, $req->{id});
    my @a = ref $p eq 'ARRAY' ? @$p : ();
    my $seq = log_call($m);
    if ($m eq 'subtract') {
        return result($id, ref $p eq 'HASH'
            ? $p->{minuend} - $p->{subtrahend} : $a[0] - $a[1]);
    }
    if ($m eq 'sum') { my $s = 0; $s += $_ for @a; return result($id, $s) }
    return result($id, ['hello', 5]) if $m eq 'get_data';
    return result($id, undef) if $m =~ /^(update|notify_hello|notify_sum)$/;
    return result($id, $p) if $m eq 'test_echo';
    return result($id, $name) if $m eq 'test_whoami';
    return result($id, read_state()) if $m eq 'test_conns';
    return result($id, "$name:$seq") if $m eq 'test_seq';
    return result($id, 'x' x $a[0]) if $m eq 'test_big';
    if ($m =~ /^test_sleep/) { usleep(($a[0] // 100) * 1000); return result($id, 'slept') }
    return error($id, -32000, 'upstream says no') if $m eq 'test_error';
    return error(undef, -32700, 'cannot read it') if $m eq 'test_null_id';
    if ($m eq 'test_fail_on') {
        return result($id, $name) if $a[0] ne $name;
        $$mode{$a[1]} = 1;
        return result($id, $a[1]);
    }
    if ($m =~ /^test_($Modes)$/) {
        $$mode{$1} = 1;
        return $1 eq 'drop_id' ? undef : result($id, $1);
    }
    return error($id, -32601, 'Method not found');
}

sub handle {
    my ($c, $req) = @_;
    log_call('#request');
    log_request($req);
    my $in = eval { $json->decode($req->{body}) };
    if ($@ || !defined $in && $req->{body} !~ /null/) {
        return reply($c, 200, $json->encode(error(undef, -32700, 'Parse error')));
    }
    my %mode;
    my @out;
    my $batch = ref $in eq 'ARRAY';
    if ($batch && !@$in) {
        return reply($c, 200, $json->encode(error(undef, -32600, 'Invalid Request')));
    }
    for my $r ($batch ? @$in : ($in)) {
        my $res = call($r, \%mode);
        next unless defined $res;
        next if ref $r eq 'HASH' && !exists $r->{id} && defined $r->{method};
        push @out, $res;
        push @out, $res if $mode{dup_id};
        push @out, result(999999, 'extra') if $mode{extra_id};
    }
    return reset_conn($c) if $mode{reset};
    if ($mode{reset_mid}) {
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
            . '{"jsonrpc":"2.0","res');
        usleep(50_000);
        return reset_conn($c);
    }
    return reply($c, 200, 'this is not JSON') if $mode{garbage};
    return reply($c, 500, 'oops') if $mode{http500};
    return reply($c, 200, '"hello"') if $mode{shape};
    if ($mode{single} && $batch) {
        return reply($c, 200, $json->encode(error(undef, -32600, 'no batches')));
    }
    if ($mode{bad_status}) {
        syswrite($c, "HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n");
        return 0;
    }
    if ($mode{switch}) {
        syswrite($c, "HTTP/1.1 101 Switching Protocols\r\n"
            . "Upgrade: websocket\r\nConnection: upgrade\r\n\r\n");
        return 0;
    }
    return reply($c, 204, '') unless @out;
    my $body = $json->encode($batch ? \@out : $out[0]);
    my %o = (chunked => $mode{chunked}, close => $mode{close},
             dup_length => $mode{dup_length});
    # "100 Continue" on its own, the final reply 50 ms later
    %o = (%o, interim => "HTTP/1.1 100 Continue\r\n\r\n", pause => 1)
        if $mode{continue};
    # three of them with headers, in one write with the final reply
    $o{interim} = "HTTP/1.1 100 Continue\r\n\r\n"
        . "HTTP/1.1 102 Processing\r\nX-Step: 1\r\n\r\n"
        . "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        if $mode{informational};
    # more of them than a buffer holds
    $o{interim} = "HTTP/1.1 100 Continue\r\n\r\n" x 3000
        if $mode{many_continues};
    $o{headers} = "X-Big: " . ('x' x 2000) . "\r\n" if $mode{big_header};
    return reply($c, 200, $body, %o) unless $mode{big_status};
    syswrite($c, "HTTP/1.1 200 " . ('O' x 2000) . "\r\nContent-Length: "
        . length($body) . "\r\n\r\n" . $body);
    return 1;
}
