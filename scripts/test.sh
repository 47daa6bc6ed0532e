#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite. This is what CI runs (.ci/run).
# Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter SafeTensorsTests]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "[test] building (debug) and running the tests"
swift build --build-tests
swift test --skip-build --disable-swift-testing "$@"
