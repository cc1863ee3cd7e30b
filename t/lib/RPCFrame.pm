package RPCFrame;

# A WebSocket client (RFC 6455) made by hand, for the tests of the
# gateway's WebSocket transport: it writes any frame, invalid ones
# included, and reads frames exactly as they come.
#
#   my ($s, $res) = ws_connect('/ws');             # handshake done
#   $res->{status}, $res->{headers}{'sec-websocket-accept'}, $res->{head},
#   $res->{rest}                                   # bytes read behind it
#
#   ws_send($s, ws_frame(TEXT, $json, fin => 0));  # any frame, as bytes
#   ws_text($s, $json);                            # one masked text frame
#   my $f = ws_read_frame($s, $timeout);           # the next frame or undef
#   ws_describe($f)        # "text {...}", "close 1002", "pong abc", "EOF"...
#   ws_rpc($s, $json)      # sends a message, returns the next frame's text
#   ws_closes($s, 1002, $name)  # asserts: close frame 1002, then EOF
#
# On request (use RPCFrame qw(:DEFAULT call ...)), the texts of messages:
# call($method, $params, $id) (a notification without $id),
# notification($method, $params), result($id, $result) and
# error($code, $message, $id).
#
# Client frames are masked unless mask => 0.  A socket keeps the bytes it
# read past a frame (or past the handshake) for the next ws_read_frame, so
# that nothing the server sent early is lost.

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_RCVBUF SO_LINGER
              inet_aton pack_sockaddr_in);
use Digest::SHA qw(sha1);
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(sleep time);
use Test::More ();
use Exporter ();
use RPCTest ();

our @ISA = ('Exporter');

our @EXPORT = qw(ws_connect ws_accept ws_frame ws_send ws_text ws_rpc
                 ws_read_frame ws_describe ws_close_code ws_close_payload
                 ws_eof ws_closes ws_hex ws_reset
                 CONT TEXT BINARY CLOSE PING PONG);

our @EXPORT_OK = qw(call notification result error);

use constant { CONT => 0x0, TEXT => 0x1, BINARY => 0x2, CLOSE => 0x8,
               PING => 0x9, PONG => 0xA };

# why the last ws_read_frame returned undef: "EOF", "reset", "timeout"
our $Why = '';

sub call {
    my ($m, $p, $id) = @_;
    return qq({"jsonrpc":"2.0","method":"$m","params":$p,"id":$id})
        if defined $id;
    return qq({"jsonrpc":"2.0","method":"$m","params":$p});
}

sub notification {
    my ($m, $p) = @_;
    return call($m, $p);
}

sub result {
    my ($id, $r) = @_;
    return qq({"jsonrpc":"2.0","id":$id,"result":$r});
}

sub error {
    my ($code, $message, $id) = @_;
    return qq({"jsonrpc":"2.0","error":{"code":$code,"message":"$message"},)
         . qq("id":$id});
}

sub ws_accept {
    my ($key) = @_;
    return encode_base64(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'),
                         '');
}

sub bytes {
    my ($data) = @_;
    $data //= '';
    utf8::downgrade($data, 1) or die "frame payload with wide characters\n";
    return $data;
}

