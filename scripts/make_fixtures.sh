#!/usr/bin/env bash
# Writes the parity fixtures (Tests/*/Fixtures/*.safetensors) from the PyTorch reference implementations.
# Run by hand on a machine with network access to PyPI; CI only reads the committed fixtures.
# It makes (once) a reference venv with torch==2.11.0 + safetensors in $XDG_CACHE_HOME/paris/ref-venv, then runs
# every scripts/fixtures/*.py (or only those named: scripts/make_fixtures.sh ops nn).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${XDG_CACHE_HOME:-$HOME/.cache}/paris/ref-venv"
if ! "$venv/bin/python" -c "import torch, safetensors, numpy, timm" 2>/dev/null; then
    echo "[fixtures] making reference venv at $venv (torch==2.11.0, about 4.7 GB)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==2.11.0" "torchvision==0.26.0" safetensors numpy timm  # timm: DiT's layers
fi
scripts=("$@")
[ ${#scripts[@]} -gt 0 ] || scripts=($(cd scripts/fixtures && ls *.py | grep -v '^common' | sed 's/\.py$//'))
for s in "${scripts[@]}"; do
    echo "[fixtures] $s"
    PYTHONPATH=scripts/fixtures "$venv/bin/python" "scripts/fixtures/$s.py"
done
