#!/usr/bin/env bash
# Reproduces the papers' claims in relative form at small scale and writes docs/results.md from what came out.
# For each dataset and seed it trains two decentralized runs (semantic k-means clusters of the captions vs random
# shards; the same experts, router and budget) and, in the k-means run, the compute-matched monolith (one model,
# batch K·B, the same steps: the experts' compute). Every partition holds out the same --held-out images, which no
# model trains on. `paris eval` then samples the mixture with every routing strategy (top1, top2, full, sample1,
# oracle) and the monolith on held-out captions, and scores all runs of a dataset with one shared classifier, so
# the classifier Fréchet distance compares across runs. scripts/results_table.py writes the tables.
#
# Usage: scripts/reproduce.sh [--datasets fashion-mnist,emoji] [--seeds 0,1,2] [--k 4] [--preset cpu-tiny]
#                             [--image-size 16] [--steps 1500] [--router-steps 1000] [--samples 64]
#                             [--held-out 512] [--eval-device cpu|cuda] [--out runs/repro]
# --steps sets the experts' and the monolith's steps, --router-steps the router's (empty: the preset's). The CPU
# defaults (16-px images, where the tiny experts learn recognisable shapes in about 1,000 steps; at 28-32 px they
# still sample noise after 300-400) take about 8 minutes per seed for Fashion-MNIST and 16 for emoji on 2 cores
# (the k-means and the random run, and the monolith). On a GPU pass
# --preset gpu-b2 --image-size 32 (or the dataset's size), the preset's steps (--steps "" --router-steps "") and
# --eval-device cuda.
# PARIS=path/to/paris uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=fashion-mnist,emoji; SEEDS=0,1,2; K=4; PRESET=cpu-tiny; SIZE=16; STEPS=1500; ROUTER_STEPS=1000
SAMPLES=64; HELD_OUT=512; EVAL_DEVICE=cpu; OUT=runs/repro
while [ $# -gt 0 ]; do
    case "$1" in
        --datasets) DATASETS="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --k) K="$2"; shift 2 ;;
        --preset) PRESET="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --router-steps) ROUTER_STEPS="$2"; shift 2 ;;
        --image-size) SIZE="$2"; shift 2 ;;
        --samples) SAMPLES="$2"; shift 2 ;;
        --held-out) HELD_OUT="$2"; shift 2 ;;
        --eval-device) EVAL_DEVICE="$2"; shift 2 ;;
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

# Seeds in the outer loop, so every dataset has results early.
for seed in ${SEEDS//,/ }; do
    for dataset in ${DATASETS//,/ }; do
        data="data/$dataset"
        case "$dataset" in
            # Captions are the cluster features on CPU: EfficientNet image features take minutes per thousand images.
            emoji) "$bin" data import emoji --out "$data" --size 32; preset=emoji; limit="" ;;
            fashion-mnist) "$bin" data import fashion-mnist --out "$data"; preset=fashion-mnist; limit="--limit 12000" ;;
            *) echo "unknown dataset $dataset" >&2; exit 2 ;;
        esac
        for method in kmeans random; do
            run="$OUT/$dataset-$method-s$seed"
            say "$run"
            [ -f "$run/run.json" ] || "$bin" run init --run "$run" --data "$data" --k "$K" --preset "$PRESET" --seed "$seed"
            python3 - "$run/run.json" "$STEPS" "$ROUTER_STEPS" <<'PY'
import json, sys
path, steps, router_steps = sys.argv[1:4]
run = json.load(open(path))
for job in run["experts"] + ([run["monolith"]] if run.get("monolith") else []):
    job["steps"] = int(steps or job["steps"])
run["router"]["steps"] = int(router_steps or run["router"]["steps"])
json.dump(run, open(path, "w"), indent=2, sort_keys=True)
PY
            [ -f "$run/partition/manifest.json" ] || "$bin" partition --data "$data" --out "$run/partition" --k "$K" \
                --preset "$preset" --method "$method" --seed "$seed" --features text --held-out "$HELD_OUT" --image-size "$SIZE" $limit
            "$bin" launch --run "$run" --backend local --parallel 2 --resume --no-eval
            [ "$method" = kmeans ] && "$bin" train monolith --run "$run"
            [ -f "$run/eval/report.json" ] || "$bin" eval --run "$run" --samples "$SAMPLES" --fid-samples "$HELD_OUT" \
                --no-fid --seed "$seed" --device "$EVAL_DEVICE" --strategies top1,top2,full,sample1,oracle --classifier "$OUT/classifier-$dataset"
        done
    done
done

say "writing docs/results.md"
python3 scripts/results_table.py --out "$OUT" --command "scripts/reproduce.sh --datasets $DATASETS --seeds $SEEDS \
--k $K --preset $PRESET --image-size $SIZE --steps $STEPS --router-steps $ROUTER_STEPS --samples $SAMPLES \
--held-out $HELD_OUT"
