#!/usr/bin/env bash
# Reproduces the papers' claims in relative form at the demo's scale and writes docs/results.md from what came out.
# For each dataset and seed it trains, on K semantic clusters of the captions, the K experts of the cpu-demo preset,
# two routers on the same shards (the papers' text-free router p(k | x_t, t) in router/, and the text-conditioned
# p(k | x_t, t, prompt) in router-text/) and the compute-matched monolith (one model, batch K·B, the same steps: the
# experts' compute); with --methods kmeans,random also a run on K random shards of the same images (the same
# experts and text-free router). Every partition holds out the same images, which no model trains on.
# `paris eval` then samples on held-out captions with every routing strategy: top1, top2, full, sample1, oracle,
# prompt (the nearest caption centroid) and the text-conditioned router's top1 and top2, plus the monolith; it
# scores all runs of a dataset with one shared classifier, so the classifier Fréchet distance compares across
# runs, and on --fid-dataset it adds TF-Inception FID from --fid-samples samples per row. Each row also gives its
# cost per image (experts and router evaluated per step, seconds per image). scripts/results_table.py writes
# the tables.
#
# Usage: scripts/reproduce.sh [--datasets fashion-mnist,emoji] [--seeds 0,1,2] [--methods kmeans]
#                             [--k 4] [--preset cpu-demo] [--steps 1500] [--router-steps 1000] [--samples 256]
#                             [--fid-dataset fashion-mnist] [--fid-samples 1000] [--fid-seeds 0] [--held-out 512]
#                             [--image-size N] [--emoji-size 32] [--classifier-steps 1200] [--eval-device cpu|cuda]
#                             [--out runs/repro] [--doc docs/results.md]
# Images are the datasets' own size unless --image-size says otherwise: Fashion-MNIST 28 px (the demo's 12,600
# training images), emoji as imported at --emoji-size (32 px; data/emoji-<size>).
# --steps sets the experts' and the monolith's steps, --router-steps both routers' (empty: the preset's).
# Every seed of --fid-dataset samples --fid-samples images per row; FID (TF-Inception at 299 px, about 0.15 s per
# image on 2 CPU cores) is computed for the --fid-seeds among them ("all": every seed). --fid-dataset none skips
# FID. On a GPU pass --preset gpu-b2, --steps "" --router-steps "" and --eval-device cuda.
# PARIS=path/to/paris uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=fashion-mnist,emoji; SEEDS=0,1,2; METHODS=kmeans; K=4; PRESET=cpu-demo; STEPS=1500; ROUTER_STEPS=1000
SAMPLES=256; FID_DATASET=fashion-mnist; FID_SAMPLES=1000; FID_SEEDS=0; HELD_OUT=512; EVAL_DEVICE=cpu
OUT=runs/repro; DOC=docs/results.md; SIZE=""; CLASSIFIER_STEPS=1200; EMOJI_SIZE=32
while [ $# -gt 0 ]; do
    case "$1" in
        --datasets) DATASETS="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --methods) METHODS="$2"; shift 2 ;;
        --k) K="$2"; shift 2 ;;
        --preset) PRESET="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --router-steps) ROUTER_STEPS="$2"; shift 2 ;;
        --samples) SAMPLES="$2"; shift 2 ;;
        --fid-dataset) FID_DATASET="$2"; shift 2 ;;
        --fid-samples) FID_SAMPLES="$2"; shift 2 ;;
        --fid-seeds) FID_SEEDS="$2"; shift 2 ;;
        --held-out) HELD_OUT="$2"; shift 2 ;;
        --eval-device) EVAL_DEVICE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --doc) DOC="$2"; shift 2 ;;
        --image-size) SIZE="$2"; shift 2 ;;
        --classifier-steps) CLASSIFIER_STEPS="$2"; shift 2 ;;
        --emoji-size) EMOJI_SIZE="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
