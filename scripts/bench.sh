#!/usr/bin/env bash
# bench.sh: throughput, latency and memory of miniproxyd next to nginx and
# HAProxy, all three proxying to the same upstreams on loopback. Run by hand
# (never in CI) from the repository root or anywhere: scripts/bench.sh
#
# What it does
#   - installs nginx-light, haproxy, wrk, curl and openssl if missing (as root);
#   - starts one nginx with three upstream servers on free loopback ports,
#     each serving a 100-byte body at /, a 1 MiB file at /1m and, with
#     STREAM=1, a 256 MiB file at /256m;
#   - starts three proxies in front of them, on free ports too:
#       miniproxyd (build/miniproxyd, MP_WORKERS workers, access log off),
#       nginx      (PROXY_CPUS workers, upstream keepalive 256, HTTP/1.1,
#                   proxy_buffering off with a 16 KiB buffer: it streams
#                   like the others instead of buffering whole responses),
#       HAProxy    (PROXY_CPUS threads, roundrobin, http-reuse always,
#                   option splice-auto);
#     access logs are off everywhere; miniproxyd is skipped, with a message,
#     when build/miniproxyd is missing;
#   - with HTTPS=1, makes one ECDSA P-256 certificate (openssl req, in the
#     temp dir: no key lives in the tree) and gives each proxy a second
#     listener that terminates TLS with it and proxies plain HTTP to the same
#     upstreams: TLS 1.2 and 1.3 only, the same TLS 1.2 ciphers and TLS 1.3
#     suites (Mozilla "intermediate", client preference), session resumption
#     on (nginx: shared cache 4m and tickets; HAProxy: its defaults, which
#     cache sessions and issue tickets; miniproxyd: [tls] session_cache = 4m,
#     session_tickets = on). miniproxyd gets its TLS listener only when its
#     `-t` accepts that configuration; otherwise it is skipped in the HTTPS
#     scenarios, with the reason, and nginx and HAProxy still run them. The
#     log names the protocol, cipher and key exchange each proxy negotiates
#     with OpenSSL's default client offer, which wrk and s_time make too;
#   - with PIN=1 (pinned mode), runs each proxy alone on CPU 1 (taskset on
#     nginx's master, HAProxy and miniproxyd's master before they fork, so
#     workers and the health checker inherit it; nginx 1 worker, HAProxy 1
#     thread unless PROXY_CPUS says otherwise) and everything else on CPU 0:
#     wrk, s_time, the upstream nginx, the idle clients and this script with
#     its samplers. Each proxy's capacity on one core is then measured without
#     sharing that core with the load. PIN=0 (shared mode) pins nothing;
#   - runs each scenario against each proxy, interleaved (mp, nginx, haproxy,
#     mp, ...) so drifts of the machine hit all three, REPEAT times over the
#     scenarios, DUR seconds each:
#       small-cN   100-byte responses on N keep-alive connections (N in CONNS)
#       close-c16  100-byte responses, "Connection: close" on every request
#       1mib-c16   1 MiB responses on 16 keep-alive connections
#       256mib-c1  with STREAM=1: one connection streaming 256 MiB responses,
#                  one after the other (CPU us/req is then per stream)
#       idleN-c16  100-byte responses on 16 keep-alive connections while N
#                  other keep-alive clients (IDLE, default 1000) sent one
#                  request each and sit idle: what a prefork proxy dreads
#     and with HTTPS=1:
#       https-small-c16, https-small-c64   as small-cN, over TLS
#       https-1mib-c16     as 1mib-c16, over TLS
#       https-full-c16     16 clients, each a loop of new connection, full
#                          handshake, one HTTP/1.0 GET of /, close:
#                          `openssl s_time -new`, 16 in parallel. Not wrk:
#                          wrk resumes the session when it reconnects (checked
#                          with nginx's $ssl_session_reused: all but the first
#                          connections were resumed), so it cannot measure
#                          full handshakes;
#       https-resumed-c16  the same with `openssl s_time -reuse`: every
#                          connection resumes a session that an earlier one
#                          of the same client made.
#     The small, close, 1mib and idle scenarios use `wrk -t1 -c N --latency`;
#   - while the load runs, samples the proxy's memory: the sum of Pss (from
#     /proc/PID/smaps_rollup) over its master and all its workers, so pages
#     shared between forked workers are counted once, not once per worker;
#   - reads the CPU time of all the proxy's processes just before and just
#     after each run, without cgroups: for the first process and every
#     descendant alive at that moment, the run time of each of its threads
#     (/proc/PID/task/TID/schedstat, in ns: /proc/PID/stat's utime and stime
#     are whole clock ticks, and with hundreds of workers that each run a few
#     ms the rounding would lose most of it) plus cutime + cstime from
#     /proc/PID/stat, which hold what the children it reaped used, so a
#     worker that exits during the run still counts (through its master). A
#     child reaped while the snapshot is read would count twice or not at
#     all, so the master's cutime + cstime is read before and after the
#     others and the snapshot is taken again when they differ. The load side
#     (the load generator's user + system time, from bash's `time`, plus the
#     upstream nginx and the sampler, measured like the proxy) and the whole
#     machine's busy time (/proc/stat) are read around the run too;
#   - after each run checks that the upstreams served about as many requests
#     as the clients completed (nginx stub_status) and warns when none
#     completed, when errors occurred, or when the counts disagree; it also
#     samples the proxy's accept queue and warns when connections stay in it.
#     That matters for a prefork proxy: with fewer workers than wrk
#     connections the surplus connections are never accepted, wrk reports no
#     error at all for them, and its figures look fine while those clients
#     starve. For s_time runs it also warns when one client completed under a
#     quarter of the average, when a full-handshake run resumed any session,
#     or when a resumed run made over 1% full handshakes.
#
# Reading the table
#   The line above it says which mode (pinned or shared) produced it.
#   req/s     median over the REPEAT runs of wrk's Requests/sec; for
#             https-full and https-resumed: handshakes/s, i.e. connections
#             (one request each) per second, summed over the s_time clients,
#             each one's count divided by its own wall time
#   MiB/s     median Transfer/sec, shown for the 1 MiB and 256 MiB scenarios only
#   p50, p99  medians of wrk's 50% and 99% latency, in milliseconds ("-"
#             for the s_time scenarios: s_time gives no latencies)
#   errors    summed over the runs: socket errors (connect, read, write,
#             timeout) plus non-2xx/3xx responses; for s_time runs, the
#             clients that failed (s_time stops at its first failed
#             connection). Anything but 0 is suspect.
#   accept q  most connections seen waiting in the proxy's accept queue
#             (sampled with ss). A prefork proxy with fewer free workers than
#             connections leaves the rest there, and wrk does not report them
#             as errors, so the script warns when the queue stays non-empty
#             (wrk scenarios; with s_time, whose clients reconnect all the
#             time, it checks each client's count instead).
#   CPU us/req  median of: CPU time of all the proxy's processes over the run
#             (see above) divided by the requests (handshakes) completed, in
#             microseconds. It includes kernel time charged to the proxy, and
#             on loopback a sender's system time includes the receiving side's
#             network processing, alike for all three proxies.
#   proxy CPU %  median CPU time of the proxy over the run's wall time, in %
#             of one CPU. Pinned mode: near 100 means the proxy's core limited
#             the figure.
#   load CPU %   the same for the load side: the load generator (wrk or the
#             s_time clients), the upstream nginx and this script's memory and
#             queue sampler. Pinned mode: they share CPU 0, so near 100 means
#             CPU 0, not the proxy, limited the figure.
#   others CPU %   the rest of the machine's busy time over the run (all
#             CPUs, from /proc/stat, minus the proxy and the load side), in %
#             of one CPU: whatever else runs on the machine (unpinned, so in
#             pinned mode it lands on either CPU). Above OTHERS_MAX the script
#             warns that the run was disturbed.
#   peak PSS  highest memory sample of that proxy (all its processes), MiB
#   mp/nginx, mp/haproxy   miniproxyd's req/s divided by the other proxy's:
#             above 1.00 miniproxyd is faster. In shared mode everything (load,
#             proxies, upstreams) shares the same CPUs, so compare ratios, not
#             absolutes.
#   CPU mp/nginx   miniproxyd's CPU us/req divided by nginx's: below 1.00
#             miniproxyd spends less CPU per request.
#
# Environment
#   DUR=10          seconds per run
#   REPEAT=2        rounds over all scenarios
#   CONNS="1 16 64 256"   connection counts of the small-response scenarios
#   MP_WORKERS=300  miniproxyd workers: a number (keep it above the largest of
#                   CONNS), or auto for the adaptive pool (its defaults)
#   MP_ROUTES=0     [route] sections added to miniproxyd's configuration, none
#                   matching the benchmark's requests (what routing costs per request)
#   IDLE=1000       idle keep-alive clients of the idle scenario (0: skip it)
#   HTTPS=0         1 adds the five https-* scenarios
#   STREAM=0        1 adds the 256mib-c1 scenario
#   MP_LISTEN_OPTS= options after miniproxyd's listen addresses, e.g.
#                   MP_LISTEN_OPTS=nodeferred to measure without deferred accept
#   MP_EXTRA=       lines added to miniproxyd's [proxy] section ("\n" between
#                   them), e.g. MP_EXTRA="splice = off" to measure the copy path
#   PIN=0           1: pinned mode (proxies on CPU 1, the rest on CPU 0; needs
#                   CPUs 0 and 1 in this process's affinity)
#   MP_BIN=build/miniproxyd
#   PROXY_CPUS=$(nproc), or 1 with PIN=1   nginx worker_processes and HAProxy
#                   nbthread, of the proxies and of the upstream nginx
#   WARMUP=1        seconds of warm-up load per proxy and listener before
#                   measuring (0: none)
#   KEEP=0          1 keeps the temp dir (configs, logs, raw wrk and s_time
#                   outputs, results.tsv)
#   OUT=            also write the markdown table to this file
#   OTHERS_MAX=25   "others CPU %" above which a run is called disturbed
set -Eeuo pipefail
# set -e ends the script at the first failing command: say which, not silently.
trap 'say "bench.sh: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)"' ERR

