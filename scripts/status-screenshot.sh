#!/bin/sh
# Screenshots a status page with headless Chromium, to check how /status looks:
#   scripts/status-screenshot.sh URL OUT.png [WIDTH,HEIGHT]
# URL is the admin listener's /status or a file:// URL of a rendered page;
# the window is 1280,900 unless WIDTH,HEIGHT says otherwise (1280,1600 shows
# a whole page with a few groups).
# Needs chromium (Debian: apt-get install -y chromium).
set -eu

if [ $# -ne 2 ] && [ $# -ne 3 ]; then
    echo "usage: $0 URL OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
url=$1
out=$2
size=${3:-1280,900}
case $size in
*[!0-9,]* | ,* | *, | *,*,* | [!0-9]*) echo "$0: bad size \"$size\" (WIDTH,HEIGHT)" >&2; exit 2 ;;
*,*) ;;
*) echo "$0: bad size \"$size\" (WIDTH,HEIGHT)" >&2; exit 2 ;;
esac

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
    echo "$0: chromium not found; install it with: apt-get install -y chromium" >&2
    exit 1
fi

# A throwaway profile, so no state is shared with (or left for) anyone.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT INT TERM

# Chromium reports the screenshot on stderr and is chatty there otherwise
# (dbus, GPU): keep its output for when it fails.
log="$profile/chromium.log"
if ! "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size="$size" --screenshot="$out" "$url" \
    >"$log" 2>&1; then
    cat "$log" >&2
    echo "$0: chromium failed" >&2
    exit 1
fi
if [ ! -s "$out" ]; then
    cat "$log" >&2
    echo "$0: no screenshot written to $out" >&2
    exit 1
fi
echo "$out"
