#!/bin/bash
# segment 2 of the 2h55m-budget run s3stem256-175m-s0-zen5: resumes the checkpoint segment 1 left after epoch 112 and
# runs the rest of the budget (the checkpoint carries the seconds already used; this command's own are added).
cd /work/exp && exec /usr/bin/time -v ./py.sh -m crossvit train ../shared/datasets/cifar10/train -c configs/cifar10_3h.yaml --time-budget 2h55m --experiment s3stem256-175m-s0-zen5 --resume auto > /work/logs/s3_175_seg2.log 2>&1
