"""The model contract, over every registered name, plus the knobs that make the paper's variants."""

from __future__ import annotations

import pytest
import torch

import crossvit
from crossvit import CrossViT, CrossViTConfig
from crossvit.models.layers.attention import CrossAttention
from crossvit.models.layers.block import Block

ALL = crossvit.list_models()


def _families() -> list[str]:
    """The smallest model of each family: models that differ only in width, depth, K or L share one geometry
    (input size, branch scales, patch sizes, patch embedding) and one fusion, so one of them runs at native size."""
    fam: dict[tuple, tuple[int, str]] = {}
    for name in ALL:
        c = crossvit.get_entry(name).cfg
        key = (c.img_size, c.img_scale, c.patch_size, c.multi_conv, c.fusion, c.cls_token, c.single_branch)
        size = sum(c.embed_dim) * (c.small_depth + c.large_depth) * c.num_encoders
        fam[key] = min(fam.get(key, (size, name)), (size, name))
    return sorted(name for _, name in fam.values())


FAMILIES = _families()


def _small(cfg: CrossViTConfig) -> CrossViTConfig:
    """The same architecture at the smallest input that gives every branch a grid of at least 3x3."""
    for s in range(24, 1024, 4):
        try:
            c = cfg.replace(img_size=(s, s), drop_path_rate=0.0)
        except ValueError:
            continue
        if min(min(g) for g in c.grid_size) >= 3:
            return c
    raise AssertionError(f"no small size for {cfg}")


def test_registry_is_complete() -> None:
    expected = {f"crossvit_{s}_240" for s in ("tiny", "small", "base", "9", "15", "18")}
    expected |= {f"crossvit_{s}_dagger_240" for s in ("9", "15", "18")} | {"crossvit_15_dagger_408"}
    expected |= {"crossvit_18_dagger_408", "crossvit_18_dagger_516", "crossvit_small_nocls_240"}
    expected |= {f"crossvit_small_fuse_{f}_240" for f in ("none", "allattn", "clstoken", "pairwise")}
    assert expected <= set(ALL)
    assert len([n for n in ALL if "_t7" in n]) == 5
    assert set(crossvit.list_models(pretrained=True)) == {
        n for n in expected if "fuse" not in n and "nocls" not in n and "516" not in n
    }
    assert crossvit.list_models("crossvit_18*") == sorted(n for n in ALL if n.startswith("crossvit_18"))


def test_families_cover_every_geometry() -> None:
    assert len(FAMILIES) < len(ALL) and {"crossvit_tiny_240", "crossvit_18_dagger_516"} <= set(FAMILIES)
    assert "crossvit_base_240" not in FAMILIES  # same geometry as crossvit_tiny_240, only wider
    geometry = lambda n: (lambda c: (c.img_size, c.img_scale, c.patch_size, c.multi_conv))(crossvit.get_entry(n).cfg)
    assert {geometry(n) for n in ALL} == {geometry(n) for n in FAMILIES}


