#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch installed: builds vgg against
# that PyTorch's LibTorch (CUDA, NCCL) in build-gpu/, runs the tests that
# need CUDA (they skip elsewhere) and `vgg bench --device cuda` on the
# D2L small VGG and VGG-11. Writes everything to ${OUT:-build-gpu}/gpu-check.log.
#   bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu}
mkdir -p "$out" build-gpu
log="$out/gpu-check.log"
exec > >(tee "$log") 2>&1

prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || { echo "gpu-check: no PyTorch for python3"; exit 1; }
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" || exit 1
cmake --build build-gpu -j"$(nproc)" --target vgg vgg_tests || exit 1

echo "== tests that use CUDA, and the device/precision checks"
build-gpu/vgg_tests --gtest_filter='Device.*:Trainer.*:Checkpoint.*' || status=1

echo "== vgg bench --device cuda"
for arch in "--arch vgg11 --width-ratio 4 --image-size 224 --batch-size 128" "--arch vgg11 --image-size 224 --batch-size 32"; do
  for prec in "--precision fp32 --no-channels-last" "--precision bf16 --channels-last" "--precision bf16 --no-channels-last"; do
    build-gpu/vgg bench $arch $prec --device cuda --reps 10 --warmup 3 --format csv || status=1
  done
done
echo "== vgg train --device cuda (default preset, 1 epoch) where the data is installed"
if [ -d /usr/share/datasets/fashion-mnist ]; then
  build-gpu/vgg train --device cuda --epochs 1 --no-progress || status=1
else
  echo "no /usr/share/datasets/fashion-mnist here: skipped"
fi
exit ${status:-0}
