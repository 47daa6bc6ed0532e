#!/usr/bin/env bash
# Measures how well each feature source's clusters follow the datasets' known labels (the emoji categories, the
# Fashion-MNIST classes): purity and NMI of `paris partition` with image (EfficientNet-Lite0), text (MiniLM caption
# embeddings) and both, against a random split of the same sizes. Prints a markdown table (docs/data.md quotes it).
# Usage: scripts/partition_purity.sh [LIMIT] [FEATURE_SIZE]    (defaults 1500 images per dataset, 128 px)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT="${1:-1500}"; SIZE="${2:-128}"
bin="${PARIS:-$(swift build -c release --show-bin-path)/paris}"
[ -d data/emoji ] || "$bin" data import emoji --out data/emoji --size 32
[ -d data/fashion-mnist ] || "$bin" data import fashion-mnist --out data/fashion-mnist
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
echo "| dataset (first $LIMIT images) | K | features | purity | random purity | NMI | random NMI |"
echo "|---|---|---|---|---|---|---|"
for spec in "emoji 9" "fashion-mnist 10"; do
    set -- $spec; data=$1; k=$2
    for features in image text both; do
        "$bin" partition --data "data/$data" --out "$out/$data-$features" --k "$k" --preset "$data" \
            --features "$features" --limit "$LIMIT" --feature-size "$SIZE" --seed 0 >/dev/null
        python3 - "$out/$data-$features/manifest.json" "$data" "$k" "$features" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {m['purity']:.3f} | {m['random_purity']:.3f} | {m['nmi']:.3f} | {m['random_nmi']:.3f} |")
PY
    done
done
