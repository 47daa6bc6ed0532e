#!/usr/bin/env bash
# Stops the daemons that scripts/slurm-up.sh started in BASE_DIR, by the PIDs in their PID files (never by
# name, so another cluster or user on the machine is left alone). --munge also stops munged when this cluster
# started it. Idempotent: a daemon already gone is fine.
# Usage: scripts/slurm-down.sh [BASE_DIR] [--munge]
BASE=${1:-/tmp/paris-slurm}
stop() {
  local p
  p=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || { rm -f "$1"; return 0; }
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || { rm -f "$1"; return 0; }; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  rm -f "$1"
}
stop "$BASE/run/slurmd.pid"
stop "$BASE/run/slurmctld.pid"
if [ "${2:-}" = --munge ]; then stop "$BASE/run/munged.pid"; fi
true
