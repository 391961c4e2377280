"""Reading images robustly: paths, folders and globs in; RGB PIL images (EXIF orientation applied) out.

    sources = expand_paths(["photos/", "extra/*.jpg", "one.png"])   # folders are searched recursively
    img = load_image(sources[0])                                      # RGB, upright; ImageReadError names the file

A file that cannot be decoded (truncated, not an image, a decompression bomb) raises :class:`ImageReadError`
naming the file and the reason, so callers can report it and carry on with the others. Training, prediction and
the server all decode through here.
"""

from __future__ import annotations

import glob
import io
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger("crossvit")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


class ImageReadError(ValueError):
    """An image that cannot be read; the message starts with the file name."""


# One decoding implementation for training, inference and the tools: decode_image below (RGB via to_rgb: 16-bit
# rescaled, transparency on white; EXIF orientation applied; truncated files, non-images and bombs refused).
BadImageError = ImageReadError  # an image file that cannot be decoded; the message names the file


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Transparency is composited on white; 16-bit / float grey is rescaled to 0..255."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(a.round().astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Decode ``path`` fully, turn it upright by its EXIF orientation and convert it to RGB."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory")
    return decode_image(path, str(path))


def decode_image(fp: str | Path | BinaryIO, name: str) -> Image.Image:
    """The one robust decoder (training, inference and the tools all use it): a path or binary file object -> RGB,
    upright. Any failure (unreadable, truncated, not an image, a decompression bomb) is an ImageReadError naming
    ``name``. Images over ``PIL.Image.MAX_IMAGE_PIXELS`` (89 Mpx unless raised) are refused, not just warned about.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                im.load()  # decode now: truncated files fail here, not later inside a batch
                img = ImageOps.exif_transpose(im) or im
                return to_rgb(img).copy()
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image PIL can decode") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{name}: cannot read image ({msg})") from None


def as_pil(image: object) -> Image.Image:
    """A PIL image, a path or an (H, W[, C]) uint8/float array in [0, 1] or [0, 255] -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(image) or image)
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
            raise ValueError(f"expected an (H, W) or (H, W, 1|3|4) image array, got shape {a.shape}")
        if a.dtype != np.uint8:
            a = np.asarray(a, dtype=np.float64)
            a = a * 255.0 if a.max() <= 1.0 else a
            a = np.clip(a.round(), 0, 255).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        return to_rgb(Image.fromarray(a))
    raise TypeError(f"expected a PIL image, a path or a numpy array, got {type(image).__name__}")


def decode_bytes(data: bytes, name: str) -> Image.Image:
    """Decode an in-memory image (a tar member); BadImageError naming ``name`` if it cannot."""
    return decode_image(io.BytesIO(data), name)


def load_image_from(fp, name: str) -> Image.Image:
    return decode_image(fp, name)


IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
_GLOB_CHARS = "*?["


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def expand_paths(specs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (recursive, image extensions only) and glob patterns -> an ordered list without duplicates.

    An explicit file is kept whatever its extension (and reported later if it is not an image). A path that does
    not exist and matches nothing is kept too, so the caller reports it as one failed input instead of stopping.
    """
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        if p not in seen:
            seen.add(p)
            out.append(p)

    def add_tree(p: Path) -> None:  # a folder: every image file under it, sorted; anything else: itself
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if is_image_file(f):
                    add(f)
        else:
            add(p)

    for spec in specs:
        p = Path(spec)
        if p.exists():
            add_tree(p)
        elif any(c in str(spec) for c in _GLOB_CHARS):
            hits = sorted(glob.glob(str(spec), recursive=True))
            if not hits:
                add(p)  # reported as "no such file" by load_image
            for h in hits:
                if Path(h).is_dir() or Path(h).is_file():
                    add_tree(Path(h))
        else:
            add(p)
    return out
