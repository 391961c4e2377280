"""The tiled attention of CPU training computes what the explicit-matmul path computes, gradients included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import crossvit
from crossvit.models.layers import tiled_attention as tiled_module
from crossvit.models.layers.tiled_attention import tiled_attention


def plain(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v


def run(fn, q, k, v, g, autocast: bool) -> list[torch.Tensor]:
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = fn(q, k, v)
    out.backward(g)
    return [out.detach(), q.grad, k.grad, v.grad]


def test_tile_rows_tiles_only_long_token_lists_with_small_heads():
    assert tiled_module.tile_rows(1024, 145, 16) == tiled_module.TILE_SCORES // (145 * 145)  # crossvit_cifar_36 S
    assert 1 < tiled_module.tile_rows(128, 401, 32) < 128  # crossvit_9_240 S branch at batch 32
    assert tiled_module.tile_rows(1024, 65, 32) == 1024  # few tokens: the whole batch at once
    assert tiled_module.tile_rows(128, 197, 64) == 128  # a wide head: the products, not memory, dominate
    assert tiled_module.tile_rows(2, 4000, 16) == 1  # never an empty tile


@pytest.mark.parametrize("autocast", [True, False], ids=["bf16-autocast", "fp32"])
def test_tiled_attention_matches_the_plain_path_forward_and_backward(monkeypatch, autocast):
    monkeypatch.setattr(tiled_module, "TILE_SCORES", 3 * 130 * 130)  # tiles of 3 rows: 8 rows -> 3, 3, 2
    assert tiled_module.tile_rows(8, 130, 8) == 3
    torch.manual_seed(0)
    q, k, v, g = (torch.randn(2, 4, 130, 8) for _ in range(4))
    if autocast:  # what the qkv Linear hands over under autocast
        q, k, v, g = (t.bfloat16() for t in (q, k, v, g))
    want = run(plain, q, k, v, g, autocast)
    got = run(tiled_attention, q, k, v, g, autocast)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("autocast", [True, False], ids=["bf16-autocast", "fp32"])
def test_model_trains_the_same_with_tiled_and_plain_attention(monkeypatch, autocast):
    monkeypatch.setattr(tiled_module, "TILE_SCORES", 5 * 145 * 145)  # 145 tokens in the S branch, tiles of 5 rows
    cfg = crossvit.CrossViTConfig(
        img_size=48, img_scale=(1.0, 1.0), patch_size=(4, 8), embed_dim=(16, 32), num_heads=(2, 2),
        mlp_ratio=(1.0, 1.0), num_encoders=1, large_depth=1, num_classes=3,
    )  # fmt: skip
    torch.manual_seed(0)
    a = crossvit.CrossViT(cfg)
    b = crossvit.CrossViT(cfg)
    b.load_state_dict(a.state_dict())
    a.set_attention_impl("math")
    b.set_attention_impl("tiled")
    x, y = torch.randn(4, 3, 48, 48), torch.tensor([0, 1, 2, 0])
    losses = []
    for m in (a, b):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        losses.append(loss.item())
    # "tiled" also folds the one-query cross-attention into its projections (as "sdpa" does): the same product,
    # summed in another order, so under bf16 the two agree to bf16 rounding, in fp32 to fp32 rounding
    tol = dict(rtol=2e-2, atol=2e-3) if autocast else dict(rtol=1e-4, atol=1e-6)
    assert losses[0] == pytest.approx(losses[1], rel=tol["rtol"] / 10)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, **tol, msg=name)


def test_tiled_attention_with_attention_dropout_falls_back_to_the_plain_path():
    cfg = crossvit.CrossViTConfig(
        img_size=48, img_scale=(1.0, 1.0), patch_size=(4, 8), embed_dim=(16, 32), num_heads=(2, 2),
        mlp_ratio=(1.0, 1.0), num_encoders=1, large_depth=1, num_classes=3, attn_drop_rate=0.5,
    )  # fmt: skip
    m = crossvit.CrossViT(cfg).train()
    m.set_attention_impl("tiled")
    m(torch.randn(2, 3, 48, 48)).sum().backward()
    assert m.patch_embed[0].proj.weight.grad is not None
    with pytest.raises(ValueError, match="sdpa, math, tiled"):
        m.set_attention_impl("flash")


@pytest.mark.slow  # Inductor compiles a forward and a backward graph: ~20 s
def test_compiled_tiled_attention_gives_the_eager_gradients(monkeypatch, tmp_path):
    """Under torch.compile the tiled kernel stays one operator call (not unrolled into per-tile products that
    Inductor would rewrite into its flash kernel): the compiled graph holds it, and its numbers are the eager ones."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setattr(tiled_module, "TILE_SCORES", 3 * 130 * 130)
    torch.manual_seed(0)
    q, k, v, g = (torch.randn(2, 4, 130, 8).bfloat16() for _ in range(4))
    graphs = []

    def backend(gm, example_inputs):  # noqa: ANN001 - what dynamo hands a backend
        graphs.append(str(gm.graph))
        return torch._inductor.compile(gm, example_inputs)

    want = run(tiled_attention, q, k, v, g, True)
    got = run(torch.compile(tiled_attention, backend=backend, fullgraph=True), q, k, v, g, True)
    assert any("crossvit.tiled_attention" in s for s in graphs)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-5, atol=1e-6, msg=name)
