#!/usr/bin/env bash
# Adding an expert to a trained run, on real data (`paris run add-expert`): Fashion-MNIST without its bags trains a
# K = 3 run (the demo's recipe: cpu-demo preset, caption clusters, 512 held out, text-conditioned router); then the
# bags arrive as new data, partitioned on their own into one cluster (64 held out), and become expert 3: it trains
# on the bags alone, the router is retrained for 4, the other three experts are not touched. It evaluates the grown
# run (router accuracy per cluster, prompt accuracy) and samples a grid with a bag prompt among the others.
# Safe to run again: every finished step is skipped. The numbers in docs/contributing-experts.md come from it.
# Usage: scripts/add-expert-demo.sh   (RUN=runs/add-expert by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${RUN:-runs/add-expert}"
DATA=data/fashion-mnist-demo
say() { printf '\033[1m[add-expert]\033[0m %s\n' "$*"; }
start=$(date +%s)
elapsed() { printf '%d min %02d s' $(( ($(date +%s) - start) / 60 )) $(( ($(date +%s) - start) % 60 )); }

scripts/setup.sh
swift build -c release --product paris
bin="$(swift build -c release --show-bin-path)/paris"

say "1/6 importing Fashion-MNIST (12,600 training images) into $DATA   [$(elapsed)]"
"$bin" data import fashion-mnist --out "$DATA" --split train --limit 12600

say "2/6 splitting it into data/fm-no-bags (9 classes) and data/fm-bags (label 8)   [$(elapsed)]"
python3 - "$DATA" <<'PY'
import json, os, sys
src = sys.argv[1]
for name, keep in (("data/fm-no-bags", lambda r: r["label"] != 8), ("data/fm-bags", lambda r: r["label"] == 8)):
    os.makedirs(name, exist_ok=True)
    link = os.path.join(name, "train")
    if not os.path.lexists(link):
        os.symlink(os.path.relpath(os.path.join(src, "train"), name), link)
    rows = [json.loads(l) for l in open(os.path.join(src, "metadata.jsonl")) if l.strip()]
    with open(os.path.join(name, "metadata.jsonl.partial"), "w") as f:
        for r in rows:
            if keep(r):
                f.write(json.dumps(r) + "\n")
    os.replace(os.path.join(name, "metadata.jsonl.partial"), os.path.join(name, "metadata.jsonl"))
    print(name, sum(1 for r in rows if keep(r)), "images")
PY

say "3/6 the K = 3 run without bags: partition, 3 experts, router   [$(elapsed)]"
[ -f "$RUN/run.json" ] || "$bin" run init --run "$RUN" --data data/fm-no-bags --k 3 --preset cpu-demo
[ -f "$RUN/partition/manifest.json" ] || "$bin" partition --data data/fm-no-bags --out "$RUN/partition" --k 3 \
    --preset fashion-mnist --features text --held-out 512
"$bin" launch --run "$RUN" --backend local --parallel 2 --resume --no-eval

say "4/6 the bags as one cluster of their own (64 held out)   [$(elapsed)]"
[ -f data/fm-bags-partition/manifest.json ] || "$bin" partition --data data/fm-bags --out data/fm-bags-partition \
    --k 1 --preset fashion-mnist --features text --held-out 64

say "5/6 adding expert 3: trained on the bags alone, then the router retrained for 4   [$(elapsed)]"
if [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_experts"])' "$RUN/run.json")" = 3 ]; then
    sha() { sha256sum "$RUN"/expert_{0,1,2}/diffusion_pytorch_model.safetensors; }
    sha > "$RUN/.experts-before.sha256"
    "$bin" run add-expert --run "$RUN" --data data/fm-bags-partition
    sha | diff - "$RUN/.experts-before.sha256" && say "experts 0-2: weights unchanged (sha256)"
fi
"$bin" status --run "$RUN" --plots

say "6/6 evaluating the grown run and sampling   [$(elapsed)]"
[ -f "$RUN/eval/report.md" ] || "$bin" eval --run "$RUN" --samples 64 --classifier-steps 1200 \
    --strategies prompt,top2,oracle --no-fid
"$bin" sample --run "$RUN" --prompt "a photo of a bag" --prompt "a photo of trousers" \
    --prompt "a photo of an ankle boot" --prompt "a photo of a dress" --n 4 --strategy top2 --steps 30 --name grown --force
say "done in $(elapsed); grid: $RUN/samples/grown/grid.png, report: $RUN/eval/report.md"
