#!/usr/bin/env bash
# The demo: sets everything up (scripts/setup.sh), builds `paris` in release mode, and runs a whole decentralized
# training on a 2-core CPU:
#   1. imports 12,600 Fashion-MNIST training images (28×28 gray, 10 captioned classes) into data/fashion-mnist-demo;
#   2. creates the run runs/demo (preset cpu-demo, K = 4) and partitions the images into 4 clusters of captions
#      (512 held out, which nothing trains on);
#   3. trains the 4 experts as separate processes, 2 at a time, printing each one's step, loss and images/s as it
#      goes, then the text-conditioned router (`paris launch`);
#   4. evaluates on the held-out images (a classifier trained on them says whether each sample is its prompt's
#      class; prompt accuracy is printed only when that classifier is right at least 80 % of the time);
#   5. samples a grid for 8 prompts, each routed to the expert of its caption cluster (--strategy prompt).
# DATASET=emoji runs the same recipe on the emoji (about 5,700 images of 1,900 concepts in three art styles, 32×32
# RGB, into data/emoji-32 and runs/demo-emoji): the second, longer demo.
# Safe to run again: finished steps are skipped, interrupted ones resume from their last checkpoint.
# Usage: scripts/demo.sh        (RUN=runs/other K=8 PRESET=cpu-small scripts/demo.sh for other settings;
#                                DATASET=emoji scripts/demo.sh for emoji)
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${DATASET:-fashion-mnist}"
case "$DATASET" in
    fashion-mnist) RUN="${RUN:-runs/demo}"; DATA="${DATA:-data/fashion-mnist-demo}"
        what="Fashion-MNIST (12,600 training images)"
        prompts=("a photo of trousers" "a photo of an ankle boot" "a photo of a dress" "a photo of a bag"
                 "a photo of a sneaker" "a photo of a pullover" "a photo of a sandal" "a photo of a t-shirt") ;;
    emoji) RUN="${RUN:-runs/demo-emoji}"; DATA="${DATA:-data/emoji-32}"
        what="emoji (32×32 RGB, three art styles)"
        prompts=("an emoji of grinning face" "an emoji of cat face" "an emoji of red apple" "an emoji of banana"
                 "an emoji of automobile" "an emoji of soccer ball" "an emoji of heavy black heart"
                 "an emoji of christmas tree") ;;
    *) echo "DATASET must be fashion-mnist or emoji, not $DATASET" >&2; exit 2 ;;
esac
K="${K:-4}"
PRESET="${PRESET:-cpu-demo}"
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
start=$(date +%s)
elapsed() { printf '%d min %02d s' $(( ($(date +%s) - start) / 60 )) $(( ($(date +%s) - start) % 60 )); }

scripts/setup.sh
say "building paris (release)"
swift build -c release --product paris
bin="$(swift build -c release --show-bin-path)/paris"
"$bin" doctor

say "1/5 importing $what into $DATA   [$(elapsed)]"
if [ "$DATASET" = emoji ]; then
    "$bin" data import emoji --out "$DATA" --size 32
else
    "$bin" data import fashion-mnist --out "$DATA" --split train --limit 12600
fi

say "2/5 creating $RUN (preset $PRESET, K = $K) and partitioning $DATA by caption   [$(elapsed)]"
[ -f "$RUN/run.json" ] || "$bin" run init --run "$RUN" --data "$DATA" --k "$K" --preset "$PRESET"
[ -f "$RUN/partition/manifest.json" ] || "$bin" partition --data "$DATA" --out "$RUN/partition" --k "$K" \
    --preset "$DATASET" --features text --held-out 512

say "3/5 training $K experts as separate processes (2 at a time), then the router   [$(elapsed)]"
"$bin" launch --run "$RUN" --backend local --parallel 2 --resume --no-eval
"$bin" status --run "$RUN" --plots

say "4/5 evaluating on the 512 held-out images   [$(elapsed)]"
# FID is left out here: TF-Inception at 299 px costs about 1 s per image on 2 cores; `paris eval --run runs/demo`
# adds it.
[ -f "$RUN/eval/report.md" ] || "$bin" eval --run "$RUN" --samples 64 --fid-samples 512 --classifier-steps 1200 \
    --strategies prompt,top2,oracle --no-fid

say "5/5 sampling from the mixture of experts   [$(elapsed)]"
args=()
for p in "${prompts[@]}"; do args+=(--prompt "$p"); done
"$bin" sample --run "$RUN" "${args[@]}" --n 4 --strategy prompt --steps 30 --name demo --force

say "done in $(elapsed)"
say "sample grid:     $RUN/samples/demo/grid.png   (one row of 4 per prompt)"
say "evaluation:      $RUN/eval/report.md   (add FID: $bin eval --run $RUN)"
say "cluster grids:   $RUN/partition/grids.png"
say "training status: $bin status --run $RUN"
