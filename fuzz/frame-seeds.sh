#!/bin/bash
# Seed corpus of fuzz_frame in DIR: client frames (masked), valid and not,
# each with the header fuzz/ngx_rpc_fuzz_frame.c reads: max message 1m in
# 1-byte, 7-byte and 128-byte pieces (the "too big" ones: max 16); and
# server frames (unmasked) for the client mode (header bit 0x20).
# Called by fuzz/seeds.sh.
set -e

dst=${1:?usage: fuzz/frame-seeds.sh DIR}

rm -rf "$dst"
mkdir -p "$dst"

# hex of a text
hex() {
    printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'
}

# frame B0 PAYLOAD-HEX [MASK-HEX [LENGTH-FORM]]: a frame in hex; B0 is the
# first byte (FIN, RSV, opcode); the length in its shortest form unless
# LENGTH-FORM says 16 or 64 (or "raw:HEX", the second byte on, as given)
frame() {
    local b0=$1 pl=$2 mask=${3:-37fa213d} form=${4:-} n i out

    n=$(( ${#pl} / 2 ))
    out=$b0

    case $form in
    raw:*) out+=${form#raw:} ;;
    16) out+=$(printf 'fe%04x' $n) ;;
    64) out+=$(printf 'ff%016x' $n) ;;
    *)
        if [ $n -ge 65536 ]; then
            out+=$(printf 'ff%016x' $n)
        elif [ $n -ge 126 ]; then
            out+=$(printf 'fe%04x' $n)
        else
            out+=$(printf '%02x' $((0x80 | n)))
        fi
    esac

    out+=$mask

    for ((i = 0; i < n; i++)); do
        out+=$(printf '%02x' $(( 0x${pl:2*i:2} ^ 0x${mask:2*(i%4):2} )))
    done

    echo "$out"
}

# uframe B0 PAYLOAD-HEX [LENGTH-FORM]: a server's frame, unmasked
uframe() {
    local b0=$1 pl=$2 form=${3:-} n

    n=$(( ${#pl} / 2 ))

    case $form in
    16) printf '%s7e%04x%s\n' "$b0" $n "$pl" ;;
    64) printf '%s7f%016x%s\n' "$b0" $n "$pl" ;;
    *)
        if [ $n -ge 65536 ]; then
            printf '%s7f%016x%s\n' "$b0" $n "$pl"
        elif [ $n -ge 126 ]; then
            printf '%s7e%04x%s\n' "$b0" $n "$pl"
        else
            printf '%s%02x%s\n' "$b0" $n "$pl"
        fi
    esac
}

# seed NAME MAX FRAME-HEX...: one file per piece size
seed() {
    local name=$1 max=$2 body step
    shift 2
    body=$(printf '%s' "$@" | sed 's/../\\x&/g')

    for step in 80 86 ff; do
        printf "\\x$max\\x$step$body" > "$dst/$step-$name"
    done
}

call=$(hex '{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}')
long=$(printf '{"jsonrpc":"2.0","method":"x","params":["%0200d"],"id":2}' 0)
long=$(hex "$long")    # 245 bytes: a 16-bit length
ping=$(frame 89 "$(hex hello)")
euro=e282ac        # U+20AC
clef=f09d849e      # U+1D11E

# valid

seed text 0e "$(frame 81 "$call")"
seed text-zero-mask 0e "$(frame 81 "$call" 00000000)"
seed two-texts 0e "$(frame 81 "$call")" "$(frame 81 "$(hex '[1,2]')")"
seed fragments 0e "$(frame 01 "${call:0:20}")" "$(frame 00 "${call:20:40}")" \
    "$(frame 80 "${call:60}")"
seed fragments-ping 0e "$(frame 01 "${call:0:30}")" "$ping" \
    "$(frame 00 "${call:30:30}")" "$(frame 8a "")" "$(frame 80 "${call:60}")"
seed empty-text 0e "$(frame 81 "")" "$(frame 81 "$call")"
seed empty-fragments 0e "$(frame 01 "")" "$(frame 00 "")" "$(frame 80 "")"
seed length-16 0e "$(frame 81 "$long")"
seed length-16-fragments 0e "$(frame 01 "$long")" "$(frame 80 "$long")"
seed length-64-partial 0e "$(frame 81 "$call" 11223344 raw:ff0000000000010000)"
seed utf8-across 0e "$(frame 01 "22${euro:0:2}")" \
    "$(frame 00 "${euro:2}${clef:0:2}")" "$(frame 00 "${clef:2:4}")" \
    "$(frame 80 "${clef:6}22")"
