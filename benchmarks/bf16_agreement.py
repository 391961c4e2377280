"""Do bf16 fast paths predict what fp32 predicts, on real images with trained weights?

No pretrained weights can be downloaded here, so this trains the CIFAR-size CrossViT of the benchmark
(crossvit.cli.benchmark.CIFAR, 1.7 M params) for a few minutes on CIFAR-10 (or loads a checkpoint), then
compares top-1 of fp32 eager against each bf16 path on held-out images (the last N of every class).

    python benchmarks/bf16_agreement.py --data ../shared/datasets/cifar10/train --minutes 6 --json bf16.json
    python benchmarks/bf16_agreement.py --data ... --checkpoint runs/x/model.safetensors   # your own weights
    python benchmarks/bf16_agreement.py --release DIR --digits   # a trained release (e.g. `crossvit demo`'s) on
                                                                  # the 1,797 real scanned digits it was trained on
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import crossvit
from crossvit.cli.benchmark import CIFAR
from crossvit.runtime.fast import to_inference

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def load_split(root: Path, held_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ImageFolder of 32x32 images -> (train x, train y, held-out x, held-out y), normalised (N, 3, 32, 32)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"{root}: no class folders")
    xs, ys, hx, hy = [], [], [], []
    for c, name in enumerate(classes):
        files = sorted((root / name).glob("*.jpg"))
        for i, f in enumerate(files):
            arr = np.asarray(Image.open(f).convert("RGB").resize((32, 32)), dtype=np.uint8)
            (hx if i >= len(files) - held_out else xs).append(arr)
            (hy if i >= len(files) - held_out else ys).append(c)

    def norm(a: list) -> torch.Tensor:
        t = torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        return (t - MEAN) / STD

    return norm(xs), torch.tensor(ys), norm(hx), torch.tensor(hy)


def load_digits(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 scanned digits at the model's size, normalised with the model's mean / std."""
    from crossvit.data.digits import digits_arrays

    dc = crossvit.data_config(model)
    arrays, labels = digits_arrays(size=dc["input_size"][-1])
    t = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255  # (N, H, W, 3) -> (N, 3, H, W)
    mean, std = torch.tensor(dc["mean"]).view(1, 3, 1, 1), torch.tensor(dc["std"]).view(1, 3, 1, 1)
    return (t - mean) / std, torch.tensor(labels)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, minutes: float, batch: int) -> int:
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05, fused=True)
    model.train()
    steps, t0 = 0, time.time()
    while time.time() - t0 < minutes * 60:
        idx = torch.randint(0, len(x), (batch,))
        xb = x[idx]
        flip = torch.rand(batch) < 0.5
        xb[flip] = xb[flip].flip(-1)  # horizontal flip
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(xb), y[idx], label_smoothing=0.1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
        if steps % 50 == 0:
            print(f"step {steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    return steps


@torch.no_grad()
def predict(fn, x: torch.Tensor, batch: int = 250) -> torch.Tensor:  # noqa: ANN001
    return torch.cat([fn(x[i : i + batch]).float() for i in range(0, len(x), batch)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/datasets/cifar10/train"))
    p.add_argument("--checkpoint", type=Path, default=None, help="weights of the CIFAR-size model (skip training)")
    p.add_argument("--release", type=Path, default=None, help="a release directory (crossvit.from_pretrained)")
    p.add_argument("--digits", action="store_true", help="compare on scikit-learn's 1,797 digits (with --release)")
    p.add_argument("--minutes", type=float, default=6.0, help="training time budget")
    p.add_argument("--held-out", type=int, default=200, help="images per class kept for the comparison")
    p.add_argument("--compile", action="store_true", help="also check the bf16 compiled path")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    if args.release:
        model = crossvit.from_pretrained(args.release)
        hx, hy = load_digits(model) if args.digits else load_split(args.data, args.held_out)[2:]
        out = {"weights": f"release {args.release}", "images_from": "sklearn digits" if args.digits else str(args.data)}
    else:
        x, y, hx, hy = load_split(args.data, args.held_out)
        model = crossvit.create_model(crossvit.CrossViTConfig(**CIFAR), checkpoint=args.checkpoint)
        steps = 0 if args.checkpoint else train(model, x, y, args.minutes, 128)
        out = {"weights": str(args.checkpoint) if args.checkpoint else f"trained here: {steps} steps of 128, bf16"}
    model.eval()
    ref = predict(model, hx)
    out["fp32_top1"] = (ref.argmax(1) == hy).float().mean().item()
    paths = {
        "bf16 eager": to_inference(copy.deepcopy(model), "bf16"),
        "fp32 openvino": to_inference(copy.deepcopy(model), "fp32", runtime="openvino"),
        "bf16 openvino": to_inference(copy.deepcopy(model), "bf16", runtime="openvino"),
    }
    if args.compile:
        paths["bf16 compile+freeze"] = to_inference(copy.deepcopy(model), "bf16", compile=True)
    for name, fn in paths.items():
        logits = predict(fn, hx)
        out[name] = {
            "agreement_with_fp32": (logits.argmax(1) == ref.argmax(1)).float().mean().item(),
            "top1": (logits.argmax(1) == hy).float().mean().item(),
            "max_abs_logit_diff": (logits - ref).abs().max().item(),
        }
    out["images"] = len(hx)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
