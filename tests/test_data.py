"""Data: folder scanning errors, deterministic splits, robust image reading, tar shards, in-memory cache."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from crossvit.data import (
    BadImageError,
    BadImagePolicy,
    FolderDataset,
    ShardDataset,
    cache_dataset,
    load_image,
    scan_folder,
    split_samples,
    write_shards,
)
from crossvit.data.digits import digits_arrays, digits_split
from crossvit.data.shards import scan_shards
from crossvit.data.synthetic import make_image_folder, toy_image


def test_scan_folder_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: no such data directory"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no class folders"):
        scan_folder(tmp_path / "flat")
    root = make_image_folder(tmp_path / "d", classes=2, per_class=2, size=8, val_per_class=0)
    (root / "train" / "zz_empty").mkdir()
    (root / "train" / "zz_empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="zz_empty: class folder holds no images"):
        scan_folder(root / "train")


def test_val_split_is_deterministic_stratified_and_disjoint(tmp_path):
    root = make_image_folder(tmp_path, classes=3, per_class=10, size=8, val_per_class=0)
    classes, samples = scan_folder(root / "train")
    tr, va = split_samples(samples, 0.2, seed=0)
    tr2, va2 = split_samples(list(reversed(samples)), 0.2, seed=0)  # order of listing does not matter
    assert (tr, va) == (tr2, va2)
    assert not set(tr) & set(va) and len(tr) + len(va) == 30
    assert [sum(1 for s in va if s[1] == c) for c in range(3)] == [2, 2, 2]
    _, va3 = split_samples(samples, 3, seed=0)  # a count per class
    assert len(va3) == 9
    assert split_samples(samples, 0.2, seed=1)[1] != va  # the seed changes it
    with pytest.raises(ValueError, match="none would be left"):
        split_samples(samples, 10)


def test_load_image_rgb_exif_and_bad_files(tmp_path, caplog):
    g = Image.fromarray(np.arange(6 * 4, dtype=np.uint8).reshape(4, 6), mode="L")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise
    g.save(tmp_path / "rot.jpg", exif=exif)
    img = load_image(tmp_path / "rot.jpg")
    assert img.mode == "RGB" and img.size == (4, 6)  # width/height swapped by the EXIF rotation
    toy_image(0, 0, 16).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match="trunc.png"):
        load_image(tmp_path / "trunc.png")

    samples = [(str(tmp_path / "trunc.png"), 1), (str(tmp_path / "good.png"), 0)]
    log_file = tmp_path / "skipped_images.txt"
    ds = FolderDataset(samples, ["a", "b"], None, BadImagePolicy("skip", log_file))
    with caplog.at_level(logging.WARNING, logger="crossvit"):
        img, label = ds[0]
    assert label == 0 and img.size == (16, 16)  # the next readable image stands in
    assert "trunc.png" in caplog.text and "trunc.png" in log_file.read_text()
    strict = FolderDataset(samples, ["a", "b"], None, BadImagePolicy("error"))
    with pytest.raises(BadImageError, match="trunc.png"):
        strict[0]


def test_shards_round_trip_split_over_ranks(tmp_path):
    samples = [(toy_image(i % 3, i, 8), i % 3) for i in range(11)]
    shards = write_shards(samples, tmp_path / "train", shard_size=4)
    assert len(shards) == 3 and scan_shards(shards) == (11, 3)
    seen = []
    for rank in range(2):
        ds = ShardDataset(shards, None, train=False, rank=rank, world=2)
        seen += [(np.asarray(img).tobytes(), y) for img, y in ds]
    want = [(np.asarray(img).tobytes(), y) for img, y in samples]
    assert sorted(seen) == sorted(want)  # every sample exactly once over the two ranks
    stream = iter(ShardDataset(shards, None, train=True, shuffle_buffer=5))
    assert len([next(stream) for _ in range(25)]) == 25  # the training stream cycles


def test_cache_equals_files_and_digits_split(tmp_path):
    root = make_image_folder(tmp_path, classes=2, per_class=3, size=8, val_per_class=0)
    classes, samples = scan_folder(root / "train")
    ds = FolderDataset(samples, classes)
    cached = cache_dataset(ds)
    for i in range(len(ds)):
        a, b = ds[i], cached[i]
        assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    arrays, targets = digits_arrays(32)
    assert len(arrays) == 1797 and arrays[0].shape == (32, 32, 3)
    tr, va = digits_split(targets, 0.2)
    assert not set(tr) & set(va) and len(va) == 359 and digits_split(targets, 0.2) == (tr, va)


def test_train_from_tar_shards_with_a_bad_sample(tmp_path):
    from crossvit.train import TrainConfig, train

    good = [(toy_image(i % 2, i, 16), i % 2) for i in range(8)]
    write_shards(good, tmp_path / "d" / "train", shard_size=3)
    write_shards(good[:4], tmp_path / "d" / "val", shard_size=4)
    # a shard with an undecodable image: skipped with its name recorded
    import io
    import tarfile

    with tarfile.open(tmp_path / "d" / "train" / "shard-bad.tar", "w") as tf:
        for name, payload in (("x.png", b"not a png"), ("x.cls", b"1")):
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    tiny = {"img_size": [16, 16], "img_scale": [1.0, 1.0], "patch_size": [4, 8], "embed_dim": [16, 32],
            "num_heads": [2, 2], "mlp_ratio": [1.0, 1.0], "num_encoders": 1, "large_depth": 1}  # fmt: skip
    r = train(
        TrainConfig(
            data=str(tmp_path / "d"),
            model="crossvit_tiny_240",
            model_args=tiny,
            epochs=1,
            warmup_epochs=0,
            batch_size=4,
            aa=None,
            workers=0,
            amp="fp32",
            tensorboard=False,
            output=str(tmp_path / "runs"),
            experiment="wds",
            lr=1e-3,
        )  # fmt: skip
    )
    assert r["steps"] == 2 and r["classes"] == ["0", "1"]  # 9 samples (8 good) // batch 4
    skipped = (tmp_path / "runs" / "wds" / "skipped_images.txt").read_text()
    assert "shard-bad.tar" in skipped
