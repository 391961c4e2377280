"""A corpus of awkward and broken image files, generated on the fly (nothing downloaded, nothing committed).

    from badimages import make_corpus
    cases = make_corpus(tmp_path / "bad")          # writes the files, returns what each should give
    for c in cases: print(c.name, c.expect, c.size)

Each :class:`Case` says whether a robust reader must decode it (``expect="ok"``: RGB, ``size`` = (W, H) after the
EXIF orientation is applied) or refuse it with an error naming the file (``expect="bad"``). The unreadable file
(chmod 000) is readable anyway for root; :func:`make_corpus` then marks it ``expect="ok"`` and ``note`` says why,
so the tests stay honest about what they checked.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Case:
    name: str  # file name inside the corpus dir
    expect: str  # "ok" (decodes to RGB) or "bad" (refused, error names the file)
    size: tuple[int, int] | None = None  # (W, H) after orientation, for "ok"
    note: str = ""


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A 1-bit grey PNG that declares ``width`` x ``height`` but carries a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def exif_rotated_jpeg(width: int = 40, height: int = 20) -> bytes:
    """Left half red, right half blue, stored ``width`` x ``height`` with EXIF Orientation=6 (rotate 90 CW).

    Shown upright it is ``height`` x ``width`` with red on top and blue at the bottom.
    """
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def corpus_bytes() -> dict[str, tuple[bytes, Case]]:
    """File name -> (content, expectation) for every case except the unreadable file."""
    rgb = Image.fromarray(_noise(24, 36))
    good_jpeg = _save(rgb, "JPEG", quality=90)
    pal = Image.fromarray(_noise(20, 20, 1)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 0
    rgba = np.concatenate([_noise(16, 16, 2), np.full((16, 16, 1), 255, np.uint8)], axis=2)
    rgba[:8, :, 3] = 0  # top half fully transparent
    grad16 = (np.linspace(0, 65535, 32 * 16).reshape(16, 32)).astype(np.uint16)
    out: dict[str, tuple[bytes, Case]] = {}

    def add(name: str, data: bytes, expect: str, size: tuple[int, int] | None = None, note: str = "") -> None:
        out[name] = (data, Case(name, expect, size, note))

    add("zero_bytes.jpg", b"", "bad", note="empty file")
    add("truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "bad", note="JPEG cut in half")
    add("truncated.png", _save(rgb, "PNG")[:200], "bad", note="PNG cut after 200 bytes")
    add("text.jpg", b"this is a text file, not a picture\n" * 20, "bad", note="text named .jpg")
    add("png_named.jpg", _save(rgb, "PNG"), "ok", (36, 24), "PNG content, .jpg name")
    add("cmyk.jpg", _save(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), "JPEG", quality=95), "ok", (16, 12), "red")
    add("rgba.png", _save(Image.fromarray(rgba, "RGBA"), "PNG"), "ok", (16, 16), "top half transparent")
    add("palette.png", _save(pal, "PNG"), "ok", (20, 20), "P mode, 16 colours")
    add("palette_transparent.png", _save(pal_t, "PNG"), "ok", (20, 20), "P mode with a transparent index")
    add("gray16.png", _save(Image.fromarray(grad16), "PNG"), "ok", (32, 16), "16-bit grey gradient")
    add("gray.jpg", _save(rgb.convert("L"), "JPEG"), "ok", (36, 24), "8-bit grey")
    add("one_pixel.png", _save(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), "ok", (1, 1), "1x1")
    add("exif_rot6.jpg", exif_rotated_jpeg(40, 20), "ok", (20, 40), "40x20 stored, Orientation=6")
    add("bomb.png", png_header_only(30000, 30000), "bad", note="declares 900 Mpx (> 2x PIL's limit)")
    add("bomb_soft.png", png_header_only(10000, 10000), "bad", note="declares 100 Mpx (1-2x PIL's limit)")
    return out


def make_corpus(root: str | Path, unreadable: bool = True) -> list[Case]:
    """Write the corpus into ``root`` and return the expectations (the unreadable file last)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, (data, case) in corpus_bytes().items():
        (root / name).write_bytes(data)
        cases.append(case)
    if unreadable:
        p = root / "unreadable.png"
        p.write_bytes(_save(Image.fromarray(_noise(8, 8, 3)), "PNG"))
        os.chmod(p, 0)
        if os.access(p, os.R_OK):  # root (or CAP_DAC_OVERRIDE) reads it anyway
            cases.append(Case(p.name, "ok", (8, 8), "chmod 000 but readable: running as root"))
        else:
            cases.append(Case(p.name, "bad", None, "chmod 000"))
    return cases


