#!/usr/bin/env bash
# bench.sh: throughput, latency and memory of miniproxyd next to nginx and
# HAProxy, all three proxying to the same upstreams on loopback. Run by hand
# (never in CI) from the repository root or anywhere: scripts/bench.sh
#
# What it does
#   - installs nginx-light, haproxy, wrk and curl if missing (as root);
#   - starts one nginx with three upstream servers on free loopback ports,
#     each serving a 100-byte body at / and a 1 MiB file at /1m;
#   - starts three proxies in front of them, on free ports too:
#       miniproxyd (build/miniproxyd, MP_WORKERS workers, access log off),
#       nginx      (PROXY_CPUS workers, upstream keepalive 256, HTTP/1.1,
#                   proxy_buffering off with a 16 KiB buffer: it streams
#                   like the others instead of buffering whole responses),
#       HAProxy    (PROXY_CPUS threads, roundrobin, http-reuse always);
#     miniproxyd is skipped, with a message, when build/miniproxyd is missing;
#   - runs `wrk -t1 -d${DUR}s -c N --latency` against each proxy, interleaved
#     (mp, nginx, haproxy, mp, ...) so drifts of the machine hit all three,
#     REPEAT times over the scenarios:
#       small-cN   100-byte responses on N keep-alive connections (N in CONNS)
#       close-c16  100-byte responses, "Connection: close" on every request
#       1mib-c16   1 MiB responses on 16 keep-alive connections
#       idleN-c16  100-byte responses on 16 keep-alive connections while N
#                  other keep-alive clients (IDLE, default 1000) sent one
#                  request each and sit idle: what a prefork proxy dreads
#   - while wrk runs, samples the proxy's memory: the sum of Pss (from
#     /proc/PID/smaps_rollup) over its master and all its workers, so pages
#     shared between forked workers are counted once, not once per worker;
#   - after each run checks that the upstreams served about as many requests
#     as wrk completed (nginx stub_status) and warns when wrk completed none,
#     when errors occurred, or when the counts disagree; it also samples the
#     proxy's accept queue and warns when connections stay in it. That matters
#     for a prefork proxy: with fewer workers than wrk connections the surplus
#     connections are never accepted, wrk reports no error at all for them,
#     and its figures look fine while those clients starve.
#
# Reading the table
#   req/s     median over the REPEAT runs of wrk's Requests/sec
#   MiB/s     median Transfer/sec, shown for the 1 MiB scenario only
#   p50, p99  medians of wrk's 50% and 99% latency, in milliseconds
#   errors    summed over the runs: socket errors (connect, read, write,
#             timeout) plus non-2xx/3xx responses. Anything but 0 is suspect.
#   accept q  most connections seen waiting in the proxy's accept queue
#             (sampled with ss). A prefork proxy with fewer free workers than
#             connections leaves the rest there, and wrk does not report them
#             as errors, so the script warns when the queue stays non-empty.
#   peak PSS  highest memory sample of that proxy (all its processes), MiB
#   mp/nginx, mp/haproxy   miniproxyd's req/s divided by the other proxy's:
#             above 1.00 miniproxyd is faster. Everything (wrk, proxies,
#             upstreams) shares the same CPUs, so compare ratios, not absolutes.
#
# Environment
#   DUR=10          seconds per wrk run
#   REPEAT=2        rounds over all scenarios
#   CONNS="1 16 64 256"   connection counts of the small-response scenarios
#   MP_WORKERS=300  miniproxyd workers: a number (keep it above the largest of
#                   CONNS), or auto for the adaptive pool (its defaults)
#   IDLE=1000       idle keep-alive clients of the idle scenario (0: skip it)
#   MP_BIN=build/miniproxyd
#   PROXY_CPUS=$(nproc)   nginx worker_processes and HAProxy nbthread
#   WARMUP=1        seconds of warm-up load per proxy before measuring (0: none)
#   KEEP=0          1 keeps the temp dir (configs, logs, raw wrk outputs)
#   OUT=            also write the markdown table to this file
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"

DUR=${DUR:-10}
REPEAT=${REPEAT:-2}
CONNS=${CONNS:-"1 16 64 256"}
MP_WORKERS=${MP_WORKERS:-300}
IDLE=${IDLE:-1000}
PROXY_CPUS=${PROXY_CPUS:-$(nproc)}
WARMUP=${WARMUP:-1}
KEEP=${KEEP:-0}
OUT=${OUT:-}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-0.5}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MP_BIN=${MP_BIN:-$ROOT/build/miniproxyd}

PIDS=()     # every long-running process we started, killed on exit
SAMPLER=""  # the memory sampler running during a wrk run
HOLDER=""   # the idle-clients holder running during a wrk run
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

# Waits until http://127.0.0.1:<port>/ answers 200 while <pid> lives. Returns 1 if not in 10 s.
wait_http() {
    local port=$1 pid=$2 i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$port/" 2>/dev/null) == 200 ]]; then
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
        location = /__requests { stub_status; }
    }
