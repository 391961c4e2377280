"""Loading weights at another resolution / class count, and refusing files that are not what they claim."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import crossvit
from crossvit.io.weights import CheckpointError, read_state_dict, resize_pos_embed


def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    t = np.abs(t)
    return np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )


def _bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) Keys-cubic interpolation with half-pixel centres and edge clamping, written from the formula."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * n_in / n_out - 0.5
        base = int(np.floor(src))
        for k in range(base - 1, base + 3):
            m[i, min(max(k, 0), n_in - 1)] += _cubic(np.array(src - k))
    return m


def _numpy_resize(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """grid (h, w, C) -> (H, W, C), separable bicubic."""
    rows, cols = _bicubic_matrix(grid.shape[0], size[0]), _bicubic_matrix(grid.shape[1], size[1])
    return np.einsum("Hh,hwc,Ww->HWc", rows, grid, cols)


def test_resize_matches_independent_bicubic() -> None:
    pe = torch.randn(1, 1 + 20 * 20, 8)
    out = resize_pos_embed(pe, (32, 32), num_prefix=1)
    ref = _numpy_resize(pe[0, 1:].reshape(20, 20, 8).double().numpy(), (32, 32)).reshape(1024, 8)
    assert torch.equal(out[:, :1], pe[:, :1])
    np.testing.assert_allclose(out[0, 1:].numpy(), ref, atol=1e-5)


def test_load_240_weights_at_384_with_new_classes(tmp_path, caplog) -> None:
    src = crossvit.create_model("crossvit_9_240")
    torch.save(src.state_dict(), tmp_path / "w.pth")
    with caplog.at_level(logging.INFO, logger="crossvit"):
        model = crossvit.create_model("crossvit_9_240", img_size=384, num_classes=10, checkpoint=tmp_path / "w.pth")
    assert model.cfg.grid_size == ((32, 32), (22, 22))  # 384 px S branch / 12, 358 -> 352 px L branch / 16
    for i, (old, new) in enumerate([(20, 32), (14, 22)]):
        pe = src.pos_embed[i].detach()
        ref = _numpy_resize(pe[0, 1:].reshape(old, old, -1).double().numpy(), (new, new)).reshape(new * new, -1)
        np.testing.assert_allclose(model.pos_embed[i][0, 1:].detach().numpy(), ref, atol=1e-5)
        assert torch.equal(model.pos_embed[i][:, :1], pe[:, :1])
    # everything but the heads came from the file; the heads are new and sized for 10 classes
    assert torch.equal(model.blocks[1].fusion[0].attn.wq.weight, src.blocks[1].fusion[0].attn.wq.weight)
    assert model.head[0].weight.shape == (10, 128)
    new_class_lines = [r for r in caplog.records if "new classifier" in r.getMessage()]
    assert len(new_class_lines) == 1 and "1000" in new_class_lines[0].getMessage()
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 384, 384)).shape == (1, 10)


def test_non_square_size(tiny_cfg) -> None:
    model = crossvit.CrossViT(tiny_cfg.replace(img_size=(48, 96)))
    assert model(torch.randn(1, 3, 48, 96)).shape == (1, tiny_cfg.num_classes)


class _Evil:
    def __reduce__(self):
        return (print, ("this checkpoint ran code",))


def test_pickle_with_code_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refused"):
        read_state_dict(path)
    assert "ran code" not in capsys.readouterr().out


def test_foreign_state_dict_is_rejected(tmp_path) -> None:
    torch.save({"conv1.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(2)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match=r"resnet\.pth.*does not look like weights of this model"):
        crossvit.create_model("crossvit_tiny_240", checkpoint=tmp_path / "resnet.pth")
    other = crossvit.create_model("crossvit_9_240")
    torch.save(other.state_dict(), tmp_path / "nine.pth")
    with pytest.raises(CheckpointError, match=r"nine\.pth"):
        crossvit.create_model("crossvit_tiny_240", checkpoint=tmp_path / "nine.pth")


def test_truncated_and_missing_files(tmp_path) -> None:
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1000)}, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors.*not a readable checkpoint"):
        read_state_dict(tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match=r"nope\.pth: no such"):
        read_state_dict(tmp_path / "nope.pth")
