#!/bin/bash
# make test-deb: the package on this machine, as an operator would use it,
# and the machine put back as it was.  As root.
#
#   t/pkg/deb.sh build-deb/libnginx-mod-rpc_VERSION_ARCH.deb
#
# 1. make install (the module, mod-rpc.conf, 50-mod-rpc.conf), nginx -t with
#    the system's configuration, make uninstall; and into a DESTDIR with
#    PREFIX=/usr/local.
# 2. apt-get install ./the.deb; the module and its snippet where Debian puts
#    them; examples/rpc-quickstart.conf copied to /etc/nginx/conf.d/;
#    nginx -t; the demo upstream (t/lib/upstream.pl) started, the system
#    nginx started (systemd, else /etc/init.d/nginx, else /usr/sbin/nginx)
#    or reloaded when it was running; a call served through it.
# 3. apt-get purge; what the install pulled in purged too (only when nginx
#    itself was not installed before); nginx stopped when it was not running
#    before, reloaded otherwise; /etc/nginx, /var/log/nginx and the owners
#    of /var/lib/nginx/* as they were, checked.
#
# The quickstart's ports (127.0.0.1:8080, upstream 127.0.0.1:8545) are
# replaced by free ones in the copy when taken.  Starting the system nginx
# also starts its default site on port 80: that port must be free unless
# nginx runs already.  TEST_DEB_MANAGER=direct (or init.d, systemd) forces
# the way nginx is started.  Maintainer scripts may not start or reload nginx
# while the test runs (a policy-rc.d, unless the machine has one).
set -euo pipefail

deb=$(realpath "${1:?usage: t/pkg/deb.sh PACKAGE.deb}")
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "t/pkg/deb.sh: run as root" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
conf=/etc/nginx/conf.d/rpc-quickstart.conf
state=$(mktemp -d /tmp/ngx-rpc-deb.XXXXXX)
passed=0
failed=0

ok() {
    if [ "$1" = 0 ]; then
        passed=$((passed + 1)); echo "ok - $2"
    else
        failed=$((failed + 1)); echo "not ok - $2"
    fi
}
check() { local d=$1; shift; if "$@"; then ok 0 "$d"; else ok 1 "$d"; fi; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

listening() { ss -Hltn "sport = :$1" | grep -q .; }

free_port() {
    local p=$1
    while listening "$p"; do p=$((p + 1)); done
    echo "$p"
}

wait_port() {
    for _ in $(seq 100); do listening "$1" && return 0; sleep 0.1; done
    return 1
}

# the system nginx: running (master of /run/nginx.pid), started, stopped
pidfile=/run/nginx.pid
running() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'nginx: master'
}
manager=${TEST_DEB_MANAGER:-}       # systemd, init.d or direct: to force one
if [ -n "$manager" ]; then
    :
elif [ -d /run/systemd/system ]; then
    manager=systemd
elif [ -x /etc/init.d/nginx ]; then
    manager=init.d
else
    manager=direct
fi
nginx_service() {
    case $manager in
    systemd) systemctl "$1" nginx ;;
    init.d) /etc/init.d/nginx "$1" ;;
    direct)
        case $1 in
        start) /usr/sbin/nginx ;;
        stop) /usr/sbin/nginx -s quit ;;
        reload) /usr/sbin/nginx -s reload ;;
        esac ;;
    esac
}

# --- the machine as it was

if installed libnginx-mod-rpc; then
    echo "libnginx-mod-rpc is installed already: not touching it" >&2
    exit 1
fi
for f in /usr/lib/nginx/modules/ngx_rpc_module.so \
         /usr/share/nginx/modules-available/mod-rpc.conf \
         /etc/nginx/modules-enabled/50-mod-rpc.conf "$conf"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        echo "$f exists (make install?): not touching it" >&2
        exit 1
    fi
done

had_nginx=no; installed nginx && had_nginx=yes
was_running=no; [ "$had_nginx" = yes ] && running && was_running=yes
if [ "$was_running" = no ] && listening 80; then
    echo "port 80 is taken and the system nginx is not running: its default" \
         "site could not start" >&2
    exit 1
fi

snapshot_etc() {
    [ -d /etc/nginx ] || return 0
    find /etc/nginx -printf '%p %y %m %u:%g %l\n' | sort
    find /etc/nginx -type f -print0 | sort -z | xargs -0 -r md5sum
}
snapshot_etc > "$state/etc.before"
[ -d /etc/nginx ] && find /etc/nginx -type d -printf '%T@ %p\n' > "$state/etc.times"
[ -d /var/log/nginx ] && cp -a /var/log/nginx "$state/log.before"
[ -d /var/lib/nginx ] && find /var/lib/nginx -mindepth 1 -maxdepth 1 \
    -printf '%u:%g %m %p\n' > "$state/lib.before"


echo "# nginx installed: $had_nginx, running: $was_running ($manager)"

