"""Our CrossViT against timm's port (random init, no download): identical weights must give identical logits.

timm is the independent reference: it was written from the official release, ours from the paper.
"""

from __future__ import annotations

import pytest
import timm
import torch

import crossvit
from crossvit.io.weights import normalize_state_dict, to_timm_state_dict

RELEASED = [
    "crossvit_tiny_240",
    "crossvit_small_240",
    "crossvit_base_240",
    "crossvit_9_240",
    "crossvit_15_240",
    "crossvit_18_240",
    "crossvit_9_dagger_240",
    "crossvit_15_dagger_240",
    "crossvit_18_dagger_240",
    "crossvit_15_dagger_408",
    "crossvit_18_dagger_408",
]

# The widest and the 408-px models take seconds each at native size: the full tier compares them too.
_LARGE = {"crossvit_base_240", "crossvit_18_240", "crossvit_18_dagger_240"}
_LARGE |= {"crossvit_15_dagger_408", "crossvit_18_dagger_408"}
RELEASED_TIERED = [pytest.param(n, marks=pytest.mark.slow) if n in _LARGE else n for n in RELEASED]


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    ref = timm.create_model(name, pretrained=False).eval()
    ours = crossvit.create_model(name).eval()
    return ref, ours


@pytest.mark.parametrize("name", RELEASED_TIERED)
def test_timm_weights_give_timm_logits(name: str) -> None:
    ref, ours = _pair(name)
    # Same parameter count as timm, exactly.
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(normalize_state_dict(ref.state_dict()), strict=True)
    size = ours.cfg.img_size
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == (2, 1000)
    assert torch.allclose(a, b, atol=1e-5, rtol=0), f"max |diff| {(a - b).abs().max():.3g}"


@pytest.mark.parametrize(
    "name", ["crossvit_9_dagger_240", pytest.param("crossvit_15_dagger_408", marks=pytest.mark.slow)]
)
def test_state_dict_round_trips_both_ways(name: str, tmp_path) -> None:
    ref, ours = _pair(name)
    # ours -> timm: our weights exported in timm's layout load strictly into timm and give our logits.
    ref.load_state_dict(to_timm_state_dict(ours.state_dict()), strict=True)
    x = torch.randn(1, 3, *ours.cfg.img_size)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5, rtol=0)
    # timm file on disk (safetensors, timm keys) -> ours via create_model(checkpoint=)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "timm.safetensors")
    loaded = crossvit.create_model(name, checkpoint=tmp_path / "timm.safetensors").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), ref(x), atol=1e-5, rtol=0)


def test_official_layout_with_wrappers_loads(tmp_path) -> None:
    """The official release: {'model': state_dict} with keys pos_embed.0, saved from DDP (module.) / compile."""
    ours = crossvit.create_model("crossvit_9_240").eval()
    sd = {f"module._orig_mod.{k}": v for k, v in ours.state_dict().items()}
    assert "module._orig_mod.pos_embed.0" in sd
    torch.save({"model": sd, "epoch": 3}, tmp_path / "official.pth")
    again = crossvit.create_model("crossvit_9_224", checkpoint=tmp_path / "official.pth").eval()
    ref = timm.create_model("crossvit_9_240", pretrained=False).eval()
    ref.load_state_dict(to_timm_state_dict(again.state_dict()), strict=True)
    x = torch.randn(1, 3, 240, 240)
    with torch.no_grad():
        assert torch.equal(again(x), ours(x))
        assert torch.allclose(again(x), ref(x), atol=1e-5, rtol=0)


def test_ema_wrapper_is_chosen_on_request(tmp_path) -> None:
    a = crossvit.create_model("crossvit_tiny_240")
    b = crossvit.create_model("crossvit_tiny_240")
    torch.save({"model": a.state_dict(), "model_ema": b.state_dict()}, tmp_path / "ckpt.pth")
    plain = crossvit.create_model("crossvit_tiny_240", checkpoint=tmp_path / "ckpt.pth")
    ema = crossvit.create_model("crossvit_tiny_240", checkpoint=tmp_path / "ckpt.pth", use_ema=True)
    assert torch.equal(plain.pos_embed[0], a.pos_embed[0])
    assert torch.equal(ema.pos_embed[0], b.pos_embed[0])
    assert not torch.equal(a.pos_embed[0], b.pos_embed[0])
