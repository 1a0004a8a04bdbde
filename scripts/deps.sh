#!/bin/sh
# Installs what miniproxyd needs to build and test on Debian 12 (bookworm).
# Run as root (CI and fresh machines are root); otherwise prints the command.
# Extra packages for scripts/bench.sh are installed by that script itself.
set -eu

PKGS="build-essential pkg-config libinih-dev check libsubunit-dev libssl-dev openssl curl clang"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "miniproxyd needs:$missing" >&2
    echo "install them with:  sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "scripts/deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends $missing >&2
