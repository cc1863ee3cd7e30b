#!/bin/bash
# make test-static: nginx built from Debian's source package with the module
# compiled in (--add-module), and a subset of the suite run against that
# binary (TEST_NGINX_BINARY, TEST_NGINX_STATIC=1: no load_module line).
#
#   t/pkg/static.sh [DIR]     DIR: where to fetch and build (build-static/)
#
# The source comes from `apt-get source nginx` with private deb-src lists
# made from the system's own Debian sources (the system's apt state is left
# as it is); the version of the installed nginx when the mirror has it, else
# the newest it has of the same upstream release.  nginx is configured with
# the flags of Debian's own nginx binary (bin_configure_flags of the
# source's debian/rules) plus --add-module=<this repository>, and only its
# binary is built (make binary; the dynamic modules of Debian's flags are
# configured, not built).  STATIC_JOBS: make -j (2).  STATIC_TESTS: the test
# files to run (t/001-spec.t t/004-upstream.t t/007-cache.t).
set -euo pipefail

cd "$(dirname "$0")/../.."
top=$PWD
dst=${1:-$top/build-static}
jobs=${STATIC_JOBS:-2}
tests=${STATIC_TESTS:-t/001-spec.t t/004-upstream.t t/007-cache.t}

mkdir -p "$dst"
dst=$(cd "$dst" && pwd)
case $dst/ in
"$top"/build*/) ;;
"$top"/*) echo "$dst: inside the source tree; use build-static/" >&2; exit 2 ;;
esac

# --- the source, once

if [ ! -f "$dst/src/.done" ]; then
    rm -rf "$dst/src"
    echo "static: fetching Debian's nginx source (private apt lists in" \
         "$dst/src/apt)"
    t/apt-source.sh "$dst/src" nginx nginx
    touch "$dst/src/.done"
fi
echo "static: source $(cat "$dst/src/versions")"

# --- configure (again when the module's config changed) and build

ngx=$dst/src/nginx
if [ ! -f "$ngx/objs/Makefile" ] || [ config -nt "$ngx/objs/Makefile" ]; then
    line=$(make -s -C "$ngx" -f debian/rules \
           --eval 'ngx-rpc-flags: ; $(info $(bin_configure_flags))' ngx-rpc-flags)
    eval "flags=($line)"
    [ "${#flags[@]}" -gt 10 ] || { echo "no configure flags in debian/rules" >&2; exit 1; }
    (cd "$ngx" && ./configure "${flags[@]}" --add-module="$top" \
        > "$dst/configure.log" 2>&1) \
        || { tail -20 "$dst/configure.log"; exit 1; }
fi

start=$(date +%s)
nice make -s -C "$ngx" -f objs/Makefile -j"$jobs" binary > "$dst/make.log" 2>&1 \
    || { tail -30 "$dst/make.log"; exit 1; }
echo "static: built $ngx/objs/nginx in $(( $(date +%s) - start )) s (-j$jobs)"

bin=$ngx/objs/nginx
"$bin" -V 2>&1 | grep -q -- "--add-module=$top" \
    || { echo "$bin was not built with --add-module=$top" >&2; exit 1; }

# --- the subset of the suite, against that binary

TEST_NGINX_BINARY=$bin TEST_NGINX_STATIC=1 prove $tests
