"""``crossvit serve``: load a model, batch concurrent requests, serve HTTP until SIGTERM / Ctrl-C (exit 0).

crossvit serve --checkpoint runs/x/release                       # http://127.0.0.1:8000/
crossvit serve --checkpoint runs/x/int8 --max-batch 16           # an int8 release runs int8 (OpenVINO)
"""

from __future__ import annotations

import argparse
import copy
import logging
import signal

import torch
import uvicorn

from ..runtime.fast import to_inference
from ..runtime.inference import load_model
from ..runtime.int8 import pick_precision
from .app import Served, create_app
from .batcher import Batcher

log = logging.getLogger("crossvit.serve")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="release dir, run dir, weights file (+ --model) or hub id")
    p.add_argument("--model", help="architecture name when --checkpoint is a bare weights file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--precision",
        default=None,
        choices=("fp32", "bf16", "int8"),
        help="default: int8 for an int8 release (crossvit quantize), else fp32",
    )
    p.add_argument("--runtime", default=None, choices=("torch", "openvino"), help="default torch (int8: openvino)")
    p.add_argument("--max-batch", type=int, default=32, help="images per forward pass at most (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="wait this long for a batch to fill (default 5)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="larger request bodies get 413 (default 20)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of each forward pass (default "
                   "torch's, divided among the workers)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="batches run at once, each on its own thread (torch "
                   "runtime; e.g. 2 on a 2-core CPU with --max-batch half the clients; default 1)")  # fmt: skip


def build(args: argparse.Namespace):  # noqa: ANN201 - the FastAPI app
    if args.max_upload_mb <= 0:
        raise ValueError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    model = load_model(args.checkpoint, args.model)
    precision, runtime = pick_precision(model, args.precision, args.runtime)
    if args.workers > 1 and runtime != "torch":
        raise ValueError(f"--workers {args.workers} needs --runtime torch (OpenVINO runs one batch at a time)")
    threads = args.threads or (max(1, torch.get_num_threads() // args.workers) if args.workers > 1 else None)
    if threads:
        torch.set_num_threads(threads)
    run = model
    if precision != "fp32" or runtime != "torch":
        run = to_inference(copy.deepcopy(model), precision, runtime=runtime)  # the fp32 model stays for the maps
    batcher = Batcher(run, args.max_batch, args.max_wait_ms, pad_to_buckets=runtime == "openvino", workers=args.workers)
    batcher.warmup((model.cfg.in_chans, *model.cfg.img_size))
    served = Served(model, batcher, precision, runtime, args.max_upload_mb)
    return create_app(served), served


def main(args: argparse.Namespace) -> int:
    app, served = build(args)
    print(
        f"crossvit serve: {served.name} ({served.precision}, {served.runtime}), max batch {args.max_batch}, "
        f"max wait {args.max_wait_ms:g} ms, {args.workers} worker(s) x {torch.get_num_threads()} thread(s) on "
        f"http://{args.host}:{args.port}/",
        flush=True,
    )
    # uvicorn handles SIGTERM / SIGINT: it stops accepting, lets in-flight requests finish and runs the app's
    # shutdown (the batcher drains). Afterwards it re-sends the signal to the handler that was installed before it
    # started; for SIGTERM that is this no-op, so a drained server exits 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=30)
    uvicorn.Server(config).run()
    print("crossvit serve: stopped", flush=True)
    return 0
