#!/bin/sh
# scripts/tls-scan.sh [BUILD]: scans a local miniproxyd's TLS listener with
# Debian's testssl.sh (or sslscan when testssl.sh cannot be had), to check
# what it offers: only TLS 1.2 and 1.3, only the configured suites, no known
# weakness. It makes a test CA and certificates (tests/tls_certs.sh), starts
# build/testapp and miniproxyd on ephemeral ports of 127.0.0.1 with the
# default [tls] settings, scans, and stops both. Installs the scanner (as
# root) if it is missing. The scanner's report goes to stdout; the exit
# status is the scanner's.
#
#   make && sh scripts/tls-scan.sh
set -eu
BUILD=${1:-build}
tmp=$(mktemp -d)
pids=""

cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

scanner=""
if command -v testssl >/dev/null 2>&1; then
    scanner=testssl
elif command -v sslscan >/dev/null 2>&1; then
    scanner=sslscan
elif [ "$(id -u)" = 0 ]; then
    echo "tls-scan: installing testssl.sh" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    if apt-get install -y -qq --no-install-recommends testssl.sh bsdextrautils >&2; then
        scanner=testssl
    else
        apt-get install -y -qq --no-install-recommends sslscan >&2
        scanner=sslscan
    fi
else
    echo "tls-scan: needs testssl.sh or sslscan: sudo apt-get install -y testssl.sh" >&2
    exit 1
fi

mkdir "$tmp/certs"
sh tests/tls_certs.sh "$tmp/certs"

# waitfor FILE PATTERN: up to 5 s for PATTERN to appear in FILE
waitfor() {
    n=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        n=$((n + 1))
        if [ "$n" -gt 50 ]; then
            echo "tls-scan: no \"$2\" in $1 after 5 s:" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
}

"$BUILD/testapp" -l 127.0.0.1 -p 0 -n app >"$tmp/app.out" &
pids="$pids $!"
waitfor "$tmp/app.out" '^PORT '
app_port=$(sed -n 's/^PORT //p' "$tmp/app.out")

cat >"$tmp/miniproxy.ini" <<EOF
[proxy]
listen = 127.0.0.1:0 tls
workers = 4
upstream = app
access_log = off
error_log = $tmp/error.log
[tls]
certificate = $tmp/certs/combined.pem
certificate = $tmp/certs/rsa.crt key=$tmp/certs/rsa.key
hsts = 31536000
[upstream app]
server = 127.0.0.1:$app_port
health_check = off
EOF
"$BUILD/miniproxyd" -c "$tmp/miniproxy.ini" &
pids="$pids $!"
waitfor "$tmp/error.log" 'started:'
port=$(sed -n 's/.*listening on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$tmp/error.log" | head -n 1)
echo "tls-scan: miniproxyd on 127.0.0.1:$port, scanning with $scanner" >&2

rc=0
if [ "$scanner" = testssl ]; then
    # protocols, cipher lists per protocol, server preference, forward secrecy, vulnerabilities
    testssl --quiet --color 0 --warnings off --ip one --fast --sneaky \
        -p -e -P -f -U -h "127.0.0.1:$port" || rc=$?
else
    sslscan --no-colour --show-certificate "127.0.0.1:$port" || rc=$?
fi
exit "$rc"
