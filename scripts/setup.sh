#!/usr/bin/env bash
# Sets up everything Paris needs to build, and is safe to run again:
#   1. the Debian packages the build needs (installed only when missing);
#   2. the zero-knowledge venv of scripts/zk/zklora.py (ezkl, onnx, numpy; no torch), made once in the per-user
#      cache ($XDG_CACHE_HOME/paris, default ~/.cache/paris) and linked from the clone as .zk-venv;
#   3. libtorch 2.11.0, unless LIBTORCH already points at one: the PyPI wheels torch==2.11.0 (no deps),
#      nvidia-cuda-runtime and nvidia-cuda-cupti are unpacked once into the same cache and linked from the clone
#      as .libtorch.
# Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
CUDA_RUNTIME_VERSION=13.0.96
CUPTI_VERSION=13.0.85
ZK_PACKAGES="ezkl==23.0.5 onnx==1.23.2 numpy==2.4.6 protobuf==7.36.2 ml_dtypes==0.7.0"
ZK_VERSIONS_TAG="$(printf %s "$ZK_PACKAGES" | sha256sum | cut -c1-12)"
DEBS=(g++ libstdc++-12-dev python3 python3-venv pkg-config libpng-dev libjpeg62-turbo-dev zlib1g-dev libfreetype-dev)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------------
missing=()
for p in "${DEBS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- the zero-knowledge venv ----------------------------------------------------------------------
cache="${XDG_CACHE_HOME:-$HOME/.cache}/paris"
zk="$cache/zk-venv-$ZK_VERSIONS_TAG"
if [ ! -f "$zk/.complete" ]; then
    say "installing the zero-knowledge venv ($ZK_PACKAGES) into $zk"
    rm -rf "$zk"
    mkdir -p "$cache"
    python3 -m venv "$zk"
    "$zk/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off $ZK_PACKAGES
    touch "$zk/.complete"
fi
ln -sfn "$zk" .zk-venv
say "zero-knowledge venv: $("$zk/bin/python" -c 'import ezkl, onnx; print("ezkl", ezkl.__version__, "onnx", onnx.__version__)') (linked as .zk-venv)"

# --- libtorch --------------------------------------------------------------------------------------
if [ -n "${LIBTORCH:-}" ]; then
    [ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { echo "error: LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so" >&2; exit 1; }
    say "using LIBTORCH=$LIBTORCH"
    exit 0
fi

site="$cache/libtorch-$TORCH_VERSION"
if [ ! -f "$site/.complete" ]; then
    say "installing libtorch $TORCH_VERSION into $site (one download of about 550 MB, kept for later clones)"
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.install.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --progress-bar off -d "$tmp/wheels" \
        "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDA_RUNTIME_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"
    say "unpacking wheels"
    python3 - "$tmp/wheels" "$tmp/site" <<'PY'
import sys, zipfile, pathlib
wheels, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for whl in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            n = info.filename
            keep = n.startswith(("torch/include/", "torch/lib/", "torch/share/")) or n == "torch/version.py" \
                or (n.startswith("nvidia/") and ".so" in n)
            if keep:
                z.extract(info, dest)
PY
    version="$(python3 -c "import runpy,sys; print(runpy.run_path(sys.argv[1])['__version__'])" "$tmp/site/torch/version.py")"
    echo "$version" > "$tmp/site/torch/build-version"
    rm -rf "$site"
    mv "$tmp/site" "$site"
    touch "$site/.complete"
    say "libtorch $version installed"
fi
ln -sfn "$site/torch" .libtorch
say "libtorch: $(cat "$site/torch/build-version") at $site/torch (linked as .libtorch)"
