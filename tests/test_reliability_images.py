"""Bad images never kill a run: the generated corpus (tests/badimages.py) through both readers, the training loop
(skip and --on-bad-image error) and ``crossvit predict``.

    pytest tests/test_reliability_images.py -q
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import crossvit
from badimages import (
    TINY_MODEL_ARGS,
    TINY_TRAIN,
    good_png,
    make_corpus,
    make_image_folder,
    record,
    restore_permissions,
)
from crossvit.cli import main as cli
from crossvit.io import images as data_images
from crossvit.io import images as tool_images

READERS = {
    "data": (data_images.load_image, data_images.BadImageError),
    "tools": (tool_images.load_image, tool_images.ImageReadError),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    cases = make_corpus(d)
    yield d, cases
    restore_permissions(d)


@pytest.mark.parametrize("reader", list(READERS))
def test_corpus_read_or_refused_naming_the_file(corpus, reader):
    d, cases = corpus
    load, err = READERS[reader]
    for c in cases:
        p = d / c.name
        if c.expect == "ok":
            img = load(p)
            assert img.mode == "RGB", c.name
            assert img.size == c.size, (c.name, img.size, c.size)
        else:
            with pytest.raises(err) as e:
                load(p)
            assert str(p) in str(e.value), (c.name, str(e.value))
            if c.name.startswith("bomb"):  # refused for its declared size, before any pixel is decoded
                assert "exceeds limit" in str(e.value), str(e.value)
    n_bad = sum(c.expect == "bad" for c in cases)
    record(
        "images",
        f"corpus through the {reader} reader (crossvit.{reader}.images)",
        len(cases),
        len(cases),
        note=f"{len(cases) - n_bad} read as RGB (size/orientation checked), {n_bad} refused naming the file",
    )


@pytest.mark.parametrize("reader", list(READERS))
def test_corpus_content_is_right(corpus, reader):
    d, _ = corpus
    load, _ = READERS[reader]
    rot = np.asarray(load(d / "exif_rot6.jpg"))  # (H=40, W=20, 3): upright means red on top, blue at the bottom
    assert rot.shape == (40, 20, 3)
    assert rot[5, 10, 0] > 200 and rot[5, 10, 2] < 60, rot[5, 10]
    assert rot[35, 10, 2] > 200 and rot[35, 10, 0] < 60, rot[35, 10]
    cmyk = np.asarray(load(d / "cmyk.jpg")).reshape(-1, 3).mean(0)  # CMYK (0, 255, 255, 0) is red
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60, cmyk
    g16 = np.asarray(load(d / "gray16.png"))[:, :, 0].astype(float)  # 0..65535 ramp -> 0..255 ramp, not clipped
    assert g16.min() < 5 and g16.max() > 250
    assert 100 < g16[8, 16] < 156, g16[8, 16]
    assert np.asarray(load(d / "one_pixel.png"))[0, 0].tolist() == [10, 200, 30]
    rgba = np.asarray(load(d / "rgba.png"))  # transparent top half composited on white, opaque half kept
    assert (rgba[:8] == 255).all() and not (rgba[8:] == 255).all()


def test_both_readers_agree_pixel_for_pixel(corpus):
    """One decoding implementation behind both import paths: identical RGB arrays for every readable case."""
    d, cases = corpus
    for c in cases:
        if c.expect == "ok":
            a = np.asarray(data_images.load_image(d / c.name))
            b = np.asarray(tool_images.load_image(d / c.name))
            assert np.array_equal(a, b), c.name


def test_unreadable_file_as_another_user():
    """chmod 000 is no barrier to root, so when root runs the tests the read is repeated in a child that has
    dropped to uid 65534 (nobody); both readers must refuse it with the file named."""
    d = Path(tempfile.mkdtemp(prefix="crossvit-unreadable-"))
    try:
        os.chmod(d, 0o755)
        cases = make_corpus(d)
        p = d / "unreadable.png"
        if os.getuid() != 0:
            assert cases[-1].expect == "bad"
            for load, err in READERS.values():
                with pytest.raises(err, match=str(p)):
                    load(p)
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop root, try both readers, report through the pipe
            code = 0
            try:
                os.close(r)
                os.setgid(65534)
                os.setuid(65534)
                msgs = []
                for load, err in READERS.values():
                    try:
                        load(p)
                        msgs.append("READ")
                    except err as e:
                        msgs.append(str(e))
                os.write(w, json.dumps(msgs).encode())
            except BaseException as e:  # noqa: BLE001 - report anything to the parent
                os.write(w, json.dumps([f"child failed: {e!r}"]).encode())
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            msgs = json.loads(f.read() or "[]")
        os.waitpid(pid, 0)
        if msgs and msgs[0].startswith("child failed: PermissionError") and "setuid" in msgs[0]:
            pytest.skip("cannot drop privileges here to make a file unreadable")
        assert len(msgs) == 2, msgs
        for m in msgs:
            assert m != "READ" and str(p) in m, msgs
        record("images", "chmod 000 file, read by uid 65534 (tests run as root)", 2, 2, note="both readers refuse it")
    finally:
        restore_permissions(d)
        shutil.rmtree(d, ignore_errors=True)


def _folder_with_bad_images(root: Path, corpus_dir: Path, cases) -> tuple[Path, set[str]]:
    """Tiny ImageFolder (2 classes x 4 good images) with the whole corpus mixed into train/ of both classes."""
    data = make_image_folder(root / "data", per_class=4)
    bad = set()
    for i, c in enumerate(cases):
        dst = data / "train" / ("a" if i % 2 else "b") / c.name
        if c.name == "unreadable.png":
            dst.write_bytes(good_png(7, 8))
            os.chmod(dst, 0)
        else:
            shutil.copyfile(corpus_dir / c.name, dst)
        if c.expect == "bad":
            bad.add(str(dst))
    return data, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_training_skips_bad_images_and_lists_them(corpus, tmp_path, caplog, workers):
    """With worker processes (fresh ones each epoch) every worker appends to the list, yet each file is listed once."""
    from crossvit.train import TrainConfig, train

    d, cases = corpus
    data, bad = _folder_with_bad_images(tmp_path, d, cases)
    cfg = TrainConfig(**{**TINY_TRAIN, "data": str(data), "output": str(tmp_path / "runs"), "experiment": "skip"})
    cfg = replace(cfg, workers=workers, epochs=1 if workers == 0 else 2)  # workers are new processes each epoch
    with caplog.at_level(logging.WARNING, logger="crossvit"):
        r = train(cfg)
    assert r["steps"] >= 2  # every step ran: the bad files were replaced, not fatal
    listed = (Path(r["run_dir"]) / "skipped_images.txt").read_text().splitlines()
    names = [line.split("\t")[0] for line in listed]
    assert sorted(names) == sorted(bad)  # each bad file once, no good file
    for n in bad if workers == 0 else []:  # (worker processes log to their own stderr)
        assert any(n in rec.getMessage() for rec in caplog.records), n  # a warning names each one
    record(
        "images",
        f"corpus mixed into a training ImageFolder (skip, {workers} workers)",
        len(cases),
        len(cases),
        note=f"{len(bad)} skipped, warned and listed in skipped_images.txt; run finished {r['steps']} steps",
    )


def test_on_bad_image_error_stops_naming_the_file(corpus, tmp_path, capsys):
    d, cases = corpus
    data, bad = _folder_with_bad_images(tmp_path, d, cases)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_TRAIN, "model_args": TINY_MODEL_ARGS}))
    argv = ["train", str(data), "-c", str(recipe), "--on-bad-image", "error"]
    rc = cli([*argv, "--output", str(tmp_path / "runs"), "--experiment", "err"])  # the CLI entry point, in-process
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("crossvit train: error:"), err[-2000:]
    assert any(b in last for b in bad), last
    assert not (tmp_path / "runs" / "err" / "last.pth").exists()
    record("images", "same folder, `crossvit train --on-bad-image error`", 1, 1, note="exit 2, error names the file")


def test_predict_answers_for_the_good_ones(corpus, tmp_path, capsys):
    d, cases = corpus
    cfg = crossvit.CrossViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL_ARGS.items()})
    torch.manual_seed(0)
    crossvit.save_pretrained(crossvit.CrossViT(cfg.replace(num_classes=2)), tmp_path / "rel", label_names=["a", "b"])
    out = tmp_path / "preds.json"
    rc = cli(["predict", str(d), "--checkpoint", str(tmp_path / "rel"), "--format", "json", "--output", str(out)])
    assert rc == 0
    res = {Path(r["image"]).name: r for r in json.loads(out.read_text())}
    assert set(res) == {c.name for c in cases}
    for c in cases:
        r = res[c.name]
        if c.expect == "ok":
            assert r["error"] is None and len(r["topk"]) == 2, r
        else:
            assert r["topk"] == [] and c.name in r["error"], r
    err = capsys.readouterr().err
    n_bad = sum(c.expect == "bad" for c in cases)
    assert f"{len(cases) - n_bad} of {len(cases)} images predicted, {n_bad} unreadable" in err
    record(
        "images",
        "corpus through `crossvit predict DIR`",
        len(cases),
        len(cases),
        note=f"{len(cases) - n_bad} predicted, {n_bad} per-file errors, exit 0",
    )


def test_tar_shards_skip_bad_members_naming_shard_and_key(corpus, tmp_path):
    from crossvit.data.images import BadImagePolicy
    from crossvit.data.shards import ShardDataset, write_shards

    d, cases = corpus
    readable = [c for c in cases if c.name != "unreadable.png"]  # a tar member has no file permissions
    paths = write_shards([(d / c.name, i % 2) for i, c in enumerate(readable)], tmp_path / "train", shard_size=8)
    log = tmp_path / "skipped_images.txt"
    out = list(ShardDataset(paths, None, train=False, policy=BadImagePolicy("skip", log)))
    assert [im.size for im, _ in out] == [c.size for c in readable if c.expect == "ok"]
    names = [line.split("\t")[0] for line in log.read_text().splitlines()]
    expected = [f"{paths[i // 8]}:{i:08d}" for i, c in enumerate(readable) if c.expect == "bad"]
    assert names == expected
    with pytest.raises(data_images.BadImageError, match=str(paths[0])):
        list(ShardDataset(paths, None, train=False, policy=BadImagePolicy("error")))
    record(
        "images",
        "corpus as members of .tar shards",
        len(readable),
        len(readable),
        note=f"{len(expected)} skipped naming shard:key",
    )


def test_truncated_shard_is_skipped_in_skip_mode(tmp_path):
    from badimages import good_png
    from crossvit.data.images import BadImagePolicy
    from crossvit.data.shards import ShardDataset, write_shards

    srcs = []
    for i in range(16):
        (tmp_path / f"{i}.png").write_bytes(good_png(i, 16))
        srcs.append((tmp_path / f"{i}.png", i % 2))
    paths = write_shards(srcs, tmp_path / "train", shard_size=8)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])  # the copy was cut off mid-member
    out = list(ShardDataset(paths, None, train=False, policy=BadImagePolicy("skip", tmp_path / "s.txt")))
    assert 8 <= len(out) < 16
    assert str(paths[1]) in (tmp_path / "s.txt").read_text()
    with pytest.raises(Exception, match=paths[1].name):  # --on-bad-image error: the run stops, naming the shard
        list(ShardDataset(paths, None, train=False, policy=BadImagePolicy("error")))
    record(
        "images", "a .tar shard cut off mid-member (interrupted copy)", 2, 2,
        note=f"skip: {len(out)} of 16 samples kept, shard listed; error: stops naming the shard",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    cfg = crossvit.CrossViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL_ARGS.items()})
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("rel") / "rel"
    crossvit.save_pretrained(crossvit.CrossViT(cfg.replace(num_classes=2)), d, label_names=["a", "b"])
    return d


def test_attention_and_export_name_the_bad_image(corpus, tiny_release, tmp_path, capsys):
    d, cases = corpus
    bad = [c for c in cases if c.expect == "bad"]
    for c in bad:
        rc = cli(["attention", str(d / c.name), "--checkpoint", str(tiny_release), "--out", str(tmp_path / "att")])
        err = capsys.readouterr().err
        assert rc == 2 and str(d / c.name) in err, (c.name, rc, err[-500:])
    assert not list((tmp_path / "att").glob("*.png"))
    c = bad[0]
    argv = ["export", "--checkpoint", str(tiny_release), "--out", str(tmp_path / "m.pt"), "--format", "torchscript"]
    rc = cli([*argv, "--images", str(d / "gray.jpg"), str(d / c.name)])
    err = capsys.readouterr().err
    assert rc == 2 and str(d / c.name) in err, (rc, err[-500:])
    assert not (tmp_path / "m.pt").exists()  # nothing half-done is left at --out
    record(
        "images",
        "bad files through `crossvit attention` / `crossvit export --images`",
        len(bad) + 1,
        len(bad) + 1,
        note="exit 2 naming the file",
    )


def test_validate_goes_on_past_bad_images(corpus, tiny_release, tmp_path, caplog):
    from crossvit.train import validate

    d, cases = corpus
    data = make_image_folder(tmp_path / "data", per_class=2)
    bad = [c for c in cases if c.expect == "bad"]
    for i, c in enumerate(bad):
        shutil.copyfile(d / c.name, data / "val" / ("a" if i % 2 else "b") / c.name)
    with caplog.at_level(logging.WARNING, logger="crossvit"):
        m = validate(tiny_release, str(data), workers=0, batch_size=4)
    assert m["images"] == 4 + len(bad)  # each bad file's slot is taken by the next readable image
    for c in bad:
        assert c.name in caplog.text, c.name
    record(
        "images",
        "bad files in the val/ folder of `crossvit validate`",
        len(bad),
        len(bad),
        note="warned by name, metrics computed",
    )
