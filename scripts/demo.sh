#!/bin/sh
# `make run`: three demo app instances (build/testapp on 127.0.0.1:3001-3003)
# and miniproxyd on the bundled miniproxy.ini (127.0.0.1:8080) in front of them.
# Try:  curl localhost:8080/   (repeat: a1, a2, a3 answer in turn)
# Ctrl-C stops everything.
set -eu
BUILD=${1:-build}
pids=""
tmp=$(mktemp -d)

cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

for i in 1 2 3; do
    "$BUILD/testapp" -l 127.0.0.1 -p "300$i" -n "app$i" >"$tmp/app$i" &
    pids="$pids $!"
done

# The proxy's first health round must find every app listening: one that is
# not yet (or that failed to bind) would be down until `rise` probes later.
# testapp prints "PORT n" once it listens; wait for that, 5 s at most.
for i in 1 2 3; do
    n=0
    while ! grep -q '^PORT ' "$tmp/app$i"; do
        n=$((n + 1))
        if [ "$n" -gt 50 ]; then
            echo "demo: app$i does not listen on 127.0.0.1:300$i after 5 s (port taken?)" >&2
            exit 1
        fi
        sleep 0.1
    done
done

"$BUILD/miniproxyd" -t -c miniproxy.ini
echo "demo: three app instances on 127.0.0.1:3001-3003; proxy on http://127.0.0.1:8080/"
echo "demo: try  for i in 1 2 3 4 5 6; do curl -s localhost:8080/; done"
"$BUILD/miniproxyd" -c miniproxy.ini &
pids="$pids $!"
wait
