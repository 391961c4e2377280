"""Reading images for the tools: paths, folders and globs in; RGB PIL images (EXIF orientation applied) out.

    from crossvit.tools.images import expand_paths, load_image
    sources = expand_paths(["photos/", "extra/*.jpg", "one.png"])   # folders are searched recursively
    img = load_image(sources[0])                                      # RGB, upright; ImageReadError names the file

A file that cannot be decoded raises :class:`ImageReadError` naming the file and the reason, so callers can
report it and carry on with the others.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

# The decoder is core I/O shared with training (crossvit.data.images); the tools keep their old import path.
from ..data.images import ImageReadError, as_pil, decode_image, load_image, to_rgb

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "as_pil",
    "decode_image",
    "expand_paths",
    "is_image_file",
    "load_image",
    "to_rgb",
]

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

    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if is_image_file(f):
                    add(f)
        elif p.exists():
            add(p)
        elif any(c in str(spec) for c in _GLOB_CHARS):
            hits = sorted(glob.glob(str(spec), recursive=True))
            if not hits:
                add(p)  # reported as "no such file" by load_image
            for h in hits:
                hp = Path(h)
                if hp.is_dir():
                    for f in sorted(hp.rglob("*")):
                        if is_image_file(f):
                            add(f)
                elif hp.is_file():
                    add(hp)
        else:
            add(p)
    return out
