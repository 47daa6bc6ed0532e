#!/usr/bin/env bash
# Benchmark: the data pipeline at growing scale (issue #17). For each size N it makes a synthetic captioned dataset
# (`paris data import shapes`: procedurally drawn 32-px shapes with captions), then partitions it into K shards
# (`paris partition`, text k-means on MiniLM caption features by default: the cheapest real features), each under
# /usr/bin/time -v, and prints one table row per N: the wall time and peak resident memory of the import and of
# every partition stage (the "stage <name>: <s> s, peak memory <MiB>" lines paris partition prints), the whole
# partition's peak (VmHWM of the process), and the sizes on disk. Then it times each encoder on its own:
# EfficientNet-Lite0 image features at 224 and 128 px (images/s) and MiniLM on distinct captions (captions/s).
#
# Usage: bench/scale.sh [--sizes 10000,100000,1000000] [--k 8] [--features text] [--root /tmp/paris-scale]
#                       [--encoders 2000 (0: skip the encoder timings)] [--keep]
# The table is printed and written to <root>/scale.md. Datasets and partitions are removed after each size unless
# --keep (1M images take about 3 GB for the dataset and 3 GB for the shards, plus the partition's work folder).
# PARIS picks a prebuilt binary; otherwise it is built here in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="10000,100000,1000000"; k=8; features=text; root=/tmp/paris-scale; encoders=2000; keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --k) k="$2"; shift 2 ;;
        --features) features="$2"; shift 2 ;;
        --root) root="$2"; shift 2 ;;
        --encoders) encoders="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "bench/scale.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
bin="${PARIS:-}"
if [ -z "$bin" ]; then
    scripts/setup.sh >/dev/null
    swift build -c release --product paris >&2
    bin="$(swift build -c release --show-bin-path)/paris"
fi
mkdir -p "$root"
say() { printf '\033[1m[scale]\033[0m %s\n' "$*" >&2; }

# Runs a command under /usr/bin/time -v, its output to $1.log; prints "<wall s> <peak MiB>".
timed() {
    local name="$1"; shift
    /usr/bin/time -v -o "$root/$name.time" "$@" > "$root/$name.log" 2>&1 || {
        echo "bench/scale.sh: '$*' failed; see $root/$name.log" >&2; tail -5 "$root/$name.log" >&2; exit 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
                /Maximum resident set size/ { m = $2 / 1024 }
                END { printf "%.1f %.0f\n", s, m }' "$root/$name.time"
}

# "stage <name>: <s> s, peak memory <M> MiB" lines of a partition log → "<s> s / <M> MiB" for one stage.
stage() {
    sed -n "s/^stage $2: \([0-9.]*\) s, peak memory \([0-9?]*\) MiB.*/\1 s \/ \2 MiB/p" "$1" | tail -1
}

table="$root/scale.md"
{
    echo "| images | import | metadata | images (decode) | captions | clustering | shards | grids + manifest | partition total | partition peak | dataset on disk | partition on disk |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} > "$table"
IFS=',' read -r -a list <<< "$sizes"
for n in "${list[@]}"; do
    data="$root/shapes-$n"; out="$root/partition-$n"
    rm -rf "$data" "$out" "$root/.partition-$n.partial"
    say "N = $n: import"
    read -r import_s import_m < <(timed "import-$n" "$bin" data import shapes --count "$n" --out "$data")
    say "N = $n: partition (K = $k, $features features)"
    read -r part_s _ < <(timed "partition-$n" "$bin" partition --data "$data" --out "$out" --k "$k" \
        --features "$features" --image-size 32 --device cpu)
    log="$root/partition-$n.log"
    row="| $n | $import_s s / $import_m MiB"
    for s in metadata images captions clustering shards "grids and manifest"; do row="$row | $(stage "$log" "$s")"; done
    # The partition resets VmHWM between stages (so /usr/bin/time's maximum is the last stage's): its peak is the
    # largest stage peak.
    peak=$(sed -n 's/^stage .*peak memory \([0-9]*\) MiB.*/\1/p' "$log" | sort -n | tail -1)
    row="$row | $part_s s | $peak MiB | $(du -sh "$data" | cut -f1) | $(du -sh "$out" | cut -f1) |"
    echo "$row" >> "$table"
    say "$row"
    grep -E "^(cluster sizes|purity|features:)" "$log" >&2 || true
    [ "$keep" = 1 ] || rm -rf "$data" "$out"
done

[ "$encoders" -gt 0 ] || { cat "$table"; exit 0; }
# Encoder throughput, each on its own: image features on the first $encoders images of a fresh dataset, MiniLM on
# $encoders distinct captions (the shapes' captions with their index appended, the images linked, not copied).
say "encoders: $encoders images / captions"
data="$root/shapes-encoders"; rm -rf "$data"
"$bin" data import shapes --count "$encoders" --out "$data" > "$root/import-encoders.log" 2>&1
distinct="$root/captions-encoders"; rm -rf "$distinct"; mkdir -p "$distinct"
for entry in "$data"/*; do [ "$(basename "$entry")" = metadata.jsonl ] || ln -s "$entry" "$distinct/"; done
python3 - "$data/metadata.jsonl" "$distinct/metadata.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as g:
    for i, line in enumerate(f):
        row = json.loads(line)
        row["text"] = f"{row['text']}, number {i}"
        g.write(json.dumps(row) + "\n")
PY
{
    echo
    echo "| encoder | work | seconds | throughput |"
    echo "|---|---|---|---|"
} >> "$table"
for size in 224 128; do
    rm -rf "$root/enc-$size"
    timed "enc-image-$size" "$bin" partition --data "$data" --out "$root/enc-$size" --k "$k" --features image \
        --feature-size "$size" --image-size 32 --device cpu > /dev/null
    s=$(sed -n "s/^stage images: \([0-9.]*\) s.*/\1/p" "$root/enc-image-$size.log")
    echo "| EfficientNet-Lite0 at $size px (with PNG decoding) | $encoders images | $s | $(python3 -c "print(f'{$encoders / $s:.1f} images/s')") |" >> "$table"
    rm -rf "$root/enc-$size"
done
rm -rf "$root/enc-text"
timed "enc-text" "$bin" partition --data "$distinct" --out "$root/enc-text" --k "$k" --features text \
    --image-size 32 --device cpu > /dev/null
s=$(sed -n "s/^stage captions: \([0-9.]*\) s.*/\1/p" "$root/enc-text.log")
echo "| all-MiniLM-L6-v2 (sentence vector + token states: two passes) | $encoders distinct captions | $s | $(python3 -c "print(f'{$encoders / $s:.1f} captions/s')") |" >> "$table"
rm -rf "$root/enc-text" "$data" "$distinct"
cat "$table"
