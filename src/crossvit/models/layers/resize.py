"""The bicubic resize of the input image for a branch fed at a smaller size (240 -> 224, 36 -> 32).

It is ``F.interpolate(mode="bicubic")``. Under torch.compile it goes through a registered operator, so that Inductor
calls ATen's kernel instead of decomposing it (16 gathered taps per output pixel), which took 14 ms of a 0.8 s
``crossvit_cifar_36`` training step at batch 256 where ATen's takes 3 ms (Zen 5, bf16 autocast, profiled). Exporters
(ONNX, OpenVINO, torch.export) see the plain ``F.interpolate``, which they know how to translate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.library.custom_op("crossvit::resize_bicubic", mutates_args=())
def resize_bicubic(x: Tensor, height: int, width: int) -> Tensor:
    """(B, C, H, W) -> (B, C, height, width), bicubic, ``align_corners=False`` (timm's and the official code's)."""
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)


@resize_bicubic.register_fake
def _(x: Tensor, height: int, width: int) -> Tensor:
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)  # shapes and strides only


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:  # noqa: ANN001 - autograd context
    ctx.in_shape = inputs[0].shape


def _backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: ANN001
    # the resize is linear in x, so its vector-Jacobian product is autograd's through F.interpolate at any point
    x = grad.new_zeros(ctx.in_shape).requires_grad_()
    with torch.enable_grad():
        y = F.interpolate(x, size=tuple(grad.shape[-2:]), mode="bicubic", align_corners=False)
    return torch.autograd.grad(y, x, grad)[0], None, None


resize_bicubic.register_autograd(_backward, setup_context=_setup_context)


def resize(x: Tensor, height: int, width: int) -> Tensor:
    """(B, C, H, W) -> (B, C, height, width): the operator while torch.compile traces, ``F.interpolate`` otherwise."""
    if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
        return resize_bicubic(x, height, width)
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
