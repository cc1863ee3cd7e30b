#!/bin/bash
# Installs what building, running and testing ngx_rpc_module needs, from
# Debian's packages.  Does nothing when everything is already there.
set -e

PKGS="nginx-core nginx-dev libyajl-dev libhiredis-dev build-essential
      redis-server wrk valgrind curl openssl libtest-base-perl
      libprotocol-websocket-perl libtext-diff-perl"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

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