restore() {
    local rc=$?
    set +e
    echo "# restoring the machine"
    [ -f "$state/upstream.pid" ] && kill -- "-$(cat "$state/upstream.pid")" 2>/dev/null
    if [ "$was_running" = no ] && running; then
        nginx_service stop > /dev/null 2>&1
        for _ in $(seq 50); do running || break; sleep 0.1; done
    fi
    rm -f "$conf"
    make -s uninstall > /dev/null 2>&1
    if installed libnginx-mod-rpc || dpkg-query -W libnginx-mod-rpc > /dev/null 2>&1; then
        apt-get "${apt_opts[@]}" purge libnginx-mod-rpc > "$state/purge.log" 2>&1 \
            || tail -20 "$state/purge.log"
    fi
    if [ "$had_nginx" = no ] && [ -s "$state/new" ]; then
        # shellcheck disable=SC2046
        apt-get "${apt_opts[@]}" purge $(cat "$state/new") >> "$state/purge.log" 2>&1 \
            || tail -20 "$state/purge.log"
    fi
    [ "$was_running" = yes ] && running && nginx_service reload > /dev/null 2>&1
    [ "$own_policy" = yes ] && rm -f /usr/sbin/policy-rc.d
    if [ "$was_running" = no ]; then
        if [ -d "$state/log.before" ]; then
            for f in /var/log/nginx/*; do
                [ -e "$state/log.before/${f##*/}" ] || rm -rf "$f"
            done
            for f in "$state/log.before"/*; do
                [ -e "$f" ] || continue
                cmp -s "$f" "/var/log/nginx/${f##*/}" || cp -a "$f" /var/log/nginx/
            done
            touch -r "$state/log.before" /var/log/nginx
        elif [ "$had_nginx" = no ]; then
            rm -rf /var/log/nginx
        fi
        if [ -f "$state/lib.before" ]; then
            while read -r owner mode path; do
                [ -e "$path" ] && chown "$owner" "$path" && chmod "$mode" "$path"
            done < "$state/lib.before"
        fi
    else
        rm -f /var/log/nginx/rpc-access.log
        [ -d "$state/log.before" ] && touch -r "$state/log.before" /var/log/nginx
    fi
    [ -f "$state/etc.times" ] && while read -r t d; do
        [ -d "$d" ] && touch -m -d "@$t" "$d"
    done < "$state/etc.times"
    snapshot_etc > "$state/etc.after"
    diff "$state/etc.before" "$state/etc.after" > "$state/etc.diff"
    ok $? "restored: /etc/nginx as it was"
    [ -s "$state/etc.diff" ] && cat "$state/etc.diff"
    if [ "$was_running" = no ]; then
        ! running; ok $? "restored: the system nginx is not running"
    else
        running; ok $? "restored: the system nginx runs"
    fi
    for _ in $(seq 50); do listening "$port" || break; sleep 0.1; done
    ! listening "$port"; ok $? "restored: nothing listens on $port"
    now=no; installed nginx && now=yes
    [ "$now" = "$had_nginx" ]; ok $? "restored: nginx installed: $had_nginx"
    rm -rf "$state"
    echo "test-deb: $passed passed, $failed failed"
    [ "$rc" = 0 ] && [ "$failed" = 0 ] || exit 1
    exit 0
}
port=8080
own_policy=no
trap restore EXIT

if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=yes
fi

# --- 1. make install and uninstall (they build against nginx-dev)

if [ ! -d /usr/share/nginx/src ]; then
    echo "# no nginx-dev: make install not tried"
else
make -s all
dest=$state/dest
make -s install DESTDIR="$dest" PREFIX=/usr/local > /dev/null
check "make install DESTDIR PREFIX=/usr/local: the three files" \
    test "$(cd "$dest" && find . \( -type f -o -type l \) | sort | tr '\n' ' ')" \
      = "./etc/nginx/modules-enabled/50-mod-rpc.conf ./usr/local/lib/nginx/modules/ngx_rpc_module.so ./usr/local/share/nginx/modules-available/mod-rpc.conf "
check "make install PREFIX=/usr/local: load_module names the file" \
    grep -qx 'load_module /usr/local/lib/nginx/modules/ngx_rpc_module.so;' \
        "$dest/usr/local/share/nginx/modules-available/mod-rpc.conf"
make -s uninstall DESTDIR="$dest" PREFIX=/usr/local > /dev/null
check "make uninstall DESTDIR: nothing left" \
    test -z "$(find "$dest" \( -type f -o -type l \))"

make -s install > /dev/null
check "make install: load_module modules/ngx_rpc_module.so, linked as 50-mod-rpc.conf" \
    grep -qx 'load_module modules/ngx_rpc_module.so;' /etc/nginx/modules-enabled/50-mod-rpc.conf
