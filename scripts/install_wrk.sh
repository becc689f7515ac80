#!/usr/bin/env bash
# Make sure wrk, the load generator of `make bench`, is installed: where it is missing and
# this runs as root with apt-get (a CI container, a fresh Debian or Ubuntu machine), install
# Debian's package; otherwise say how. Never fails: `python -m bench` refuses to measure
# without wrk and says so itself (`--instructions` and `--subscriptions` need no wrk).
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing wrk (the benchmark's load generator) with apt-get" >&2
    if apt-get install -y --no-install-recommends wrk >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends wrk >/dev/null; }; then
        exit 0
    fi
fi
echo "wrk is not installed: install it with 'apt-get install wrk' (Debian, Ubuntu)," \
    "'dnf install wrk' (Fedora) or 'brew install wrk' (macOS)" >&2
