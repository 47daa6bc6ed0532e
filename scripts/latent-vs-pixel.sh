#!/usr/bin/env bash
# Latent experts at 64 px vs pixel experts at 32 px, in the same training time per expert, on the emoji.
#
# 1. imports the emoji at 64 px (data/emoji-64) and partitions the same images twice with the same seed and caption
#    features (so the same K clusters and the same held-out images): at 32 px for the pixel run, at 64 px for the
#    latent run;
# 2. trains a small autoencoder (vae-f4: 64-px RGB ↔ 16×16×4 latents) on the 64-px shards (`paris train
#    autoencoder`), checks that diffusers' AutoencoderKL.from_pretrained loads it (when the reference venv is
#    there), and encodes the 64-px partition into latent shards (`paris encode`);
# 3. calibrates each run's seconds per expert step (a 10-step session in a scratch copy), sets every expert's
#    steps so that it trains for --budget seconds, and trains the K experts one after another, then each run's
#    text-conditioned router (the same steps for both);
# 4. `paris eval` on the held-out images: FID (TF-Inception; each run against its own resolution's real images),
#    the classifier Fréchet distance and prompt accuracy (a classifier per resolution), and prints the table.
# The autoencoder's training time is reported separately: it is paid once per dataset, not per expert.
#
# Usage: scripts/latent-vs-pixel.sh [--budget 150] [--k 2] [--ae-steps 600] [--router-steps 200]
#                                   [--samples 128] [--held-out 256] [--limit N] [--no-fid] [--out runs/latent-vs-pixel]
# PARIS=path/to/paris uses that binary instead of building one. Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=150; K=2; AE_STEPS=600; ROUTER_STEPS=200; SAMPLES=128; HELD_OUT=256; OUT=runs/latent-vs-pixel; FID=(); LIMIT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --budget) BUDGET="$2"; shift 2 ;;
        --k) K="$2"; shift 2 ;;
        --ae-steps) AE_STEPS="$2"; shift 2 ;;
        --router-steps) ROUTER_STEPS="$2"; shift 2 ;;
        --samples) SAMPLES="$2"; shift 2 ;;
        --held-out) HELD_OUT="$2"; shift 2 ;;
        --limit) LIMIT="$2"; shift 2 ;;
        --no-fid) FID=(--no-fid); shift ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
say() { printf '\033[1m[latent-vs-pixel]\033[0m %s   [%s]\n' "$*" "$(date +%H:%M:%S)"; }
if [ -n "${PARIS:-}" ]; then
    bin="$PARIS"
else
    scripts/setup.sh
    swift build -c release --product paris
    bin="$(swift build -c release --show-bin-path)/paris"
fi
data=data/emoji-64
pixel="$OUT/pixel32"; latent="$OUT/latent64"; mkdir -p "$OUT"

say "1/4 importing the emoji at 64 px and partitioning them at 32 px and at 64 px (K = $K, $HELD_OUT held out)"
[ -f "$data/metadata.jsonl" ] || "$bin" data import emoji --out "$data" --size 64 ${LIMIT:+--limit "$LIMIT"}
for spec in "$pixel:32:partition" "$latent:64:pixels"; do
    IFS=: read -r run size part <<<"$spec"
    [ -f "$run/run.json" ] || "$bin" run init --run "$run" --data "$data" --k "$K" --preset cpu-demo --seed 0
    [ -f "$run/$part/manifest.json" ] || "$bin" partition --data "$data" --out "$run/$part" --k "$K" --preset emoji \
        --features text --held-out "$HELD_OUT" --image-size "$size" --seed 0
done

say "2/4 training the autoencoder (vae-f4, $AE_STEPS steps) on the 64-px shards, then encoding them"
"$bin" train autoencoder --data "$latent/pixels" --out "$latent/autoencoder" --model vae-f4 --steps "$AE_STEPS" \
    --batch-size 16 --checkpoint-every 100
ref="${PARIS_REF_VENV:-$HOME/.cache/paris/ref-venv}/bin/python"
if [ -x "$ref" ]; then
    "$ref" - "$latent/autoencoder" <<'PY'
