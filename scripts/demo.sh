#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), builds `paris` in release mode, and runs the demo:
# `paris doctor` (what libtorch sees on this machine), then `paris demo`, a tiny training loop.
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "[demo] building paris (release)"
swift build -c release --product paris
bin="$(swift build -c release --show-bin-path)/paris"
echo "[demo] $bin doctor"
"$bin" doctor
echo "[demo] $bin demo"
"$bin" demo
