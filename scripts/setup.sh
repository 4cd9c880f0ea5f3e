#!/usr/bin/env bash
# Installs what vgg needs on Debian 12, only what is missing (sudo when not root).
set -euo pipefail

packages=(
  cmake g++ make
  libtorch-dev            # LibTorch 1.13 (CPU, oneDNN)
  libopenblas0-pthread    # without it LibTorch's dense layers use reference BLAS (~4x slower)
  libgloo-dev             # headers that c10d's ProcessGroupGloo.hpp includes
  libcli11-dev libfmt-dev nlohmann-json3-dev zlib1g-dev libpng-dev libgtest-dev
  libjpeg62-turbo-dev     # vgg predict: JPEG input
  libfreetype-dev fonts-dejavu-core  # text in vgg's pictures (grid, confusion matrix, curves)
  dataset-fashion-mnist   # the real data: /usr/share/datasets/fashion-mnist
  libonnx-dev libprotobuf-dev  # vgg export --format onnx (ONNX's own protobuf classes)
)

# With --test: the reference implementations the test suite compares against
# (Debian's PyTorch, torchvision, ONNX and OpenCV, from Python).
if [ "${1:-}" = "--test" ]; then
  packages+=(python3-torch python3-torchvision python3-onnx python3-opencv python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
