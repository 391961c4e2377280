#!/usr/bin/env bash
# The CrossViT speed table on a GPU (the `device` tool's machine): inference fp32 / bf16 / fp16, eager and
# torch.compile, against timm with the same weights, then training steps. JSON and logs go to $OUT (or ./gpu-out).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, about 6-8 minutes
#   bash benchmarks/gpu_check.sh --dry-run  # anywhere: the same commands on the CPU with the tiny CIFAR model
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
if ! "$PY" -c "import crossvit" 2>/dev/null; then "$PY" -m pip install -q -e . timm onnx onnxruntime; fi

if [ "${1:-}" = "--dry-run" ]; then
  DEV=cpu MODEL=cifar BS=2 PREC=fp32,bf16 REPS=1 COMPILE="" TRAIN_BS=4
else
  DEV=cuda MODEL=crossvit_15_240 BS=1,64 PREC=fp32,bf16,fp16 REPS=5 COMPILE="--compile" TRAIN_BS=64
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.txt"

run() {  # name, then benchmark arguments
  local name="$1"; shift
  echo "== $name: crossvit benchmark $*" | tee -a "$OUT/log.txt"
  "$PY" -m crossvit benchmark --device "$DEV" --peers timm --json "$OUT/$name.json" "$@" 2>&1 | tee -a "$OUT/log.txt"
}
run infer-15 --model "$MODEL" --batch-sizes "$BS" --precision "$PREC" --reps "$REPS" $COMPILE
run train-15 --model "$MODEL" --train --batch-sizes "$TRAIN_BS" --precision fp32,bf16 --reps "$REPS"
if [ "${1:-}" != "--dry-run" ]; then
  run infer-9 --model crossvit_9_240 --batch-sizes 1,64 --precision fp32,bf16,fp16 --reps 3
  run infer-18 --model crossvit_18_240 --batch-sizes 1,64 --precision fp32,bf16,fp16 --reps 3
  run train-cifar --model cifar --train --batch-sizes 256 --precision fp32,bf16 --reps 3
fi
echo "done: $OUT"