EOF
        done
        echo "}"
    } >"$d/nginx.conf"
    nginx -t -q -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" || die "upstream nginx config"
    nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" &
    PIDS+=($!)
    for i in "$UP1" "$UP2" "$UP3"; do
        wait_http "$i" "${PIDS[-1]}" || die "upstream nginx did not start: $(tail -3 "$d/error.log")"
    done
    say "upstreams: nginx pid ${PIDS[-1]} on 127.0.0.1:$UP1, :$UP2, :$UP3"
}

# Total requests the upstream nginx has seen (all three servers, all workers).
upstream_requests() {
    { curl -s --max-time 5 "http://127.0.0.1:$UP1/__requests" || true; } |
        awk 'NR == 3 { print $3 }'
}

# ---- the proxies ------------------------------------------------------------

declare -A PORT PID
PROXIES=()

start_miniproxyd() {
    local d=$T/miniproxyd
    if [[ ! -x $MP_BIN ]]; then
        say "SKIPPING miniproxyd: $MP_BIN not found (build it with make); benchmarking nginx and HAProxy only"
        return 0
    fi
    mkdir -p "$d"
    pick_port MP_PORT
    cat >"$d/miniproxy.ini" <<EOF
[proxy]
listen = 127.0.0.1:$MP_PORT
workers = $MP_WORKERS
upstream = app
error_log = $d/mp-error.log
access_log = off
log_level = warn
keepalive_timeout = 65s
keepalive_requests = 100000

[upstream app]
server = 127.0.0.1:$UP1
server = 127.0.0.1:$UP2
server = 127.0.0.1:$UP3
keepalive = 32
health_path = /health
EOF
    "$MP_BIN" -c "$d/miniproxy.ini" >"$d/stdout.log" 2>&1 &
    PIDS+=($!)
    if ! wait_http "$MP_PORT" $!; then
        say "SKIPPING miniproxyd: it did not answer on 127.0.0.1:$MP_PORT within 10 s"
        tail -5 "$d/stdout.log" "$d/mp-error.log" 2>/dev/null | sed 's/^/    /' >&2
        kill -TERM $! 2>/dev/null || true
        return 0
    fi
    PORT[mp]=$MP_PORT
    PID[mp]=$!
    PROXIES+=(mp)
    say "miniproxyd: pid $! on 127.0.0.1:$MP_PORT, $MP_WORKERS workers"
}

start_nginx_proxy() {
    local d=$T/nginx
    mkdir -p "$d/tmp"
    pick_port NG_PORT
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
    nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" &
    PIDS+=($!)
    wait_http "$NG_PORT" $! || die "nginx proxy did not start: $(tail -3 "$d/error.log")"
    PORT[nginx]=$NG_PORT
    PID[nginx]=$!
    PROXIES+=(nginx)
    say "nginx: pid $! on 127.0.0.1:$NG_PORT, $PROXY_CPUS workers"
}