@pytest.mark.parametrize("name", FAMILIES)
def test_native_size_forward(name: str) -> None:
    model = crossvit.create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *model.cfg.img_size))
    assert out.shape == (1, model.cfg.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_contract_and_backward(name: str) -> None:
    cfg = _small(crossvit.get_entry(name).cfg).replace(num_classes=5)
    model = crossvit.create_model(cfg)
    br = [1] if cfg.single_branch else [0, 1]  # the branches this model runs (the baseline keeps the L branch)
    dims = [cfg.embed_dim[b] for b in br]
    B, x = 2, torch.randn(2, 3, *cfg.img_size)
    feats = model.forward_features(x)
    assert [tuple(t.shape) for t in feats] == [
        (B, cfg.num_prefix_tokens + cfg.num_patches[b], cfg.embed_dim[b]) for b in br
    ]
    assert model.forward_head(feats, pre_logits=True).shape == (B, sum(dims))
    logits = model.forward_head(feats)
    assert logits.shape == (B, 5)
    # the logits are the mean of the branch heads
    branch = model.forward_branch_logits(x)
    assert len(branch) == len(br) and torch.allclose(logits, torch.stack(branch).mean(0), atol=1e-6)
    logits.sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert not dead, f"parameters without gradient: {dead[:5]}"
    nwd = model.no_weight_decay()
    assert nwd and nwd <= {n for n, _ in model.named_parameters()}
    inter = model.forward_intermediates(x, output_fmt="NCHW", intermediates_only=True)
    assert len(inter) == cfg.num_encoders
    assert [tuple(t.shape) for t in inter[-1]] == [(B, cfg.embed_dim[b], *cfg.grid_size[b]) for b in br]
    final, inter = model.forward_intermediates(x, indices=[-1], norm=True)
    assert len(inter) == 1 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(inter[0], final))
    model.reset_classifier(3)
    assert model(x).shape == (B, 3) and model.get_classifier()[0].out_features == 3 and model.cfg.num_classes == 3
    model.reset_classifier(0)
    assert model(x).shape == (B, sum(dims))


def test_aliases_build_the_released_architecture() -> None:
    assert crossvit.create_model("crossvit_15_dagger_384").cfg == crossvit.create_model("crossvit_15_dagger_408").cfg
    assert crossvit.get_entry("crossvit_9_224").name == "crossvit_9_240"
    assert crossvit.create_model("crossvit_9_240.in1k").cfg.embed_dim == (128, 256)


def test_released_geometry() -> None:
    m = crossvit.create_model("crossvit_15_240")
    assert m.cfg.branch_img_size == ((240, 240), (224, 224)) and m.cfg.num_patches == (400, 196)
    m = crossvit.create_model("crossvit_18_dagger_408")
    assert m.cfg.branch_img_size == ((408, 408), (384, 384)) and m.cfg.num_patches == (1156, 576)
    # Table 1: CrossViT-15 has K=3 encoders of N=1 / M=5 blocks, dims 192 / 384
    c = crossvit.create_model("crossvit_15_240").cfg
    assert (c.num_encoders, c.small_depth, c.large_depth, c.cross_depth, c.embed_dim) == (3, 1, 5, 1, (192, 384))


def test_sdpa_and_math_attention_agree(tiny_cfg) -> None:
    model = CrossViT(tiny_cfg).eval()
    x = torch.randn(3, 3, *tiny_cfg.img_size)
    with torch.no_grad():
        a = model(x)
        model.set_attention_impl("math")
        b = model(x)
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="sdpa"):
        model.set_attention_impl("flash")


def test_grad_checkpointing_really_recomputes_and_matches(tiny_cfg) -> None:
    torch.manual_seed(1)
    plain = CrossViT(tiny_cfg)
    ckpt = CrossViT(tiny_cfg)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing(True)
    calls = {"n": 0}

    def counting(forward):
        def run(*args, **kwargs):
            calls["n"] += 1
            return forward(*args, **kwargs)

        return run

    for m in ckpt.modules():
        if isinstance(m, Block):
            m.forward = counting(m.forward)  # module hooks are skipped during recomputation; forward is not
    x = torch.randn(2, 3, *tiny_cfg.img_size)
    plain(x).square().sum().backward()
    ckpt(x).square().sum().backward()
    n_blocks = sum(isinstance(m, Block) for m in ckpt.modules())
    assert calls["n"] == 2 * n_blocks  # each block ran again during backward: checkpointing is real
    for (n, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-5), n


