#!/usr/bin/env bash
# Batching in `paris serve`, measured against the alternative a user has without a server: on the same run and
# machine, in one run of this script,
#   1. 16 sequential `paris sample` calls, one image each (every call loads the experts, the router and MiniLM);
#   2. `paris serve` (loaded once) answering 16 txt2img requests from 1, 4 and 16 concurrent clients, with its
#      batching window on (the default 20 ms), and the 16-client case again with batching off (--batch-window 0);
# every request one image of STEPS steps with its own prompt and seed. Prints images/s of each, the ratio to the
# sequential calls, and how many requests the server batched (paris_batched_jobs_total). Loopback only.
# THREADS sets --threads for every paris process (default: libtorch's choice; on a machine whose cores other jobs
# keep busy pass THREADS=1, see docs/serving.md).
# Usage: RUN=runs/demo [STEPS=20] [THREADS=N] [PARIS=path/to/paris] bench/serve_batching.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${RUN:?set RUN to a run folder with experts and a router, e.g. runs/demo after scripts/demo.sh}"
STEPS="${STEPS:-20}"
threads=(); [ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
N=16
bin="${PARIS:-}"
if [ -z "$bin" ]; then
    scripts/setup.sh >/dev/null
    swift build -c release --product paris >&2
    bin="$(swift build -c release --show-bin-path)/paris"
fi
say() { printf '[serve-batching] %s\n' "$*" >&2; }

start=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
    "$bin" sample --run "$RUN" --prompt "request $i" --seed $((1000 + i)) --n 1 --steps "$STEPS" --device cpu \
        --name "bench-batching-$i" --force "${threads[@]}" >/dev/null
done
sequential=$(python3 -c "import sys; print($N / ($(date +%s.%N) - $start))")
rm -rf "$RUN"/samples/bench-batching-*
say "16 sequential paris sample calls: $(printf '%.3f' "$sequential") images/s"

log="$(mktemp)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -f "$log"' EXIT
serve() {  # serve [extra args]: starts the server, sets $url
    "$bin" serve --run "$RUN" --host 127.0.0.1 --port 0 --device cpu "${threads[@]}" "$@" >"$log" 2>&1 &
    server=$!
    for _ in $(seq 600); do
        grep -q "at http://" "$log" && break
        kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    url="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)"
}
measure() {  # measure CLIENTS LABEL
    local result rate batched
    python3 bench/serve_load.py "$url" "$1" "$N" 600 "$STEPS" >/dev/null  # warm-up round, not counted
    result="$(python3 bench/serve_load.py "$url" "$1" "$N" 600 "$STEPS")"
    rate="$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["5xx"] == 0 and r["mixed_up"] == 0, r; print(r["images_per_s"])' "$result")"
    batched="$(curl -s "$url/metrics" | awk '/^paris_batched_jobs_total/ {print $2}')"
    printf '| %s | %s | %.3f | %.2f | %s |\n' "$2" "$1" "$rate" "$(python3 -c "print($rate / $sequential)")" "$batched"
}

echo "| server | concurrent clients | images/s | × sequential paris sample | requests batched so far |"
echo "|---|---|---|---|---|"
printf '| (16 sequential `paris sample`) | 1 | %.3f | 1.00 | – |\n' "$sequential"
serve
for clients in 1 4 16; do measure "$clients" "batching on"; done
kill "$server"; wait "$server" 2>/dev/null || true
serve --batch-window 0
measure 16 "batching off"
