#!/usr/bin/env bash
# The whole test suite once more, built with clang under AddressSanitizer and
# UBSan, plus the libFuzzer harnesses' smoke runs. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
CC=clang CXX=clang++ cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVGG_SANITIZE=ON -DVGG_FUZZ=ON >/dev/null
cmake --build build-sanitize -j"$(nproc)"
cd build-sanitize
# LibTorch keeps process-lifetime singletons; leak reports at exit are noise.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
ctest --output-on-failure -j"$(nproc)"
