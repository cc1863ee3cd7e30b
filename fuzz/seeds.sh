#!/bin/bash
# Seed corpora of the fuzz targets, in DIR/request and DIR/reply: the
# JSONTestSuite files (t/corpora/JSONTestSuite/test_parsing, when there)
# and the bodies of fuzz/corpus, each with the header the targets read
# (see fuzz/ngx_rpc_fuzz_parse.c): once in 1-byte pieces, once in 16-byte
# pieces; replies answer 2 calls.  JSON_SUITE names another copy of the
# suite.  And in DIR/frame those of the frame reader (fuzz/frame-seeds.sh),
# in DIR/handshake those of the 101 check (fuzz/handshake-seeds.sh).
set -e

dst=${1:?usage: fuzz/seeds.sh DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
suite=${JSON_SUITE:-$top/t/corpora/JSONTestSuite/test_parsing}

rm -rf "$dst"
mkdir -p "$dst/request" "$dst/reply"

files=("$top"/fuzz/corpus/*)

if [ -d "$suite" ]; then
    files+=("$suite"/*.json)
else
    echo "note: no $suite, seeds from fuzz/corpus only" >&2
fi

for f in "${files[@]}"; do
    name=$(basename "$f")
    body=$(od -An -v -tx1 "$f" | tr -d ' \n' | sed 's/../\\x&/g')
    printf "\x80$body" > "$dst/request/1-$name"
    printf "\x8f$body" > "$dst/request/16-$name"
    printf "\x80\x02$body" > "$dst/reply/1-$name"
    printf "\x8f\x02$body" > "$dst/reply/16-$name"
done

echo "seeds: ${#files[@]} bodies"

"$top/fuzz/frame-seeds.sh" "$dst/frame"
"$top/fuzz/handshake-seeds.sh" "$dst/handshake"
