#!/usr/bin/env bash
# Reproduces the numbers in docs/memory.md (slow: ~30 min on 2 cores).
#   bench/memory_checks.sh [OUT_DIR] [table|savings|notebook ...]
# Each measurement is a fresh process; results are JSON lines in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/memory-checks}
shift || true
parts=${*:-table savings notebook}
mkdir -p "$out"
check() { build/memory_check --json --track --threads 2 "$@" | tee -a "$out/checks.jsonl"; }

for part in $parts; do
  case $part in
    table)  # predicted vs measured peak RSS of one training step
      check --arch vgg11 --image-size 224 --batch-size 32 --precision fp32
      check --arch vgg11 --width-ratio 4 --image-size 224 --batch-size 128 --precision fp32
      default="--arch 2x32,2x64,2x128 --batch-norm --image-size 28 --fc-width 256 --batch-size 128 --momentum 0.9 --nesterov --weight-decay 5e-4"
      check $default --precision fp32
      check $default --precision bf16 --channels-last
      check --arch vgg11 --image-size 224 --batch-size 32 --precision bf16 --channels-last
      check --arch vgg11 --width-ratio 4 --image-size 224 --batch-size 128 --precision bf16 --channels-last
      ;;
    savings)  # memory and time of micro-batching and recompute, vgg11 @224 batch 32 fp32
      for flags in "" "--micro-batch 8" "--micro-batch 4" "--recompute" "--recompute --micro-batch 16"; do
        check --arch vgg11 --image-size 224 --batch-size 32 --precision fp32 --steps 3 $flags
      done
      ;;
    notebook)  # vgg11 @224 batch 32 under a 2 GiB budget vs unconstrained: peak RSS and the first 20 losses
      common="--preset seed --precision fp32 --no-channels-last --dropout 0 --max-steps 20 --threads 2 --no-progress"
      rm -f "$out/budget.jsonl" "$out/free.jsonl"
      build/vgg train $common --memory-budget 2GiB --step-log "$out/budget.jsonl" | tee "$out/budget.txt"
      build/vgg train $common --step-log "$out/free.jsonl" | tee "$out/free.txt"
      python3 - "$out/free.jsonl" "$out/budget.jsonl" <<'PY'
import json, sys
free = [json.loads(l) for l in open(sys.argv[1])]
budget = [json.loads(l) for l in open(sys.argv[2])]
worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(free, budget))
print(f"steps {len(free)} / {len(budget)}; largest relative loss difference {worst:.2e}")
print(f"peak RSS: unconstrained {free[-1]['peak_rss_bytes'] / 2**30:.3f} GiB, budget {budget[-1]['peak_rss_bytes'] / 2**30:.3f} GiB")
for a, b in zip(free, budget):
    print(f"{a['step']:>3}  {a['loss']:.6f}  {b['loss']:.6f}")
PY
      ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
