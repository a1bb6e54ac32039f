#!/usr/bin/env bash
# docker-py's own integration tests against a berth daemon: a conformance measure, not part of CI
# (it needs the docker-py source and prints pass/fail counts per module; failures name what berth
# does not do yet).
#
#   bash scripts/docker-py-suite.sh [DOCKER_PY_CHECKOUT] [MODULE ...]
#
# DOCKER_PY_CHECKOUT defaults to a clone of github.com/docker/docker-py at tag 7.1.0 (the version in
# requirements-dev.txt) under $WORK. The daemon runs on its own socket, data root and cgroup parent
# under $WORK and is stopped (its containers removed) at the end. There is no registry here, so the
# test image names docker-py expects are busybox imported under those names.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
WORK=${WORK:-/tmp/berth-docker-py}
SRC=${1:-$WORK/docker-py}
shift || true
MODULES=("$@")
[ ${#MODULES[@]} -gt 0 ] || MODULES=(api_client_test api_container_test api_exec_test api_image_test
                                     api_network_test models_containers_test models_images_test
                                     models_networks_test client_test errors_test)
mkdir -p "$WORK/run"
if [ ! -d "$SRC" ]; then
    git clone -q --branch 7.1.0 https://github.com/docker/docker-py "$SRC"
fi
if [ ! -x "$WORK/venv/bin/pytest" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q docker==7.1.0 pytest pytest-timeout paramiko
fi
SOCK="unix://$WORK/run/berth.sock"
# its own bridge and subnets (override with BERTH_NET_FLAGS), so it runs beside other berth daemons
read -r -a NET_FLAGS <<< "${BERTH_NET_FLAGS:---bridge berth-dpy --bip 10.197.0.1/24 --default-address-pool base=10.197.16.0/20,size=24}"
"$HERE/.venv/bin/python" "$HERE/cli.py" daemon --data-root "$WORK/root" --pidfile "$WORK/run/pid" \
    --cgroup-parent "${BERTH_CGROUP_PARENT:-berth-docker-py}" -H "$SOCK" "${NET_FLAGS[@]}" \
    >"$WORK/run/daemon.log" 2>&1 &
stop_daemon() {
    ids=$("$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || "$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" rm -f $ids >/dev/null 2>&1 || true
    nets=$("$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" network ls -q -f type=custom 2>/dev/null || true)
    [ -z "$nets" ] || "$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" network rm $nets >/dev/null 2>&1 || true
    kill "$(cat "$WORK/run/pid")" 2>/dev/null || true
}
trap stop_daemon EXIT
for _ in $(seq 50); do "$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" version >/dev/null 2>&1 && break; sleep 0.2; done
[ -f "$WORK/busybox.tar" ] || bash scripts/make-busybox-tar.sh "$WORK/busybox.tar" >/dev/null
"$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" import "$WORK/busybox.tar" alpine:3.10 >/dev/null
for name in alpine:latest busybox:latest busybox:buildroot-2014.02 hello-world:latest; do
    "$HERE/.venv/bin/python" "$HERE/cli.py" -H "$SOCK" tag alpine:3.10 "$name"
done
cd "$SRC"
for module in "${MODULES[@]}"; do
    result=$(DOCKER_HOST=$SOCK "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider --timeout 60 \
             "tests/integration/$module.py" 2>&1 | tail -1 || true)
    printf '%-28s %s\n' "$module" "$result"
done
