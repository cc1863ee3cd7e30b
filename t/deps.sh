#!/bin/bash
# Installs what building, running and testing ngx_rpc_module needs, from
# Debian's packages.  Does nothing when everything is already there.
#
#   t/deps.sh         everything: build, demo, tests (npm packages of t/js
#                     included; prometheus for promtool and a server that
#                     scrapes the gateway in t/018) and benchmarks
#   t/deps.sh demo    only what `make run` needs: nginx, the build, and
#                     the demo upstream (t/lib/upstream.pl: perl) and curl
#   t/deps.sh fuzz    the build, and clang, libFuzzer and dpkg-dev (for
#                     apt-get source) for fuzz/ and bench/parse_bench.c
#   t/deps.sh pkg     the build, and debhelper, dpkg-dev and lintian for
#                     make deb (dh-sequence-nginx comes with nginx-dev)
set -e

mode="${1:-all}"

# build and run: the module, the packaged nginx it loads into, the demo
PKGS="nginx-core nginx-dev libyajl-dev libhiredis-dev build-essential perl
      curl"

case "$mode" in
all)
    PKGS="$PKGS redis-server wrk valgrind openssl ca-certificates
          libtest-base-perl libprotocol-websocket-perl libtext-diff-perl
          prometheus" ;;
pkg)
    PKGS="$PKGS debhelper dpkg-dev lintian" ;;
demo)
    ;;
fuzz)
    PKGS="$PKGS clang libfuzzer-14-dev dpkg-dev" ;;
*)
    echo "usage: $0 [demo|fuzz|pkg]" >&2
    exit 2 ;;
esac

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done

# Node.js runs the real clients and node of t/012 (any recent Node.js will do)
if [ "$mode" = all ]; then
    command -v node > /dev/null || missing="$missing nodejs"
    command -v npm > /dev/null || missing="$missing npm"
fi

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages:$missing (run as root, or install them)" >&2
        exit 1
    fi

    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # the packaged nginx service is not ours: keep it from starting on install
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends $missing > /tmp/ngx-rpc-apt.log \
        || { tail -30 /tmp/ngx-rpc-apt.log; rm -f /usr/sbin/policy-rc.d; exit 1; }
    rm -f /usr/sbin/policy-rc.d
fi

[ "$mode" != all ] && exit 0

# ethers and ganache from the npm registry, at the versions of the lock file
js="$(dirname "$0")/js"
if [ ! -f "$js/node_modules/.package-lock.json" ] \
   || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]
then
    echo "installing: npm packages of t/js"
    npm ci --prefix "$js" --no-audit --no-fund > /tmp/ngx-rpc-npm.log 2>&1 \
        || { tail -30 /tmp/ngx-rpc-npm.log; exit 1; }
fi