# the handshake: ($socket, { status, headers, head, rest, key }); %o:
#   headers => { Name => value }   replace a request header (undef: omit)
#   more => "Name: value\r\n..."   more header lines, as they are
#   http => '1.0'                  the HTTP version of the request line
#   extra => bytes                 sent in the same write as the request
#   rcvbuf => n                    SO_RCVBUF set before the connect
#   port => n                      another port than the gateway's
sub ws_connect {
    my ($path, %o) = @_;
    my $port = $o{port} // RPCTest::port('SERVER_PORT');
    my $s = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf}) if $o{rcvbuf};
    $s->connect(pack_sockaddr_in($port, inet_aton('127.0.0.1')))
        or die "connect to $port: $!";
    binmode $s;
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    ${*$s}{ws_buf} = '';

    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    my %h = ('Host' => 'localhost', 'Upgrade' => 'websocket',
             'Connection' => 'Upgrade', 'Sec-WebSocket-Key' => $key,
             'Sec-WebSocket-Version' => '13', %{ $o{headers} // {} });
    my @order = ('Host', 'Upgrade', 'Connection', 'Sec-WebSocket-Key',
                 'Sec-WebSocket-Version');
    my %seen = map { $_ => 1 } @order;
    push @order, sort grep { !$seen{$_} } keys %h;
    my $req = "GET $path HTTP/" . ($o{http} // '1.1') . "\r\n"
            . join('', map { "$_: $h{$_}\r\n" } grep { defined $h{$_} } @order)
            . ($o{more} // '') . "\r\n";
    ws_send($s, $req . bytes($o{extra}));

    my $res = { status => 0, headers => {}, head => '', rest => '',
                key => $h{'Sec-WebSocket-Key'} };
    my $end = time + ($o{timeout} // $RPCTest::Timeout);
    while (${*$s}{ws_buf} !~ /\r\n\r\n/) {
        last unless fill($s, $end);
    }
    return ($s, $res) unless ${*$s}{ws_buf} =~ s/\A(.*?\r\n)\r\n//s;
    $res->{head} = $1;
    $res->{status} = $1 if $res->{head} =~ m{\AHTTP/1\.\d (\d{3})};
    for (split /\r\n/, $res->{head}) {
        next unless /^([^:]+):\s*(.*?)\s*$/;
        my $k = lc $1;
        $res->{headers}{$k} = defined $res->{headers}{$k}
                              ? "$res->{headers}{$k}, $2" : $2;
    }
    $res->{rest} = ${*$s}{ws_buf} if $res->{status} == 101;
    return ($s, $res);
}

# a frame as bytes; %o:
#   fin => 0|1 (1)     rsv => 0..7 (RSV1 is 4, RSV2 2, RSV3 1)
#   mask => 0|1 (1)    key => 4 bytes of masking key (random)
#   len16 => 1, len64 => 1: the 16- or 64-bit length even when shorter
#   length => n        the length declared, whatever the payload is
#   head_only => 1     the header alone, without the payload
sub ws_frame {
    my ($opcode, $payload, %o) = @_;
    $payload = bytes($payload);
    my $fin = $o{fin} // 1;
    my $mask = $o{mask} // 1;
    my $len = $o{length} // length $payload;
    my $head = chr(($fin ? 0x80 : 0) | (($o{rsv} // 0) << 4) | $opcode);
    my $m = $mask ? 0x80 : 0;
    if ($o{len64} || (!$o{len16} && $len > 0xffff)) {
        $head .= chr($m | 127) . pack('Q>', $len);
    } elsif ($o{len16} || $len > 125) {
        $head .= chr($m | 126) . pack('n', $len);
    } else {
        $head .= chr($m | $len);
    }
    if ($mask) {
        my $key = $o{key} // join '', map { chr int rand 256 } 1 .. 4;
        $head .= $key;
        $payload = mask($key, $payload);
    }
    return $o{head_only} ? $head : $head . $payload;
}

sub mask {
    my ($key, $data) = @_;
    my $n = length $data;
    return $data ^ substr($key x (int($n / 4) + 1), 0, $n);
}

# writes all the bytes, in as many writes as the socket wants
sub ws_send {
    my ($s, @bytes) = @_;
    my $data = join '', map { bytes($_) } @bytes;
    while (length $data) {
        my $n = syswrite($s, $data);
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            return 0;
        }
        substr($data, 0, $n) = '';
    }
    return 1;
}

sub ws_text {
    my ($s, $text, %o) = @_;
    return ws_send($s, ws_frame(TEXT, $text, %o));
}

# reads what is there into the socket's buffer; false on EOF, error or
# when $end passed ($Why says which)
sub fill {
    my ($s, $end) = @_;
    my $left = $end - time;
    if ($left <= 0 || !IO::Select->new($s)->can_read($left)) {
        $Why = 'timeout';
        return 0;
    }
    my $n = sysread($s, ${*$s}{ws_buf}, 262144, length ${*$s}{ws_buf});
    return 1 if $n;
    $Why = defined $n ? 'EOF' : $!{ECONNRESET} ? 'reset' : "error: $!";
    return 0;
}

# the next frame: { fin, rsv, opcode, masked, length, payload } (the
# payload unmasked), or undef on EOF, error or timeout (seconds; default
# the harness' timeout); a frame that is not there whole stays buffered
sub ws_read_frame {
    my ($s, $timeout) = @_;
    my $end = time + ($timeout // $RPCTest::Timeout);
    my $buf = \${*$s}{ws_buf};
    while (1) {
        if (length $$buf >= 2) {
            my ($b0, $b1) = unpack 'CC', $$buf;
            my $len = $b1 & 0x7f;
            my $hl = 2 + ($len == 126 ? 2 : $len == 127 ? 8 : 0)
                       + ($b1 & 0x80 ? 4 : 0);
            if (length $$buf >= $hl) {
                # one or the other: a 16-bit length of 127 is no 64-bit one
                if ($len == 126) {
                    $len = unpack 'n', substr($$buf, 2, 2);
                } elsif ($len == 127) {
                    $len = unpack 'Q>', substr($$buf, 2, 8);
                }
                if (length $$buf >= $hl + $len) {
                    my $p = substr($$buf, $hl, $len);
                    $p = mask(substr($$buf, $hl - 4, 4), $p) if $b1 & 0x80;
                    substr($$buf, 0, $hl + $len) = '';
                    $Why = '';
                    return { fin => $b0 >> 7, rsv => ($b0 >> 4) & 7,
                             opcode => $b0 & 0x0f, masked => $b1 >> 7,
                             length => $len, payload => $p };
                }
            }
        }
        return undef unless fill($s, $end);
    }
}

# a frame in a few words, for comparisons: "text {...}", "close 1002",
# "close (empty)", "ping abc", "pong abc", "binary 3 bytes", "opcode 3",
# prefixed by what is odd about it ("fin=0", "rsv=4", "masked"); "EOF",
# "reset" or "timeout" for no frame
sub ws_describe {
    my ($f) = @_;
    return $Why unless $f;
    my @odd;
    push @odd, 'fin=0' unless $f->{fin};
    push @odd, "rsv=$f->{rsv}" if $f->{rsv};
    push @odd, 'masked' if $f->{masked};
    my $p = $f->{payload};
    my $op = $f->{opcode};
    my $what = $op == TEXT ? "text $p"
             : $op == CONT ? "continuation $p"
             : $op == BINARY ? 'binary ' . length($p) . ' bytes'
             : $op == CLOSE ? (length $p ? 'close ' . ws_close_code($p)
                                       : 'close (empty)')
             : $op == PING ? "ping $p"
             : $op == PONG ? "pong $p"
             : "opcode $op";
    return join ' ', @odd, $what;
}

# the code of a close frame's payload (in list context, and its reason)
sub ws_close_code {
    my ($payload) = @_;
    return undef if length $payload < 2;
    my $code = unpack 'n', $payload;
    return wantarray ? ($code, substr($payload, 2)) : $code;
}

sub ws_close_payload {
    my ($code, $reason) = @_;
    return pack('n', $code) . ($reason // '');
}

# sends one message as a text frame and returns the text of the next frame
# from the server; anything else comes back as "<description>"
sub ws_rpc {
    my ($s, $text, $timeout) = @_;
    ws_text($s, $text);
    my $f = ws_read_frame($s, $timeout);
    return $f->{payload} if $f && $f->{opcode} == TEXT && $f->{fin}
                            && !$f->{masked} && !$f->{rsv};
    return '<' . ws_describe($f) . '>';
}

# "EOF" if the server closes the TCP connection within $timeout, else
# "reset", "timeout" or the frame that came instead
sub ws_eof {
    my ($s, $timeout) = @_;
    my $f = ws_read_frame($s, $timeout // $RPCTest::Timeout);
    return $f ? 'frame: ' . ws_describe($f) : $Why;
}

# asserts that the next frame closes with $code ("" for an empty close
# payload) and that the TCP connection is closed after it, without the
# client sending anything more; skip_data => 1 first reads past data
# frames.  Returns the data frames read past (2 tests).
sub ws_closes {
    my ($s, $code, $name, %o) = @_;
    my @data;
    my $f;
    while (1) {
        $f = ws_read_frame($s, $o{timeout});
        last unless $o{skip_data} && $f && $f->{opcode} == TEXT;
        push @data, $f;
    }
    my $want = $code eq '' ? 'close (empty)' : "close $code";
    Test::More::is(ws_describe($f), $want, "$name: $want")
        or Test::More::diag('after ' . scalar(@data) . ' data frames'
                            . ($o{diag} ? "; $o{diag}" : ''));
    Test::More::is(ws_eof($s, $o{timeout}), 'EOF',
                   "$name: then the TCP connection is closed")
        or $o{diag} && Test::More::diag($o{diag});
    close $s;
    return @data;
}

# closes the TCP connection with a reset
sub ws_reset {
    my ($s) = @_;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $s;
}

sub ws_hex {
    my ($bytes) = @_;
    return join ' ', map { sprintf '%02x', $_ } unpack 'C*', $bytes;
}

1;
