#!/usr/bin/env bash
# Configures (once) and builds relaykv into build/ with 2 jobs. Builds are
# serialized with a lock so two callers never compile at once.
# Usage: scripts/build.sh [target ...]   (no target: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
build_type=${BUILD_TYPE:-RelWithDebInfo}
exec 9>/tmp/relaykv-build.lock
flock 9
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$build_type"
fi
if [ $# -gt 0 ]; then
  cmake --build build -j2 --target "$@"
else
  cmake --build build -j2
fi
