#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang-14 into build-fuzz/
# and runs each for N seconds (default 60), one at a time, from its seed
# corpus in tests/fuzz/corpus/<fuzzer>/. New inputs the fuzzer finds go to
# build-fuzz/corpus/<fuzzer>/ (not the repo); a crash, leak or timeout stops
# the script with the fuzzer's report and the input in build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [seconds] [fuzzer ...]   (RELAYKV_FUZZ_BUILD_ONLY=1: build, no run)
# Needs clang-14 and libclang-rt-14-dev (scripts/setup.sh --fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
fuzzers=("$@")
if [ ${#fuzzers[@]} -eq 0 ]; then
  fuzzers=(binlog_segment_fuzzer statement_fuzzer config_fuzzer replication_fuzzer watch_decode_fuzzer)
fi
if ! command -v clang++-14 >/dev/null; then
  echo "fuzz: clang++-14 not found (install: bash scripts/setup.sh --fuzz)" >&2
  exit 2
fi
(
  exec 9>/tmp/relaykv-build.lock
  flock 9
  if [ ! -f build-fuzz/CMakeCache.txt ]; then
    launcher=()
    if command -v ccache >/dev/null; then
      launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
    fi
    CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRELAYKV_FUZZ=ON "${launcher[@]}"
  fi
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
  cmake --build build-fuzz -j2 --target "${fuzzers[@]}"
)
[ "${RELAYKV_FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0
mkdir -p build-fuzz/artifacts
for f in "${fuzzers[@]}"; do
  mkdir -p "build-fuzz/corpus/$f"
  echo "fuzz: $f for ${seconds} s"
  # -rss_limit_mb / -malloc_limit_mb: a reader that allocates by what an
  # input claims (not what it holds) fails here. -timeout: a hang.
  dict=()
  [ -f "tests/fuzz/$f.dict" ] && dict=(-dict="tests/fuzz/$f.dict")  # keywords, boundary values
  nice -n 19 "build-fuzz/fuzz/$f" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$f-" \
    "${dict[@]}" "build-fuzz/corpus/$f" "tests/fuzz/corpus/$f"
done
