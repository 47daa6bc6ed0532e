#!/usr/bin/env bash
# Builds the libFuzzer harnesses (the separate package fuzz/, with -sanitize=fuzzer and AddressSanitizer) and runs
# each target for a while on a copy of its committed seed corpus (fuzz/corpus/<target>/). New inputs and crash files
# go to a scratch folder, never into the repository. Prints, per target, the executions and any crash file; exits
# non-zero if a target crashed, hung, ran out of memory or could not run. CI (scripts/test.sh) runs it with --time 30.
# Usage: scripts/fuzz.sh [--time SECONDS] [--scratch DIR] [--no-asan] [TARGET...]
#   --time SECONDS  how long each target runs (default 30)
#   --scratch DIR   where the corpus copies, logs and crash files go (default: a new folder under $TMPDIR, kept)
#   --no-asan       libFuzzer alone, without AddressSanitizer (builds in fuzz/.build/plain instead of .build/asan)
#   TARGET          safetensors pickle png jpeg tar config wordpiece clip (default: all, one after another)
# Rerun one crash: fuzz/.build/asan/release/fuzz-<target> <crash file>. See docs/reliability.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(safetensors pickle png jpeg tar config wordpiece clip)
seconds=30
scratch=""
asan=1
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) seconds="${2:?--time needs a number of seconds}"; shift 2 ;;
        --scratch) scratch="${2:?--scratch needs a folder}"; shift 2 ;;
        --no-asan) asan=0; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *)
            [[ " ${ALL[*]} " == *" $1 "* ]] || { echo "fuzz.sh: unknown target '$1' (targets: ${ALL[*]})" >&2; exit 2; }
            targets+=("$1"); shift ;;
    esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --time must be a positive whole number of seconds" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

# libFuzzer ships with the Swift toolchain (lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a): no package to install.
swift_bin="$(command -v swift)"
toolchain="$(cd "$(dirname "$(readlink -f "$swift_bin")")/.." && pwd)"
if ! ls "$toolchain"/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
    echo "fuzz.sh: this Swift toolchain ($toolchain) has no libFuzzer runtime (libclang_rt.fuzzer); use the swift.org" \
        "Linux toolchain" >&2
    exit 1
fi

# AddressSanitizer instruments our Swift and C/C++ code (CTorch's unpickler, the codec wrappers); libtorch, libpng
# and libjpeg are the system's uninstrumented libraries, whose allocations ASan still tracks.
sanitizers=(--sanitize=fuzzer)
build_dir=fuzz/.build/plain
if [ "$asan" = 1 ]; then sanitizers+=(--sanitize=address); build_dir=fuzz/.build/asan; fi
bin="$build_dir/release"
say "building fuzz/ (release, ${sanitizers[*]}) in $build_dir: ${targets[*]}"
build_start=$SECONDS
build() { swift build --package-path fuzz --scratch-path "$build_dir" -c release "${sanitizers[@]}" "$@"; }
if [ ${#targets[@]} -eq ${#ALL[@]} ]; then
    build
else
    for t in "${targets[@]}"; do build --product "fuzz-$t"; done  # `swift build` takes one --product
fi
for t in "${targets[@]}"; do
    [ -x "$bin/fuzz-$t" ] || { echo "fuzz.sh: building fuzz-$t failed" >&2; exit 1; }
done
say "built in $((SECONDS - build_start)) s"

[ -n "$scratch" ] || scratch="$(mktemp -d "${TMPDIR:-/tmp}/paris-fuzz.XXXXXX")"
mkdir -p "$scratch"
say "scratch folder: $scratch"

failed=()
summary=()
for t in "${targets[@]}"; do
    work="$scratch/$t"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/crashes"
    cp fuzz/corpus/"$t"/* "$work/corpus/"
    log="$work/fuzz.log"
    say "$t: ${seconds} s on $(ls "$work/corpus" | wc -l) seed inputs (log: $log)"
    rc=0
    # SWIFT_BACKTRACE=enable=no: a Swift trap goes straight to libFuzzer's handler, which saves the input.
    # allocator_may_return_null: an allocation that fails returns NULL, as glibc's does (libtorch then throws);
    # -malloc_limit_mb still reports any single allocation over 2 GB. detect_leaks=0 (per input and at exit): a
    # leak is not a finding here, and Foundation (4 KB per empty file read) and libtorch's zip reader (miniz state
    # when the archive is corrupt) leak on their own.
    # -rss_limit_mb / -malloc_limit_mb: using more than 2 GB is a finding (an input that allocates what it declares).
    # -timeout: one input taking more than 10 s is a hang. The corpus copy comes first, so new inputs go there.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=0:${ASAN_OPTIONS:-}" \
        "$bin/fuzz-$t" "$work/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$work/crashes/" >"$log" 2>&1 || rc=$?
    runs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $2}')"
    [ -n "$runs" ] || runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | awk '{print $2}')"
    crashes=("$work"/crashes/*)
    [ -e "${crashes[0]}" ] || crashes=()
    if [ $rc -ne 0 ] || [ ${#crashes[@]} -gt 0 ]; then
        failed+=("$t")
        summary+=("$t: FAILED (exit $rc) after ${runs:-?} executions; crash files: ${crashes[*]:-none}")
        echo "----- last lines of $log -----"
        tail -40 "$log"
        echo "------------------------------"
    else
        summary+=("$t: ${runs:-?} executions in ${seconds} s, no crash ($(ls "$work/corpus" | wc -l) corpus inputs)")
    fi
done

say "summary"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}. Reproduce with $bin/fuzz-<target>" \
        "<crash file>; fix the parser, add a regression test, and copy the file into fuzz/corpus/<target>/." >&2
    exit 1
fi
