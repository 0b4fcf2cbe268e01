#!/usr/bin/env bash
# One GPU lease: bash scripts/lease_run.sh PACKDIR SECONDS PARALLEL
#
#   PACKDIR   the folder `python -m cifar_nb lease pack` filled (carried with the call: carry ["lease"])
#   SECONDS   this script's whole budget: setup, training and export end within it (540 for a 600 s call)
#   PARALLEL  queue workers side by side on the device (default 1)
#
# Installs the pack's wheels the machine lacks into a temporary site folder, lays out a temporary data root,
# cache and checkpoint store (`lease restore`), trains the queue until shortly before the budget ends, then
# writes the results into $OUT (`lease export`). See cifar_nb/lease/__init__.py for the whole cycle.
# Overrides: DEVICE (default cuda; cpu for tests), PYTHON (default python3), OUT (the device sets it; else
# LEASE_OUT), LEASE_RESERVE (seconds kept for stopping and export, default 60), LEASE_THREADS (threads per
# worker, default cores / PARALLEL), LEASE_QUEUE_ARGS (more `queue run` arguments, e.g. "--only A-classifier").
set -uo pipefail
START=$(date +%s)
PACK=${1:?usage: bash scripts/lease_run.sh PACKDIR SECONDS PARALLEL}
BUDGET=${2:?usage: bash scripts/lease_run.sh PACKDIR SECONDS PARALLEL}
PARALLEL=${3:-1}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
OUTDIR=${OUT:-${LEASE_OUT:-}}
RESERVE=${LEASE_RESERVE:-60}
say() { echo "[lease_run $(date +%H:%M:%S)] $*"; }
[ -n "$OUTDIR" ] || { say "error: OUT is not set (the device machine sets it; elsewhere set LEASE_OUT)"; exit 2; }
[ -f "$PACK/manifest.json" ] || { say "error: $PACK/manifest.json missing: pack first (python -m cifar_nb lease pack $PACK)"; exit 2; }
PACK=$(cd "$PACK" && pwd)

W=$(mktemp -d "${TMPDIR:-/tmp}/cifar_nb-lease.XXXXXX")
mkdir -p "$W/site" "$W/data" "$W/cache" "$W/checkpoints" "$OUTDIR"
export PYTHONPATH="$W/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CIFAR_NB_DATA="$W/data" CIFAR_NB_CACHE="$W/cache" CIFAR_NB_CHECKPOINTS="$W/checkpoints"

# 1. the wheels this machine lacks (a wheel whose distribution is installed already is left out)
shopt -s nullglob
wheels=("$PACK"/wheels/*.whl)
shopt -u nullglob
if [ ${#wheels[@]} -gt 0 ]; then
  mapfile -t need < <("$PY" - "${wheels[@]}" <<'EOF'
import importlib.metadata as md, os, sys
for w in sys.argv[1:]:
    try:
        md.distribution(os.path.basename(w).split("-")[0])
    except md.PackageNotFoundError:
        print(w)
EOF
)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${#need[@]} of ${#wheels[@]} wheels into $W/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" "${need[@]}" \
      || say "warning: pip install failed; runs that need those packages will fail"
  fi
fi
missing=$("$PY" -c 'import importlib.util as u, sys
print(" ".join(m for m in sys.argv[1:] if u.find_spec(m) is None))' optuna torch_fidelity lpips scipy sqlalchemy alembic)
[ -z "$missing" ] || say "warning: not installed here: $missing (the runs that need them will fail)"

# 2. the commit the pack came from (the copy of the tree has no .git)
CIFAR_NB_COMMIT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("git_commit") or "unknown")' \
  "$PACK/manifest.json")
export CIFAR_NB_COMMIT

# 3. data, checkpoints, the starting snapshot, decoded datasets
"$PY" -m cifar_nb.engine.lease restore "$PACK" --snapshot "$W/start.json" --prewarm "$DEVICE" \
  || { say "error: restore failed"; exit 3; }

# 4. the queue, stopped by its own deadline, else by SIGTERM (workers checkpoint), else killed
LEFT=$(( BUDGET - ($(date +%s) - START) - RESERVE ))
THREADS=${LEASE_THREADS:-$(( $(nproc) / PARALLEL ))}
[ "$THREADS" -ge 1 ] || THREADS=1
if [ "$LEFT" -gt 0 ]; then
  say "queue: $PARALLEL worker(s) on $DEVICE for $LEFT s, $THREADS thread(s) each"
  # shellcheck disable=SC2086
  timeout -k 20 $(( LEFT + 10 )) "$PY" -m cifar_nb queue run --device "$DEVICE" --seconds "$LEFT" \
    --parallel "$PARALLEL" --threads "$THREADS" ${LEASE_QUEUE_ARGS:-} 2>&1 | tee "$W/queue.log"
  say "queue exited with ${PIPESTATUS[0]}"
else
  say "warning: no time left for training after setup ($LEFT s)" | tee "$W/queue.log"
fi

# 5. what came of it, into $OUT
"$PY" -m cifar_nb.engine.lease export "$OUTDIR" --since "$W/start.json" --log "$W/queue.log" --workers "$PARALLEL"
rc=$?
say "done in $(( $(date +%s) - START )) s (export exit $rc)"
exit $rc
