"""Parameters and multiply-accumulates (the paper's "FLOPs") of a CrossViT.

SDPA hides the attention products from PyTorch's FLOP counter, so the count runs on a copy of the model switched
to explicit-matmul attention: every convolution, linear layer and attention matmul is counted. Norms,
activations, softmax and the bicubic resize are not, as in the tools the paper and timm used.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, img_size: tuple[int, int] | None = None) -> int:
    """Multiply-accumulates of one forward pass on one image (FLOP counter's FLOPs / 2)."""
    m = copy.deepcopy(model).float().eval()
    if hasattr(m, "set_attention_impl"):
        m.set_attention_impl("math")
    for mod in m.modules():  # timm's attention layers (a timm model trained here) the same way
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = False
    size = img_size or m.cfg.img_size
    x = torch.zeros(1, m.cfg.in_chans, *size, device=next(m.parameters()).device)  # a GPU model counts on the GPU
    with FlopCounterMode(display=False) as counter:
        m(x)
    return counter.get_total_flops() // 2
