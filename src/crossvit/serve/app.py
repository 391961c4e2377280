"""The HTTP endpoints of ``crossvit serve`` (FastAPI).

    POST /predict[?top_k=5]   raw image bytes or multipart ``file`` field(s) -> [{"label", "score"}] best first
                              (the Hugging Face inference API's image-classification answer); a multipart request
                              with several files -> one such list per file, in order
    POST /explain             one image -> top-5, each branch's cross-attention maps, the crop the model saw
    GET  /                    the web page (self-contained: no external assets)
    GET  /healthz             {"status": "ok", batching counters}
    GET  /metadata            model name, classes, input size, precision, runtime, limits

Errors are JSON ``{"error": message, "kind": ...}`` with a 4xx status; the server carries on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ..io.hub import data_config, eval_transform
from ..models.model import CrossViT
from ..models.preprocess import split_transform
from ..runtime.attention import BRANCH_NAMES, cross_attention_maps, display_image, rollout
from ..runtime.inference import label_names
from .batcher import Batcher
from .uploads import BadInput, decode, uploads

log = logging.getLogger("crossvit.serve")

# Bodies up to this size are decoded on the event loop: a small image (a 32-px PNG is ~2 KB) decodes in less time
# than a hop to a worker thread and back costs, and the loop is blocked for well under a millisecond. Larger ones
# go to the thread pool, so a 20 MB photo never stalls the other connections.
INLINE_DECODE_BYTES = 16 * 1024


@dataclass
class Served:
    """What the server runs: the fp32 CrossViT (metadata, attention maps) and the batcher around the fast form."""

    model: CrossViT
    batcher: Batcher
    precision: str = "fp32"
    runtime: str = "torch"
    max_upload_mb: float = 20.0
    name: str = ""
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = label_names(self.model) or [str(i) for i in range(self.model.num_classes)]
        self.name = self.name or getattr(self.model, "architecture", None) or "crossvit"
        self.transform = eval_transform(self.model)
        self.split = split_transform(self.transform)
        self.batcher.collate = self.stack  # the batcher stacks what prepare() makes, on its model thread

    def prepare(self, img: Image.Image) -> np.ndarray | torch.Tensor:
        """Per-image preprocessing: resize and crop to a uint8 array (normalized later, per batch, by stack())."""
        return self.split.per_image(img) if self.split else self.transform(img)

    def stack(self, items: list) -> torch.Tensor:
        """What prepare() made for each image -> the (B, C, H, W) fp32 batch of the model's own preprocessing."""
        return self.split.batch(items) if self.split else torch.stack(items)

    @property
    def limit(self) -> int:
        return int(self.max_upload_mb * 2**20)


def _top(probs: torch.Tensor, labels: list[str], k: int) -> list[dict[str, Any]]:
    p, i = probs.topk(min(k, probs.numel()))
    return [{"label": labels[c], "score": float(s)} for s, c in zip(p.tolist(), i.tolist())]


def _png_data_url(img: np.ndarray) -> str:
    """(H, W, 3) floats in [0, 1] -> a data: URL, so the page needs no second request for the crop."""
    buf = io.BytesIO()
    Image.fromarray((img * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _attention(model: CrossViT, x: torch.Tensor) -> list[dict[str, Any]]:
    """Per branch: the rollout and each module's head-mean map (what ``crossvit attention`` draws)."""
    maps, _ = cross_attention_maps(model, x)
    out = []
    for b in range(2):
        r, r_self = rollout(maps, b)
        layers = [{"title": "rollout", "weights": r.tolist()}]
        layers += [{"title": f"encoder {m.encoder}" + (f" module {m.module}" if model.cfg.cross_depth > 1 else ""),
                    "weights": m.mean.astype(float).tolist()} for m in maps if m.branch == b]  # fmt: skip
        out.append({
            "branch": b,
            "title": f"{BRANCH_NAMES[b]}-branch {'CLS' if model.cfg.cls_token else 'agent'} -> "
                     f"{BRANCH_NAMES[1 - b]}-branch patches",
            "grid": list(r.shape),
            "self_weight": r_self,
            "layers": layers,
        })  # fmt: skip
    return out


def create_app(served: Served) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        await served.batcher.stop()  # after uvicorn has finished the in-flight requests (SIGTERM drains)

    app = FastAPI(title="crossvit serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, e: BadInput) -> JSONResponse:
        log.info("%s %s -> %d %s: %s", request.method, request.url.path, e.status, e.kind, e.message)
        return JSONResponse(e.to_dict(), status_code=e.status)

    def prepare(upload) -> np.ndarray | torch.Tensor:  # noqa: ANN001 - an Upload; decode + per-image preprocessing
        return served.prepare(decode(upload))

    def top_k_of(request: Request, default: int) -> int:
        raw = request.query_params.get("top_k", str(default))
        if not raw.isdigit() or int(raw) < 1:
            raise BadInput(400, "bad_top_k", f"top_k must be a positive integer, got {raw!r}")
        return int(raw)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        k = top_k_of(request, 5)
        files, multipart = await uploads(request, served.limit)
        if sum(len(f.data) for f in files) <= INLINE_DECODE_BYTES:
            tensors = [prepare(f) for f in files]
        else:
            tensors = [await run_in_threadpool(prepare, f) for f in files]  # all decoded before any is run
        probs = await asyncio.gather(*(served.batcher.submit(x) for x in tensors))  # batched with each other
        answers = [_top(p, served.labels, k) for p in probs]
        return JSONResponse(answers if multipart and len(answers) > 1 else answers[0])

    @app.post("/explain")
    async def explain(request: Request) -> JSONResponse:
        files, _ = await uploads(request, served.limit)
        if len(files) != 1:
            raise BadInput(400, "one_image", f"/explain takes one image, got {len(files)}")
        pil = await run_in_threadpool(decode, files[0])
        item = await run_in_threadpool(served.prepare, pil)
        probs = await served.batcher.submit(item)
        body: dict[str, Any] = {"predictions": _top(probs, served.labels, 5)}
        try:
            x = served.stack([item])  # (1, C, H, W)
            body["maps"] = await served.batcher.run_exclusive(_attention, served.model, x)
        except ValueError as e:  # a model without cross-attention fusion: predictions only, and why
            body["maps"], body["maps_note"] = [], str(e)
        body["image"] = _png_data_url(await run_in_threadpool(display_image, served.model, pil))
        return JSONResponse(body)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **served.batcher.stats.to_dict()}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        dc = data_config(served.model)
        return {
            "model": served.name,
            "num_classes": served.model.num_classes,
            "classes": served.labels,
            "input_size": list(dc["input_size"]),
            "preprocessing": {k: dc[k] for k in ("crop_pct", "interpolation", "mean", "std")},
            "precision": served.precision,
            "runtime": served.runtime,
            "attention_maps": served.model.cfg.fusion == "cross_attn",
            "max_batch": served.batcher.max_batch,
            "max_wait_ms": served.batcher.max_wait * 1e3,
            "max_upload_mb": served.max_upload_mb,
        }

    return app
