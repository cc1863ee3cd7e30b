#!/bin/bash
# Debian source packages unpacked into DIR, with private deb-src lists made
# from the system's own Debian sources (the system's apt state stays as it
# is): for each PKG, the version of the installed package BIN when the
# mirror has it, else the newest it has of the same upstream release.
# DIR/PKG links to what was unpacked; DIR/versions says which; DIR/apt.log
# is apt's output.  Used by fuzz/deps.sh and t/pkg/static.sh.
#
#   t/apt-source.sh DIR PKG BIN [PKG BIN ...]
set -euo pipefail

dst=${1:?usage: t/apt-source.sh DIR PKG BIN [PKG BIN ...]}
shift

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
            ln -sfn "$(cd "$dst" && ls -d "$pkg"-*/ | head -1)" "$dst/$pkg"
            return 0
        fi
    done

    tail -20 "$dst/apt.log"
    echo "no source of $pkg $upstream on the mirror" >&2
    return 1
}

rm -f "$dst/versions"

while [ $# -ge 2 ]; do
    rm -rf "${dst:?}/$1" "$dst/$1"-*
    fetch "$1" "$2"
    shift 2
done
