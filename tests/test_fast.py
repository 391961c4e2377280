"""Every fast path gives the plain path's answers; the benchmark CLI runs and reports. No timing is asserted.

Run: pytest tests/test_fast.py
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import crossvit
from conftest import NATIVE_BF16
from crossvit.runtime import bench, bench_cases
from crossvit.runtime.fast import InferenceModel, compile_training, pick_attention, prepare_training, to_inference

TINY = crossvit.CrossViTConfig(
    img_size=32,
    img_scale=(36 / 32, 1.0),  # the S branch is upsampled 32 -> 36 px, as in the CIFAR benchmark model
    patch_size=(6, 8),
    embed_dim=(32, 64),
    num_heads=(2, 4),
    mlp_ratio=(2.0, 2.0),
    num_encoders=2,
    large_depth=2,
    num_classes=7,
)


@pytest.fixture()
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return crossvit.create_model(TINY).eval()


def _images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_fp32_inference_matches_plain_model(tiny: nn.Module) -> None:
    x = _images()
    with torch.no_grad():
        want = tiny(x)
    fast = to_inference(copy.deepcopy(tiny), "fp32")
    assert isinstance(fast, InferenceModel) and fast.cfg == tiny.cfg
    got = fast(x)
    assert got.dtype == torch.float32 and not got.requires_grad
    assert (got - want).abs().max() <= 1e-5


def test_bf16_inference_is_close_and_returns_fp32(tiny: nn.Module) -> None:
    x = _images(16 if NATIVE_BF16 else 4)
    with torch.no_grad():
        want = tiny(x)
    got = to_inference(copy.deepcopy(tiny), "bf16")(x)
    assert got.dtype == torch.float32
    assert next(to_inference(copy.deepcopy(tiny), "bf16").model.parameters()).dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa: logits move by a few 1e-2 of their spread, not more.
    spread = want.std().item()
    assert (got - want).abs().max().item() < 0.1 * spread + 1e-2
    assert (got - want).abs().max().item() > 0  # it really ran in bf16


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_forced_attention_kernel_gives_same_logits(tiny: nn.Module, impl: str) -> None:
    x = _images()
    with torch.no_grad():
        want = tiny(x)
    fast = to_inference(copy.deepcopy(tiny), "fp32", attention=impl)
    assert all(m.impl == impl for m in fast.model.modules() if hasattr(m, "impl"))
    assert (fast(x) - want).abs().max() <= 1e-5


def test_pick_attention_rules() -> None:
    assert pick_attention("cpu", "fp32", training=False) == "sdpa"
    assert pick_attention("cpu", "bf16", training=False) == "sdpa"
    assert pick_attention("cpu", "bf16", training=True) == "tiled"
    assert pick_attention("cpu", "fp32", training=True) == "sdpa"
    assert pick_attention("cuda", "bf16", training=True) == "sdpa"
    with pytest.raises(ValueError, match="precision"):
        to_inference(nn.Linear(2, 2), "int4")  # type: ignore[arg-type]


def test_prepare_training_keeps_gradients(tiny: nn.Module) -> None:
    # The kernel chosen for bf16 training (tiled) and the default (SDPA) give the same fp32 loss and gradients.
    x, y = _images(), torch.tensor([0, 1, 2, 3])
    grads = []
    for prec in ("fp32", "bf16"):
        m = copy.deepcopy(tiny).train()
        run = prepare_training(m, prec)
        expected = "tiled" if prec == "bf16" else "sdpa"
        assert all(mod.impl == expected for mod in m.modules() if hasattr(mod, "impl"))
        nn.functional.cross_entropy(run(x), y).backward()  # fp32 here: only the kernel differs
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_compile_training_asks_inductor_for_gemm_autotuning(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append(kw) or model)
    m = nn.Linear(4, 4)
    assert compile_training(m) is m and calls[-1] == {}
    compile_training(m, "max-autotune")
    assert calls[-1] == {"options": {"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}}  # CPU: C++
    with pytest.raises(ValueError, match="--compile-mode"):
        compile_training(m, "reduce-overhead")


@pytest.mark.slow  # Inductor times its C++ GEMM templates for each of the few matrix shapes: ~half a minute
def test_max_autotune_training_step_gives_the_plain_gradients(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 8))
    fast = copy.deepcopy(plain)
    x, y = torch.randn(16, 32), torch.randint(0, 8, (16,))
    for run in (plain, compile_training(fast, "max-autotune")):
        nn.functional.cross_entropy(run(x), y).backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_compiled_inference_matches_eager(tiny: nn.Module, tmp_path, monkeypatch) -> None:
    """torch.compile (inductor, with freezing) of a CrossViT in eval mode gives the eager logits."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # no stale / shared compile cache
    x = _images(2)
    with torch.no_grad():
        want = tiny(x)
    fast = to_inference(copy.deepcopy(tiny), "fp32", compile=True)
    assert fast.compiled
    assert (fast(x) - want).abs().max() <= 1e-5


