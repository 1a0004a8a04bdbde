#!/bin/sh
# `make run`: three demo app instances (build/testapp on 127.0.0.1:3001-3003)
# and miniproxyd on the bundled miniproxy.ini (127.0.0.1:8080) in front of them.
# Try:  curl localhost:8080/   (repeat: a1, a2, a3 answer in turn)
# Ctrl-C stops everything.
set -eu
BUILD=${1:-build}
pids=""

cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

for i in 1 2 3; do
    "$BUILD/testapp" -l 127.0.0.1 -p "300$i" -n "app$i" >/dev/null &
    pids="$pids $!"
done

"$BUILD/miniproxyd" -t -c miniproxy.ini
echo "demo: three app instances on 127.0.0.1:3001-3003; proxy on http://127.0.0.1:8080/"
echo "demo: try  for i in 1 2 3 4 5 6; do curl -s localhost:8080/; done"
"$BUILD/miniproxyd" -c miniproxy.ini &
pids="$pids $!"
wait
