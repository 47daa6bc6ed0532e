#!/usr/bin/env bash
# Load on `paris serve`, loopback only, bounded in requests and time: starts the server on RUN at a free port, sends
# CLIENTS concurrent clients × REQUESTS txt2img requests in all (2 steps each, one seed per request; 429s are
# retried after Retry-After, so a queue overflow and its recovery are part of the run), checks that no answer is a
# 5xx, lost or mixed up (bench/serve_load.py), prints the JSON result and the server's /metrics summary, and stops
# the server.
# With REMOTE=K, expert K is served by its own `paris serve expert` process and joins the mixture with --remote;
# KILL_AFTER seconds into the load that process is SIGKILLed, and RESTART_AFTER seconds later it is started again on
# the same port, so the load runs through a remote expert's death and return (its drops are in /metrics).
# THREADS sets --threads for the server and the expert (see bench/serve_batching.sh).
# Usage: RUN=runs/demo [CLIENTS=32] [REQUESTS=6400] [MAX_SECONDS=600] [REMOTE=1 KILL_AFTER=20 RESTART_AFTER=10]
#        [THREADS=N] [PARIS=path/to/paris] bench/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${RUN:?set RUN to a run folder with trained (or untrained) experts and a router}"
CLIENTS="${CLIENTS:-32}"
REQUESTS="${REQUESTS:-6400}"
MAX_SECONDS="${MAX_SECONDS:-600}"
REMOTE="${REMOTE:-}"
KILL_AFTER="${KILL_AFTER:-20}"
RESTART_AFTER="${RESTART_AFTER:-10}"
threads=(); [ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
bin="${PARIS:-}"
if [ -z "$bin" ]; then
    swift build -c release --product paris >&2
    bin="$(swift build -c release --show-bin-path)/paris"
fi
log="$(mktemp)"; expert_log="$(mktemp)"
server=""; expert=""; chaos=""
cleanup() {
    if [ -n "$chaos" ]; then kill "$chaos" 2>/dev/null; fi
    if [ -f "$expert_log.pid" ]; then kill "$(cat "$expert_log.pid")" 2>/dev/null; fi
    kill $server $expert 2>/dev/null
    rm -f "$log" "$expert_log" "$expert_log.pid"
}
trap 'cleanup || true' EXIT
wait_url() {  # wait_url LOG PID: prints the first http://127.0.0.1:PORT the process logs
    for _ in $(seq 600); do
        grep -q "at http://" "$1" && break
        kill -0 "$2" 2>/dev/null || { cat "$1" >&2; exit 1; }
        sleep 0.1
    done
    grep "at http://" "$1" | grep -o 'http://127.0.0.1:[0-9]*' | head -1
}
remote_args=()
if [ -n "$REMOTE" ]; then
    "$bin" serve expert --run "$RUN" --expert "$REMOTE" --host 127.0.0.1 --port 0 --device cpu "${threads[@]}" >"$expert_log" 2>&1 &
    expert=$!
    expert_url="$(wait_url "$expert_log" "$expert")"
    remote_args=(--remote "$REMOTE=$expert_url" --remote-timeout 5)
    echo "[serve-bench] expert $REMOTE served by pid $expert at $expert_url" >&2
fi
"$bin" serve --run "$RUN" --host 127.0.0.1 --port 0 --device cpu "${threads[@]}" "${remote_args[@]}" >"$log" 2>&1 &
server=$!
url="$(wait_url "$log" "$server")"
echo "[serve-bench] $url: $CLIENTS clients, $REQUESTS requests, at most $MAX_SECONDS s" >&2
if [ -n "$REMOTE" ]; then
    (
        sleep "$KILL_AFTER"
        kill -9 "$expert" && echo "[serve-bench] t=${KILL_AFTER}s: killed the remote expert (pid $expert)" >&2
        sleep "$RESTART_AFTER"
        "$bin" serve expert --run "$RUN" --expert "$REMOTE" --host 127.0.0.1 --port "${expert_url##*:}" --device cpu \
            "${threads[@]}" >"$expert_log" 2>&1 &
        echo "[serve-bench] t=$((KILL_AFTER + RESTART_AFTER))s: restarted it (pid $!) on ${expert_url##*:}" >&2
        echo $! > "$expert_log.pid"
    ) &
    chaos=$!
fi
python3 bench/serve_load.py "$url" "$CLIENTS" "$REQUESTS" "$MAX_SECONDS"
curl -s "$url/metrics" | grep -E '^paris_(requests_total|jobs_total|queue_depth|expert_failures_total|batch)' >&2
