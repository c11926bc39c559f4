#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs ctest on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# The fuzzers (tests/fuzz/), for ctest's fuzz_smoke: only with clang-14 and
# libFuzzer (bash scripts/setup.sh --fuzz); CI without them skips, and says so.
if grep -q '^RELAYKV_HAVE_LIBFUZZER:INTERNAL=ON' build/CMakeCache.txt 2>/dev/null; then
  RELAYKV_FUZZ_BUILD_ONLY=1 bash scripts/fuzz.sh
else
  echo "test: clang-14/libFuzzer not installed: skipping the fuzz smoke (bash scripts/setup.sh --fuzz)"
fi
ctest --test-dir build -j2 --output-on-failure --timeout 600 "$@"
