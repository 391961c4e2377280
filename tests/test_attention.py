"""Cross-attention maps, their rollout and ``crossvit attention``, on a tiny model and a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import crossvit
from conftest import TINY_ARGS
from crossvit.cli import main as cli
from crossvit.models.layers import CrossAttention
from crossvit.runtime.attention import CrossMap, cross_attention_maps, rollout


def tiny(**kw) -> crossvit.CrossViT:
    cfg = crossvit.CrossViTConfig(**{**TINY_ARGS, "num_heads": (2, 4), "num_classes": 3}).replace(**kw)
    torch.manual_seed(0)
    m = crossvit.CrossViT(cfg).eval()
    with torch.no_grad():  # sharper than the 0.02-std init, so maps are not flat
        for mod in m.modules():
            if isinstance(mod, CrossAttention):
                mod.wq.weight.normal_(0, 0.5)
                mod.wk.weight.normal_(0, 0.5)
    return m


def photo(model) -> torch.Tensor:
    return crossvit.eval_transform(model)(Image.fromarray(skimage.data.chelsea())).unsqueeze(0)  # (1, 3, 48, 48)


def test_maps_shapes_and_sums() -> None:
    model = tiny()
    x = photo(model)
    maps, logits = cross_attention_maps(model, x)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))  # keeping maps changes nothing
    assert [(m.encoder, m.branch) for m in maps] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    grids = model.cfg.grid_size  # ((4, 4), (2, 2))
    for m in maps:
        # branch i's CLS is projected into the other branch's width and uses the other branch's heads
        assert m.patches.shape == (model.cfg.num_heads[1 - m.branch], *grids[1 - m.branch])
        np.testing.assert_allclose(m.patches.sum(axis=(1, 2)) + m.self_weight, 1.0, atol=1e-5)
    mods = [mod for mod in model.modules() if isinstance(mod, CrossAttention)]
    assert all(not mod.keep_map and mod.attn_map is None for mod in mods)  # switched off again


def test_map_equals_independent_softmax() -> None:
    """Encoder 0, S-branch CLS: recompute softmax(q k^T / sqrt(d)) from the module's input and weights."""
    model = tiny()
    x = photo(model)
    ca = next(mod for mod in model.blocks[0].fusion[0].modules() if isinstance(mod, CrossAttention))
    seen = {}
    handle = ca.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].detach().clone()))
    maps, _ = cross_attention_maps(model, x)
    handle.remove()
    t = seen["x"][0].double()  # (1 + N_L, C_L)
    h = ca.num_heads
    wq, bq, wk, bk = (p.detach().double() for p in (ca.wq.weight, ca.wq.bias, ca.wk.weight, ca.wk.bias))
    q = (t[:1] @ wq.T + bq).reshape(1, h, -1).transpose(0, 1)  # (H, 1, d)
    k = (t @ wk.T + bk).reshape(len(t), h, -1).transpose(0, 1)  # (H, N, d)
    ref = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)[:, 0].numpy()  # (H, N)
    m = maps[0]
    np.testing.assert_allclose(m.self_weight, ref[:, 0], atol=1e-6)
    np.testing.assert_allclose(m.patches.reshape(h, -1), ref[:, 1:], atol=1e-6)


def test_rollout_by_hand() -> None:
    a1 = np.array([[[0.2, 0.1], [0.1, 0.0]]])  # one head, 2x2 grid, self weight 0.6
    a2 = np.array([[[0.0, 0.0], [0.0, 0.8]]])  # self weight 0.2
    maps = [CrossMap(0, 0, 1, a1, np.array([0.6])), CrossMap(1, 0, 1, a2, np.array([0.2]))]
    r, r_self = rollout(maps, 1)
    # after module 1: r = 0.5*a1, self = 0.8; after module 2: keep = 0.6 -> r = 0.3*a1 + 0.5*a2, self = 0.48
    np.testing.assert_allclose(r, 0.3 * a1[0] + 0.5 * a2[0])
    assert r_self == pytest.approx(0.48) and r.sum() + r_self == pytest.approx(1.0)
    with pytest.raises(ValueError, match="branch 0"):
        rollout(maps, 0)


def test_no_cls_and_stacked_modules() -> None:
    maps, _ = cross_attention_maps(nc := tiny(cls_token=False), photo(tiny(cls_token=False)))
    assert len(maps) == 4 and maps[0].patches.shape[1:] == nc.cfg.grid_size[1]  # agent over all L tokens
    r, r_self = rollout(maps, 0)
    assert r.sum() + r_self == pytest.approx(1.0, abs=1e-5)
    # released stacking (cross_depth 2): the second module sees only the running CLS token -> no patch map
    stacked = tiny(cross_depth=2)
    assert len(cross_attention_maps(stacked, photo(stacked))[0]) == 4
    reattend = tiny(cross_depth=2, cross_reattend=True)
    maps, _ = cross_attention_maps(reattend, photo(reattend))
    assert [(m.encoder, m.module) for m in maps if m.branch == 0] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_other_fusion_is_a_clear_error() -> None:
    model = tiny(fusion="cls_token")
    with pytest.raises(ValueError, match="fusion='cls_token', which has no cross-attention maps"):
        cross_attention_maps(model, photo(model))


def test_cli_writes_pngs(tmp_path, capsys) -> None:
    rel = crossvit.save_pretrained(tiny(), tmp_path / "rel", label_names=["a", "b", "c"])
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "cat.jpg")
    assert cli(["attention", str(tmp_path / "cat.jpg"), "--checkpoint", str(rel), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "4 cross-attention maps" in out
    for name in ("cat_branch0.png", "cat_branch1.png", "cat_summary.png"):
        with Image.open(tmp_path / "o" / name) as im:
            assert im.width > 400 and im.height > 200
    saved = np.load(tmp_path / "o" / "cat_maps.npz")
    assert saved["branch0_enc1_mod0"].shape == (4, 2, 2) and saved["branch1_rollout"].shape == (4, 4)
    # bad inputs: an unreadable image, a model without cross-attention
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert cli(["attention", str(tmp_path / "bad.jpg"), "--checkpoint", str(rel), "--out", str(tmp_path / "o")]) == 2
    assert "bad.jpg" in capsys.readouterr().err
    other = crossvit.save_pretrained(tiny(fusion="none"), tmp_path / "none")
    assert cli(["attention", str(tmp_path / "cat.jpg"), "--checkpoint", str(other), "--out", str(tmp_path / "p")]) == 2
    assert "no cross-attention maps" in capsys.readouterr().err
