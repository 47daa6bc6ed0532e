#!/usr/bin/env bash
# Benchmark: one training step (forward, backward, AdamW) of a stack of DiT blocks, written once in Swift
# (bench/swift) and once in PyTorch (bench/block_stack.py), run on the same machine in the same run. Prints both
# median step times and the ratio Swift / PyTorch (below 1.0: Swift is faster).
#
# Usage: bench/run.sh [--device cuda] [--bf16] [--hidden 256 --heads 4 --depth 4 --tokens 64 --batch 16 --steps 20]
#        bench/run.sh expert [--model paris-T/4|paris-S/2|DiT-B/2|DiT-XL/2] [--batch 32] [--steps 10] [--device cuda --bf16]
# The `expert` mode times one training step of the expert trainer (flow matching, clipping, fused AdamW, EMA) against
# bench/expert_train.py and prints images/s, the ratio Swift / PyTorch in images/s (above 1.0: Swift is faster) and,
# for DiT on CUDA, the model FLOPs utilisation.
# PYTHON picks the interpreter with torch 2.11 (default: the reference venv that scripts/make_fixtures.sh makes).
# PARIS_BENCH picks a prebuilt binary (for a GPU machine without Swift); otherwise it is built here in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/paris/ref-venv/bin/python}"
if ! "$python" -c "import torch" 2>/dev/null; then
    echo "bench: no PyTorch at $python; run scripts/make_fixtures.sh once (it makes the reference venv) or set PYTHON" >&2
    exit 1
fi
bin="${PARIS_BENCH:-}"
if [ -z "$bin" ]; then
    scripts/setup.sh >/dev/null
    swift build -c release --product paris-bench >&2
    bin="$(swift build -c release --show-bin-path)/paris-bench"
fi
if [ "${1:-}" = "expert" ]; then
    shift
    echo "bench: expert training step, args: ${*:-(defaults)}" >&2
    runs=()
    for round in 1 2; do
        runs+=("$("$python" bench/expert_train.py "$@" 2>/dev/null)")
        runs+=("$("$bin" expert "$@")")
    done
    printf '%s\n' "${runs[@]}"
    "$python" - "${runs[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
t = max((r for r in rows if r["impl"] == "pytorch"), key=lambda r: r["images_per_s"])
s = max((r for r in rows if r["impl"] == "swift"), key=lambda r: r["images_per_s"])
assert t["params"] == s["params"], f"models differ: {t['params']} vs {s['params']} parameters"
mfu = lambda r: f", MFU {100 * r['mfu']:.1f} %" if "mfu" in r else ""
print(f"{s['model']} batch {s['batch']} ({t['device']}{', bf16' if s['bf16'] else ''}, {t['threads']} threads, "
      f"{t['params']:,} params): pytorch {t['images_per_s']:.1f} img/s{mfu(t)}, "
      f"swift {s['images_per_s']:.1f} img/s{mfu(s)}, ratio swift/pytorch = {s['images_per_s'] / t['images_per_s']:.3f}")
PY
    exit 0
fi
echo "bench: DiT block stack training step, args: ${*:-(defaults)}" >&2
# Two rounds, alternating PyTorch and Swift so that a burst of noise on this machine hits both; each side's best
# median counts.
runs=()
for round in 1 2; do
    runs+=("$("$python" bench/block_stack.py "$@" 2>/dev/null)")
    runs+=("$("$bin" "$@")")
done
printf '%s\n' "${runs[@]}"
"$python" - "${runs[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
t = min((r for r in rows if r["impl"] == "pytorch"), key=lambda r: r["median_ms"])
s = min((r for r in rows if r["impl"] == "swift"), key=lambda r: r["median_ms"])
assert t["params"] == s["params"], f"models differ: {t['params']} vs {s['params']} parameters"
assert abs(t["loss"] - s["loss"]) <= 1e-3 * abs(t["loss"]), f"losses differ: {t['loss']} vs {s['loss']}"
print(f"pytorch {t['median_ms']:.1f} ms/step, swift {s['median_ms']:.1f} ms/step, "
      f"ratio swift/pytorch = {s['median_ms'] / t['median_ms']:.3f} ({t['device']}, {t['threads']} threads, {t['params']:,} params)")
PY
