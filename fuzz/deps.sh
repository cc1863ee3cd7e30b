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

# apt-get source with private deb-src lists made from the system's own
# Debian sources: the system's lists stay as they are

mkdir -p "$dst/apt/lists/partial" "$dst/apt/cache/archives/partial" \
         "$dst/apt/sources.list.d"
dst=$(cd "$dst" && pwd)

: > "$dst/apt/sources.list"

if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$dst/apt/sources.list"
fi

for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    case $f in
    *.sources) sed 's/^Types:.*/Types: deb-src/' "$f" ;;
    *) sed -n 's/^deb /deb-src /p' "$f" ;;
    esac > "$dst/apt/sources.list.d/${f##*/}"
done

apt=(-o Dir::Etc::SourceList="$dst/apt/sources.list"
     -o Dir::Etc::SourceParts="$dst/apt/sources.list.d"
     -o Dir::State::Lists="$dst/apt/lists"
     -o Dir::Cache="$dst/apt/cache")

apt-get "${apt[@]}" update -qq > "$dst/apt.log" 2>&1 \
    || { tail -20 "$dst/apt.log"; exit 1; }

# the installed version when the mirror has it, else the newest it has of
# the same upstream release (Debian's patches do not touch the core files
# the fuzz targets link: the headers are compared below)

fetch() {
    local pkg=$1 bin=$2 want upstream v

    want=$(dpkg-query -W -f='${Version}' "$bin")
    upstream=${want%%-*}

    for v in $want $(apt-cache "${apt[@]}" showsrc "$pkg" 2>/dev/null \
                     | sed -n 's/^Version: //p' | sort -rV)
    do
        case $v in $upstream-*) ;; *) continue ;; esac

        if (cd "$dst" && apt-get "${apt[@]}" source -qq "$pkg=$v" \
                >> "$dst/apt.log" 2>&1)
        then
            echo "$pkg $v (installed: $want)" >> "$dst/versions"
            return 0
        fi
    done

    tail -20 "$dst/apt.log"
    echo "no source of $pkg $upstream on the mirror" >&2
    return 1
}

rm -rf "$dst/versions" "$dst"/nginx* "$dst"/yajl*
fetch nginx nginx-dev
fetch yajl libyajl-dev

for h in /usr/share/nginx/src/src/core/*.h; do
    cmp -s "$h" "$dst"/nginx-*/src/core/"${h##*/}" \
        || echo "warning: ${h##*/} of nginx-dev differs from the source" >&2
done

# fixed names for the Makefile
ln -sfn "$(cd "$dst" && ls -d nginx-*/ | head -1)" "$dst/nginx"
ln -sfn "$(cd "$dst" && ls -d yajl-*/ | head -1)" "$dst/yajl"

cat "$dst/versions"
touch "$dst/.done"