start_haproxy() {
    local d=$T/haproxy
    mkdir -p "$d"
    pick_port HA_PORT
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread $PROXY_CPUS
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 65s
    http-reuse always

frontend fe
    bind 127.0.0.1:$HA_PORT
    default_backend app

backend app
    balance roundrobin
    server s1 127.0.0.1:$UP1
    server s2 127.0.0.1:$UP2
    server s3 127.0.0.1:$UP3
EOF
    haproxy -c -q -f "$d/haproxy.cfg" || die "haproxy config"
    haproxy -db -f "$d/haproxy.cfg" >"$d/haproxy.log" 2>&1 &
    PIDS+=($!)
    wait_http "$HA_PORT" $! || die "haproxy did not start: $(tail -3 "$d/haproxy.log")"
    PORT[haproxy]=$HA_PORT
    PID[haproxy]=$!
    PROXIES+=(haproxy)
    say "haproxy: pid $! on 127.0.0.1:$HA_PORT, $PROXY_CPUS threads"
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

SC_NAME=() SC_PATH=() SC_CONNS=() SC_HDR=() SC_IDLE=()
add_scenario() {
    SC_NAME+=("$1")
    SC_PATH+=("$2")
    SC_CONNS+=("$3")
    SC_HDR+=("$4")
    SC_IDLE+=("${5:-0}")
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

RESULTS=""
# One wrk run of scenario <i> against <proxy> in round <rep>; appends to $RESULTS.
run_one() {
    local proxy=$1 i=$2 rep=$3
    local name=${SC_NAME[$i]} conns=${SC_CONNS[$i]} hdr=${SC_HDR[$i]}
    local url="http://127.0.0.1:${PORT[$proxy]}${SC_PATH[$i]}"
    local out="$T/wrk/$name.$proxy.$rep.txt" samplef="$T/wrk/$name.$proxy.$rep.sample"
    local args=(-t1 -c "$conns" -d "${DUR}s" --latency)
    local before after served rps mibs p50 p99 errs total peak qmax qrun slack

    [[ -n $hdr ]] && args+=(-H "$hdr")
    local idle=${SC_IDLE[$i]}
    if ((idle > 0)); then
        local idleout="$T/wrk/$name.$proxy.$rep.idle"
        hold_idle "${PORT[$proxy]}" "$idle" >"$idleout" 2>&1 &
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
    sample "${PID[$proxy]}" "${PORT[$proxy]}" "$samplef" &
    SAMPLER=$!
    if ! wrk "${args[@]}" "$url" >"$out" 2>&1; then
        warn "$name/$proxy round $rep: wrk failed: $(tail -1 "$out")"
    fi
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    if [[ -n $HOLDER ]]; then
        kill "$HOLDER" 2>/dev/null || true
        wait "$HOLDER" 2>/dev/null || true
        HOLDER=""
    fi
    after=$(upstream_requests)
    read -r rps mibs p50 p99 errs total < <(parse_wrk "$out")
    read -r peak qmax qrun <"$samplef"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$proxy" "$rep" \
        "$rps" "$mibs" "$p50" "$p99" "$errs" "$total" "$peak" "$qmax" >>"$RESULTS"
    say "$(printf '  %-10s %-8s round %s: %10.0f req/s  p99 %8.3f ms  errors %s  peak %s MiB  acceptq %s' \
        "$name" "$proxy" "$rep" "$rps" "$p99" "$errs" "$((peak / 1024))" "$qmax")"

    # Plausibility: each completed request reached an upstream once, plus the
    # ones in flight when wrk stopped, plus health checks. (-1: the stub_status
    # request made for <after> counts itself.)
    if ((total == 0)); then
        warn "$name/$proxy round $rep: wrk completed no request at all"
    fi
    if ((errs > 0)); then
        warn "$name/$proxy round $rep: $errs errors (socket errors + non-2xx/3xx), see $(basename "$out")"
    fi
    # wrk reports nothing when some of its connections are never accepted: they
    # just wait in the listen queue while the others run. Catch it there.
    if ((qrun >= 3)); then
        warn "$name/$proxy round $rep: up to $qmax connections waited in the accept queue for" \
            "about $(awk -v n="$qrun" -v i="$SAMPLE_INTERVAL" 'BEGIN { print n * i }') s:" \
            "clients starved (fewer workers than connections?)"
    fi
    if [[ -n $before && -n $after ]]; then
        served=$((after - before - 1))
        slack=$((conns + 3 * DUR * 10 + 20))
        if ((served < total * 99 / 100 || served > total + total / 100 + slack)); then
            warn "$name/$proxy round $rep: upstreams served $served requests, wrk completed $total"
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

# Prints <a> / <b> with two decimals, "-" when <b> is 0 or not a number.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f\n", a / b; else print "-" }'
}

# Prints column <col> (1-based) of the results of <scenario> <proxy>.
column_of() {
    awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { print $c }' "$RESULTS"
}

report() {
    local i name proxy rps mibs p50 p99 errs peak qmax r_ng r_ha
    declare -A med
    echo
    echo "miniproxyd benchmark: DUR=${DUR}s REPEAT=$REPEAT, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "wrk -t1 --latency; medians over the rounds; memory = peak Pss of all processes"
    echo
    echo "| scenario | proxy | req/s | MiB/s | p50 ms | p99 ms | errors | accept q | peak PSS MiB | mp/nginx | mp/haproxy |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for i in "${!SC_NAME[@]}"; do
        name=${SC_NAME[$i]}
        for proxy in "${PROXIES[@]}"; do
            med[$proxy]=$(column_of "$name" "$proxy" 4 | median)
        done
        for proxy in "${PROXIES[@]}"; do
            rps=${med[$proxy]}
            mibs=-
            [[ $name == 1mib* ]] && mibs=$(printf '%.1f' "$(column_of "$name" "$proxy" 5 | median)")
            p50=$(printf '%.3f' "$(column_of "$name" "$proxy" 6 | median)")
            p99=$(printf '%.3f' "$(column_of "$name" "$proxy" 7 | median)")
            errs=$(column_of "$name" "$proxy" 8 | awk '{ s += $1 } END { print s + 0 }')
            peak=$(column_of "$name" "$proxy" 10 | sort -g | tail -1)
            qmax=$(column_of "$name" "$proxy" 11 | sort -g | tail -1)
            r_ng=- r_ha=-
            if [[ $proxy == mp ]]; then
                r_ng=$(ratio "$rps" "${med[nginx]:-0}")
                r_ha=$(ratio "$rps" "${med[haproxy]:-0}")
            fi
            printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %.1f | %s | %s |\n' "$name" \
                "$([[ $proxy == mp ]] && echo miniproxyd || echo "$proxy")" "$rps" "$mibs" \
                "$p50" "$p99" "$errs" "$qmax" "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" \
                "$r_ng" "$r_ha"
        done
    done
    if [[ " ${PROXIES[*]} " != *" mp "* ]]; then
        echo
        echo "miniproxyd was not benchmarked (see the messages above)."
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
    ((IDLE > 0)) && add_scenario "idle$IDLE-c16" / 16 "" "$IDLE"

    start_upstreams
    start_miniproxyd
    start_nginx_proxy
    start_haproxy

    if ((WARMUP > 0)); then
        for proxy in "${PROXIES[@]}"; do
            wrk -t1 -c16 -d "${WARMUP}s" "http://127.0.0.1:${PORT[$proxy]}/" >/dev/null 2>&1 || true
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