rc=0; out=$(nginx -t 2>&1) || rc=$?
ok $rc "make install: nginx -t with the system's configuration"
[ $rc = 0 ] || echo "$out"
make -s uninstall > /dev/null
check "make uninstall: the three files gone" \
    test ! -e /usr/lib/nginx/modules/ngx_rpc_module.so \
      -a ! -e /usr/share/nginx/modules-available/mod-rpc.conf \
      -a ! -L /etc/nginx/modules-enabled/50-mod-rpc.conf
fi

# --- 2. the package

apt-get -s install "$deb" 2> /dev/null | sed -n 's/^Inst \([^ ]*\) .*/\1/p' \
    | grep -vx libnginx-mod-rpc > "$state/new" || true
echo "# apt-get install pulls in: $(tr '\n' ' ' < "$state/new")"
rc=0; apt-get "${apt_opts[@]}" install "$deb" > "$state/install.log" 2>&1 || rc=$?
ok $rc "apt-get install $(basename "$deb")"
[ $rc = 0 ] || { tail -30 "$state/install.log"; exit 1; }

check "the module in /usr/lib/nginx/modules" \
    test -f /usr/lib/nginx/modules/ngx_rpc_module.so
check "mod-rpc.conf: load_module modules/ngx_rpc_module.so" \
    grep -qx 'load_module modules/ngx_rpc_module.so;' \
        /usr/share/nginx/modules-available/mod-rpc.conf
check "enabled: /etc/nginx/modules-enabled/50-mod-rpc.conf" \
    test "$(readlink /etc/nginx/modules-enabled/50-mod-rpc.conf)" \
      = /usr/share/nginx/modules-available/mod-rpc.conf
examples=/usr/share/doc/libnginx-mod-rpc/examples
check "examples: quickstart.conf, rpc-quickstart.conf, ethereum.conf" \
    test -f $examples/quickstart.conf -a -f $examples/rpc-quickstart.conf \
      -a -f $examples/ethereum.conf

port=$(free_port 8080)
up=$(free_port 8545)
[ "$port" = 8080 ] || echo "# 8080 is taken: the quickstart listens on $port"
[ "$up" = 8545 ] || echo "# 8545 is taken: the demo upstream listens on $up"
sed -e "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/" \
    -e "s/server 127\.0\.0\.1:8545;/server 127.0.0.1:$up;/" \
    $examples/rpc-quickstart.conf > "$conf"

rc=0; out=$(nginx -t 2>&1) || rc=$?
ok $rc "nginx -t with the quickstart in /etc/nginx/conf.d"
[ $rc = 0 ] || echo "$out"

setsid perl t/lib/upstream.pl --port "$up" --name demo > "$state/upstream.log" 2>&1 &
echo $! > "$state/upstream.pid"
wait_port "$up" || { cat "$state/upstream.log"; exit 1; }

if [ "$was_running" = yes ]; then
    rc=0; nginx_service reload > "$state/service.log" 2>&1 || rc=$?
    ok $rc "the system nginx reloaded ($manager)"
else
    rc=0; nginx_service start > "$state/service.log" 2>&1 || rc=$?
    ok $rc "the system nginx started ($manager)"
fi
[ $rc = 0 ] || cat "$state/service.log"
wait_port "$port" || { cat "$state/service.log"; tail /var/log/nginx/error.log; }

want='{"jsonrpc":"2.0","id":1,"result":19}'
got=$(curl -sS -m 10 -d '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}' \
      "http://127.0.0.1:$port/rpc" 2>&1) || true
check "a call through the system nginx: $got" test "$got" = "$want"
got=$(curl -sS -m 10 -d '[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method":"foo.get","id":"5"}]' \
      "http://127.0.0.1:$port/rpc" 2>&1) || true
check "a batch through it: $got" \
    test "$got" = '[{"jsonrpc":"2.0","id":"1","result":7},{"jsonrpc":"2.0","id":"5","error":{"code":-32601,"message":"Method not found"}}]'
sleep 0.2
check "its access log, /var/log/nginx/rpc-access.log, has the call" \
    grep -q 'method=subtract id=1 ' /var/log/nginx/rpc-access.log

# --- 3. purge, and the machine as it was (restore, on exit)

if [ "$was_running" = no ]; then
    nginx_service stop > /dev/null 2>&1
    for _ in $(seq 50); do running || break; sleep 0.1; done
fi
rm -f "$conf"
rc=0; apt-get "${apt_opts[@]}" purge libnginx-mod-rpc > "$state/purge.log" 2>&1 || rc=$?
ok $rc "apt-get purge libnginx-mod-rpc"
[ $rc = 0 ] || tail -20 "$state/purge.log"
check "purged: the module, mod-rpc.conf and 50-mod-rpc.conf gone" \
    test ! -e /usr/lib/nginx/modules/ngx_rpc_module.so \
      -a ! -e /usr/share/nginx/modules-available/mod-rpc.conf \
      -a ! -L /etc/nginx/modules-enabled/50-mod-rpc.conf \
      -a ! -L /etc/nginx/modules-enabled/50-mod-rpc.conf.removed