def test_paper_variants_reachable_through_config(tiny_cfg) -> None:
    # Equal widths: the paper's f/g are identities (no parameters), unlike the released code's dead branch.
    eq = CrossViT(tiny_cfg.replace(embed_dim=(48, 48)))
    assert all(isinstance(p, torch.nn.Identity) for enc in eq.blocks for p in enc.projs)
    # L=2: released stacking vs re-attending to the other branch's patches give different functions, same weights.
    a = CrossViT(tiny_cfg.replace(cross_depth=2)).eval()
    b = CrossViT(tiny_cfg.replace(cross_depth=2, cross_reattend=True)).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, *tiny_cfg.img_size)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
    # No CLS tokens: no cls_token parameters, average pooling, the agent's update reaches every token.
    nocls = CrossViT(tiny_cfg.replace(cls_token=False))
    assert not any("cls_token" in n for n, _ in nocls.named_parameters()) and nocls.global_pool == "avg"
    assert nocls.pos_embed[0].shape[1] == tiny_cfg.num_patches[0]


def test_single_branch_baseline_is_the_l_branch_of_its_crossvit() -> None:
    """Table 2's comparison: the baseline has the CrossViT's L branch (same blocks, same keys) and nothing else."""
    full, single = crossvit.create_model("crossvit_cifar_36"), crossvit.create_model("crossvit_cifar_single_36")
    assert single.num_features == 128 and len(single.blocks) == 3 and len(single.head) == 1
    l_branch = {k for k in full.state_dict() if ".blocks.1." in k}
    assert {k.replace(".blocks.0.", ".blocks.1.") for k in single.state_dict() if k.startswith("blocks.")} == l_branch
    assert single.pos_embed[0].shape == full.pos_embed[1].shape
    with pytest.raises(ValueError, match="single_branch"):
        crossvit.CrossViTConfig(single_branch=True)


def test_cross_attention_queries_only_the_cls_token() -> None:
    ca = CrossAttention(16, 2).eval()
    ca.keep_map = True
    x = torch.randn(2, 5, 16)
    out = ca(x)
    assert out.shape == (2, 1, 16)
    assert ca.attn_map.shape == (2, 2, 1, 5)
    assert torch.allclose(ca.attn_map.sum(-1), torch.ones(2, 2, 1))
    # changing a non-query token changes the output; the output never depends on more than one query
    y = x.clone()
    y[:, 3] += 1
    assert not torch.allclose(ca(y), out)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"crossvit_15_240"):
        crossvit.create_model("crossvit_15_204")
    with pytest.raises(ValueError, match=r"img_size.*patch size 12.*nearest valid size is 228"):
        crossvit.create_model("crossvit_9_240", img_size=224)
    with pytest.raises(TypeError, match=r"num_classes"):
        crossvit.CrossViTConfig().replace(num_clases=3)
    model = crossvit.create_model("crossvit_tiny_240")
    with pytest.raises(ValueError, match=r"224x224.*240x240"):
        model(torch.randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match="fusion"):
        crossvit.CrossViTConfig(fusion="concat")


def test_cli_unknown_model_suggests(capsys) -> None:
    from crossvit.cli import main

    assert main(["info", "crossvit_15_dagger_48"]) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and "crossvit_15_dagger_408" in err


def test_fusion_names_come_from_one_list(tiny_cfg) -> None:
    """The config's type, the scheme classes and the registered ablations all derive from config.FUSIONS."""
    from typing import get_args

    from crossvit.models.config import FUSIONS, FusionKind
    from crossvit.models.fusion import ENCODERS
    from crossvit.models.registry import ABLATION_FUSIONS, fusion_tag

    assert FUSIONS == get_args(FusionKind) == tuple(ENCODERS) and "cross_attn" not in ABLATION_FUSIONS
    names = set(crossvit.list_models())
    assert {f"crossvit_cifar_fuse_{fusion_tag(f)}_36" for f in ABLATION_FUSIONS} <= names
    for f in FUSIONS:  # each scheme is one encoder class and owns only the modules it uses
        enc = CrossViT(tiny_cfg.replace(fusion=f)).blocks[0]
        assert type(enc) is ENCODERS[f]
        assert hasattr(enc, "fusion") == (f in ("cross_attn", "all_attn")) and hasattr(enc, "projs") == (f != "none")
