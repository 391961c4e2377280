"""CrossViT (Chen, Fan, Panda, ICCV 2021): a dual-branch vision transformer fused by cross-attention.

    from crossvit import create_model
    model = create_model("crossvit_15_240", num_classes=10)

The S branch (branch 0) embeds small patches of the image at its own resolution, the L branch (branch 1) large
patches of a bicubic-resized copy (240 -> 224 for the released models). K multi-scale encoders each run N / M
transformer blocks per branch and then fuse the branches; one head per branch, logits averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .config import CrossViTConfig
from .encoder import Tokens
from .fusion import build_encoder
from .layers import ATTENTION_IMPLS, ConvStem, PatchEmbed, norm_layer, resize, resize_pos_embed

# ``model.predict`` and ``model.to_inference`` are conveniences over crossvit.runtime, a layer above this one; the
# runtime registers its functions here when it is imported (``import crossvit`` does), so the architecture never
# imports the code that runs it.
_RUNTIME: dict[str, Callable[..., Any]] = {}


def register_runtime(**functions: Callable[..., Any]) -> None:
    """Plug the runtime's ``predict`` and ``to_inference`` into :class:`CrossViT`'s methods of those names."""
    _RUNTIME.update(functions)


def _runtime(name: str) -> Callable[..., Any]:
    if name not in _RUNTIME:
        raise RuntimeError(f"CrossViT.{name} needs crossvit.runtime; import crossvit (or crossvit.runtime) first")
    return _RUNTIME[name]


class Predicts:
    """``predict`` and ``to_inference`` for a classifier of this package (a CrossViT, a timm model trained here)."""

    @torch.no_grad()
    def predict(self, images, topk: int = 5, batch_size: int = 32):
        """Top-k predictions for PIL images / paths, the model's own preprocessing (see crossvit.runtime.prediction)."""
        return _runtime("predict")(self, images, topk=topk, batch_size=batch_size)

    def to_inference(self, precision: str = "bf16", compile: bool = False, **kwargs) -> nn.Module:
        """Fast inference form (bf16 weights, torch.compile, OpenVINO): :func:`crossvit.runtime.fast.to_inference`."""
        return _runtime("to_inference")(self, precision, compile=compile, **kwargs)


def conv_stem(cfg: CrossViTConfig) -> tuple[ConvStem | None, int]:
    """The shared convolutional tokenizer of ``cfg`` (or None) and the channel count the patch embeddings take."""
    if not cfg.stem_dims:
        return None, cfg.in_chans
    stem = ConvStem(cfg.in_chans, cfg.stem_dims, cfg.stem_stage_depths)
    return stem, stem.out_chans


