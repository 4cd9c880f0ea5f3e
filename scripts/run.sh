#!/usr/bin/env bash
# Command 1: install what is missing, build, and train the default preset on
# the real Fashion-MNIST, ending with the test accuracy on all 10,000 images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VGG_BUILD_TARGET=vgg bash scripts/build.sh  # the CLI only; scripts/test.sh builds the rest
build/vgg train --preset default --save build/default.ckpt --metrics build/default-metrics.jsonl "$@"