say() { printf '\033[1m[reproduce]\033[0m %s   [%s]\n' "$*" "$(date +%H:%M:%S)"; }

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
        case "$dataset" in
            # Captions are the cluster features on CPU: EfficientNet image features take minutes per thousand images.
            emoji) data="data/emoji-$EMOJI_SIZE"; "$bin" data import emoji --out "$data" --size "$EMOJI_SIZE"; preset=emoji ;;
            fashion-mnist) data=data/fashion-mnist-demo
                "$bin" data import fashion-mnist --out "$data" --split train --limit 12600; preset=fashion-mnist ;;
            *) echo "unknown dataset $dataset" >&2; exit 2 ;;
        esac
        # The FID dataset holds out enough images for --fid-samples prompts and references; every run of a dataset
        # holds out the same ones.
        held_out="$HELD_OUT"; n="$SAMPLES"; fid=(--no-fid)
        if [ "$dataset" = "$FID_DATASET" ]; then
            n="$FID_SAMPLES"; [ "$FID_SAMPLES" -gt "$held_out" ] && held_out="$FID_SAMPLES"
            case ",$FID_SEEDS," in *",$seed,"*|*,all,*) fid=() ;; esac
        fi
        for method in ${METHODS//,/ }; do
            run="$OUT/$dataset-$method-s$seed"
            say "$run"
            [ -f "$run/run.json" ] || "$bin" run init --run "$run" --data "$data" --k "$K" --preset "$PRESET" --seed "$seed"
            # The run's own router is the papers' text-free one; the text-conditioned one trains beside it.
            python3 - "$run/run.json" "$STEPS" "$ROUTER_STEPS" <<'PY'
import json, sys
path, steps, router_steps = sys.argv[1:4]
run = json.load(open(path))
for job in run["experts"] + ([run["monolith"]] if run.get("monolith") else []):
    job["steps"] = int(steps or job["steps"])
run["router"]["steps"] = int(router_steps or run["router"]["steps"])
run["router"]["model"] = run["router"]["model"].removesuffix("-text")
json.dump(run, open(path, "w"), indent=2, sort_keys=True)
PY
            text_router="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["router"]["model"] + "-text")' "$run/run.json")"
            [ -f "$run/partition/manifest.json" ] || "$bin" partition --data "$data" --out "$run/partition" --k "$K" \
                --preset "$preset" --method "$method" --seed "$seed" --features text --held-out "$held_out" \
                ${SIZE:+--image-size "$SIZE"}
            "$bin" launch --run "$run" --backend local --parallel 2 --resume --no-eval
            strategies=top1,top2,full,sample1,oracle; compare=()
            if [ "$method" = kmeans ]; then
                "$bin" train monolith --run "$run"
                "$bin" train router --run "$run" --model "$text_router" --out "$run/router-text"
                strategies+=,prompt; compare=(--compare-router "$run/router-text" --compare-strategies top1,top2)
            fi
            [ -f "$run/eval/report.json" ] || "$bin" eval --run "$run" --samples "$n" --fid-samples "$held_out" \
                "${fid[@]}" --seed "$seed" --device "$EVAL_DEVICE" --strategies "$strategies" "${compare[@]}" \
                --classifier-steps "$CLASSIFIER_STEPS" --classifier "$OUT/classifier-$dataset"
        done
    done
done

say "writing $DOC"
python3 scripts/results_table.py --out "$OUT" --doc "$DOC" --command "scripts/reproduce.sh --datasets $DATASETS \
--seeds $SEEDS --methods $METHODS --k $K --preset $PRESET --steps $STEPS --router-steps $ROUTER_STEPS \
--samples $SAMPLES --fid-dataset $FID_DATASET --fid-samples $FID_SAMPLES --fid-seeds $FID_SEEDS --held-out $HELD_OUT\
${SIZE:+ --image-size $SIZE} --emoji-size $EMOJI_SIZE --classifier-steps $CLASSIFIER_STEPS"
