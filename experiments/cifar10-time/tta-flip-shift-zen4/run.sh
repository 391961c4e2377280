#!/bin/bash
cd /work/main
for rel in cifar10-3h cifar10-30min; do for t in flip flip-shift; do
  echo "== $rel $t"; /usr/bin/time -f "%e s" .venv/bin/crossvit validate ../shared/datasets/cifar10/train --checkpoint releases/$rel --val-split-size 500 --tta $t --amp auto 2>&1 | tail -2
done; done
