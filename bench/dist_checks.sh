#!/usr/bin/env bash
# Data-parallel measurements on one machine, over loopback (README, "vgg
# launch"; issue: scale out):
#   allreduce  all-reduce time per step for vgg11 @224 (~515 MB of fp32
#              gradients) and D2L's small VGG, 2 ranks x 1 thread
#   throughput the default preset on 12,800 training images: 1 rank x 2
#              threads vs 2 ranks x 1 thread (vgg launch), --rounds times,
#              interleaved
#   bench/dist_checks.sh [allreduce|throughput ...] [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 parts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    allreduce|throughput) parts+=("$1"); shift ;;
    *) echo "dist_checks.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(allreduce throughput)
[ -x build/allreduce_check ] && [ -x build/vgg ] || bash scripts/build.sh >/dev/null

two_ranks() {  # two_ranks ARGS...: allreduce_check as ranks 0 and 1, rank 0's JSON on stdout
  local port=$((29600 + RANDOM % 300))
  WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port build/allreduce_check "$@" >/dev/null &
  local other=$!
  WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port build/allreduce_check "$@"
  wait "$other"
}

imgs() { sed -n 's/.* \([0-9.]*\) img\/s.*/\1/p' | tail -1; }

for part in "${parts[@]}"; do
  case $part in
    allreduce)
      two_ranks --arch vgg11 --image-size 224 --batch-size 2 --reps 5
      two_ranks --arch vgg11 --width-ratio 4 --image-size 224 --batch-size 4 --reps 5
      two_ranks --arch 2x32,2x64,2x128 --batch-norm --image-size 28 --fc-width 256 --batch-size 64 --reps 10
      ;;
    throughput)
      common="--limit-train 12800 --limit-test 100 --epochs 1 --no-progress"
      for r in $(seq "$rounds"); do
        one=$(build/vgg train $common --threads 2 | imgs)
        two=$(build/vgg launch --nproc 2 -- train $common --batch-size 64 | imgs)
        echo "round $r: 1 rank x 2 threads (batch 128) $one img/s; 2 ranks x 1 thread (64 each) $two img/s"
      done
      ;;
  esac
done
