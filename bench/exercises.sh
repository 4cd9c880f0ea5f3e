#!/usr/bin/env bash
# Reproduces the measurements of docs/exercises.md: D2L's VGG exercises and
# the paper's Table 1 configurations, answered by vgg itself on the real
# Fashion-MNIST. Each part is one vgg command; tables and pictures land in
# OUT (default exercises-out/). About 40 minutes on 2 cores (AMD EPYC,
# AVX512-BF16); pass part names to run only some:
#
#   bench/exercises.sh [OUT] [compare|missing|resolution|configs|heads|cheaper]...
set -euo pipefail
cd "$(dirname "$0")/.."
vgg=${VGG:-build/vgg}
out=${1:-exercises-out}
shift || true
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(compare missing resolution configs heads cheaper)
mkdir -p "$out"
lscpu | grep -E '^Model name' | sed 's/  */ /g' | tee "$out/cpu.txt"
grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ' | tee -a "$out/cpu.txt"
echo | tee -a "$out/cpu.txt"

for part in "${parts[@]}"; do
  case $part in
    compare)  # Why is VGG slower and hungrier than AlexNet?
      $vgg compare vgg11 alexnet --in-channels 1 --classes 10 --image-size 224 --batch-size 16 | tee "$out/compare.txt"
      ;;
    missing)  # Where did the 3 "missing" layers of the chapter's shape printout go?
      $vgg summary --arch vgg11 --image-size 224 --in-channels 1 --classes 10 | tee "$out/summary_vgg11.txt"
      ;;
    resolution)  # 224 vs 96 (and 32, 56, 84): D2L's small VGG at a fixed budget
      $vgg sweep --out "$out/resolution" --title "D2L's small VGG (vgg11, width ratio 4): image size" \
        --grid 'image-size=32|56|84|96|224' -- --arch vgg11 --width-ratio 4 --limit-train 12000 --epochs 2
      ;;
    configs)  # The paper's Table 1 (A, A-LRN, B, C, D, E) at width ratio 4, 64x64
      $vgg sweep --out "$out/configs" --title "Table 1 configurations, width ratio 4, 64x64" \
        --grid 'arch=vgg11|vgg11_lrn|vgg13|vgg16c|vgg16|vgg19' -- --width-ratio 4 --image-size 64 \
        --limit-train 12000 --epochs 2
      ;;
    heads)  # Most parameters are in the dense head: replace it by global average pooling
      $vgg sweep --out "$out/heads" --title "dense head vs global average pooling" \
        --grid 'arch=vgg11|2x32,2x64,2x128' --grid 'head=dense|gap' -- --width-ratio 1 --image-size 32 \
        --limit-train 12000 --epochs 2 --fc-width 256
      ;;
    cheaper)  # Upsampling 28 -> 224 is wasteful: cheaper networks at 28x28, with extra 1x1 non-linearities
      $vgg sweep --out "$out/cheaper" --title "at 28x28: fewer layers, and 1x1 convolutions before each pool" \
        --grid 'arch=1x32,1x64,1x128|2x32,2x64,2x128|2x32,2x64+1x64k1,2x128+1x128k1' -- --image-size 28 --epochs 2
      ;;
    *) echo "exercises.sh: unknown part '$part'" >&2; exit 2 ;;
  esac
done