import sys, torch
from diffusers import AutoencoderKL
vae, info = AutoencoderKL.from_pretrained(sys.argv[1], output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
x = torch.zeros(1, 3, vae.config.sample_size, vae.config.sample_size)
z = vae.encode(x).latent_dist.mean
print(f"diffusers {__import__('diffusers').__version__} loaded {sys.argv[1]}: latents {list(z.shape)}, "
      f"scaling_factor {vae.config.scaling_factor:.4f}, decode {list(vae.decode(z).sample.shape)}")
PY
else
    say "no reference venv at $ref: diffusers' from_pretrained not checked"
fi
[ -f "$latent/partition/manifest.json" ] || "$bin" encode --partition "$latent/pixels" --autoencoder "$latent/autoencoder" \
    --out "$latent/partition"

say "3/4 calibrating and training: ${BUDGET}s per expert"
set_steps() {  # run.json: experts' steps ($2), routers' steps ($3), the partition folder ($4), log_every ($5)
    python3 - "$1/run.json" "$2" "$3" "$4" "${5:-}" <<'PY'
import json, sys
path, steps, router_steps, partition, log_every = sys.argv[1:6]
run = json.load(open(path))
for job in run["experts"]:
    job["steps"] = int(steps)
    if log_every:
        job["log_every"] = int(log_every)
    job["warmup_steps"] = min(job["warmup_steps"], max(1, int(steps) // 10))
    job["checkpoint_every"] = max(50, int(steps) // 4)
run["router"]["steps"] = int(router_steps)
run["partition"] = partition
json.dump(run, open(path, "w"), indent=2, sort_keys=True)
PY
}
for spec in "$pixel:partition" "$latent:partition"; do
    IFS=: read -r run part <<<"$spec"
    if [ ! -f "$run/steps.txt" ]; then
        scratch="$run.calibrate"; rm -rf "$scratch"; mkdir -p "$scratch"
        cp "$run/run.json" "$scratch/"; ln -s "$(realpath "$run/$part")" "$scratch/partition"
        set_steps "$scratch" 1000 "$ROUTER_STEPS" partition 2
        "$bin" train expert --run "$scratch" --expert 0 --stop-after 16 > /dev/null
        python3 - "$scratch/expert_0/metrics.jsonl" "$BUDGET" > "$run/steps.txt.tmp" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
# seconds per step from the last lines (the first steps pay one-time costs)
a, b = lines[0], lines[-1]
per = (b["elapsed_s"] - a["elapsed_s"]) / max(1, b["step"] - a["step"])
print(max(10, int(float(sys.argv[2]) / per)))
PY
        mv "$run/steps.txt.tmp" "$run/steps.txt"
        rm -rf "$scratch"
    fi
    steps=$(cat "$run/steps.txt")
    set_steps "$run" "$steps" "$ROUTER_STEPS" "$part"
    say "$run: $steps expert steps"
    for ((k = 0; k < K; k++)); do "$bin" train expert --run "$run" --expert "$k"; done
    "$bin" train router --run "$run"
done

say "4/4 evaluating both runs on the held-out images"
for run in "$pixel" "$latent"; do
    [ -f "$run/eval/report.json" ] || "$bin" eval --run "$run" --samples "$SAMPLES" --fid-samples "$HELD_OUT" \
        --strategies top2 --classifier-steps 800 --classifier "$run/classifier" "${FID[@]}"
done
python3 - "$pixel" "$latent" "$K" "$BUDGET" <<'PY'
import json, sys, os
pixel, latent, k, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def last(path):
    lines = [json.loads(l) for l in open(path)]
    return lines[-1]
print(f"\n| run | model input | expert steps (each) | training s per expert | FID | classifier FD | prompt accuracy | classifier accuracy |")
print("|---|---|---|---|---|---|---|---|")
for run, what in [(pixel, "32×32×3 pixels"), (latent, "16×16×4 latents of 64-px images")]:
    rep = json.load(open(os.path.join(run, "eval", "report.json")))
    row = rep["strategies"][0]
    m = [last(os.path.join(run, f"expert_{i}", "metrics.jsonl")) for i in range(k)]
    secs = sum(x["elapsed_s"] for x in m) / k
    fmt = lambda v, f: "—" if v is None else f % v
    acc = rep.get("classifier", {}) or {}
    print(f"| {os.path.basename(run)} | {what} | {m[0]['step']} | {secs:.0f} | {fmt(row.get('fid'), '%.1f')} | "
          f"{fmt(row.get('classifier_fd'), '%.2f')} | {fmt(row.get('prompt_accuracy'), '%.3f')} | "
          f"{fmt(acc.get('held_out_accuracy'), '%.3f')} |")
ae = last(os.path.join(latent, "autoencoder", "metrics.jsonl"))
print(f"\nautoencoder: {ae['step']} steps in {ae['elapsed_s']:.0f} s (paid once), final loss {ae['loss']:.1f}; "
      f"budget {budget} s per expert")
PY
