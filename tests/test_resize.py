"""The branch resize operator is F.interpolate's bicubic resize, values and gradients, eager and under compile."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crossvit.models.layers import resize, resize_bicubic


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


def test_compile_sees_the_operator_and_export_sees_interpolate():
    """torch.compile gets the operator (ATen's kernel kept); torch.export (and the tracing exporters) the plain
    F.interpolate, which ONNX and OpenVINO translate."""
    graphs = []

    def backend(gm, example_inputs):  # noqa: ANN001 - what dynamo hands a backend
        graphs.append(str(gm.graph))
        return gm.forward

    x = torch.randn(1, 3, 36, 36)
    assert torch.equal(torch.compile(lambda t: resize(t, 32, 32), backend=backend)(x), resize_bicubic(x, 32, 32))
    assert "crossvit.resize_bicubic" in graphs[0]

    class M(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return resize(t, 32, 32)

    exported = str(torch.export.export(M(), (x,)).graph)
    assert "upsample_bicubic2d" in exported and "crossvit" not in exported
