#!/usr/bin/env bash
# Configures and builds vgg (Release) into build/; the CLI ends up at build/vgg.
# Any LibTorch works: pass CMAKE_PREFIX_PATH for one other than Debian's.
# VGG_BUILD_TARGET=vgg builds only the CLI (command 1 needs nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_PREFIX_PATH:+-DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH"} "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" ${VGG_BUILD_TARGET:+--target "$VGG_BUILD_TARGET"}
