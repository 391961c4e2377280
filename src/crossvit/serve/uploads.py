"""Request bodies -> decoded RGB images, with every bad input turned into a 4xx that names the problem.

Bodies: the raw image bytes (any content type but multipart), or ``multipart/form-data`` with one or more ``file``
fields. The size limit is enforced while the body streams in, so an oversized upload is never held in memory.
Decoding is :func:`crossvit.io.images.decode_image` (truncated files, non-images and decompression bombs are
refused there); this module only maps its messages to a status code and a machine-readable ``kind``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image
from starlette.requests import Request

from ..io.images import ImageReadError, decode_image

MAX_FILES = 64  # images in one multipart request


class BadInput(Exception):
    """A client error: ``status`` (4xx), ``kind`` (stable, for programs) and a message for people."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "kind": self.kind}


@dataclass
class Upload:
    name: str  # the multipart file name, or "body"
    data: bytes


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    mb = limit / 2**20
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        msg = f"upload of {int(declared)} bytes is over the {mb:g} MB limit (--max-upload-mb)"
        raise BadInput(413, "too_large", msg)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(413, "too_large", f"upload is over the {mb:g} MB limit (--max-upload-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


async def uploads(request: Request, limit: int) -> tuple[list[Upload], bool]:
    """The images of a request and whether it was multipart (multipart answers one list per file when > 1)."""
    body = await read_body(request, limit)
    if not body:
        raise BadInput(400, "empty_body", "empty request body: POST the image bytes, or multipart 'file' fields")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return [Upload("body", body)], False

    async def replay() -> dict:  # the body was already read (under the size limit); the form parser reads it again
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except Exception as e:  # noqa: BLE001 - starlette raises several types for a malformed multipart body
        raise BadInput(400, "bad_multipart", f"cannot parse the multipart body ({e})") from None
    files = []
    for key, value in form.multi_items():
        if key != "file":
            continue
        if isinstance(value, str):
            raise BadInput(400, "bad_multipart", "multipart field 'file' is text, not an uploaded file")
        files.append(Upload(value.filename or f"file {len(files)}", await value.read()))
    await form.close()
    if not files:
        raise BadInput(400, "bad_multipart", "multipart body has no 'file' field")
    return files, True


def decode(upload: Upload) -> Image.Image:
    """Decode one upload (runs on a worker thread: decoding a large image takes a while)."""
    if not upload.data:
        raise BadInput(400, "empty_body", f"{upload.name}: empty file")
    try:
        return decode_image(io.BytesIO(upload.data), upload.name)
    except ImageReadError as e:
        msg = str(e)
        low = msg.lower()
        if "not an image" in low:
            raise BadInput(415, "not_an_image", msg) from None
        if "decompression bomb" in low:
            raise BadInput(422, "decompression_bomb", msg) from None
        if "truncated" in low:
            raise BadInput(422, "truncated", msg) from None
        raise BadInput(422, "unreadable_image", msg) from None
