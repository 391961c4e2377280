#!/usr/bin/env bash
# The CPU tables of docs/performance.md, one benchmark invocation each (each under ~10 minutes on 2 cores).
#   bash benchmarks/cpu_tables.sh [THREADS]        # JSON + printed tables go to benchmarks/results/
# Pick THREADS=1 on a machine shared with other jobs: two OpenMP threads on two busy cores stall at every barrier.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${1:-$(nproc)}"
R=benchmarks/results
mkdir -p "$R"
bench() {  # name, then arguments
  local name="$1"; shift
  { lscpu | grep -E "Model name"; uptime; } > "$R/$name.txt"
  crossvit benchmark --threads "$T" --json "$R/$name.json" "$@" 2>/dev/null | tee -a "$R/$name.txt"
  uptime >> "$R/$name.txt"
}
bench infer-15-b32 --model crossvit_15_240 --batch-sizes 32 --precision fp32,bf16 --compile --reps 3
bench infer-15-b1 --model crossvit_15_240 --batch-sizes 1 --precision fp32,bf16 --reps 5
bench train-15 --model crossvit_15_240 --train --batch-sizes 32 --precision fp32,bf16 --reps 3
bench train-cifar --model cifar --train --batch-sizes 256 --precision fp32,bf16 --reps 3
bench infer-9-b32 --model crossvit_9_240 --batch-sizes 32 --precision fp32,bf16 --reps 3
bench infer-18-b32 --model crossvit_18_240 --batch-sizes 32 --precision fp32,bf16 --reps 3
