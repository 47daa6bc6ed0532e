#!/usr/bin/env bash
# Makes (once) the Python environment the interop tests run our files through: numpy, safetensors, ml_dtypes
# (numpy's bfloat16, which safetensors' numpy loader needs for BF16 tensors) and Pillow, and, for the Python
# reference pipeline that runs a `paris export diffusers` folder (DiffusersExportTests), torch with transformers
# and diffusers, all at the exact versions below and all from PyPI (the only Python registry the machines reach; its
# Linux torch wheel brings the CUDA libraries with it, so the venv is about 5 GB and takes about 4 minutes to
# install on the 2-core machine, once). It is made with `python3`
# (the interpreter scripts/setup.sh uses) in the per-user cache,
#   ${XDG_CACHE_HOME:-$HOME/.cache}/paris/interop-venv-py<X.Y>-<hash of the interpreter and the pins>,
# built in a temporary folder and renamed into place when complete, so it is safe to rerun and to interrupt.
# Prints the venv's interpreter (the one line on stdout; progress goes to stderr); scripts/test.sh exports it to the
# tests as PARIS_INTEROP_PYTHON. When PARIS_INTEROP_PYTHON is already set it is checked and printed instead.
# Usage: scripts/interop-venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=(numpy==2.4.6 safetensors==0.8.0 ml_dtypes==0.7.0 pillow==13.0.0)
# The reference pipeline's packages, at the versions of make_fixtures.sh's reference venv.
REFERENCE_PINS=(torch==2.11.0 transformers==5.25.0 diffusers==0.42.1 tokenizers==0.23.3 huggingface_hub==2.4.0)
CHECK="import numpy, safetensors.numpy, ml_dtypes, PIL.Image"
REFERENCE_CHECK="import torch, transformers, diffusers"

say() { printf '\033[1m[interop-venv]\033[0m %s\n' "$*" >&2; }

if [ -n "${PARIS_INTEROP_PYTHON:-}" ]; then
    "$PARIS_INTEROP_PYTHON" -c "$CHECK" || {
        echo "error: PARIS_INTEROP_PYTHON=$PARIS_INTEROP_PYTHON cannot import numpy, safetensors, ml_dtypes and PIL" >&2
        exit 1
    }
    say "using PARIS_INTEROP_PYTHON=$PARIS_INTEROP_PYTHON"
    echo "$PARIS_INTEROP_PYTHON"
    exit 0
fi

# The folder's name changes with the base interpreter (a venv only links to it) and with the pins.
read -r pyver key < <(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.version.split()[0] + ":" + sys.executable)')
hash="$(printf '%s\n' "$key" "${PINS[@]}" "${REFERENCE_PINS[@]}" | python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])')"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/paris"
venv="$cache/interop-venv-py$pyver-$hash"

valid() { [ -f "$1/.complete" ] && "$1/bin/python" -c "$CHECK; $REFERENCE_CHECK" 2>/dev/null; }

if ! valid "$venv"; then
    say "making $venv (${PINS[*]} ${REFERENCE_PINS[*]}; kept for later runs)"
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.interop.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM HUP  # so that the EXIT trap removes the temporary folder
    python3 -m venv "$tmp/venv"
    # Wheels only, so that a missing wheel is an error here rather than a long source build. Only bin/python is
    # used: the venv is renamed below, and the shebangs of bin/pip and friends keep the temporary path.
    "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --only-binary=:all: \
        "${PINS[@]}" >&2
    "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --only-binary=:all: \
        "${PINS[@]}" "${REFERENCE_PINS[@]}" >&2
    "$tmp/venv/bin/python" -c "$CHECK; $REFERENCE_CHECK"
    touch "$tmp/venv/.complete"
    # A broken one is moved aside (our folder is named by hash, so nothing else lives there); a valid one that a
    # concurrent run has just put in place is kept, and ours dropped: mv -T fails rather than nest ours inside it.
    if [ -e "$venv" ] && ! valid "$venv"; then mv -T "$venv" "$tmp/broken" 2>/dev/null || true; fi
    mv -T "$tmp/venv" "$venv" 2>/dev/null || true
    valid "$venv" || { echo "error: no working venv at $venv after making one" >&2; exit 1; }
    say "made $venv ($(du -sh "$venv" | cut -f1))"
fi
echo "$venv/bin/python"
