"""Pretrained weights for another channel count (timm's adapt_input_conv), and images of any size at run time."""

from __future__ import annotations

import pytest
import torch

from crossvit import create_model
from crossvit.io.hub import from_pretrained, save_pretrained


def _weights(tmp_path, model) -> str:
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.mark.parametrize("multi_conv", [False, True])
def test_one_channel_from_rgb_weights_equals_rgb_model_on_replicated_grey(tmp_path, tiny_cfg, multi_conv):
    cfg = tiny_cfg.replace(multi_conv=multi_conv)
    rgb = create_model(cfg).eval()
    grey = create_model(cfg, in_chans=1, checkpoint=_weights(tmp_path, rgb)).eval()
    first = "patch_embed.0.proj.0.weight" if multi_conv else "patch_embed.0.proj.weight"
    assert grey.state_dict()[first].shape[1] == 1
    x = torch.rand(2, 1, 48, 48)  # (B, 1, H, W)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)


def test_four_channels_repeat_and_rescale_the_rgb_filters(tmp_path, tiny_cfg):
    rgb = create_model(tiny_cfg)
    four = create_model(tiny_cfg, in_chans=4, checkpoint=_weights(tmp_path, rgb))
    w3 = rgb.state_dict()["patch_embed.1.proj.weight"]  # (D, 3, p, p)
    w4 = four.state_dict()["patch_embed.1.proj.weight"]  # (D, 4, p, p)
    want = torch.cat([w3, w3[:, :1]], dim=1) * 3 / 4  # channels R, G, B, R, scaled so the response keeps its size
    torch.testing.assert_close(w4, want)
    assert four(torch.randn(1, 4, 48, 48)).shape == (1, 7)


def test_dynamic_size_model_equals_fixed_model_at_the_configured_size(tiny_cfg):
    fixed = create_model(tiny_cfg).eval()
    dyn = create_model(tiny_cfg, dynamic_img_size=True).eval()
    dyn.load_state_dict(fixed.state_dict())
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(dyn(x), fixed(x), rtol=0, atol=0)
        out = dyn(torch.randn(2, 3, 72, 96))  # another size, not square: both branches' pos-embeds resized
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    feats, inter = dyn.forward_intermediates(torch.randn(1, 3, 72, 96), output_fmt="NCHW")
    # S branch: 72x96 / 12 = 6x8; L branch: resized by 32/48 to 48x64, / 16 = 3x4
    assert inter[-1][0].shape[-2:] == (6, 8) and inter[-1][1].shape[-2:] == (3, 4)


def test_dynamic_size_matches_a_model_built_for_the_new_size(tiny_cfg):
    """At another size the dynamic model is the fixed model of that size with bicubic-resized pos-embeds."""
    dyn = create_model(tiny_cfg, dynamic_img_size=True).eval()
    big = create_model(tiny_cfg, img_size=96).eval()
    from crossvit.io.weights import load_into

    load_into(big, dyn.state_dict())  # resizes the position embeddings on load
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(dyn(x), big(x), rtol=1e-5, atol=1e-5)


def test_fixed_size_model_rejects_another_size_clearly(tiny_cfg):
    with pytest.raises(ValueError, match=r"input is 64x64 but the model was built for 48x48.*dynamic_img_size=True"):
        create_model(tiny_cfg)(torch.randn(1, 3, 64, 64))


def test_dynamic_single_branch_and_release_round_trip(tmp_path, tiny_cfg):
    single = create_model(tiny_cfg.replace(single_branch=True, fusion="none"), dynamic_img_size=True).eval()
    assert single(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    dyn = create_model(tiny_cfg, dynamic_img_size=True).eval()
    back = from_pretrained(save_pretrained(dyn, tmp_path / "rel"))
    assert back.cfg.dynamic_img_size
    x = torch.randn(1, 3, 60, 60)
    with torch.no_grad():
        torch.testing.assert_close(back(x), dyn(x))


def test_dynamic_size_refuses_pairwise_fusion(tiny_cfg):
    with pytest.raises(ValueError, match="dynamic_img_size"):
        tiny_cfg.replace(fusion="pairwise", dynamic_img_size=True)
