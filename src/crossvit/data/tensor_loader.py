"""A whole small data set as one uint8 tensor, cut into augmented batches by tensor ops (``--loader memory``).

For 32-px data the per-image PIL pipeline costs more than the model: one Python call chain per image, per epoch.
Here every image is decoded once (``cache_dataset``), stacked into (N, C, H, W) uint8, and each batch is made by
indexing: a random translation (zero-padded crop, ``--crop-pad`` pixels) and a horizontal flip (``--hflip``), then
timm's auto-augment policy (``--aa``) image by image, as the per-image pipeline applies it, then normalisation, then
a resize to the model's input size when it differs from the stored images' (``size``: a 36-px model fed 32-px
CIFAR), then timm's random erasing (``--reprob``), last as in the per-image pipeline. Batches come out in
channels-last memory order, which the CPU convolution kernels prefer.

    loader = TensorLoader(images, labels, batch_size=256, train=True, pad=4, hflip=0.5, mean=..., std=...)
    loader.set_epoch(epoch)            # the order and the augmentation are a function of (seed, epoch, rank)
    for x, y in loader: ...            # x: (B, C, H, W) float32, y: (B,) int64
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import str_to_pil_interp
from torch import Tensor
from torch.nn import functional as F

RESIZE_MODES = ("bicubic", "bilinear", "nearest")


def stack_images(arrays: Sequence[np.ndarray], source: str) -> Tensor:
    """HWC (or HW) uint8 arrays of one size -> (N, C, H, W) uint8; a clear error when sizes differ."""
    if not arrays:
        raise ValueError(f"{source}: no images to load")
    first = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != first:
            raise ValueError(
                f"{source}: --loader memory needs images of one size, but image 0 is {first} and image {i} is "
                f"{a.shape}; use --loader workers (per-image transforms) for data of mixed sizes"
            )
    out = torch.from_numpy(np.stack(arrays))  # (N, H, W, C)
    if out.ndim == 3:
        out = out[..., None]
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


@contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Python's, numpy's and torch's global generators seeded from a batch's own seed, and restored after.

    timm's auto-augment ops draw from Python's (augmix also numpy's), its random erasing from Python's and torch's;
    seeding them per batch keeps the batch a function of (seed, epoch, rank), so a resumed run repeats it.
    """
    state, np_state = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(state)
        np.random.set_state(np_state)


def auto_augment_policy(config: str, img_size: int, mean: Sequence[float], interpolation: str) -> object:
    """timm's policy for ``--aa`` (``rand-...``, ``augmix-...``, or an AutoAugment name such as ``original``), with the
    parameters ``timm.data.create_transform`` gives it: PIL image in, PIL image out."""
    params = {
        "translate_const": int(img_size * 0.45),
        "img_mean": tuple(min(255, round(255 * m)) for m in mean),
        "interpolation": str_to_pil_interp(interpolation),
    }
    try:  # timm checks the string with asserts that do not name the option
        if config.startswith("rand"):
            return rand_augment_transform(config, params)
        if config.startswith("augmix"):
            return augment_and_mix_transform(config, {**params, "translate_pct": 0.3})
        return auto_augment_transform(config, params)
    except (AssertionError, KeyError, ValueError) as e:
        raise ValueError(
            f"--aa {config!r}: not a timm auto-augment policy ({e}); e.g. rand-m9-mstd0.5-inc1, augmix-m5-w3, "
            "original, or none"
        ) from None


def resize_batch(x: Tensor, size: tuple[int, int], interpolation: str = "bicubic") -> Tensor:
    """(B, C, H, W) float -> (B, C, *size), channels-last. Antialiased: PIL's filters (bicubic a = -0.5) both ways,
    as the per-image pipeline resizes."""
    x = F.interpolate(x, size=size, mode=interpolation, antialias=interpolation != "nearest")
    return x.contiguous(memory_format=torch.channels_last)


