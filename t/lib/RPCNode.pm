package RPCNode;

# The subscription tests' side of things (t/020, t/022): t/js/wsnode.js, a
# WebSocket node started on NAME_PORT and steered on NAME_CTL_PORT, and
# WebSocket clients of the gateway (on RPCFrame) that subscribe and read
# events.
#
#   node_start('NODE');                    # killed at exit
#   node('NODE', 'emit', key => '["newHeads"]')    # a control command
#   key_stats('NODE', '/path', '["newHeads"]')     # {subscribes, ...}
#   my $s = client('/rpc');                # handshake done
#   my $id = subscribe($s, '["newHeads"]');        # "0x..." or "<what>"
#   event_of(next_text($s))                # "0x...:seq"
#
# Waits are bounded by $T seconds (longer under valgrind).

use strict;
use warnings;
use Time::HiRes qw(sleep time);
use Encode qw(encode_utf8);
use Digest::SHA qw(sha1_hex);
use JSON::PP;
use List::Util qw(max);
use Test::More ();
use Exporter ();
use RPCTest;
use RPCFrame qw(:DEFAULT call result error);

our @ISA = ('Exporter');

our @EXPORT = qw(node_start node lite lite_key key_stats wait_for call
                 result error client next_text subscribe rpc event_of
                 valid_id);

my $js = "$RPCTest::Root/t/js";
-d "$js/node_modules/ws"
    or Test::More::BAIL_OUT("t/js/node_modules/ws is missing: run "
                            . "'make deps'");

our $T = 3 * ($RPCTest::Valgrind ? 5 : 1);

my $json = JSON::PP->new->canonical->allow_nonref;
my %Nodes;

sub node_start {
    my ($name) = @_;
    my @cmd = ('node', "$js/wsnode.js", port("${name}_PORT"),
               port("${name}_CTL_PORT"));
    my $pid = open(my $out, '-|', @cmd) or Test::More::BAIL_OUT("node: $!");
    local $SIG{ALRM} = sub { Test::More::BAIL_OUT("wsnode.js $name did not start") };
    alarm 20;
    my $line = <$out> // '';
    alarm 0;
    $line =~ /^ready/ or Test::More::BAIL_OUT("wsnode.js $name did not start: $line");
    $Nodes{$name} = { pid => $pid, out => $out };
}

END {
    local $?;
    for my $n (values %Nodes) {
        kill 'TERM', $n->{pid};
        close $n->{out};
    }
}

sub uri_escape {
    my ($v) = @_;
    $v = encode_utf8($v);
    $v =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
    return $v;
}

# a control command: its answer, decoded (texts as UTF-8 bytes; lite
# stats count them instead)
sub node {
    my ($name, $cmd, %args) = @_;
    my $q = join '&', map { "$_=" . uri_escape($args{$_}) } sort keys %args;
    my $r = http_request(path => "/$cmd", body => $q,
                         port => port("${name}_CTL_PORT"));
    my $v = eval { JSON::PP->new->utf8->decode($r->{body}) };
    die "wsnode $name $cmd: $r->{status} $r->{body}\n" unless $v;
    for my $t (map { ref $_ eq 'ARRAY' ? @$_ : () }
               $v->{texts}, $v->{received})
    {
        $t->{text} = encode_utf8($t->{text});
    }
    return $v;
}

# stats without the texts (stats lite=1: huge keys named by a digest)
sub lite {
    my ($name, $path) = @_;
    return node($name, 'stats', path => $path, lite => 1);
}

sub lite_key {
    my ($k) = @_;
    return length $k <= 200 ? $k
         : substr($k, 0, 100) . '...' . substr(sha1_hex($k), 0, 12);
}

sub key_stats {
    my ($name, $path, $key) = @_;
    my $k = lite($name, $path)->{keys}{lite_key($key)} // {};
    return { subscribes => 0, unsubscribes => 0, live => 0, %$k };
}

# waits until $cond returns true (or $t seconds pass); returns its value
sub wait_for {
    my ($cond, $t) = @_;
    my $end = time + ($t // $T);
    while (time < $end) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.02;
    }
    return $cond->();
}

sub client {
    my ($path, %o) = @_;
    my ($s, $res) = ws_connect($path // '/rpc', %o);
    die "ws_connect $path: $res->{status}\n" unless $res->{status} == 101;
    return $s;
}

# the next text message (pings from the gateway answered on the way), or
# "<what came instead>" ("<timeout>", "<close 1008>", "<EOF>")
sub next_text {
    my ($s, $t) = @_;
    my $end = time + ($t // $T);
    while (1) {
        my $f = ws_read_frame($s, max($end - time, 0.001));
        if ($f && $f->{opcode} == PING) {
            ws_send($s, ws_frame(PONG, $f->{payload}));
            next;
        }
        return $f->{payload} if $f && $f->{opcode} == TEXT && $f->{fin};
        return '<' . ws_describe($f) . '>';
    }
}

# subscribes: the id the gateway answered, or "<the answer>"
sub subscribe {
    my ($s, $params, $id, $method) = @_;
    $id //= 1;
    ws_text($s, call($method // 'eth_subscribe', $params, $id));
    my $a = next_text($s);
    return $1 if $a =~ /^\{"jsonrpc":"2.0","id":$id,"result":"(0x[0-9a-f]{32})"\}$/;
    return "<$a>";
}

sub rpc {
    my ($s, $text, $t) = @_;
    ws_text($s, $text);
    return next_text($s, $t);
}

sub event_of {
    my ($text) = @_;
    my $e = eval { $json->decode($text) };
    return '<' . substr($text, 0, 200) . '>'
        unless ref $e eq 'HASH' && ref $e->{params} eq 'HASH'
               && ref $e->{params}{result} eq 'HASH';
    return "$e->{params}{subscription}:$e->{params}{result}{seq}";
}

sub valid_id { $_[0] =~ /^0x[0-9a-f]{32}$/ }

1;