export PATH="$PATH:/usr/sbin:/sbin"

DUR=${DUR:-10}
REPEAT=${REPEAT:-2}
CONNS=${CONNS:-"1 16 64 256"}
MP_WORKERS=${MP_WORKERS:-300}
MP_ROUTES=${MP_ROUTES:-0}
IDLE=${IDLE:-1000}
HTTPS=${HTTPS:-0}
STREAM=${STREAM:-0}
MP_EXTRA=${MP_EXTRA:-}
MP_LISTEN_OPTS=${MP_LISTEN_OPTS:-}
PIN=${PIN:-0}
if [[ $PIN == 1 ]]; then PROXY_CPUS=${PROXY_CPUS:-1}; else PROXY_CPUS=${PROXY_CPUS:-$(nproc)}; fi
WARMUP=${WARMUP:-1}
KEEP=${KEEP:-0}
OUT=${OUT:-}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-0.5}
OTHERS_MAX=${OTHERS_MAX:-25}
NCPUS=$(nproc) # before PIN=1 narrows this script's affinity to one CPU

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MP_BIN=${MP_BIN:-$ROOT/build/miniproxyd}

# Pinned mode: the proxies' CPU and the one of everything else.
PROXY_CPU=1
LOAD_CPU=0

# The TLS settings every proxy gets: Mozilla's "intermediate" profile, which
# is also miniproxyd's default.
TLS12_CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
TLS12_CIPHERS+=:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384
TLS12_CIPHERS+=:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
TLS13_SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

PIDS=()     # every long-running process we started, killed on exit
MP_PID=""   # the miniproxyd master, once launch_mp started it
CLIENTS=()  # the s_time clients of a run, killed on exit
SAMPLER=""  # the memory sampler running during a run
HOLDER=""   # the idle-clients holder running during a run
PROXY_RUN=() # the command prefix that starts a proxy (taskset in pinned mode)
WARNINGS=()
T=""

say() { printf '%s\n' "$*" >&2; }
die() { say "bench.sh: $*"; exit 1; }
warn() {
    say "WARNING: $*"
    WARNINGS+=("$*")
}

# ---- cleanup: kill by PID everything we started ---------------------------

# Prints <root pid> and all its descendants, one per line.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { kids[$2] = kids[$2] " " $1 }
        END {
            q[1] = root; n = 1
            for (i = 1; i <= n; i++) {
                print q[i]
                m = split(kids[q[i]], a, " ")
                for (j = 1; j <= m; j++) q[++n] = a[j]
            }
        }'
}

# True if any of the given PIDs still runs (zombies waiting for us to reap them do not).
any_alive() {
    ps -o stat= -p "$(IFS=,; echo "$*")" 2>/dev/null | grep -qv '^Z'
}

