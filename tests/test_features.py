"""CrossViT as a backbone: shapes and feature_info of features_only models, equal to forward_intermediates."""

from __future__ import annotations

import pytest
import torch

import crossvit
from crossvit import CrossViTConfig


def expected_shapes(cfg: CrossViTConfig, idx: list[int]) -> list[tuple[int, ...]]:
    """From the config by hand: per branch, the grid of its patches on its resized input."""
    out = []
    for b in range(2):
        h, w = (round(s * cfg.img_scale[b] / cfg.patch_size[b]) for s in cfg.img_size)
        out += [(2, cfg.embed_dim[b], h, w)] * len(idx)
    return out


@pytest.mark.parametrize(
    "kw,idx",
    [
        (dict(), [0, 1]),
        (dict(out_indices=(-1,)), [1]),
        (dict(out_indices=1), [1]),
        (dict(out_indices=(0,), img_size=(48, 96)), [0]),
        (dict(out_indices=(0, 1), img_size=96), [0, 1]),
    ],
)
def test_shapes_and_feature_info(tiny_cfg, kw, idx) -> None:
    net = crossvit.create_model(tiny_cfg, features_only=True, **kw).eval()
    cfg = net.cfg
    x = torch.randn(2, 3, *cfg.img_size)
    with torch.no_grad():
        maps = net(x)
    assert [tuple(m.shape) for m in maps] == expected_shapes(cfg, idx)
    fi = net.feature_info
    assert fi.channels() == [24] * len(idx) + [48] * len(idx)
    assert fi.module_name() == [f"blocks.{k}" for k in idx] * 2
    h = cfg.img_size[0]
    assert fi.reduction() == pytest.approx([12] * len(idx) + [h / round(h * 32 / 48 / 16)] * len(idx))
    assert len(net.model.blocks) == idx[-1] + 1  # later encoders are pruned


@pytest.mark.parametrize("name", ["crossvit_9_240", "crossvit_small_fuse_pairwise_240", "crossvit_cifar_single_36"])
def test_equal_to_forward_intermediates(name) -> None:
    size = 36 if "cifar" in name else 48
    torch.manual_seed(0)
    clf = crossvit.create_model(name, img_size=size, num_classes=3).eval()
    torch.manual_seed(0)
    net = crossvit.create_model(name, img_size=size, num_classes=3, features_only=True, out_indices=(0, -1)).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = clf.forward_intermediates(x, indices=[0, 2], output_fmt="NCHW", intermediates_only=True)
        maps = net(x)
    nb = len(ref[0])
    want = [ref[j][b] for b in range(nb) for j in range(2)]
    assert len(maps) == 2 * nb
    for a, b in zip(maps, want):
        assert torch.equal(a, b)


def test_weights_load_as_for_the_classifier(tmp_path, tiny_cfg) -> None:
    src = crossvit.CrossViT(tiny_cfg).eval()
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    net = crossvit.create_model(tiny_cfg, checkpoint=path, features_only=True, out_indices=(-1,)).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        ref = src.forward_intermediates(x, indices=[-1], output_fmt="NCHW", intermediates_only=True)[0]
        assert all(torch.equal(a, b) for a, b in zip(net(x), ref))


def test_bad_options(tiny_cfg) -> None:
    with pytest.raises(ValueError, match="out of range"):
        crossvit.create_model(tiny_cfg, features_only=True, out_indices=(2,))
    with pytest.raises(ValueError, match="distinct"):
        crossvit.create_model(tiny_cfg, features_only=True, out_indices=(1, -1))
    with pytest.raises(ValueError, match="features_only"):
        crossvit.create_model(tiny_cfg, out_indices=(1,))
    net = crossvit.create_model(tiny_cfg, features_only=True)
    with pytest.raises(ValueError, match="built for 48x48"):
        net(torch.randn(1, 3, 64, 64))
