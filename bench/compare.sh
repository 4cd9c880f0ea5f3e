#!/usr/bin/env bash
# Runs our `vgg bench` and Python eager PyTorch (D2L's code) on the same
# network, interleaved in one go, and prints img/s medians and their ratios.
#   bench/compare.sh [--width-ratio 4] [--image-size 224] [--batch-size 128] [--reps 5] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
ratio=4 size=224 batch=128 reps=5 rounds=3 mode=train
while [ $# -gt 0 ]; do
  case "$1" in
    --width-ratio) ratio=$2; shift 2 ;;
    --image-size) size=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "compare.sh: installing Debian's python3-torch for the reference" >&2
  ${SUDO:-$( [ "$(id -u)" -ne 0 ] && echo sudo )} apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
[ -x build/vgg ] || bash scripts/build.sh >/dev/null

ours() { build/vgg bench --arch vgg11 --width-ratio "$ratio" --image-size "$size" --batch-size "$batch" \
           --reps "$reps" --mode "$mode" --format json --no-peak "$@" | /usr/bin/python3 -c \
           "import json,sys; print(json.load(sys.stdin)['$mode']['median'])"; }
py() { /usr/bin/python3 bench/pytorch_reference.py --width-ratio "$ratio" --image-size "$size" \
           --batch-size "$batch" --reps "$reps" --mode "$mode" "$@" | /usr/bin/python3 -c \
           "import json,sys; print(json.load(sys.stdin)['median'])"; }
median() { /usr/bin/python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

declare -a A B C D E
for r in $(seq "$rounds"); do
  A+=("$(ours)")                                           # our default: auto precision, channels-last
  B+=("$(ours --precision fp32 --no-channels-last)")       # ours, fp32 NCHW
  C+=("$(py)")                                             # Python eager fp32 (D2L's default)
  D+=("$(py --bf16 --channels-last)")                      # Python eager bf16 autocast + channels-last
  E+=("$(ours --no-tensor-cache)")                         # our default with malloc's memory handling
done
peak=$(build/vgg bench --arch vgg11 --width-ratio "$ratio" --image-size 32 --batch-size 2 --reps 1 --warmup 0 \
       --mode inference --format json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['peak_conv_gflops'])")
gflop=$(build/vgg bench --arch vgg11 --width-ratio "$ratio" --image-size "$size" --batch-size 1 --reps 1 --warmup 0 \
        --mode "$mode" --format json --no-peak | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$mode']['gflop_per_image'])")
a=$(median "${A[@]}") b=$(median "${B[@]}") c=$(median "${C[@]}") d=$(median "${D[@]}") e=$(median "${E[@]}")
/usr/bin/python3 - "$a" "$b" "$c" "$d" "$e" "$peak" "$gflop" "$mode" "$ratio" "$size" "$batch" "$rounds" <<'PY'
import sys
a, b, c, d, e, peak, gflop = map(float, sys.argv[1:8])
mode, ratio, size, batch, rounds = sys.argv[8:]
print(f"vgg11/{ratio} at {size}x{size}, batch {batch}, {mode}; medians of {rounds} interleaved rounds (img/s)")
print(f"  ours, default (bf16 autocast where native, channels-last): {a:8.1f}   {a*gflop:7.1f} GFLOP/s = {100*a*gflop/peak:4.1f}% of bf16 conv peak {peak:.0f}")
print(f"  ours, default without the tensor cache:                  {e:8.1f}")
print(f"  ours, fp32 NCHW:                                         {b:8.1f}")
print(f"  PyTorch eager fp32 (D2L default):                        {c:8.1f}")
print(f"  PyTorch eager bf16 autocast + channels-last:             {d:8.1f}")
print(f"  ratio ours default / PyTorch fp32:                       {a/c:8.2f}x")
print(f"  ratio ours default / PyTorch bf16+channels-last:         {a/d:8.2f}x")
print(f"  ratio ours fp32 / PyTorch fp32:                          {b/c:8.2f}x")
print(f"  ratio tensor cache on / off:                             {a/e:8.2f}x")
PY
