#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh and scripts/interop-venv.sh) and runs the whole test suite, then, as a
# regression, each fuzz target for 30 s on its committed corpus (scripts/fuzz.sh; skipped when arguments narrow the
# tests). This is what CI runs (.ci/run).
# Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter SafeTensorsTests]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The web page test (ParisServeTests.ServeWebUITests) drives Debian's headless Chromium through chromium-driver.
ui_missing=()
for p in chromium chromium-driver; do dpkg -s "$p" >/dev/null 2>&1 || ui_missing+=("$p"); done
if [ ${#ui_missing[@]} -gt 0 ]; then
    echo "[test] installing Debian packages for the web page test: ${ui_missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${ui_missing[@]}" >/dev/null
fi
# The small numpy / safetensors / Pillow venv through which the interop tests have Python read the files we write.
PARIS_INTEROP_PYTHON="$(scripts/interop-venv.sh)"
export PARIS_INTEROP_PYTHON
echo "[test] interop tests use PARIS_INTEROP_PYTHON=$PARIS_INTEROP_PYTHON"
echo "[test] building (debug) and running the tests"
swift build --build-tests
swift test --skip-build --disable-swift-testing "$@"
if [ $# -eq 0 ]; then
    echo "[test] fuzzing each parser for 30 s on its committed corpus (scripts/fuzz.sh)"
    scripts/fuzz.sh --time 30
fi
