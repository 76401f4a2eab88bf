#!/usr/bin/env bash
# Builds Keel, starts a local cluster (keel up), runs a sample task on it, shows the task
# table and the task's trace, and stops the cluster. Pass --keep to leave the cluster running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

keep=false
if [[ "${1:-}" == "--keep" ]]; then keep=true; fi

swift build
bin="$(swift build --show-bin-path)"
data="${KEEL_DATA_DIR:-$PWD/.keel}"
mkdir -p "$data"
# A cluster of an earlier run leaves its endpoints behind; wait for this one's.
rm -f "$data/endpoints.json"

"$bin/keel" up --data-dir "$data" > "$data/up.log" 2>&1 &
up=$!
stop() { if ! $keep; then kill -TERM "$up" 2>/dev/null; wait "$up" 2>/dev/null || true; fi; }
trap stop EXIT

for _ in $(seq 1 600); do
  [[ -f "$data/endpoints.json" ]] && break
  if ! kill -0 "$up" 2>/dev/null; then cat "$data/up.log"; exit 1; fi
  sleep 0.2
done
[[ -f "$data/endpoints.json" ]] || { echo "the cluster did not start; see $data/up.log" >&2; exit 1; }
cat "$data/up.log"

echo
echo "\$ keel run --shell -- 'echo hello from keel, task \$KEEL_TASK_ID'"
"$bin/keel" run --shell -- 'echo hello from keel, task $KEEL_TASK_ID' 2> >(tee "$data/run.err" >&2)
sleep 0.2
task="$(sed -n 's/^keel: launching task \([^ ]*\).*/\1/p' "$data/run.err")"
echo
echo "\$ keel tasks"
"$bin/keel" tasks
echo
echo "\$ keel trace $task"
for _ in $(seq 1 50); do
  if "$bin/keel" trace "$task" 2>/dev/null | grep -q 'status TASK_FINISHED'; then break; fi
  sleep 0.2
done
"$bin/keel" trace "$task"
if $keep; then
  echo
  echo "The cluster keeps running (pid $up); stop it with: kill $up"
  trap - EXIT
fi