cleanup() {
    local rc=$? all=() tree=() p i
    set +e
    trap - EXIT INT TERM
    if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null; fi
    if [[ -n $HOLDER ]]; then kill "$HOLDER" 2>/dev/null; fi
    for p in "${CLIENTS[@]}"; do
        mapfile -t tree < <(tree_pids "$p")
        kill "${tree[@]}" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        mapfile -t tree < <(tree_pids "$p")
        all+=("${tree[@]}")
    done
    if ((${#all[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null
        for i in $(seq 1 50); do
            any_alive "${all[@]}" || break
            sleep 0.1
        done
        for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null; done
        wait 2>/dev/null
    fi
    if [[ -n $T && -d $T ]]; then
        if [[ $KEEP == 1 ]]; then say "kept $T"; else rm -rf "$T"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- prerequisites ---------------------------------------------------------

install_missing() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx-light)
    command -v haproxy >/dev/null || need+=(haproxy)
    command -v wrk >/dev/null || need+=(wrk)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3)
    command -v openssl >/dev/null || need+=(openssl)
    command -v taskset >/dev/null || need+=(util-linux)
    ((${#need[@]} == 0)) && return 0
    if [[ $(id -u) != 0 ]]; then
        die "missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}"
    fi
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
}

# ---- ports -----------------------------------------------------------------

PICKED=" "
# Sets variable <$1> to a free loopback TCP port below the ephemeral range, so
# it cannot collide with the client ports of the many connections wrk opens.
pick_port() {
    local low hi p _
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    hi=$((low > 12000 ? low : 61000))
    for _ in $(seq 1 500); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000)))
        [[ $PICKED == *" $p "* ]] && continue
        if command -v ss >/dev/null; then
            [[ -n $(ss -Htan "( sport = :$p )") ]] && continue
        elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            continue
        fi
        PICKED+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "found no free port"
}

# Waits until <scheme, default http>://127.0.0.1:<port>/ answers 200 while
# <pid> lives (https: without verifying the certificate, which is ours).
# Returns 1 if not in 10 s.
wait_http() {
    local port=$1 pid=$2 scheme=${3:-http} i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 \
            "$scheme://127.0.0.1:$port/" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---- the upstreams: one nginx, three servers --------------------------------

NGINX_TEMPS='client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;'

start_upstreams() {
    local d=$T/upstream i
    mkdir -p "$d/tmp" "$d/www"
    head -c 1048576 /dev/urandom >"$d/www/1m"
    if [[ $STREAM == 1 ]]; then
        head -c 268435456 /dev/urandom >"$d/www/256m"
    fi
    pick_port UP1
    pick_port UP2
    pick_port UP3
    # 100 bytes: "hello from upstream\n" and padding.
    SMALL_BODY="hello from upstream $(printf '%079d' 0)"
    {
        cat <<EOF
daemon off;
worker_processes $PROXY_CPUS;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    $NGINX_TEMPS
    keepalive_requests 10000000;
    keepalive_timeout 120s;
EOF
        for i in 1 2 3; do
            local port_var=UP$i
            cat <<EOF
    server {
        listen 127.0.0.1:${!port_var};
        location = / { default_type text/plain; return 200 "$SMALL_BODY\n"; }
        location = /health { default_type text/plain; return 200 "ok\n"; }
        location = /1m { root $d/www; default_type application/octet-stream; }
        location = /256m { root $d/www; default_type application/octet-stream; }
        location = /__requests { stub_status; }
    }
EOF
        done
        echo "}"
    } >"$d/nginx.conf"
    nginx -t -q -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" || die "upstream nginx config"
    nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" &
    PIDS+=($!)
    UP_PID=$!
    for i in "$UP1" "$UP2" "$UP3"; do
        wait_http "$i" "$UP_PID" || die "upstream nginx did not start: $(tail -3 "$d/error.log")"
    done
    say "upstreams: nginx pid $UP_PID on 127.0.0.1:$UP1, :$UP2, :$UP3, $PROXY_CPUS workers"
}

# Total requests the upstream nginx has seen (all three servers, all workers).
upstream_requests() {
    { curl -s --max-time 5 "http://127.0.0.1:$UP1/__requests" || true; } |
        awk 'NR == 3 { print $3 }'
}

# ---- TLS ----------------------------------------------------------------------

# Makes the one ECDSA P-256 certificate all proxies use, valid for two days,
# in $T/tls: site.pem (certificate), site.key (key), site-both.pem (both, for
# HAProxy). Made at run time so that no private key is ever committed.
make_certificate() {
    local d=$T/tls
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
        -keyout "$d/site.key" -out "$d/site.pem" >"$d/req.log" 2>&1 ||
        die "openssl req could not make the certificate: $(tail -3 "$d/req.log")"
    chmod 600 "$d/site.key"
    cat "$d/site.pem" "$d/site.key" >"$d/site-both.pem"
    chmod 600 "$d/site-both.pem"
}

# Prints "protocol cipher key-exchange" as negotiated on 127.0.0.1:<port> by
# openssl s_client with its default offer (the one wrk and s_time make).
tls_negotiated() {
    { openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null || true; } | awk '
        /^Server Temp Key:/ { sub(/^Server Temp Key: /, ""); sub(/,.*/, ""); kx = $0 }
        /Cipher is/ { proto = $2; sub(/,$/, "", proto); cipher = $NF }
        END { printf "%s %s %s\n", proto ? proto : "?", cipher ? cipher : "?", kx ? kx : "?" }'
}

# ---- the proxies ------------------------------------------------------------

declare -A PORT TLS_PORT PID
PROXIES=()
MP_TLS_SKIP="" # why miniproxyd does not run the HTTPS scenarios, if it does not

# Starts miniproxyd with configuration <ini> (copied to miniproxy.ini) and
# sets MP_PID. Returns 1, after stopping it, if it does not answer on
# 127.0.0.1:$MP_PORT within 10 s.
launch_mp() {
    local d=$T/miniproxyd i
    cp "$1" "$d/miniproxy.ini"
    "${PROXY_RUN[@]}" "$MP_BIN" -c "$d/miniproxy.ini" >"$d/stdout.log" 2>&1 &
    MP_PID=$!
    PIDS+=("$MP_PID")
    wait_http "$MP_PORT" "$MP_PID" && return 0
    kill -TERM "$MP_PID" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$MP_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

start_miniproxyd() {
    local d=$T/miniproxyd ini pid
    if [[ ! -x $MP_BIN ]]; then
        say "SKIPPING miniproxyd: $MP_BIN not found (build it with make); benchmarking nginx and HAProxy only"
        MP_TLS_SKIP="$MP_BIN not found"
        return 0
    fi
    mkdir -p "$d"
    pick_port MP_PORT
    cat >"$d/plain.ini" <<EOF
[proxy]
listen = 127.0.0.1:$MP_PORT${MP_LISTEN_OPTS:+ $MP_LISTEN_OPTS}
workers = $MP_WORKERS
upstream = app
error_log = $d/mp-error.log
access_log = off
log_level = warn
keepalive_timeout = 65s
keepalive_requests = 100000
$(printf '%b' "$MP_EXTRA")

[upstream app]
server = 127.0.0.1:$UP1
server = 127.0.0.1:$UP2
server = 127.0.0.1:$UP3
keepalive = 32
health_path = /health
EOF
    # MP_ROUTES=N: N routes that the benchmark's requests do not match (their
    # own hosts), so each request pays for matching against all of them.
    for ((r = 1; r <= MP_ROUTES; r++)); do
        printf '\n[route r%d]\nhost = r%d.example.com *.r%d.example.com\npath = /r%d/\nupstream = app\n' \
            "$r" "$r" "$r" "$r" >>"$d/plain.ini"
    done
    ini=$d/plain.ini
    if [[ $HTTPS == 1 ]]; then
        pick_port MP_TLS_PORT
        # The same configuration plus a TLS listener and the [tls] section
        # (the keys and values of the TLS termination's reference
        # configuration), used only if miniproxyd's -t accepts it.
        awk -v tls="listen = 127.0.0.1:$MP_TLS_PORT tls${MP_LISTEN_OPTS:+ $MP_LISTEN_OPTS}" \
            '{ print } /^listen = / && !done { print tls; done = 1 }' "$d/plain.ini" >"$d/tls.ini"
        cat >>"$d/tls.ini" <<EOF

[tls]
certificate = $T/tls/site.pem key=$T/tls/site.key
protocols = TLSv1.2 TLSv1.3
ciphers = $TLS12_CIPHERS
ciphersuites = $TLS13_SUITES
session_cache = 4m
session_tickets = on
EOF
        if "$MP_BIN" -t -c "$d/tls.ini" >"$d/tls-check.log" 2>&1; then
            ini=$d/tls.ini
        else
            MP_TLS_SKIP="\`miniproxyd -t\` rejects the TLS configuration: "
            MP_TLS_SKIP+=$(awk '!/test failed/ { print; exit }' "$d/tls-check.log")
            say "SKIPPING miniproxyd in the HTTPS scenarios: $MP_TLS_SKIP"
            say "    (nginx and HAProxy still run them; the configuration tried is $d/tls.ini)"
        fi
    fi
    if [[ $ini == "$d/tls.ini" ]] && ! launch_mp "$ini"; then
        MP_TLS_SKIP="its -t accepted the TLS configuration, but it did not answer on"
        MP_TLS_SKIP+=" 127.0.0.1:$MP_PORT with it within 10 s"
        say "SKIPPING miniproxyd in the HTTPS scenarios: $MP_TLS_SKIP; trying without TLS"
        { tail -5 "$d/stdout.log" "$d/mp-error.log" 2>/dev/null || true; } | sed 's/^/    /' >&2
        ini=$d/plain.ini
        launch_mp "$ini" || MP_PID=""
    elif [[ $ini == "$d/plain.ini" ]]; then
        launch_mp "$ini" || MP_PID=""
    fi
    if [[ -z $MP_PID ]]; then
        say "SKIPPING miniproxyd: it did not answer on 127.0.0.1:$MP_PORT within 10 s"
        { tail -5 "$d/stdout.log" "$d/mp-error.log" 2>/dev/null || true; } | sed 's/^/    /' >&2
        MP_TLS_SKIP="it did not start"
        return 0
    fi
    pid=$MP_PID
    PORT[mp]=$MP_PORT
    PID[mp]=$pid
    PROXIES+=(mp)
    say "miniproxyd: pid $pid on 127.0.0.1:$MP_PORT, $MP_WORKERS workers"
    if [[ $ini == "$d/tls.ini" ]]; then
        if wait_http "$MP_TLS_PORT" "$pid" https; then
            TLS_PORT[mp]=$MP_TLS_PORT
            say "miniproxyd: TLS on 127.0.0.1:$MP_TLS_PORT: $(tls_negotiated "$MP_TLS_PORT")"
        else
            MP_TLS_SKIP="its -t accepted the TLS configuration but https://127.0.0.1:$MP_TLS_PORT/"
            MP_TLS_SKIP+=" did not answer 200 within 10 s"
            say "SKIPPING miniproxyd in the HTTPS scenarios: $MP_TLS_SKIP"
        fi
    fi
}

start_nginx_proxy() {
    local d=$T/nginx
    mkdir -p "$d/tmp"
    local tls="" pid
    pick_port NG_PORT
    if [[ $HTTPS == 1 ]]; then
        pick_port NG_TLS_PORT
        tls="listen 127.0.0.1:$NG_TLS_PORT ssl;
        ssl_certificate $T/tls/site.pem;
        ssl_certificate_key $T/tls/site.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $TLS12_CIPHERS;
        ssl_conf_command Ciphersuites $TLS13_SUITES;
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:SSL:4m;
        ssl_session_timeout 1h;
        ssl_session_tickets on;"
    fi
    cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes $PROXY_CPUS;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    $NGINX_TEMPS
    keepalive_requests 10000000;
    keepalive_timeout 65s;
    upstream app {
        server 127.0.0.1:$UP1;
        server 127.0.0.1:$UP2;
        server 127.0.0.1:$UP3;
        keepalive 256;               # idle upstream connections kept per worker
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$NG_PORT;
        $tls
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Stream through one fixed 16 KiB buffer, as HAProxy (bufsize 16k)
            # and miniproxyd do, instead of buffering whole responses.
            proxy_buffering off;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
        }
    }
}
EOF
    nginx -t -q -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" || die "nginx proxy config"
    "${PROXY_RUN[@]}" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" &
    pid=$!
    PIDS+=("$pid")
    wait_http "$NG_PORT" "$pid" || die "nginx proxy did not start: $(tail -3 "$d/error.log")"
    PORT[nginx]=$NG_PORT
    PID[nginx]=$pid
    PROXIES+=(nginx)
    say "nginx: pid $pid on 127.0.0.1:$NG_PORT, $PROXY_CPUS workers"
    if [[ $HTTPS == 1 ]]; then
        wait_http "$NG_TLS_PORT" "$pid" https ||
            die "nginx proxy does not answer on https://127.0.0.1:$NG_TLS_PORT/"
        TLS_PORT[nginx]=$NG_TLS_PORT
        say "nginx: TLS on 127.0.0.1:$NG_TLS_PORT: $(tls_negotiated "$NG_TLS_PORT")"
    fi
}

start_haproxy() {
    local d=$T/haproxy
    mkdir -p "$d"
    local tls_global="" tls_bind="" pid
    pick_port HA_PORT
    if [[ $HTTPS == 1 ]]; then
        pick_port HA_TLS_PORT
        # Session cache and tickets: HAProxy's defaults (both on).
        tls_global="ssl-default-bind-ciphers $TLS12_CIPHERS
    ssl-default-bind-ciphersuites $TLS13_SUITES
    ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 prefer-client-ciphers"
        tls_bind="bind 127.0.0.1:$HA_TLS_PORT ssl crt $T/tls/site-both.pem"
    fi
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread $PROXY_CPUS
    maxconn 4096
    $tls_global

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 65s
    http-reuse always
    option splice-auto

frontend fe
    bind 127.0.0.1:$HA_PORT
    $tls_bind
    default_backend app

backend app
    balance roundrobin
    server s1 127.0.0.1:$UP1
    server s2 127.0.0.1:$UP2
    server s3 127.0.0.1:$UP3
EOF
    haproxy -c -q -f "$d/haproxy.cfg" || die "haproxy config"
    "${PROXY_RUN[@]}" haproxy -db -f "$d/haproxy.cfg" >"$d/haproxy.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_http "$HA_PORT" "$pid" || die "haproxy did not start: $(tail -3 "$d/haproxy.log")"
    PORT[haproxy]=$HA_PORT
    PID[haproxy]=$pid
    PROXIES+=(haproxy)
    say "haproxy: pid $pid on 127.0.0.1:$HA_PORT, $PROXY_CPUS threads"
    if [[ $HTTPS == 1 ]]; then
        wait_http "$HA_TLS_PORT" "$pid" https ||
            die "haproxy does not answer on https://127.0.0.1:$HA_TLS_PORT/"
        TLS_PORT[haproxy]=$HA_TLS_PORT
        say "haproxy: TLS on 127.0.0.1:$HA_TLS_PORT: $(tls_negotiated "$HA_TLS_PORT")"
    fi
}

# ---- memory ------------------------------------------------------------------

if [[ -r /proc/self/smaps_rollup ]]; then
    MEM_FILE=smaps_rollup MEM_KEY=Pss:
else
    MEM_FILE=status MEM_KEY=VmRSS: # old kernels: RSS, which counts shared pages per process
fi

# Prints the memory of <pid> and its descendants in KiB.
mem_kib() {
    local files=() p
    for p in $(tree_pids "$1"); do files+=("/proc/$p/$MEM_FILE"); done
    # Processes may come and go between ps and cat: missing files are not errors.
    { cat "${files[@]}" 2>/dev/null || true; } |
        awk -v k="$MEM_KEY" '$1 == k { s += $2 } END { print s + 0 }'
}

# Prints the CPU time, in nanoseconds, that <pid> and its descendants have
# used so far. A live thread's own time comes from its /proc/PID/task/TID/
# schedstat (exact, in ns; /proc/PID/stat's utime and stime are whole clock
# ticks, and with hundreds of workers that each run a few ms the rounding
# would lose most of it). What the children a process reaped used comes from
# its cutime + cstime in /proc/PID/stat, so a worker that exited during the
# run still counts, through its master. (Threads that exit during a run would
# not count; none of the three proxies starts or ends threads while it runs.)
# <pid>'s stat is read first and last: if its cutime + cstime moved, a child
# was reaped while we read and may be counted twice or not at all, so the
# snapshot is taken again (5 tries, then the last one stands).
cpu_ns() {
    local root=$1 files p _ out="" hz
    hz=$(getconf CLK_TCK)
    for _ in 1 2 3 4 5; do
        files=("/proc/$root/stat")
        for p in $(tree_pids "$root"); do
            files+=("/proc/$p/stat" /proc/"$p"/task/*/schedstat)
        done
        files+=("/proc/$root/stat")
        # A stat line holds "(comm) "; the fields after it start at field 3 of
        # proc(5), so cutime and cstime (fields 16, 17) are f[14] and f[15].
        # The match is greedy because comm itself may hold ") ". The other
        # lines are schedstat's: run time (ns), wait time, time slices.
        out=$({ cat "${files[@]}" 2>/dev/null || true; } | awk -v hz="$hz" '
            /\(/ { sub(/^.*\) /, ""); split($0, f, " "); c[++k] = f[14] + f[15]; next }
            { ns += $1 }
            END {
                for (j = 2; j < k; j++) ticks += c[j]
                stable = k < 2 || c[1] == c[k]
                printf "%.0f %s\n", ns + ticks * 1e9 / hz, stable ? "stable" : "moved"
            }')
        [[ $out == *stable ]] && break
    done
    echo "${out% *}"
}

# Prints the busy time of all CPUs so far (user, nice, system, irq, softirq,
# steal from /proc/stat's "cpu" line), in nanoseconds.
busy_ns() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" {
        printf "%.0f\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1e9 / hz; exit }' /proc/stat
}

# Prints how many connections wait in the accept queue of the listener on <port>.
accept_queue() {
    command -v ss >/dev/null || { echo 0; return; }
    { ss -Htln "( sport = :$1 )" || true; } | awk '{ s += $2 } END { print s + 0 }'
}

# Runs in the background until killed, sampling every SAMPLE_INTERVAL the
# memory of <pid> and its descendants and the accept queue on <port>. Keeps
# "<peak KiB> <max queue> <longest run of samples with a non-empty queue>" in <file>.
sample() {
    local pid=$1 port=$2 file=$3 peak=0 cur q qmax=0 run=0 runmax=0
    trap - ERR # it is killed at the end of each run, often inside a pipeline: no message for that
    while :; do
        cur=$(mem_kib "$pid")
        q=$(accept_queue "$port")
        if ((cur > peak)); then peak=$cur; fi
        if ((q > qmax)); then qmax=$q; fi
        if ((q > 0)); then run=$((run + 1)); else run=0; fi
        if ((run > runmax)); then runmax=$run; fi
        echo "$peak $qmax $runmax" >"$file"
        sleep "$SAMPLE_INTERVAL"
    done
}

# ---- scenarios and runs -----------------------------------------------------

SC_NAME=() SC_PATH=() SC_CONNS=() SC_HDR=() SC_IDLE=() SC_KIND=()
# Adds scenario <name>: <path> on <conns> connections with header <hdr>,
# <idle> idle clients, driven by <kind>: http or https (wrk), or new or reuse
# (<conns> `openssl s_time -new` or `-reuse` clients, over TLS).
add_scenario() {
    SC_NAME+=("$1")
    SC_PATH+=("$2")
    SC_CONNS+=("$3")
    SC_HDR+=("$4")
    SC_IDLE+=("${5:-0}")
    SC_KIND+=("${6:-http}")
}

# Opens <n> keep-alive connections to 127.0.0.1:<port>, one request on each,
# then holds them idle; prints "ready" once all were answered. Runs until killed.
hold_idle() {
    # exec: the background job's pid is python's own, so killing it closes the connections
    exec python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    held.append(s)
print("ready", flush=True)
time.sleep(3600)
PY
}

# Prints "rps mibs p50_ms p99_ms errors total" from a wrk output file.
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            if (v ~ /m$/) return v * 60000
            return v + 0
        }
        function mib(v) {
            if (v ~ /GB$/) return v * 1024
            if (v ~ /MB$/) return v + 0
            if (v ~ /KB$/) return v / 1024
            return v / 1048576
        }
        /Latency Distribution/ { dist = 1 }
        dist && $1 == "50%" { p50 = ms($2) }
        dist && $1 == "99%" { p99 = ms($2) }
        / requests in / { total = $1 }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /^Requests\/sec:/ { rps = $2 }
        /^Transfer\/sec:/ { tps = mib($2) }
        END { printf "%.2f %.3f %.3f %.3f %d %d\n", rps, tps, p50, p99, err, total }
    ' "$1"
}

# Prints "connections resumed full clients-ok fewest" from the outputs of
# s_time clients: connections completed by all, how many of them resumed a
# session ("r" in s_time's progress line) or did not ("*", or "t" / "3" for
# old protocols), how many clients finished with a summary, and the fewest
# connections one of them completed.
parse_stime() {
    awk '
        /^[*rt3]+$/ { line = $0; n = length(line); r = gsub(/r/, "", line); nr += r; nf += n - r }
        / connections in [0-9]+ real seconds/ {
            conns += $1; ok++
            if (fewest == "" || $1 + 0 < fewest) fewest = $1 + 0
        }
        END { printf "%d %d %d %d %d\n", conns, nr, nf, ok, fewest }
    ' "$@"
}

# Prints the handshakes/s of a run of s_time clients: the sum over the clients
# of each one's connections over its own wall time ("client wall START END",
# written by run_load). The clients start one after another and s_time ends
# on a whole second, so their windows differ slightly; the total over the
# longest window would undercount.
stime_rate() {
    awk '
        / connections in [0-9]+ real seconds/ { n[FILENAME] = $1 }
        /^client wall / { w[FILENAME] = $4 - $3 }
        END { for (f in n) if (w[f] > 0) r += n[f] / w[f]; printf "%.2f\n", r }
    ' "$@"
}

# Runs the load of scenario <i> against 127.0.0.1:<port>, writing its output
# to <out> (wrk) or <out>.1 to <out>.N (s_time clients). Always returns 0:
# the output files tell what happened.
run_load() {
    local i=$1 port=$2 out=$3 k pids=() p
    local kind=${SC_KIND[$i]} conns=${SC_CONNS[$i]} hdr=${SC_HDR[$i]} path=${SC_PATH[$i]}
    local args=(-t1 -c "$conns" -d "${DUR}s" --latency) scheme=http
    case $kind in
    http | https)
        [[ $kind == https ]] && scheme=https
        [[ -n $hdr ]] && args+=(-H "$hdr")
        wrk "${args[@]}" "$scheme://127.0.0.1:$port$path" >"$out" 2>&1 ||
            echo "wrk failed" >>"$out"
        ;;
    new | reuse)
        for k in $(seq 1 "$conns"); do
            {
                local start=$EPOCHREALTIME
                openssl s_time -connect "127.0.0.1:$port" "-$kind" -www "$path" -time "$DUR"
                echo "client wall $start $EPOCHREALTIME"
            } >"$out.$k" 2>&1 &
            pids+=($!)
        done
        CLIENTS=("${pids[@]}")
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
        CLIENTS=()
        ;;
    esac
    return 0
}

RESULTS=""
# One run of scenario <i> against <proxy> in round <rep>; appends to
# $RESULTS. Does nothing if <proxy> has no listener for the scenario.
run_one() {
    local proxy=$1 i=$2 rep=$3
    local name=${SC_NAME[$i]} conns=${SC_CONNS[$i]} kind=${SC_KIND[$i]} port
    if [[ $kind == http ]]; then port=${PORT[$proxy]}; else port=${TLS_PORT[$proxy]:-}; fi
    [[ -z $port ]] && return 0
    local out="$T/wrk/$name.$proxy.$rep.txt" samplef="$T/wrk/$name.$proxy.$rep.sample"
    local timef="$T/wrk/$name.$proxy.$rep.time"
    local before after served rps mibs p50 p99 errs total peak qmax qrun slack
    local cpu0 cpu1 up0 up1 busy0 busy1 samp wall user sys us_req proxy_pct load_pct other_pct
    local resumed full ok fewest
    local idle=${SC_IDLE[$i]}
    if ((idle > 0)); then
        local idleout="$T/wrk/$name.$proxy.$rep.idle"
        hold_idle "$port" "$idle" >"$idleout" 2>&1 &
        HOLDER=$!
        local waited=0
        until grep -q ready "$idleout" 2>/dev/null || ((waited >= 1200)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        grep -q ready "$idleout" ||
            warn "$name/$proxy round $rep: the $idle idle clients were not all served"
    fi
    before=$(upstream_requests)
    echo 0 0 0 >"$samplef"
    sample "${PID[$proxy]}" "$port" "$samplef" &
    SAMPLER=$!
    cpu0=$(cpu_ns "${PID[$proxy]}")
    up0=$(cpu_ns "$UP_PID")
    busy0=$(busy_ns)
    # Wall time and the user and system time of the load generator (bash's
    # time counts the children the timed command waited for).
    local TIMEFORMAT='%R %U %S'
    { time run_load "$i" "$port" "$out"; } 2>"$timef"
    busy1=$(busy_ns)
    cpu1=$(cpu_ns "${PID[$proxy]}")
    up1=$(cpu_ns "$UP_PID")
    # The sampler started just before the run: all it used, it used for it.
    samp=$(cpu_ns "$SAMPLER")
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    if [[ -n $HOLDER ]]; then
        kill "$HOLDER" 2>/dev/null || true
        wait "$HOLDER" 2>/dev/null || true
        HOLDER=""
    fi
    after=$(upstream_requests)
    read -r wall user sys <"$timef"
    if [[ $kind == new || $kind == reuse ]]; then
        read -r total resumed full ok fewest < <(parse_stime "$out".*)
        rps=$(stime_rate "$out".*)
        mibs=- p50=- p99=-
        errs=$((conns - ok))
        ((errs > 0)) && warn "$name/$proxy round $rep: $errs of $conns s_time clients failed:" \
            "$(grep -h -m1 -i error "$out".* | head -1)"
        if ((total > 0 && ok > 0 && fewest * 4 * ok < total)); then
            warn "$name/$proxy round $rep: one s_time client completed $fewest connections," \
                "under a quarter of the average $((total / ok)): starved?"
        fi
        if [[ $kind == new ]] && ((resumed > 0)); then
            warn "$name/$proxy round $rep: $resumed of $total connections resumed a session" \
                "(full handshakes expected)"
        fi
        if [[ $kind == reuse ]] && ((full * 100 > total)); then
            warn "$name/$proxy round $rep: $full of $total connections made a full handshake" \
                "(resumption expected)"
        fi
    else
        read -r rps mibs p50 p99 errs total < <(parse_wrk "$out")
        grep -q '^wrk failed' "$out" &&
            warn "$name/$proxy round $rep: wrk failed: $(head -1 "$out")"
    fi
    read -r peak qmax qrun <"$samplef"
    # CPU per request (us); the proxy's, the load side's and everything
    # else's CPU (% of one CPU; the rest of the machine's busy time).
    read -r us_req proxy_pct load_pct other_pct < <(awk -v c="$((cpu1 - cpu0))" \
        -v u="$((up1 - up0 + samp))" -v b="$((busy1 - busy0))" -v n="$total" -v w="$wall" \
        -v cu="$user" -v cs="$sys" 'BEGIN {
            if (n > 0) printf "%.1f", c / 1e3 / n; else printf "-"
            l = u / 1e9 + cu + cs
            o = b / 1e9 - c / 1e9 - l
            if (o < 0) o = 0
            if (w > 0) printf " %.0f %.0f %.0f\n", c / 1e9 / w * 100, l / w * 100, o / w * 100
            else print " - - -"
        }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$proxy" \
        "$rep" "$rps" "$mibs" "$p50" "$p99" "$errs" "$total" "$peak" "$qmax" "$us_req" \
        "$proxy_pct" "$load_pct" "$other_pct" >>"$RESULTS"
    say "$(printf '  %-17s %-8s round %s: %9.0f req/s  p99 %8s ms  errors %s  CPU %6s us/req' \
        "$name" "$proxy" "$rep" "$rps" "$p99" "$errs" "$us_req")" \
        "$(printf ' (proxy %s%%, load %s%%, others %s%%)  peak %s MiB  acceptq %s' "$proxy_pct" \
            "$load_pct" "$other_pct" "$((peak / 1024))" "$qmax")"
    if [[ $other_pct != - ]] && ((other_pct > OTHERS_MAX)); then
        warn "$name/$proxy round $rep: other processes used $other_pct% of a CPU during the run" \
            "(more than OTHERS_MAX=$OTHERS_MAX%): its figures are disturbed"
    fi

    # Plausibility: each completed request reached an upstream once, plus the
    # ones in flight when wrk stopped (s_time -reuse: plus each client's first
    # connection, not counted in its total), plus health checks. (-1: the
    # stub_status request made for <after> counts itself.)
    if ((total == 0)); then
        warn "$name/$proxy round $rep: the clients completed no request at all"
    fi
    if ((errs > 0)) && [[ $kind == http || $kind == https ]]; then
        warn "$name/$proxy round $rep: $errs errors (socket errors + non-2xx/3xx), see $(basename "$out")"
    fi
    # wrk reports nothing when some of its connections are never accepted: they
    # just wait in the listen queue while the others run. Catch it there. (Not
    # for s_time: its clients connect again and again, so connections arrive
    # all the time and often wait while a one-thread proxy does handshakes;
    # the check on each client's count above tells starvation instead.)
    if ((qrun >= 3)) && [[ $kind == http || $kind == https ]]; then
        warn "$name/$proxy round $rep: up to $qmax connections waited in the accept queue for" \
            "about $(awk -v n="$qrun" -v i="$SAMPLE_INTERVAL" 'BEGIN { print n * i }') s:" \
            "clients starved (fewer workers than connections?)"
    fi
    if [[ -n $before && -n $after ]]; then
        served=$((after - before - 1))
        slack=$((conns + 3 * DUR * 10 + 20))
        if ((served < total * 99 / 100 || served > total + total / 100 + slack)); then
            warn "$name/$proxy round $rep: upstreams served $served requests, the clients" \
                "completed $total"
        fi
    else
        warn "could not read the upstream request counter"
    fi
}

# Prints the median of the numbers on stdin ("-" if none).
median() {
    sort -g | awk '{ a[NR] = $1 }
        END {
            if (NR == 0) { print "-"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2
        }'
}

# Prints <a> / <b> with two decimals, "-" when <a> is "-" or <b> is 0 or not a number.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a != "-" && b + 0 > 0) printf "%.2f\n", a / b; else print "-"
    }'
}

# Prints column <col> (1-based) of the results of <scenario> <proxy>.
column_of() {
    awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { print $c }' "$RESULTS"
}

# Prints <value> with printf format <fmt>, or "-" when it is "-" or empty.
fmt() {
    awk -v v="$1" -v f="$2" 'BEGIN { if (v == "-" || v == "") print "-"; else printf f "\n", v }'
}

# Prints the line that says how the run was set up.
mode_line() {
    if [[ $PIN == 1 ]]; then
        echo "mode: pinned (PIN=1): each proxy alone on CPU $PROXY_CPU" \
            "(nginx $PROXY_CPUS worker(s), HAProxy $PROXY_CPUS thread(s), miniproxyd master +" \
            "workers); wrk, s_time, the upstream nginx and the script on CPU $LOAD_CPU"
    else
        echo "mode: shared (PIN=0): proxies, load and upstreams share all $NCPUS CPUs" \
            "(nginx $PROXY_CPUS workers, HAProxy $PROXY_CPUS threads)"
    fi
}

report() {
    local i name proxy rps mibs p50 p99 errs peak qmax r_ng r_ha cpu pcpu lcpu ocpu c_ng
    declare -A med cpumed
    echo
    echo "miniproxyd benchmark: DUR=${DUR}s REPEAT=$REPEAT, $NCPUS CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
    mode_line
    echo "wrk -t1 --latency (https-full, https-resumed: N x openssl s_time -new / -reuse);" \
        "medians over the rounds; memory = peak Pss of all processes"
    echo
    echo "| scenario | proxy | req/s | MiB/s | p50 ms | p99 ms | errors | accept q | CPU us/req" \
        "| proxy CPU % | load CPU % | others CPU % | peak PSS MiB | mp/nginx | mp/haproxy" \
        "| CPU mp/nginx |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" \
        "---: | ---: | ---: | ---: |"
    for i in "${!SC_NAME[@]}"; do
        name=${SC_NAME[$i]}
        for proxy in "${PROXIES[@]}"; do
            med[$proxy]=$(column_of "$name" "$proxy" 4 | median)
            cpumed[$proxy]=$(column_of "$name" "$proxy" 12 | awk '$1 != "-"' | median)
        done
        for proxy in "${PROXIES[@]}"; do
            rps=${med[$proxy]}
            if [[ $rps == - ]]; then
                printf '| %s | %s | skipped |%s\n' \
                    "$name" "$([[ $proxy == mp ]] && echo miniproxyd || echo "$proxy")" \
                    "$(printf ' - |%.0s' {1..13})"
                continue
            fi
            mibs=-
            [[ $name == *mib* ]] && mibs=$(fmt "$(column_of "$name" "$proxy" 5 | median)" %.1f)
            p50=$(fmt "$(column_of "$name" "$proxy" 6 | median)" %.3f)
            p99=$(fmt "$(column_of "$name" "$proxy" 7 | median)" %.3f)
            errs=$(column_of "$name" "$proxy" 8 | awk '{ s += $1 } END { print s + 0 }')
            peak=$(column_of "$name" "$proxy" 10 | sort -g | tail -1)
            qmax=$(column_of "$name" "$proxy" 11 | sort -g | tail -1)
            cpu=$(fmt "${cpumed[$proxy]}" %.1f)
            pcpu=$(fmt "$(column_of "$name" "$proxy" 13 | awk '$1 != "-"' | median)" %.0f)
            lcpu=$(fmt "$(column_of "$name" "$proxy" 14 | awk '$1 != "-"' | median)" %.0f)
            ocpu=$(fmt "$(column_of "$name" "$proxy" 15 | awk '$1 != "-"' | median)" %.0f)
            r_ng=- r_ha=- c_ng=-
            if [[ $proxy == mp ]]; then
                r_ng=$(ratio "$rps" "${med[nginx]:-0}")
                r_ha=$(ratio "$rps" "${med[haproxy]:-0}")
                c_ng=$(ratio "${cpumed[mp]}" "${cpumed[nginx]:-0}")
            fi
            printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %s' \
                "$name" "$([[ $proxy == mp ]] && echo miniproxyd || echo "$proxy")" "$rps" "$mibs" \
                "$p50" "$p99" "$errs" "$qmax" "$cpu" "$pcpu" "$lcpu" "$ocpu" \
                "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" "$r_ng"
            printf ' | %s | %s |\n' "$r_ha" "$c_ng"
        done
    done
    if [[ " ${PROXIES[*]} " != *" mp "* ]]; then
        echo
        echo "miniproxyd was not benchmarked (see the messages above)."
    elif [[ $HTTPS == 1 && -n $MP_TLS_SKIP ]]; then
        echo
        echo "miniproxyd skipped the HTTPS scenarios: $MP_TLS_SKIP"
    fi
    if ((${#WARNINGS[@]})); then
        echo
        echo "Warnings:"
        printf -- '- %s\n' "${WARNINGS[@]}"
    fi
}

main() {
    local rep i proxy
    install_missing
    if [[ $PIN == 1 ]]; then
        { taskset -c "$LOAD_CPU" true && taskset -c "$PROXY_CPU" true; } 2>/dev/null ||
            die "PIN=1 needs CPUs $LOAD_CPU and $PROXY_CPU in this process's affinity" \
                "($(taskset -cp $$ 2>&1))"
        # Everything this script starts from now on inherits CPU LOAD_CPU; the
        # proxies are started through PROXY_RUN instead.
        taskset -cp "$LOAD_CPU" $$ >/dev/null
        PROXY_RUN=(taskset -c "$PROXY_CPU")
    elif [[ $PIN != 0 ]]; then
        die "PIN must be 0 or 1, not \"$PIN\""
    fi
    [[ $HTTPS == 0 || $HTTPS == 1 ]] || die "HTTPS must be 0 or 1, not \"$HTTPS\""
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    T=$(mktemp -d /tmp/mpbench.XXXXXX)
    chmod 755 "$T" # nginx workers run as nobody and must reach the files in it
    mkdir -p "$T/wrk"
    RESULTS=$T/results.tsv
    : >"$RESULTS"

    for c in $CONNS; do
        [[ $MP_WORKERS != auto ]] && ((c > MP_WORKERS)) &&
            warn "CONNS has $c > MP_WORKERS=$MP_WORKERS: miniproxyd will starve connections"
        add_scenario "small-c$c" / "$c" ""
    done
    add_scenario close-c16 / 16 "Connection: close"
    add_scenario 1mib-c16 /1m 16 ""
    [[ $STREAM == 1 ]] && add_scenario 256mib-c1 /256m 1 ""
    ((IDLE > 0)) && add_scenario "idle$IDLE-c16" / 16 "" "$IDLE"
    if [[ $HTTPS == 1 ]]; then
        add_scenario https-small-c16 / 16 "" 0 https
        add_scenario https-small-c64 / 64 "" 0 https
        add_scenario https-full-c16 / 16 "" 0 new
        add_scenario https-resumed-c16 / 16 "" 0 reuse
        add_scenario https-1mib-c16 /1m 16 "" 0 https
        make_certificate
    fi

    say "$(mode_line)"
    start_upstreams
    start_miniproxyd
    start_nginx_proxy
    start_haproxy

    if ((WARMUP > 0)); then
        for proxy in "${PROXIES[@]}"; do
            wrk -t1 -c16 -d "${WARMUP}s" "http://127.0.0.1:${PORT[$proxy]}/" >/dev/null 2>&1 || true
            if [[ -n ${TLS_PORT[$proxy]:-} ]]; then
                wrk -t1 -c16 -d "${WARMUP}s" "https://127.0.0.1:${TLS_PORT[$proxy]}/" \
                    >/dev/null 2>&1 || true
            fi
        done
    fi
    say "measuring: ${#SC_NAME[@]} scenarios x ${#PROXIES[@]} proxies x $REPEAT rounds x ${DUR}s"
    for rep in $(seq 1 "$REPEAT"); do
        for i in "${!SC_NAME[@]}"; do
            for proxy in "${PROXIES[@]}"; do
                run_one "$proxy" "$i" "$rep"
            done
        done
    done

    if [[ -n $OUT ]]; then
        report | tee "$OUT"
    else
        report
    fi
}

main "$@"
