"""The dense-prediction examples (examples/): Faster R-CNN + FPN and a segmentation head train and their loss falls."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where examples/ lives

from examples import detection, segmentation  # noqa: E402
from examples.shapes import make_shapes  # noqa: E402


def mean(v: list[float]) -> float:
    return sum(v) / len(v)


def test_shapes_masks_match_boxes() -> None:
    s = make_shapes(4, size=64, seed=1)[0]
    for box, label in zip(s["boxes"], s["labels"]):
        x0, y0, x1, y1 = (int(v) for v in box)
        assert (s["mask"][y0:y1, x0:x1] == label).any()
    assert s["image"].shape == (3, 64, 64) and s["mask"].shape == (64, 64)


def test_detection_trains_and_predicts() -> None:
    losses = detection.train(steps=30)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert mean(losses[-5:]) < 0.5 * mean(losses[:5]), losses
    model = detection.build_detector(detection.TINY, 3).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64), torch.rand(3, 80, 48)])  # any image size: resized to the model's
    assert len(out) == 2 and set(out[0]) == {"boxes", "labels", "scores"}


def test_segmentation_trains() -> None:
    losses = segmentation.train(steps=40)
    assert mean(losses[-5:]) < 0.5 * mean(losses[:5]), losses
