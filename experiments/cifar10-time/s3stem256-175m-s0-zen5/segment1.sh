#!/bin/bash
# segment 1 of a 2h55m-budget run: stops (checkpointed) after epoch 112 so it ends inside this session;
# segment 2 (next session): the same command with --resume auto and without --stop-epoch.
cd /work/exp && exec /usr/bin/time -v ./py.sh -m crossvit train ../shared/datasets/cifar10/train -c configs/cifar10_3h.yaml --time-budget 2h55m --stop-epoch 112 --experiment s3stem256-175m-s0-zen5 > /work/logs/s3_175_seg1.log 2>&1
