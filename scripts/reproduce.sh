#!/usr/bin/env bash
# Reproduces the papers' claims in relative form at small scale and writes docs/results.md from what came out.
# For each dataset and seed it trains two decentralized runs (semantic k-means clusters vs random shards, the same
# experts, router and budget), then evaluates the mixture with every routing strategy (top1, top2, full, sample1,
# oracle) with `paris eval`; the table reports mean ± standard deviation over seeds of the classifier Fréchet
# distance (lower is better) and prompt→class accuracy (higher is better), plus router accuracy.
#
# Usage: scripts/reproduce.sh [--datasets emoji,fashion-mnist] [--seeds 0,1,2] [--k 4] [--preset cpu-tiny]
#                             [--steps N] [--samples N] [--out runs/repro]
# CPU defaults take about 30 minutes per (dataset, seed) on 2 cores; on a GPU pass --preset gpu-b2.
# PARIS=path/to/paris uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=emoji; SEEDS=0,1,2; K=4; PRESET=cpu-tiny; STEPS=""; SAMPLES=64; OUT=runs/repro
while [ $# -gt 0 ]; do
    case "$1" in
        --datasets) DATASETS="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --k) K="$2"; shift 2 ;;
        --preset) PRESET="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --samples) SAMPLES="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
say() { printf '\033[1m[reproduce]\033[0m %s\n' "$*"; }

if [ -n "${PARIS:-}" ]; then
    bin="$PARIS"                      # an already built paris binary
else
    scripts/setup.sh
    swift build -c release --product paris
    bin="$(swift build -c release --show-bin-path)/paris"
fi

for dataset in ${DATASETS//,/ }; do
    data="data/$dataset"
    case "$dataset" in
        emoji) "$bin" data import emoji --out "$data" --size 32; preset=emoji ;;
        fashion-mnist) "$bin" data import fashion-mnist --out "$data"; preset=fashion-mnist ;;
        *) echo "unknown dataset $dataset" >&2; exit 2 ;;
    esac
    for seed in ${SEEDS//,/ }; do
        for method in kmeans random; do
            run="$OUT/$dataset-$method-s$seed"
            say "$run"
            [ -f "$run/run.json" ] || "$bin" run init --run "$run" --data "$data" --k "$K" --preset "$PRESET" --seed "$seed"
            if [ -n "$STEPS" ]; then
                python3 - "$run/run.json" "$STEPS" <<'PY'
import json, sys
path, steps = sys.argv[1], int(sys.argv[2])
run = json.load(open(path))
for job in run["experts"] + [run["router"]] + ([run["monolith"]] if run.get("monolith") else []):
    job["steps"] = steps
json.dump(run, open(path, "w"), indent=2, sort_keys=True)
PY
            fi
            [ -f "$run/partition/manifest.json" ] || "$bin" partition --data "$data" --out "$run/partition" --k "$K" \
                --preset "$preset" --method "$method" --seed "$seed" --features text
            "$bin" launch --run "$run" --backend local --parallel 2 --resume --no-eval
            [ -f "$run/eval/report.json" ] || "$bin" eval --run "$run" --samples "$SAMPLES" --no-fid --seed "$seed" \
                --strategies top1,top2,full,sample1,oracle
        done
    done
done

say "writing docs/results.md"
python3 - "$OUT" "$K" "$PRESET" "$DATASETS" "$SEEDS" "$STEPS" "$SAMPLES" <<'PY'
import json, pathlib, statistics, sys
out, k, preset, datasets, seeds, steps, samples = sys.argv[1:8]
rows = {}
for report in sorted(pathlib.Path(out).glob("*/eval/report.json")):
    name = report.parent.parent.name            # <dataset>-<method>-s<seed>
    dataset, method, _ = name.rsplit("-", 2)
    r = json.load(open(report))
    router = [p.get("accuracy") for p in r.get("router", []) if p.get("accuracy") is not None]
    for s in r["strategies"]:
        key = (dataset, method, s["strategy"])
        rows.setdefault(key, {"fd": [], "acc": [], "router": []})
        if s.get("classifier_fd") is not None: rows[key]["fd"].append(s["classifier_fd"])
        if s.get("prompt_accuracy") is not None: rows[key]["acc"].append(s["prompt_accuracy"])
        if router: rows[key]["router"].append(sum(router) / len(router))
def fmt(xs, digits):
    if not xs: return "–"
    m = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.{digits}f} ± {sd:.{digits}f} (n={len(xs)})"
lines = [
    "# Results: the papers' claims at small scale",
    "",
    "Written by `scripts/reproduce.sh " + f"--datasets {datasets} --seeds {seeds} --k {k} --preset {preset}"
    + (f" --steps {steps}" if steps else "") + f" --samples {samples}`" + " from the `eval/report.json` of each run;",
    "rerun it to reproduce (numbers vary with the machine's floating-point kernels, not with timing).",
    "Classifier FD: Fréchet distance in the penultimate features of a small classifier trained on the dataset's labels",
    "(lower is better). Prompt accuracy: the share of samples that classifier puts in their prompt's class (higher is",
    "better). Router accuracy: mean over time buckets of the router's held-out accuracy. Mean ± standard deviation over seeds.",
    "",
    "| dataset | clusters | strategy | classifier FD | prompt accuracy | router accuracy |",
    "|---|---|---|---|---|---|",
]
for (dataset, method, strategy), v in sorted(rows.items()):
    lines.append(f"| {dataset} | {method} | {strategy} | {fmt(v['fd'], 2)} | {fmt(v['acc'], 3)} | {fmt(v['router'], 3)} |")
path = pathlib.Path("docs/results.md")
old = path.read_text() if path.exists() else ""
marker = "<!-- reproduce.sh -->"
tail = old.split(marker, 1)[1] if marker in old else ""
path.write_text("\n".join(lines) + "\n\n" + marker + tail)
print("\n".join(lines))
PY
