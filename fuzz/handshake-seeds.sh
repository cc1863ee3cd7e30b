#!/bin/bash
# Seed corpus of fuzz_handshake in DIR: servers' answers to the upstream
# WebSocket client's upgrade, good and not, for the key of RFC 6455's
# example (see fuzz/ngx_rpc_fuzz_handshake.c).  Called by fuzz/seeds.sh.
set -e

dst=${1:?usage: fuzz/handshake-seeds.sh DIR}

rm -rf "$dst"
mkdir -p "$dst"

key='s3pPLMBiTxaQ9kYGzzhZRbK+xOo='
s101='HTTP/1.1 101 Switching Protocols\r\n'
up='Upgrade: websocket\r\n'
conn='Connection: Upgrade\r\n'
acc="Sec-WebSocket-Accept: $key\r\n"
good="$s101$up$conn$acc"

# seed NAME TEXT: printf's escapes in TEXT
seed() {
    printf "$2" > "$dst/$1"
}

# good

seed good "$good\r\n"
seed good-frames "$good\r\n\x81\x05hello\x89\x00"
seed good-lf "HTTP/1.1 101 OK\nupgrade: WebSocket\n\
connection: keep-alive, upgrade\nsec-websocket-accept:   $key  \n\n"
seed good-no-reason "HTTP/1.1 101\r\n$up$conn$acc\r\n"
seed good-more "${good}Server: node\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Sec-WebSocket-Extensions:\r\nX-Obs: caf\xc3\xa9\r\n\r\n"
seed good-lists "HTTP/1.0 101 x\r\nUpgrade: h2c, websocket\r\nUpgrade: foo\r\n\
Connection: close ,\tUPGRADE\r\nSec-WebSocket-Accept:$key\r\n\r\n"
seed partial "$good"
seed partial-line "HTTP/1.1 101 Swi"

# bad

seed status-404 "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
seed status-200 "HTTP/1.1 200 OK\r\n\r\n"
seed status-bad "HTTP/1.1 1O1 Switching\r\n\r\n"
seed status-short "HTTP/1.1 10\r\n\r\n"
seed status-http2 "HTTP/2 101\r\n\r\n"
seed status-nospace "HTTP/1.1 101Switching\r\n\r\n"
seed status-ctl "HTTP/1.1 101 Swi\x01tching\r\n\r\n"
seed garbage "SSH-2.0-OpenSSH_9.2\r\n"
seed no-upgrade "$s101$conn$acc\r\n"
seed no-connection "$s101$up$acc\r\n"
seed no-accept "$s101$up$conn\r\n"
seed accept-wrong "$s101$up${conn}Sec-WebSocket-Accept: ${key/=/x}\r\n\r\n"
seed accept-twice "$good$acc\r\n"
seed upgrade-other "${s101}Upgrade: websocketx\r\n$conn$acc\r\n"
seed extension "${good}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
seed protocol "${good}Sec-WebSocket-Protocol: jsonrpc\r\n\r\n"
seed folded "${good}X-A: b\r\n c\r\n\r\n"
seed no-colon "${good}X-A b\r\n\r\n"
seed empty-name "$good: b\r\n\r\n"
seed name-space "${good}X-A : b\r\n\r\n"
seed value-nul "${good}X-A: b\x00c\r\n\r\n"
seed value-cr "${good}X-A: b\rc\r\n\r\n"

echo "handshake seeds: $(ls "$dst" | wc -l) files"
