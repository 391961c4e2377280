#!/usr/bin/env bash
# Table 6 at the 30-minute budget: the five fusion schemes and the single-branch baseline, each trained by
# configs/cifar10_30min.yaml with only --model and --seed changed. Two runs at a time, each pinned to its own core
# with one thread, so every run gets the same share of the machine. A finished run (its release exists) is skipped;
# an interrupted one is resumed by its run directory. After each pair, benchmarks/branch_heads.py scores the pair's
# branch heads (validate.json), so a pair's results are complete as soon as it ends.
#
#   bash benchmarks/table6_queue.sh DATA OUT TAG      e.g. ../shared/datasets/cifar10/train runs/table6 zen3
#   FAMILY=conv3 bash benchmarks/table6_queue.sh ...  the same for the crossvit_cifar_conv3_* family (default conv)
#
# Run it from a separate worktree; about 2.5 hours on 2 cores (five pairs of 30 minutes).
set -u
DATA=${1:?ImageFolder directory}; OUT=${2:?output parent}; TAG=${3:?cpu tag for the run names}
PY=${PY:-python}  # one executable (a wrapper script if it needs environment variables)
# pairs in the order they run: first one seed of every scheme, then the extra seeds of the two that need three
F=${FAMILY:-conv}  # registered as crossvit_cifar_${F}_32, ${F}_fuse_*_32 and ${F}_single_32
PAIRS=(
  "${F}_32:0 ${F}_single_32:0"
  "${F}_fuse_none_32:0 ${F}_fuse_allattn_32:0"
  "${F}_fuse_clstoken_32:0 ${F}_fuse_pairwise_32:0"
  "${F}_32:1 ${F}_single_32:1"
  "${F}_32:2 ${F}_single_32:2"
)
launch() {  # core model-suffix:seed
  local core=$1 model=crossvit_cifar_${2%%:*} seed=${2##*:}
  local name=t6-${2%%:*}-s${seed}-${TAG}
  if [ -d "$OUT/$name/release" ]; then echo "done already: $name"; return 0; fi
  echo "$(date +%T) start $name on core $core"
  OMP_NUM_THREADS=1 taskset -c "$core" "$PY" -m crossvit train "$DATA" -c configs/cifar10_30min.yaml \
    --model "$model" --seed "$seed" --threads 1 --output "$OUT" --experiment "$name" >"$OUT/$name.out" 2>&1
  local rc=$?
  echo "$(date +%T) end $name rc $rc"
}
mkdir -p "$OUT"
# ORDER="1 4 5": only these pairs (numbered from 1 as listed above), in this order: a queue split over working
# sessions stops between pairs, and the three seeds of the two 3-seed models can share one machine
for i in ${ORDER:-$(seq ${#PAIRS[@]})}; do
  pair=${PAIRS[$((i - 1))]:?"ORDER: no pair $i (1-${#PAIRS[@]})"}
  read -r a b <<<"$pair"
  launch 0 "$a" & launch 1 "$b" & wait
  heads=()
  for m in $a $b; do d=$OUT/t6-${m%%:*}-s${m##*:}-${TAG}; [ -d "$d/release" ] && heads+=("$d"); done
  [ ${#heads[@]} -gt 0 ] && "$PY" benchmarks/branch_heads.py "${heads[@]}" >>"$OUT/heads.txt" 2>&1
done
