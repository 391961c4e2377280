#!/bin/sh
# Usage: sh experiments/cifar10-time/regenerate.sh   (PYTHON=.venv/bin/python to pick the interpreter)
# regenerate docs/results-cifar10-time.md (the runs section and the Table 6 section)
cd "$(dirname "$0")/../.."
T6=""
for r in t6-conv_32-s0-zen3 t6-conv_32-s1-zen3 t6-conv_32-s2-zen3 t6-conv_fuse_allattn_32-s0-zen3 t6-conv_fuse_clstoken_32-s0-zen3 t6-conv_fuse_none_32-s0-zen3 t6-conv_fuse_pairwise_32-s0-zen3 t6-conv_single_32-s0-zen3 t6-conv_single_32-s1-zen3 t6-conv_single_32-s2-zen3 t6-conv3_32-s0-zen4 t6-conv3_32-s1-zen4 t6-conv3_32-s2-zen4 t6-conv3_single_32-s0-zen4 t6-conv3_single_32-s1-zen4 t6-conv3_single_32-s2-zen4 t6-conv3_fuse_none_32-s0-zen4 t6-conv3_fuse_allattn_32-s0-zen4 t6-conv3_fuse_clstoken_32-s0-zen4 t6-conv3_fuse_pairwise_32-s0-zen4; do T6="$T6 experiments/cifar10-table6/$r"; done
RUNS=""
for r in conv32-30m-s0 conv32-stem12-m2-30m-s0 conv32-stem12-m2-compile-30m-s0-zen5 conv32-stem32x13-m2-compile-30m-s0-zen5 conv32-stem32x13-m2-b128-30m-s0-zen5 conv32-stem32x13-m2-b128-30m-s1-zen5 conv32-stem32x13-m2-b128-30m-s2-zen5 conv32-stem32x13-m2-b128-30m-s0-zen3 conv32-3h-cand1-140m-s0-zen5 conv32-2h-cand2-120m-s0-zen5 resnet18-teacher-30m-s0-zen3 resnet18-64px-teacher-50m-s0-zen5 conv32-30m-distill-soft-r18t64-s0-zen5 conv32-30m-distill-hard-r18t64-s0-zen5 conv32-30m-lr5e-4-s0-zen5 timm-crossvit36-30m-s0-zen3 crossvit36-30m-1core-s0-zen5 timm-crossvit36-30m-1core-s0-zen5 t6-conv_32-lr5e-4-s0-zen5 t6-conv_fuse_allattn_32-lr5e-4-s0-zen5 t6-conv3_32-lr5e-4-s0-zen4 t6-conv3_fuse_allattn_32-lr5e-4-s0-zen4 s3stem256-30m-s0-zen5 s3stem256-30m-s1-zen5 s3stem256-30m-s2-zen5 s3stem256-30m-s0-zen4 s3stem256-90m-s0-zen5 s3stem256-115m-s0-zen5 s3stem256-145m-s0-zen5 s3stem256-175m-s0-zen5; do RUNS="$RUNS experiments/cifar10-time/$r"; done
SR='Intel Xeon (Sapphire Rapids, family 6; amx_bf16 avx512_bf16 avx512_vnni), 2 logical CPUs'
${PYTHON:-python} benchmarks/time_results.py $RUNS --table6 $T6 --out docs/results-cifar10-time.md --img docs/img/cifar10-time/top1.png \
  --cpu "conv32-30m-s0=$SR" --cpu "conv32-stem12-m2-30m-s0=$SR" \
  --cpu 'conv32-stem12-m2-compile-30m-s0-zen5=AMD EPYC (family 26 model 2; avx512_bf16 avx512_vnni), 2 logical CPUs'
