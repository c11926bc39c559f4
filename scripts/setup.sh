#!/usr/bin/env bash
# Installs the Debian 12 packages relaykv builds with, only if one is
# missing (idempotent; a no-op in well under a second when all are there).
# --fuzz (or RELAYKV_SETUP_FUZZ=1) adds the optional fuzzing toolchain
# (scripts/fuzz.sh): clang-14 with its libFuzzer and sanitizer runtimes.
set -euo pipefail
fuzz=${RELAYKV_SETUP_FUZZ:-0}
[ "${1:-}" = --fuzz ] && fuzz=1
packages=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libboost-dev libboost-system-dev libboost-program-options-dev
  libgtest-dev libgmock-dev libbenchmark-dev libspdlog-dev libfmt-dev libcli11-dev
  libedit-dev
  libgoogle-perftools-dev  # tcmalloc for relaykvd, relaykv, relaykv-bench (cmake/RelaykvMalloc.cmake)
  openssl libssl-dev  # TLS: libcrypto (token hashes), scripts/make-test-certs.sh
  gnuplot-nox  # relaykv-bench --plot
  prometheus   # promtool: tests/integration/metrics_process_test validates /metrics
  etcd-server etcd-client golang-etcd-server-dev  # failover: etcd, its v3 .proto files
)
if [ "$fuzz" = 1 ]; then
  packages+=(clang-14 libclang-rt-14-dev libfuzzer-14-dev)  # optional: scripts/fuzz.sh
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: need root to apt-get install (run as root, or install: ${missing[*]})" >&2
  exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
