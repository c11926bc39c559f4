#!/usr/bin/env bash
# Installs relaykv from BUILD_DIR into a temporary prefix, then builds
# examples/embedded_pair and the README's C++ snippets as an outside project
# with find_package(relaykv), and runs them.
set -euo pipefail
build_dir=$1
src_dir=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/relaykv-package-XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null

# Every ```cpp block of the README whose first line is "// snippet: NAME".
mkdir -p "$work/snippets"
awk -v out="$work/snippets" '
  /^```cpp$/ { inblock = 1; file = ""; next }
  /^```$/    { inblock = 0; next }
  inblock && file == "" && /^\/\/ snippet: / { file = out "/" $3 ".cc" }
  inblock && file != "" { print > file }
' "$src_dir/README.md"
count=$(ls "$work/snippets" | wc -l)
if [ "$count" -lt 2 ]; then
  echo "expected the README's Embedding and Client library snippets, found $count" >&2
  exit 1
fi

cmake -S "$src_dir/examples/embedded_pair" -B "$work/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DSNIPPET_DIR="$work/snippets" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
"$work/build/embedded_pair"
for s in "$work"/snippets/*.cc; do
  name=$(basename "$s" .cc)
  echo "== README snippet $name"
  (cd "$work" && "$work/build/$name")
done
