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
  launcher=()
  # ccache (if installed) lets a second work tree of the same sources build in
  # seconds; CCACHE_BASEDIR makes its keys independent of the tree's path.
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "${launcher[@]}"
fi
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
if [ $# -gt 0 ]; then
  cmake --build build -j2 --target "$@"
else
  cmake --build build -j2
fi