class CrossViT(Predicts, nn.Module):
    """CrossViT built from one :class:`CrossViTConfig`. State-dict keys follow the released (IBM) layout.

    With ``cfg.single_branch`` it is the baseline of Table 2, the L branch alone: every per-branch list holds that
    one branch (``patch_embed.0``, ``pos_embed.0``, ``blocks.k.blocks.0``, ``head.0``), so every tool takes it as is.
    """

    def __init__(self, cfg: CrossViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.num_features
        self.global_pool = cfg.global_pool if cfg.cls_token else "avg"
        npre, dims = cfg.num_prefix_tokens, [cfg.embed_dim[b] for b in cfg.branches]
        self.stem, embed_in = conv_stem(cfg)
        self.patch_embed = nn.ModuleList(
            PatchEmbed(cfg.patch_size[b] // cfg.stem_stride, embed_in, cfg.embed_dim[b], cfg.multi_conv)
            for b in cfg.branches
        )
        if cfg.cls_token:
            self.cls_token = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, d)) for d in dims)
        self.pos_embed = nn.ParameterList(
            nn.Parameter(torch.zeros(1, npre + cfg.num_patches[b], cfg.embed_dim[b])) for b in cfg.branches
        )
        self.pos_drop = nn.Dropout(cfg.pos_drop_rate)
        self.blocks = nn.ModuleList(build_encoder(cfg, dpr) for dpr in cfg.drop_path_rates())
        self.norm = nn.ModuleList(norm_layer(d) for d in dims)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = self._make_heads(cfg.num_classes)
        self.reset_parameters()

    # --- init ------------------------------------------------------------------------------------------------
    def _make_heads(self, num_classes: int) -> nn.ModuleList:
        return nn.ModuleList(
            nn.Linear(self.cfg.embed_dim[b], num_classes) if num_classes > 0 else nn.Identity()
            for b in self.cfg.branches
        )

    def reset_parameters(self) -> None:
        params = list(self.pos_embed) + (list(self.cls_token) if self.cfg.cls_token else [])
        for p in params:
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(_init_weights)

    # --- timm-style contract ---------------------------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        n = len(self.cfg.branches)
        names = {f"pos_embed.{i}" for i in range(n)}
        if self.cfg.cls_token:
            names |= {f"cls_token.{i}" for i in range(n)}
        return names

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        blocks = [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]
        return dict(stem=r"^cls_token|^pos_embed|^patch_embed", blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for enc in self.blocks:
            enc.grad_checkpointing = enable

    def set_attention_impl(self, impl: Literal["sdpa", "math", "tiled"]) -> None:
        """Choose how attention is computed everywhere: fused SDPA (default), explicit matmuls, or explicit matmuls
        in cache-sized tiles (layers/tiled_attention.py)."""
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {', '.join(ATTENTION_IMPLS)}, got {impl!r}")
        for m in self.modules():
            if hasattr(m, "impl"):
                m.impl = impl

    @torch.jit.ignore
    def get_classifier(self) -> nn.ModuleList:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("token", "avg"):
                raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
            if global_pool == "token" and not self.cfg.cls_token:
                raise ValueError("global_pool='token' needs CLS tokens; this model has none")
            self.global_pool = global_pool
        ref = self.pos_embed[0]
        self.num_classes = num_classes
        self.head = self._make_heads(num_classes).to(device=ref.device, dtype=ref.dtype)
        self.head.apply(_init_weights)
        self.head.train(self.training)
        self.cfg = self.cfg.replace(num_classes=num_classes, global_pool=self.global_pool)

    # --- forward ---------------------------------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_chans:
            raise ValueError(f"expected a (B, {self.cfg.in_chans}, H, W) image batch, got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.cfg.img_size and not self.cfg.dynamic_img_size:
            h, w = x.shape[-2:]
            raise ValueError(
                f"input is {h}x{w} but the model was built for {self.cfg.img_size[0]}x{self.cfg.img_size[1]}; "
                f"build it with img_size=({h}, {w}) (weights are resized on load), with dynamic_img_size=True "
                "(position embeddings interpolated at run time), or resize the input"
            )

    @property
    def branch_grids(self) -> list[tuple[int, int]]:
        """Patch grid (h, w) of each branch this model runs."""
        return [self.cfg.grid_size[b] for b in self.cfg.branches]

    def _branch_sizes(self, x: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
        """Input size of each branch for the batch ``x``: the configured ones unless the model is dynamic-size."""
        return self.cfg.branch_sizes(tuple(x.shape[-2:])) if self.cfg.dynamic_img_size else self.cfg.branch_img_size

    def input_grids(self, x: Tensor) -> list[tuple[int, int]]:
        """Patch grid (h, w) of each branch this model runs, for the batch ``x`` (differs from branch_grids only
        for a dynamic-size model fed another size)."""
        if not self.cfg.dynamic_img_size:
            return self.branch_grids
        sizes = self._branch_sizes(x)
        stride = [pe.patch * self.cfg.stem_stride for pe in self.patch_embed]  # image pixels per token
        return [(sizes[b][0] // s, sizes[b][1] // s) for b, s in zip(self.cfg.branches, stride)]

    def _embed(self, x: Tensor) -> Tokens:
        if self.stem is not None:
            x = self.stem(x)  # (B, C, H, W) -> (B, C_stem, H / s, W / s), shared by both branches
            return [self._embed_branch(x, i, tuple(x.shape[-2:])) for i in range(len(self.patch_embed))]
        sizes = self._branch_sizes(x)
        return [self._embed_branch(x, i, sizes[b]) for i, b in enumerate(self.cfg.branches)]

    def _embed_branch(self, x: Tensor, i: int, size: tuple[int, int]) -> Tensor:
        """Image -> tokens of branch ``i`` fed at ``size``: (B, C, H, W) -> (B, prefix + N_i, D_i)."""
        B = x.shape[0]
        xi = x if tuple(x.shape[-2:]) == size else resize(x, *size)
        t = self.patch_embed[i](xi)  # (B, N_i, D_i)
        if self.cfg.cls_token:
            t = torch.cat((self.cls_token[i].expand(B, -1, -1), t), dim=1)  # (B, 1+N_i, D_i)
        pos = self.pos_embed[i]
        if pos.shape[1] != t.shape[1]:  # dynamic size: the learnt grid interpolated to this input's grid
            p = self.patch_embed[i].patch
            pos = resize_pos_embed(pos, (size[0] // p, size[1] // p), self.branch_grids[i], self.cfg.num_prefix_tokens)
        return self.pos_drop(t + pos)

    def forward_features(self, x: Tensor) -> Tokens:
        """Image (B, C, H, W) -> per-branch normed tokens [(B, 1+N_s, D_s), (B, 1+N_l, D_l)]."""
        self._check_input(x)
        xs = self._embed(x)
        for enc in self.blocks:
            xs = enc(xs)
        return [norm(t) for norm, t in zip(self.norm, xs)]

    def pool(self, xs: Tokens) -> Tokens:
        npre = self.cfg.num_prefix_tokens
        return [t[:, npre:].mean(dim=1) if self.global_pool == "avg" else t[:, 0] for t in xs]

    def forward_head(self, xs: Tokens, pre_logits: bool = False) -> Tensor:
        """Tokens -> averaged logits of the two branch heads, or concatenated pooled features (B, D_s + D_l)."""
        pooled = [self.head_drop(p) for p in self.pool(xs)]
        if pre_logits or self.num_classes == 0:
            return torch.cat(pooled, dim=1)
        return torch.stack([head(p) for head, p in zip(self.head, pooled)], dim=0).mean(dim=0)

    def forward_branch_logits(self, x: Tensor) -> list[Tensor]:
        """Logits of each branch's head alone (the single-branch accuracies of Table 6)."""
        pooled = self.pool(self.forward_features(x))
        return [head(p) for head, p in zip(self.head, pooled)]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: list[int] | None = None,
        norm: bool = False,
        output_fmt: Literal["NLC", "NCHW"] = "NLC",
        intermediates_only: bool = False,
    ) -> list[Tokens] | tuple[Tokens, list[Tokens]]:
        """Tokens of both branches after each multi-scale encoder (``indices`` picks encoders, default all).

        ``NLC`` keeps the prefix (CLS) token; ``NCHW`` returns patch tokens on their 2-D grid, (B, D_i, h_i, w_i).
        With ``norm`` the branch's final LayerNorm is applied. Returns (final features, intermediates) unless
        ``intermediates_only``.
        """
        if output_fmt not in ("NLC", "NCHW"):
            raise ValueError(f"output_fmt must be 'NLC' or 'NCHW', got {output_fmt!r}")
        K = len(self.blocks)
        take = set(range(K)) if indices is None else {i % K for i in indices}
        self._check_input(x)
        xs = self._embed(x)
        inter: list[Tokens] = []
        for k, enc in enumerate(self.blocks):
            xs = enc(xs)
            if k in take:
                out = [n(t) for n, t in zip(self.norm, xs)] if norm else list(xs)
                if output_fmt == "NCHW":
                    npre = self.cfg.num_prefix_tokens
                    out = [
                        t[:, npre:].transpose(1, 2).reshape(t.shape[0], t.shape[2], *g)
                        for t, g in zip(out, self.input_grids(x))
                    ]
                inter.append(out)
        if intermediates_only:
            return inter
        return [n(t) for n, t in zip(self.norm, xs)], inter

    def extra_repr(self) -> str:
        c = self.cfg
        if c.single_branch:
            depth = c.num_encoders * c.large_depth
            return f"single branch: img_size={c.img_size}, patch={c.patch_size[1]}, dim={c.embed_dim[1]}, depth={depth}"
        return (
            f"img_size={c.img_size}, branches={c.branch_img_size}, patch={c.patch_size}, dim={c.embed_dim}, "
            f"K={c.num_encoders}, N={c.small_depth}, M={c.large_depth}, L={c.cross_depth}, fusion={c.fusion}"
        )


def _init_weights(m: nn.Module) -> None:
    # Released init: truncated normal (std .02) for every Linear, zero bias; LayerNorm 1/0; convs keep PyTorch's.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
