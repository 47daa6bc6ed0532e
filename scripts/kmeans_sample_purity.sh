#!/usr/bin/env bash
# Does fitting k-means on a sample (`--kmeans-sample`, then every image assigned to the nearest centroids) cluster
# as well as Lloyd's on every image? Partitions the first LIMIT Fashion-MNIST training images into K = 10 clusters on
# EfficientNet-Lite0 image features, with the full fit and with samples of LIMIT/4 and LIMIT/10 images, for three
# seeds each, and prints purity and NMI per run and their mean ± standard deviation per sample size (the spread over
# seeds is the noise the sampled fit is compared with). docs/data.md quotes the table.
# Usage: scripts/kmeans_sample_purity.sh [LIMIT] [FEATURE_SIZE] [SEEDS]   (defaults 12000 images, 64 px, 0,1,2)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT="${1:-12000}"; SIZE="${2:-64}"; SEEDS="${3:-0,1,2}"
bin="${PARIS:-$(swift build -c release --show-bin-path)/paris}"
[ -d data/fashion-mnist ] || "$bin" data import fashion-mnist --out data/fashion-mnist >&2
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
rows="$out/rows.tsv"
IFS=',' read -r -a seeds <<< "$SEEDS"
for sample in "$LIMIT" $((LIMIT / 4)) $((LIMIT / 10)); do
    for seed in "${seeds[@]}"; do
        "$bin" partition --data data/fashion-mnist --out "$out/p" --k 10 --preset fashion-mnist --features image \
            --limit "$LIMIT" --feature-size "$SIZE" --kmeans-sample "$sample" --seed "$seed" --force >/dev/null
        python3 - "$out/p/manifest.json" "$sample" "$seed" >> "$rows" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(sys.argv[2], sys.argv[3], m["metrics"]["purity"], m["metrics"]["nmi"], m["clustering"].get("sample") or "", sep="\t")
PY
    done
done
python3 - "$rows" "$LIMIT" "$SIZE" <<'PY'
import statistics as st, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
limit = int(sys.argv[2])
print(f"| k-means fitted on (of {limit} training images, EfficientNet-Lite0 at {sys.argv[3]} px, K = 10) | seed | purity | NMI |")
print("|---|---|---|---|")
for sample, seed, purity, nmi, used in rows:
    what = "all (Lloyd on every image)" if not used.strip() else f"a sample of {used.strip()}"
    print(f"| {what} | {seed} | {float(purity):.3f} | {float(nmi):.3f} |")
print()
print("| fitted on | purity, mean ± sd over seeds | NMI, mean ± sd over seeds |")
print("|---|---|---|")
for sample in dict.fromkeys(r[0] for r in rows):
    p = [float(r[2]) for r in rows if r[0] == sample]; n = [float(r[3]) for r in rows if r[0] == sample]
    sd = lambda v: st.stdev(v) if len(v) > 1 else 0.0
    what = "all" if int(sample) >= limit else f"{sample} images"
    print(f"| {what} | {st.mean(p):.3f} ± {sd(p):.3f} | {st.mean(n):.3f} ± {sd(n):.3f} |")
PY