seed ping-pong-close 0e "$ping" "$(frame 8a "$(hex hello)")" \
    "$(frame 88 "03e8$(hex bye)")"
seed close-empty 0e "$(frame 88 "")"
seed close-4000 0e "$(frame 88 "0fa0$(hex "reason $euro")")"
seed ping-125 0e "$(frame 89 "$(printf '%0250d' 0)")"

# invalid

seed unmasked 0e "8105$(hex hello)"
seed rsv1 0e "$(frame c1 "$call")"
seed rsv3 0e "$(frame 91 "$call")"
seed opcode-3 0e "$(frame 83 "$call")"
seed opcode-b 0e "$(frame 8b "")"
seed binary 0e "$(frame 82 "$call")"
seed binary-in-message 0e "$(frame 01 "$call")" "$(frame 82 "")"
seed continuation-alone 0e "$(frame 80 "$call")"
seed text-in-message 0e "$(frame 01 "${call:0:20}")" "$(frame 81 "$call")"
seed ping-fragmented 0e "$(frame 09 "")"
seed ping-126 0e "$(frame 89 "$(printf '%0252d' 0)")"
seed length-16-short 0e "$(frame 81 "$call" 37fa213d 16)"
seed length-64-short 0e "$(frame 81 "$long" 37fa213d 64)"
seed length-64-top-bit 0e "$(frame 81 "" 37fa213d raw:ff8000000000000000)"
seed close-1-byte 0e "$(frame 88 03)"
seed close-999 0e "$(frame 88 03e7)"
seed close-1005 0e "$(frame 88 03ed)"
seed close-2999 0e "$(frame 88 0bb7)"
seed close-5000 0e "$(frame 88 1388)"
seed close-reason-utf8 0e "$(frame 88 "03e8c328")"
seed close-reason-cut 0e "$(frame 88 "03e8${euro:0:4}")"
seed utf8-bad-across 0e "$(frame 01 "22${euro:0:2}")" "$(frame 80 "2822")"
seed utf8-cut-at-end 0e "$(frame 01 "22")" "$(frame 80 "${clef:0:6}")"
seed utf8-surrogate 0e "$(frame 81 "eda080")"
seed utf8-overlong 0e "$(frame 81 "c0af")"
seed utf8-overlong-3 0e "$(frame 81 "e080af")"
seed utf8-over-10ffff 0e "$(frame 81 "f4908080")"
seed utf8-f5 0e "$(frame 81 "f5")"
seed too-big 05 "$(frame 81 "$call")"
seed too-big-fragments 05 "$(frame 01 "${call:0:20}")" \
    "$(frame 00 "${call:20:20}")" "$(frame 80 "${call:40}")"
seed too-big-64 0e "$(frame 81 "" 37fa213d raw:ff0000000100000000)"

# the client mode: what a node sends (max 1m, "too big": max 16)

event='{"jsonrpc":"2.0","method":"eth_subscription",'
event=$(hex "$event"'"params":{"subscription":"0x1","result":{}}}')

seed server-text 2e "$(uframe 81 "$event")"
seed server-fragments 2e "$(uframe 01 "${event:0:40}")" \
    "$(uframe 89 "$(hex ping)")" "$(uframe 00 "${event:40:40}")" \
    "$(uframe 80 "${event:80}")"
seed server-length-16 2e "$(uframe 81 "$long")"
seed server-length-16-short 2e "$(uframe 81 "$event" 16)"
seed server-length-64-short 2e "$(uframe 81 "$long" 64)"
seed server-ping-pong-close 2e "$(uframe 89 "")" "$(uframe 8a "$(hex rpc)")" \
    "$(uframe 88 "03e9$(hex going)")"
seed server-close-1-byte 2e "$(uframe 88 03)"
seed server-masked 2e "$(frame 81 "$event")"
seed server-binary 2e "$(uframe 82 "$event")"
seed server-utf8-cut 2e "$(uframe 01 "22${euro:0:2}")" "$(uframe 80 "2822")"
seed server-too-big 25 "$(uframe 81 "$event")"
seed server-too-big-fragments 25 "$(uframe 01 "${event:0:20}")" \
    "$(uframe 80 "${event:20}")"

echo "frame seeds: $(ls "$dst" | wc -l) files"
