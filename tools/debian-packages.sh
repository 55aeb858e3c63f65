#!/usr/bin/env bash
# Install the Debian packages some tests use (graphviz's dot, chromium), when this machine can:
# as root with apt-get. Otherwise say which are missing and carry on: their tests skip.
# Usage: tools/debian-packages.sh COMMAND=PACKAGE ...   (e.g. dot=graphviz)
set -uo pipefail
missing=()
for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
        echo "could not install ${missing[*]}: the tests that need them skip"
else
    echo "not installed: ${missing[*]} (needs root and apt-get): the tests that need them skip"
fi
exit 0
