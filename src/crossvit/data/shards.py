"""WebDataset-format tar shards read with the standard library: for data that outgrows a file tree.

A shard is a plain ``.tar`` whose members are grouped by key: ``000123.jpg`` (or .png/.jpeg/.webp) holds the image and
``000123.cls`` its integer label, as ``webdataset`` writes them. Layout: ``DATA/train/*.tar`` and ``DATA/val/*.tar``.

    write_shards(samples, "data/train", shard_size=1000)      # (PIL or path, label) -> shard-000000.tar, ...
    ds = ShardDataset(sorted(Path("data/train").glob("*.tar")), transform, train=True)
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from torch.utils.data import IterableDataset, get_worker_info

from ..io.images import BadImageError, decode_bytes
from .images import BadImagePolicy

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp")


def list_shards(directory: str | Path) -> list[Path]:
    d = Path(directory)
    return sorted(d.glob("*.tar"))


def _iter_groups(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) for each sample of one shard, in file order."""
    key, group = None, {}
    try:
        with tarfile.open(shard, "r:*") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                name = Path(m.name)
                k, _, ext = name.name.partition(".")
                k = str(name.parent / k)
                if k != key and group:
                    yield key, group
                    group = {}
                key = k
                f = tf.extractfile(m)
                group[ext.lower()] = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BadImageError(f"{shard}: broken tar shard ({type(e).__name__}: {e})") from None
    if group:
        yield key, group
    if not _has_end_marker(shard):
        # tarfile stops silently when a copy was cut inside a member header; the missing end-of-archive blocks
        # (two zero records) are what tells a complete shard from a cut one.
        raise BadImageError(f"{shard}: truncated tar shard (no end-of-archive marker); samples after the cut are lost")


def _has_end_marker(shard: Path) -> bool:
    size = shard.stat().st_size
    if size % 512 or size < 1024:
        return False
    with open(shard, "rb") as f:
        f.seek(-1024, os.SEEK_END)
        return f.read() == bytes(1024)


def _label(group: dict[str, bytes], where: str) -> int:
    raw = group.get("cls")
    if raw is None:
        raise ValueError(f"{where}: no .cls label member")
    try:
        return int(raw.decode().strip())
    except ValueError:
        raise ValueError(f"{where}: .cls member is not an integer ({raw[:20]!r})") from None


def scan_shards(shards: list[Path]) -> tuple[int, int]:
    """(number of samples, number of classes = max label + 1) of a shard set; errors name the shard."""
    n, top = 0, -1
    for s in shards:
        for key, group in _iter_groups(s):
            top = max(top, _label(group, f"{s}:{key}"))
            n += 1
    return n, top + 1


class ShardDataset(IterableDataset):
    """Samples of tar shards, split over ranks and workers; a shuffle buffer mixes them for training.

    With ``train=True`` the stream cycles over the shards forever (the loop takes a fixed number of steps per
    epoch, equal on every rank); otherwise every sample is produced exactly once over all ranks and workers.
    """

    def __init__(
        self,
        shards: list[Path],
        transform: Callable | None = None,
        train: bool = False,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        policy: BadImagePolicy | None = None,
        classes: list[str] | None = None,
    ) -> None:
        if not shards:
            raise ValueError("no .tar shards given")
        self.shards = list(shards)
        self.transform = transform
        self.train = train
        self.rank, self.world, self.seed = rank, world, seed
        self.shuffle_buffer = shuffle_buffer
        self.policy = policy or BadImagePolicy("skip")
        self.classes = classes
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _raw(self, part: int, parts: int, rng: random.Random) -> Iterator[tuple[str, dict[str, bytes]]]:
        by_shard = len(self.shards) >= parts
        shards = self.shards[part::parts] if by_shard else self.shards
        while True:
            order = list(shards)
            if self.train:
                rng.shuffle(order)
            i = 0
            for s in order:
                try:
                    for key, group in _iter_groups(s):
                        if by_shard or i % parts == part:
                            yield f"{s}:{key}", group
                        i += 1
                except BadImageError as e:  # a shard cut off mid-copy: keep what was read, follow the policy
                    self.policy.handle(e, str(s))
            if not self.train:
                return

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        part, parts = self.rank * nw + wid, self.world * nw
        rng = random.Random(f"{self.seed}-{self.epoch}-{part}")
        stream = self._raw(part, parts, rng)
        if self.train and self.shuffle_buffer > 1:
            stream = _shuffled(stream, self.shuffle_buffer, rng)
        for where, group in stream:
            ext = next((e for e in IMAGE_EXTS if e in group), None)
            try:
                if ext is None:
                    raise BadImageError(f"{where}: no image member ({', '.join(IMAGE_EXTS)})")
                img = decode_bytes(group[ext], where)
                label = _label(group, where)
            except (BadImageError, ValueError) as e:  # undecodable image, or a sample cut off before its label
                self.policy.handle(e, where)
                continue
            yield (self.transform(img) if self.transform else img), label


def _shuffled(stream, size: int, rng: random.Random):
    buf = []
    for item in stream:
        buf.append(item)
        if len(buf) >= size:
            yield buf.pop(rng.randrange(len(buf)))
    rng.shuffle(buf)
    yield from buf


def write_shards(samples, out_dir: str | Path, shard_size: int = 1000, fmt: str = "png") -> list[Path]:
    """Write (PIL image or path, label) samples as WebDataset tar shards; returns the shard paths."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tf = None
    for i, (img, label) in enumerate(samples):
        if i % shard_size == 0:
            if tf:
                tf.close()
            paths.append(out / f"shard-{len(paths):06d}.tar")
            tf = tarfile.open(paths[-1], "w")
        if isinstance(img, (str, Path)):
            data = Path(img).read_bytes()
            ext = Path(img).suffix.lstrip(".").lower()
        else:
            buf = io.BytesIO()
            img.save(buf, format=fmt.upper())
            data, ext = buf.getvalue(), fmt
        for e, payload in ((ext, data), ("cls", str(int(label)).encode())):
            ti = tarfile.TarInfo(f"{i:08d}.{e}")
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    if tf:
        tf.close()
    return paths
