"""Which images each process sees in an epoch: shuffled shards, repeated augmentation, exact evaluation shards.

The same code runs with one process (rank 0 of 1) and under ``torchrun``; every sampler is seeded by
(seed, epoch) so the order is reproducible and a resumed run continues it exactly.
"""

from __future__ import annotations

import math

from torch.utils.data import DistributedSampler, Sampler


def train_sampler(dataset, rank: int, world: int, seed: int, aug_repeats: int = 0) -> Sampler:
    """DistributedSampler (also for one process), or timm's repeated-augmentation sampler when ``aug_repeats``>0.

    Each sampler drops nothing: DistributedSampler pads the last images so every rank takes the same step count.
    """
    if aug_repeats > 0:
        from timm.data.distributed_sampler import RepeatAugSampler  # loaded on first use (slow import)

        # selected_round=0: keep ceil(n / world) images per rank per epoch, also for data sets below 256 images.
        return RepeatAugSampler(dataset, num_replicas=world, rank=rank, num_repeats=aug_repeats, selected_round=0)
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)


class ShardSampler(Sampler[int]):
    """Evaluation split: rank r takes images r, r + world, ... — no padding, so summed metrics are exact."""

    def __init__(self, n: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return max(0, math.ceil((self.n - self.rank) / self.world))

    def set_epoch(self, epoch: int) -> None:  # same interface as the train samplers
        pass