def test_benchmark_timm_twin_has_identical_logits() -> None:
    # The benchmark's timm peer for a config (here the CIFAR-size one) is the same network with the same weights.
    ours, ref = bench_cases.build_models("cifar", use_timm=True, drop_path=0.0)
    assert ours.cfg == crossvit.get_entry("crossvit_cifar_36").cfg.replace(drop_path_rate=0.0)  # the registry model
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert ours.cfg.num_patches == (144, 64)
    x = torch.randn(2, 3, *ours.cfg.img_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours.eval()(x) - ref.eval()(x)).abs().max() <= 1e-5


@pytest.mark.slow
def test_benchmark_cli_writes_table_and_json(tmp_path, capsys) -> None:
    from crossvit.cli import main

    out = tmp_path / "b.json"
    argv = [
        "benchmark",
        "--model",
        "cifar",
        "--batch-sizes",
        "2" if NATIVE_BF16 else "1",
        "--precision",
        "fp32,bf16",
        "--peers",
        "timm",
        "--threads",
        "1",
        "--runtime",
        "torch",  # the OpenVINO rows have their own tests; here they would only add compile time
    ]
    assert main([*argv, "--reps", "2", "--min-time", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "timm eager" in printed and "ours bf16 eager" in printed and "GEMM peak" in printed
    data = json.loads(out.read_text())
    labels = {r["label"] for r in data["rows"]}
    assert {"ours eager", "timm eager", "ours bf16 eager", "timm bf16 autocast", "timm cast bf16"} <= labels
    for r in data["rows"]:
        assert len(r["samples_ms"]) == 2 and r["img_s"] > 0 and r["best_ours_over_this"] > 0
    assert data["gemm_peak_gflops"]["bf16"] > 0 and data["flops_per_image"] > 0
    assert set(data["gemm_n"]) == {"bf16", "fp32"} and all(256 <= n <= 2048 for n in data["gemm_n"].values())
    # our OpenVINO runtime gets its row too (fp32 only: one network to compile)
    ov = ["benchmark", "--model", "cifar", "--batch-sizes", "1", "--precision", "fp32", "--peers", "none",
          "--runtime", "torch,openvino", "--threads", "1", "--reps", "1", "--min-time", "0",
          "--json", str(out)]  # fmt: skip
    assert main(ov) == 0
    rows = {r["label"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"ours eager", "ours openvino fp32"} and rows["ours openvino fp32"]["img_s"] > 0


def test_gemm_peak_is_sized_to_the_cpu(monkeypatch) -> None:
    # n ~ cube root of (0.2 s x rate / 2), in steps of 256: no bf16 units (1.3 GFLOP/s) -> 256; 39 GFLOP/s -> 1536.
    for gflops, n in ((1.3, 256), (39.0, 1536), (2000.0, 2048)):
        monkeypatch.setattr(bench, "gemm_gflops", lambda dtype, device, size, g=gflops: g)
        assert bench.gemm_size(torch.bfloat16, torch.device("cpu")) == n
    assert bench.gemm_size(torch.bfloat16, torch.device("cuda")) == 8192


@pytest.mark.slow
def test_benchmark_train_mode_runs(tmp_path) -> None:
    from crossvit.cli import main

    out = tmp_path / "t.json"
    argv = [
        "benchmark",
        "--model",
        "cifar",
        "--train",
        "--batch-sizes",
        "4",
        "--precision",
        "fp32",
        "--reps",
        "1",
        "--threads",
        "1",
        "--runtime",
        "torch",  # the OpenVINO rows have their own tests; here they would only add compile time
    ]
    assert main([*argv, "--min-time", "0", "--json", str(out)]) == 0
    labels = {r["label"] for r in json.loads(out.read_text())["rows"]}
    assert labels == {"ours eager", "timm sdpa", "timm math"}


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--precision", "fp8", "--precision"),
        ("--peers", "tensorrt", "--peers"),
        ("--batch-sizes", "0", "positive"),
        ("--compile-mode", "max-autotune", "use it with --train --compile"),
    ],
)
def test_benchmark_rejects_bad_options(flag: str, value: str, message: str, capsys) -> None:
    from crossvit.cli import main

    assert main(["benchmark", "--model", "cifar", flag, value, "--reps", "1"]) == 2
    assert message in capsys.readouterr().err


def test_peak_memory_sees_an_allocation() -> None:
    def alloc() -> None:
        t = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        t.add_(1)

    assert bench.peak_memory_mb(alloc, torch.device("cpu")) > 40


def test_openvino_runtime_gives_torch_logits(tiny: nn.Module) -> None:
    pytest.importorskip("openvino")
    x = _images(3)
    with torch.no_grad():
        want = tiny(x)
    ov = to_inference(copy.deepcopy(tiny), "fp32", runtime="openvino")
    got = ov(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got - want).abs().max() <= 1e-4  # OpenVINO reorders the sums: fp32 rounding only
    assert torch.equal(ov(x[:1]), ov(x[:1]))  # a second batch size compiles its own network
    with pytest.raises(ValueError, match="runtime"):
        to_inference(copy.deepcopy(tiny), "fp32", runtime="tensorrt")  # type: ignore[arg-type]


def _mapped(address: int) -> bool:
    for line in open("/proc/self/maps"):
        lo, hi = (int(a, 16) for a in line.split()[0].split("-"))
        if lo <= address < hi:
            return True
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc/self/maps")
def test_openvino_leaves_the_alternate_signal_stack_usable(tiny: nn.Module) -> None:
    """Two OpenVINO models freed in creation order left the thread on an unmapped signal stack (SIGSEGV on the
    next SIGCHLD, which crashed the test suite); the thread must keep the stack it had, still mapped."""
    pytest.importorskip("openvino")
    import gc
    import signal

    from crossvit.runtime.openvino_cpu import sigaltstack

    before = sigaltstack()
    assert before is not None
    first = to_inference(copy.deepcopy(tiny), "fp32", runtime="openvino")
    first(_images(1))
    second = to_inference(copy.deepcopy(tiny), "bf16", runtime="openvino")
    second(_images(1))
    del first
    gc.collect()
    del second
    gc.collect()
    after = sigaltstack()
    assert after == before
    if not after[1] & 2:  # SS_DISABLE clear: there is one, and signals can be delivered on it
        assert _mapped(after[0])
    got: list[int] = []  # and a handled signal really is delivered (a forced SIGSEGV would end the test run)
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got == [signal.SIGUSR1]


def test_model_method_delegates(tiny: nn.Module) -> None:
    x = _images(2)
    with torch.no_grad():
        want = tiny(x)
    fast = copy.deepcopy(tiny).to_inference("fp32")
    assert isinstance(fast, InferenceModel) and (fast(x) - want).abs().max() <= 1e-5