def restore_permissions(root: str | Path) -> None:
    """Make every file under ``root`` readable again (so tmp dirs can be cleaned up)."""
    for p in Path(root).rglob("*"):
        if p.is_file():
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


def good_png(seed: int = 0, size: int = 40) -> bytes:
    return _save(Image.fromarray(_noise(size, size, seed)), "PNG")


# --- small fixtures shared by the reliability tests ----------------------------------------------------------------

# A CrossViT that trains a step in milliseconds: 32 px, S patch 8 (4x4 tokens, width 16), L patch 16 (2x2, width 32).
TINY_MODEL_ARGS: dict = {
    "img_size": [32, 32],
    "img_scale": [1.0, 1.0],
    "patch_size": [8, 16],
    "embed_dim": [16, 32],
    "num_heads": [2, 2],
    "mlp_ratio": [2.0, 2.0],
    "num_encoders": 1,
    "small_depth": 1,
    "large_depth": 1,
}

# TrainConfig fields for a tiny, quick, deterministic run (no mixup, fp32, no TensorBoard, no release).
TINY_TRAIN: dict = {
    "model": "crossvit_tiny_240",
    "model_args": TINY_MODEL_ARGS,
    "epochs": 1,
    "warmup_epochs": 0,
    "batch_size": 4,
    "lr": 1e-3,
    "workers": 0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "aa": None,
    "reprob": 0.0,
    "drop_path": 0.0,
    "amp": "fp32",
    "tensorboard": False,
    "save_release": False,
    "log_interval": 1000,
}


def make_image_folder(root: str | Path, per_class: int = 4, classes: tuple[str, ...] = ("a", "b"), val: bool = True):
    """``root/train/<class>/<i>.png`` (and ``root/val/...``) of 40-px noise; returns ``root``."""
    root = Path(root)
    for split in ("train", "val") if val else ("train",):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class if split == "train" else 2):
                (d / f"{i}.png").write_bytes(good_png(seed=100 * ci + i + (50 if split == "val" else 0)))
    return root


# --- the reliability table ------------------------------------------------------------------------------------------


def record(area: str, what: str, tried: int, handled: int, kills: int = 0, lost: int = 0, note: str = "") -> None:
    """One row of docs/reliability.md, printed by a test after its assertions passed (seen with ``pytest -s``)."""
    print(f"\nRELIABILITY\t{area}\t{what}\t{tried}\t{handled}\t{kills}\t{lost}\t{note}", flush=True)


def report(argv: list[str] | None = None) -> int:
    """Run the reliability tests and print the markdown table of what was tried and what happened.

    python tests/badimages.py            # from the repository root; about 2 minutes on 2 cores
    """
    import re
    import subprocess
    import sys
    import time

    here = Path(__file__).resolve().parent
    files = sorted(str(p) for p in here.glob("test_reliability*.py"))
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", *files, *(argv or [])],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    rows = [line.split("\t")[1:] for line in p.stdout.splitlines() if line.startswith("RELIABILITY\t")]
    summary = next((ln for ln in reversed(p.stdout.splitlines()) if re.match(r"^=* ?\d+ (passed|failed)", ln)), "?")
    failed = [ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("FAILED ")]
    print("| Area | What was tried | Tried | Handled as specified | Crashes | Kills survived | Data lost | Note |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    tot = [0, 0, 0, 0]
    for area, what, tried, handled, kills, lost, note in rows:
        t, h, k, lost_i = int(tried), int(handled), int(kills), int(lost)
        tot = [tot[0] + t, tot[1] + h, tot[2] + k, tot[3] + lost_i]
        print(f"| {area} | {what} | {t} | {h} | {t - h} | {k if k else ''} | {lost_i if k else ''} | {note} |")
    print(f"| **total** | | **{tot[0]}** | **{tot[1]}** | **{tot[0] - tot[1]}** | **{tot[2]}** | **{tot[3]}** | |")
    print(f"\npytest: {summary.strip('= ')} (report wall time {wall:.0f} s)")
    if failed:
        print("FAILED tests (their rows are missing above): " + ", ".join(failed))
    return 0 if p.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(report())
