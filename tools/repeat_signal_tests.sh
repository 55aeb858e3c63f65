#!/usr/bin/env bash
# Run the SIGTERM/SIGINT tests of `stepflow worker` and `stepflow local` N times in a row
# (default 20), stopping at the first failure. Usage: tools/repeat_signal_tests.sh [N]
set -u
cd "$(dirname "$0")/.."
runs=${1:-20}
tests=(
  tests/worker/test_worker_signals.py
  tests/worker/test_signals.py
  tests/worker/test_worker_process.py::test_sigterm_stops_polling_and_drains_the_tasks_in_hand
  tests/e2e/test_local_signals.py
)
passed=0
for i in $(seq "$runs"); do
  if .venv/bin/python -m pytest -p no:xdist -q -s "${tests[@]}" \
      > "/tmp/stepflow-signals-run-$i.log" 2>&1; then
    passed=$((passed + 1))
    grep -h "exited" "/tmp/stepflow-signals-run-$i.log" | sed "s/^/run $i: /"
  else
    echo "run $i FAILED (log: /tmp/stepflow-signals-run-$i.log)"
    break
  fi
done
echo "$passed/$runs runs passed"
[ "$passed" -eq "$runs" ]