class TensorLoader:
    """Batches of (normalised float images, labels) from an in-memory uint8 tensor; DDP-aware by ``rank``/``world``.

    Training: a fresh permutation per epoch, ``drop_last``, each rank takes its own slice of the same permutation.
    Evaluation: every image once, in order, rank r taking images r, r + world, ...
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        pad: int = 0,
        hflip: float = 0.0,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        size: tuple[int, int] | None = None,
        interpolation: str = "bicubic",
        reprob: float = 0.0,
        remode: str = "pixel",
        recount: int = 1,
        auto_augment: str | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a (N, C, H, W) uint8 tensor, got {tuple(images.shape)} {images.dtype}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.batch_size, self.train = batch_size, train
        self.pad, self.hflip = pad, hflip
        c = images.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32).reshape(1, c, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).reshape(1, c, 1, 1) * 255
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0
        if interpolation not in RESIZE_MODES:
            raise ValueError(
                f"--train-interpolation / --eval-interpolation must be one of {', '.join(RESIZE_MODES)} for "
                f"--loader memory, got {interpolation!r}"
            )
        self.size = None if size is None or tuple(size) == tuple(images.shape[-2:]) else tuple(size)
        self.interpolation = interpolation
        # timm's erasing on a (B, C, H, W) batch erases each image on its own, as per image in the workers pipeline
        self.erase = RandomErasing(reprob, mode=remode, max_count=recount, device="cpu") if reprob > 0 else None
        size_aa = min(images.shape[-2:])
        self.aa = auto_augment_policy(auto_augment, size_aa, mean, interpolation) if auto_augment else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> Tensor:
        n = len(self.images)
        if not self.train:
            return torch.arange(self.rank, n, self.world)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        per_rank = n // self.world
        return torch.randperm(n, generator=g)[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __len__(self) -> int:
        n = len(self._indices())
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def _augment(self, x: Tensor, g: torch.Generator) -> Tensor:
        B, C, H, W = x.shape
        if self.pad:
            p = self.pad
            padded = torch.nn.functional.pad(x, (p, p, p, p))  # (B, C, H+2p, W+2p), zeros
            dy = torch.randint(0, 2 * p + 1, (B, 1), generator=g)
            dx = torch.randint(0, 2 * p + 1, (B, 1), generator=g)
            rows = (dy + torch.arange(H))[:, :, None]  # (B, H, 1)
            cols = (dx + torch.arange(W))[:, None, :]  # (B, 1, W)
            # advanced indexing puts the index dims first: (B, H, W, C), i.e. channels-last once permuted
            x = padded.permute(0, 2, 3, 1)[torch.arange(B)[:, None, None], rows, cols].permute(0, 3, 1, 2)
        if self.hflip > 0:
            flip = torch.rand(B, generator=g) < self.hflip
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        idx = self._indices()
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 7919 * (self.rank + 1))
        for i in range(len(self)):
            j = idx[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[j]  # (B, C, H, W) uint8
            if self.train:
                x = self._augment(x, g)
                if self.aa is not None:
                    x = self._auto_augment(x, int(torch.randint(0, 2**62, (1,), generator=g)))
            x = x.contiguous(memory_format=torch.channels_last).float()
            x = (x - self.mean) / self.std
            if self.size is not None:  # after normalising: the same for a linear resize, and no uint8 rounding
                x = resize_batch(x, self.size, self.interpolation)
            if self.train and self.erase is not None:
                x = self._erase(x, int(torch.randint(0, 2**62, (1,), generator=g)))
            yield x, self.labels[j]

    def _auto_augment(self, x: Tensor, seed: int) -> Tensor:
        """(B, C, H, W) uint8 -> the same, each image through the policy on its own (PIL, as timm applies it)."""
        hwc = x.permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
        gray = hwc.shape[-1] == 1
        with seeded_globals(seed):
            out = [np.asarray(self.aa(Image.fromarray(a[..., 0] if gray else a))) for a in hwc]
        y = torch.from_numpy(np.stack(out))  # (B, H, W[, C])
        return (y[..., None] if gray else y).permute(0, 3, 1, 2)  # (B, C, H, W)

    def _erase(self, x: Tensor, seed: int) -> Tensor:
        with seeded_globals(seed):
            return self.erase(x)  # in place on x, a fresh tensor of this batch
