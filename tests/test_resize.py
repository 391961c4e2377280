"""The branch resize operator is F.interpolate's bicubic resize, values and gradients, eager and under compile."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crossvit.models.layers import resize_bicubic


def test_resize_is_torch_bicubic_in_both_memory_layouts():
    x = torch.randn(2, 3, 36, 36)
    for t in (x, x.to(memory_format=torch.channels_last)):
        want = F.interpolate(t, size=(32, 30), mode="bicubic", align_corners=False)
        got = resize_bicubic(t, 32, 30)
        assert torch.equal(got, want) and got.stride() == want.stride()


def test_resize_gradient_is_the_numerical_one():
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: resize_bicubic(t, 7, 6), (x,))


def test_resize_registration_passes_torch_operator_checks():
    """Fake (meta) shapes, autograd registration and AOT tracing, as torch.compile uses them."""
    torch.library.opcheck(resize_bicubic, (torch.randn(2, 3, 12, 12, requires_grad=True), 8, 8))
