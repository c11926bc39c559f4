#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs ctest on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build -j2 --output-on-failure --timeout 600 "$@"
