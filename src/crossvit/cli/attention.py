"""``crossvit attention IMAGE --checkpoint SRC --out DIR``: the maps of :mod:`crossvit.runtime.attention`, drawn."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..io.hub import eval_transform
from ..io.images import load_image
from ..runtime.attention import cross_attention_maps, display_image, draw_branch, draw_summary, rollout
from ..runtime.inference import label_names, load_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="one image file")
    p.add_argument("--checkpoint", required=True, help="release dir (config.json + model.safetensors) or weights file")
    p.add_argument("--model", help="architecture name when --checkpoint is a bare weights file")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and the raw maps (.npz)")
    p.add_argument("--cmap", default="inferno", help="matplotlib colour map (default inferno)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default 100)")


def main(args: argparse.Namespace) -> int:
    pil = load_image(args.image)  # ImageReadError (a ValueError) names the file
    model = load_model(args.checkpoint, args.model)
    x = eval_transform(model)(pil).unsqueeze(0)  # (1, C, H, W)
    maps, logits = cross_attention_maps(model, x)
    probs = logits.float().softmax(-1)[0]
    top = int(probs.argmax())
    names = label_names(model)
    label = names[top] if names else f"class {top}"
    img = display_image(model, pil)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).stem
    written = [
        draw_branch(model, maps, b, img, args.out / f"{stem}_branch{b}.png", args.cmap, args.dpi) for b in (0, 1)
    ]
    ckpt = "/".join(Path(args.checkpoint).resolve().parts[-2:])
    title = f"{Path(args.image).name}: top-1 {label} ({probs[top]:.2f}); {ckpt}"
    written.append(draw_summary(model, maps, img, args.out / f"{stem}_summary.png", args.cmap, title, args.dpi))
    arrays = {f"branch{m.branch}_enc{m.encoder}_mod{m.module}": m.patches for m in maps}
    arrays |= {f"branch{m.branch}_enc{m.encoder}_mod{m.module}_self": m.self_weight for m in maps}
    for b in range(2):
        arrays[f"branch{b}_rollout"], self_w = rollout(maps, b)
        arrays[f"branch{b}_rollout_self"] = np.array(self_w)
    np.savez_compressed(args.out / f"{stem}_maps.npz", **arrays)
    written.append(args.out / f"{stem}_maps.npz")
    shapes = ", ".join(f"branch {m.branch} enc {m.encoder}: {'x'.join(map(str, m.patches.shape))}" for m in maps)
    print(f"{len(maps)} cross-attention maps (heads x h x w: {shapes}); top-1 {label} ({probs[top]:.3f})")
    for w in written:
        print(f"wrote {w}")
    return 0
