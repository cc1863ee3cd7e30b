#!/bin/bash
# What the fuzz targets and bench/parse_bench need: clang and libFuzzer from
# Debian's packages (t/deps.sh fuzz), and the sources of nginx and yajl
# (Debian's, the versions of the installed nginx-dev and libyajl-dev where
# the mirror still has them) unpacked under $1 (build-fuzz/src), out of the
# git tree.
# Does nothing when everything is already there.
set -e

dst=${1:?usage: fuzz/deps.sh DIR}

"$(dirname "$0")/../t/deps.sh" fuzz

if [ -f "$dst/.done" ]; then
    exit 0
fi

# the installed versions when the mirror has them (Debian's patches do not
# touch the core files the fuzz targets link: the headers are compared)

"$(dirname "$0")/../t/apt-source.sh" "$dst" nginx nginx-dev yajl libyajl-dev

for h in /usr/share/nginx/src/src/core/*.h; do
    cmp -s "$h" "$dst"/nginx-*/src/core/"${h##*/}" \
        || echo "warning: ${h##*/} of nginx-dev differs from the source" >&2
done

cat "$dst/versions"
touch "$dst/.done"
