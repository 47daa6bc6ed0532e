#!/usr/bin/env bash
# The demo: sets everything up (scripts/setup.sh), builds `paris` in release mode, and runs a whole decentralized
# training on a 2-core CPU in about 20-25 minutes:
#   1. imports the emoji dataset (Twemoji, OpenMoji, Noto: ~5.7k images with captions) into data/emoji;
#   2. creates the run runs/demo (preset cpu-tiny, K = 4) and partitions the data into 4 clusters;
#   3. trains the 4 experts as separate processes (2 at a time), then the router (`paris launch`), then evaluates;
#   4. samples a grid for a few prompts from the router-weighted mixture of experts.
# Safe to run again: finished steps are skipped, interrupted ones resume from their last checkpoint.
# Usage: scripts/demo.sh        (RUN=runs/other K=8 PRESET=cpu-small scripts/demo.sh for larger settings)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${RUN:-runs/demo}"
K="${K:-4}"
PRESET="${PRESET:-cpu-tiny}"
DATA="${DATA:-data/emoji}"
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
start=$(date +%s)

scripts/setup.sh
say "building paris (release)"
swift build -c release --product paris
bin="$(swift build -c release --show-bin-path)/paris"
"$bin" doctor

say "1/4 importing the emoji dataset into $DATA"
"$bin" data import emoji --out "$DATA" --size 32

say "2/4 creating $RUN (preset $PRESET, K = $K) and partitioning $DATA"
[ -f "$RUN/run.json" ] || "$bin" run init --run "$RUN" --data "$DATA" --k "$K" --preset "$PRESET"
[ -f "$RUN/partition/manifest.json" ] || "$bin" partition --data "$DATA" --out "$RUN/partition" --k "$K" --preset emoji --features text \
    --held-out 256

say "3/4 training $K experts as separate processes, then the router, then evaluating"
"$bin" launch --run "$RUN" --backend local --parallel 2 --resume --no-eval
"$bin" status --run "$RUN" --plots
# FID is left out here: TF-Inception at 299 px costs about 1 s per image on 2 cores (minutes for the demo), and on
# 32-px blobs it says little; `paris eval --run runs/demo` adds it.
[ -f "$RUN/eval/report.md" ] || "$bin" eval --run "$RUN" --samples 32 --fid-samples 64 --classifier-steps 200 --no-fid

say "4/4 sampling from the mixture of experts"
prompts=("an emoji of cat face" "an emoji of red apple" "an emoji of automobile" "an emoji of smiling face with sunglasses")
args=()
for p in "${prompts[@]}"; do args+=(--prompt "$p"); done
"$bin" sample --run "$RUN" "${args[@]}" --n 4 --strategy top2 --steps 30 --name demo --force

say "done in $(( ($(date +%s) - start) / 60 )) min"
say "sample grid:     $RUN/samples/demo/grid.png"
say "evaluation:      $RUN/eval/report.md   (add FID: $bin eval --run $RUN)"
say "cluster grids:   $RUN/partition/grids.png"
say "training status: $bin status --run $RUN"
