#!/bin/bash
# `make run`: starts the demo JSON-RPC upstream on 127.0.0.1:8545 and nginx
# with conf-examples/quickstart.conf on 127.0.0.1:8080.  `make stop` stops
# both.  Everything they write goes to run/.
set -e
cd "$(dirname "$0")/.."
top=$PWD
mkdir -p run

stop() {
    [ -f run/nginx.pid ] && kill "$(cat run/nginx.pid)" 2>/dev/null || true
    [ -f run/upstream.pid ] && kill -- "-$(cat run/upstream.pid)" 2>/dev/null || true
    rm -f run/nginx.pid run/upstream.pid
    sleep 0.3
}

wait_port() {
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

stop
[ "${1:-}" = stop ] && { echo "stopped"; exit 0; }

setsid perl t/lib/upstream.pl --port 8545 --name demo >> run/upstream.log 2>&1 &
echo $! > run/upstream.pid
wait_port 8545 || { echo "demo upstream did not start: see run/upstream.log"; exit 1; }

/usr/sbin/nginx -p "$top/" -c conf-examples/quickstart.conf
wait_port 8080 || { echo "nginx did not start: see run/error.log"; exit 1; }

cat <<MSG
ngx_rpc_module is listening on http://127.0.0.1:8080/rpc (demo upstream on
127.0.0.1:8545; logs in run/; stop both with 'make stop').  Try:

  curl -s -d '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}' http://127.0.0.1:8080/rpc

MSG
curl -s -d '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}' \
     http://127.0.0.1:8080/rpc
echo
