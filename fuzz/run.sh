#!/bin/bash
# Runs one fuzz target:
#   fuzz/run.sh BIN CORPUS SEEDS ARTIFACTS SECONDS [JOBS [DICT]]
# The corpus grows in CORPUS, crashes go to ARTIFACTS; both out of the tree.
# DICT: libFuzzer's dictionary, fuzz/json.dict unless given.
# Prints libFuzzer's last status line; fails on any finding.
set -e

bin=$1 corpus=$2 seeds=$3 art=$4 secs=$5 jobs=${6:-1} dict=${7:-}
name=$(basename "$bin")
log=$art/$name.log
top=$(cd "$(dirname "$0")/.." && pwd)
dict=$(realpath "${dict:-$top/fuzz/json.dict}")  # libFuzzer runs in $art

mkdir -p "$corpus" "$art"

opts=(-max_total_time="$secs" -dict="$dict" -max_len=4096
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="$art/")

if [ "$jobs" -gt 1 ]; then
    opts+=(-fork="$jobs")
fi

echo "fuzz: $name for ${secs}s, corpus $corpus"

rc=0
(cd "$art" && exec nice "$bin" "${opts[@]}" $FUZZ_FLAGS "$corpus" "$seeds") \
    > "$log" 2>&1 || rc=$?

grep -E '^#[0-9]+(: cov:|.*(pulse|DONE|NEW|REDUCE|INITED))' "$log" | tail -1 \
    || true  # -fork: "#N: cov:" lines
grep -E '^(Done|stat::number_of_executed_units)' "$log" || true

if [ $rc != 0 ] || grep -q -E '^==[0-9]+==ERROR|^SUMMARY|ngx_rpc_fuzz:' "$log"
then
    echo "fuzz: $name FOUND A PROBLEM (exit $rc), log $log:" >&2
    grep -E -A20 '^==[0-9]+==ERROR|ngx_rpc_fuzz:' "$log" | head -40 >&2

    for f in $(sed -n 's/.*Test unit written to //p' "$log"); do
        echo "input $f (hex, the first 256 bytes):" >&2
        od -An -tx1 -N256 "$f" >&2
    done

    exit 1
fi
