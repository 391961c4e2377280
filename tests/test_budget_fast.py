"""Time budget, whole-tensor loader, flip TTA, distillation and the fast training step."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from crossvit.data.synthetic import make_image_folder
from crossvit.data.tensor_loader import TensorLoader, stack_images
from crossvit.train import TrainConfig, train
from crossvit.train.budget import TimeBudget
from crossvit.train.config import parse_duration
from crossvit.train.distill import DistillationLoss
from crossvit.train.engine import evaluate
from crossvit.train.fast_step import to_fast_layout
from crossvit.train.optim import WarmupCosine
from crossvit.train.tta import shift, tta_views
from crossvit.train.validation import validate
from test_train import tiny


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_parse_duration_and_bad_values():
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400 and parse_duration("90s") == 90
    for bad in ("", "soon", "0m", "-5m"):
        with pytest.raises(ValueError, match="--time-budget"):
            parse_duration(bad, "--time-budget")
    with pytest.raises(ValueError, match="--time-budget"):
        TrainConfig(time_budget="half an hour", aa=None).validate()


def test_budget_plans_steps_so_the_schedule_ends_on_time():
    """0.5 s per step on a fake clock, 20 s spent before training: 1000 s budget -> (1000 - 20 - reserve) / 0.5."""
    clock = FakeClock()
    budget = TimeBudget(1000.0, start=0.0, probe=10, skip=2, reserve_frac=0.01, clock=clock)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, 1.0, total_steps=10**6, warmup_steps=50, warmup_lr=0.0, min_lr=0.0)
    clock.t = 20.0
    step = 0
    while not sched.done(step):
        sched.step(step)
        clock.t += 5.0 if step == 0 else 0.5  # the first step pays one-off costs: the probe must skip it
        step += 1
        budget.on_step(step, sched)
        if step % 200 == 0:  # an epoch ends: its validation took 3 s
            clock.t += 3.0
            budget.on_epoch(step, 200, 200 * 0.5 + 3.0, 3.0, sched)
    assert budget.planned
    # training ended within the budget less the final evaluation's 3 s; unused: the 1 % reserve, that evaluation,
    # the validation of the last (partial) epoch spread over its steps, and rounding to whole steps
    assert clock.t <= 1000.0 - 3.0
    assert clock.t >= 1000.0 * (1 - 0.01) - 3.0 - 3.0 - 2 * 0.515
    assert sched.lr_at(step) == pytest.approx(0.0, abs=1e-6)  # decayed to min_lr exactly at the end
    assert sched.lr_at(sched.warmup) == pytest.approx(1.0)


def test_budget_replans_the_first_epoch_without_its_one_off_costs():
    """A compiled step: the first step costs 100 s, then 0.5 s each; the end-of-epoch plan must not count the 100 s."""
    clock = FakeClock()
    budget = TimeBudget(1000.0, start=0.0, probe=10, skip=3, reserve_frac=0.0, clock=clock)
    sched = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 1.0, 10**6, 0, 0.0, 0.0)
    t_epoch = clock.t
    for step in range(1, 201):
        clock.t += 100.0 if step == 1 else 0.5
        budget.on_step(step, sched)
    clock.t += 2.0  # validation
    budget.on_epoch(200, 200, clock.t - t_epoch, 2.0, sched)
    left = 1000.0 - clock.t - 2.0  # less the final evaluation's reserve
    per_step = (197 * 0.5 + 2.0) / 197  # the probe started after step 3
    assert sched.total == 200 + int(left / per_step)
    # the next epochs plan from their whole wall time again
    clock.t += 200 * 0.5 + 2.0
    budget.on_epoch(400, 200, 200 * 0.5 + 2.0, 2.0, sched)
    assert sched.total == 400 + int((1000.0 - clock.t - 2.0) / (102.0 / 200))


def test_budget_reserves_a_costlier_last_validation():
    """--final-tta flip-shift after flip epochs: the last validation has three times the views, so three times
    the seconds of an epoch's validation are held back for it."""
    clock = FakeClock()
    budget = TimeBudget(1000.0, start=0.0, probe=5, skip=0, reserve_frac=0.0, clock=clock, final_eval_factor=3.0)
    sched = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 1.0, 10**6, 0, 0.0, 0.0)
    clock.t = 100.0 * 0.5 + 4.0
    budget.on_epoch(100, 100, 100 * 0.5 + 4.0, 4.0, sched)
    assert budget.final_reserve == 12.0
    assert sched.total == 100 + int((1000.0 - clock.t - 12.0) / (54.0 / 100))


def test_budget_never_plans_past_the_epoch_cap():
    clock = FakeClock()
    budget = TimeBudget(1000.0, start=0.0, probe=5, skip=0, clock=clock, max_steps=40)
    sched = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 1.0, 40, 0, 0.0, 0.0)
    for step in range(1, 8):
        clock.t += 0.01
        budget.on_step(step, sched)
    assert sched.total == 40


def test_tensor_loader_crops_flips_and_normalises():
    imgs = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    labels = torch.tensor([0, 1])
    plain = TensorLoader(imgs, labels, 2, train=False, mean=(0, 0, 0), std=(1 / 255,) * 3)
    x, y = next(iter(plain))
    assert torch.equal(x, imgs.float()) and torch.equal(y, labels)
    aug = TensorLoader(imgs, labels, 2, train=True, mean=(0, 0, 0), std=(1 / 255,) * 3, pad=1, hflip=0.5, seed=3)
    seen = set()
    for epoch in range(20):
        aug.set_epoch(epoch)
        for xb, yb in aug:
            for xi, yi in zip(xb, yb):
                src = F.pad(imgs[yi].float(), (1, 1, 1, 1))
                found = None
                for dy in range(3):
                    for dx in range(3):
                        crop = src[:, dy : dy + 4, dx : dx + 4]
                        if torch.equal(xi, crop):
                            found = (dy, dx, False)
                        elif torch.equal(xi, crop.flip(-1)):
                            found = (dy, dx, True)
                assert found is not None, "every augmented image is a shifted (and maybe mirrored) original"
                seen.add(found)
    assert len(seen) > 9  # shifts in both directions and both flips occur
    aug.set_epoch(5)
    a = [b[0] for b in aug]
    aug.set_epoch(5)
    assert all(torch.equal(p, q) for p, q in zip(a, (b[0] for b in aug)))  # a function of (seed, epoch)


def test_tensor_loader_erases_a_rectangle_per_image_repeatably():
    imgs = torch.full((6, 3, 16, 16), 128, dtype=torch.uint8)
    labels = torch.arange(6)
    kw = dict(mean=(0, 0, 0), std=(1 / 255,) * 3, seed=2)
    erasing = TensorLoader(imgs, labels, 3, True, reprob=1.0, remode="const", **kw)
    py_state, torch_state = random.getstate(), torch.get_rng_state()
    batches = [x for x, _ in erasing]
    assert random.getstate() == py_state and torch.equal(torch.get_rng_state(), torch_state)  # globals untouched
    for x in torch.cat(batches):
        zero = (x == 0).all(0)  # (H, W): erased pixels, the same in every channel
        assert torch.equal(x[:, ~zero], torch.full_like(x[:, ~zero], 128.0))  # the rest is the image
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        box = zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all(), "one solid rectangle per image"
        assert 0.02 * 256 <= zero.sum() <= 256 / 3 + 16  # timm's area range, rounded to whole pixels
    assert all(torch.equal(p, q) for p, q in zip(batches, (x for x, _ in erasing)))  # a function of (seed, epoch)
    erasing.set_epoch(1)
    assert not all(torch.equal(p, q) for p, q in zip(batches, (x for x, _ in erasing)))
    for is_train, reprob in ((False, 1.0), (True, 0.0)):  # evaluation never erases; reprob 0 is off
        x, _ = next(iter(TensorLoader(imgs, labels, 3, is_train, reprob=reprob, **kw)))
        assert (x == 128).all()
    noisy, _ = next(iter(TensorLoader(imgs, labels, 3, True, reprob=1.0, **kw)))  # timm's default fill: noise
    assert ((noisy != 128).flatten(1).float().mean(1) >= 0.02).all()


def test_tensor_loader_resizes_to_the_model_input():
    from torchvision.transforms.v2 import functional as TF

    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (3, 3, 8, 8), generator=g, dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    norm = (imgs.float() - torch.tensor(mean).view(1, 3, 1, 1) * 255) / (torch.tensor(std).view(1, 3, 1, 1) * 255)
    for size, mode in (((12, 12), "bicubic"), ((6, 6), "bilinear")):
        dl = TensorLoader(imgs, torch.arange(3), 3, False, mean, std, size=size, interpolation=mode)
        x, _ = next(iter(dl))
        want = TF.resize(norm, list(size), interpolation=getattr(TF.InterpolationMode, mode.upper()), antialias=True)
        assert x.shape == (3, 3, *size) and x.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(x, want, rtol=1e-5, atol=1e-5)
    same = TensorLoader(imgs, torch.arange(3), 3, False, mean, std, size=(8, 8))
    torch.testing.assert_close(next(iter(same))[0], norm)  # no resize when the sizes agree
    with pytest.raises(ValueError, match="interpolation"):
        TensorLoader(imgs, torch.arange(3), 3, False, mean, std, size=(12, 12), interpolation="lanczos")


def test_memory_loader_feeds_a_model_of_another_input_size(toy16, tmp_path, caplog):
    caplog.set_level("INFO", logger="crossvit")
    res = train(tiny(toy16, tmp_path, loader="memory", img_size=24, batch_size=4))  # 16-px images, 24-px model
    assert res["complete"] and res["steps"] == 4 and math.isfinite(res["val_loss"])
    assert "16x16 images resized to 24x24 per batch (bicubic)" in caplog.text


def test_tensor_loader_shards_ranks_and_refuses_mixed_sizes():
    imgs = torch.zeros(10, 1, 2, 2, dtype=torch.uint8)
    labels = torch.arange(10)
    got = [TensorLoader(imgs, labels, 3, False, (0,), (1,), rank=r, world=2) for r in range(2)]
    ys = sorted(int(v) for dl in got for _, y in dl for v in y)
    assert ys == list(range(10))  # evaluation: every image once over the ranks
    tr = [TensorLoader(imgs, labels, 5, True, (0,), (1,), rank=r, world=2, seed=1) for r in range(2)]
    a, b = (set(next(iter(dl))[1].tolist()) for dl in tr)
    assert not a & b  # training: the ranks take disjoint slices of one permutation
    with pytest.raises(ValueError, match="one size"):
        stack_images([torch.zeros(4, 4, 3, dtype=torch.uint8).numpy(), torch.zeros(5, 4, 3).byte().numpy()], "d/")


def _linear_and_batch() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear classifier of 4x4 images, so each view's logits can be computed by hand, and a batch of six."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)), torch.randn(6, 3, 4, 4), torch.randint(0, 5, (6,))


def test_flip_tta_averages_mirrored_logits():
    model, x, y = _linear_and_batch()
    res = evaluate(model, [(x, y)], torch.device("cpu"), "fp32", tta="flip")
    avg = (model(x) + model(x.flip(-1))) / 2
    assert res["loss"] == pytest.approx(F.cross_entropy(avg, y).item(), rel=1e-5)
    assert res["top1"] == pytest.approx(100.0 * (avg.argmax(1) == y).float().mean().item())
    plain = evaluate(model, [(x, y)], torch.device("cpu"), "fp32")
    assert plain["loss"] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)
    assert plain["loss"] != pytest.approx(res["loss"])


def test_shift_moves_content_and_repeats_the_border():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)  # rows [0 1 2], [3 4 5], [6 7 8]
    down_right = torch.tensor([[0.0, 0, 1], [0, 0, 1], [3, 3, 4]])  # row 0 / column 0 repeat the first row / column
    up_left = torch.tensor([[4.0, 5, 5], [7, 8, 8], [7, 8, 8]])
    assert torch.equal(shift(x, 1, 1)[0, 0], down_right) and torch.equal(shift(x, -1, -1)[0, 0], up_left)
    assert torch.equal(shift(x, 0, 0), x)
    assert [v.shape for v in tta_views(torch.zeros(2, 3, 4, 4), "flip-shift")] == [(2, 3, 4, 4)] * 6
    with pytest.raises(ValueError, match="--tta"):
        tta_views(x, "ten-crop")


def test_flip_shift_tta_averages_six_views():
    model, x, y = _linear_and_batch()
    res = evaluate(model, [(x, y)], torch.device("cpu"), "fp32", tta="flip-shift")
    views = []  # by hand: the image and its mirror, each as is, moved down-right and moved up-left
    for v in (x, x.flip(-1)):
        p = F.pad(v, (1, 1, 1, 1), mode="replicate")
        views += [v, p[..., 0:4, 0:4], p[..., 2:6, 2:6]]
    avg = sum(model(v) for v in views) / 6
    assert res["loss"] == pytest.approx(F.cross_entropy(avg, y).item(), rel=1e-5)
    flip = evaluate(model, [(x, y)], torch.device("cpu"), "fp32", tta="flip")
    assert flip["loss"] != pytest.approx(res["loss"], rel=1e-6)  # the shifted views took part
    with pytest.raises(ValueError, match="--tta"):
        evaluate(model, [(x, y)], torch.device("cpu"), "fp32", tta="ten-crop")


def test_final_tta_scores_the_last_validation_only(toy16, tmp_path, caplog):
    """--tta flip every epoch, --final-tta flip-shift for the last: the run's figure and the release card are the
    six-view one, and `crossvit validate --tta flip-shift` on the release gives it again."""
    flat = str(Path(toy16, "train"))
    with caplog.at_level("INFO", logger="crossvit"):
        res = train(tiny(flat, tmp_path, val_fraction=2, tta="flip", final_tta="flip-shift", epochs=2))
    assert sum("last validation: flip-shift TTA" in r.getMessage() for r in caplog.records) == 1
    m = validate(res["release_dir"], flat, workers=0, val_split_size=2, tta="flip-shift")
    assert m["loss"] == pytest.approx(res["val_loss"], rel=1e-4)
    assert "--tta flip-shift" in (Path(res["release_dir"]) / "README.md").read_text()
    flip = validate(res["release_dir"], flat, workers=0, val_split_size=2, tta="flip")
    assert flip["loss"] != pytest.approx(res["val_loss"], rel=1e-6)
    with pytest.raises(ValueError, match="--final-tta"):
        TrainConfig(final_tta="ten-crop", aa=None).validate()


def test_validate_reproduces_a_runs_carved_split_with_flip_tta(toy16, tmp_path):
    """`crossvit validate DATA --val-split-size N --tta flip` evaluates the images the run validated on, the way it
    did: the release gives the run's own figures (there through the training loader, here through the per-image
    eval transform)."""
    flat = str(Path(toy16, "train"))  # class folders directly under it: the validation split is carved out
    res = train(tiny(flat, tmp_path, val_fraction=2, tta="flip"))
    m = validate(res["release_dir"], flat, workers=0, val_split_size=2, tta="flip")
    assert m["images"] == 3 * 2 and m["tta"] == "flip"
    assert m["loss"] == pytest.approx(res["val_loss"], rel=1e-4)
    assert m["top1"] == pytest.approx(res["top1"])
    plain = validate(res["release_dir"], flat, workers=0, val_split_size=2)
    assert plain["loss"] != pytest.approx(m["loss"], rel=1e-6)  # the mirrored logits took part
    assert validate(res["release_dir"], flat, workers=0)["images"] == 3 * 6  # no split: the whole folder
    with pytest.raises(ValueError, match="--tta"):
        validate(res["release_dir"], flat, workers=0, tta="ten-crop")
    with pytest.raises(ValueError, match="--val-split-size"):
        validate(res["release_dir"], flat, workers=0, val_split_size=0)
    with pytest.raises(ValueError, match="--val-split-size"):  # 6 per class: none would be left for training
        validate(res["release_dir"], flat, workers=0, val_split_size=6)


def test_distillation_losses_match_hand_computation():
    teacher = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    student = torch.randn(5, 3)
    y = torch.randint(0, 3, (5,))
    t = teacher(x).detach()
    ce = nn.CrossEntropyLoss()
    tau, alpha = 2.0, 0.3
    soft = DistillationLoss(ce, teacher, "soft", alpha, tau)(x, student, y)
    p_t = (t / tau).softmax(1)
    kl = (p_t * (p_t.log() - (student / tau).log_softmax(1))).sum(1).mean() * tau * tau
    assert soft.item() == pytest.approx(((1 - alpha) * ce(student, y) + alpha * kl).item(), rel=1e-5)
    hard = DistillationLoss(ce, teacher, "hard", alpha, tau)(x, student, y)
    want = (1 - alpha) * ce(student, y) + alpha * F.cross_entropy(student, t.argmax(1))
    assert hard.item() == pytest.approx(want.item(), rel=1e-6)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_fast_step_gives_the_plain_steps_gradients():
    from crossvit import CrossViTConfig, create_model

    cfg = CrossViTConfig(
        img_size=16, img_scale=(1.0, 1.0), patch_size=(4, 8), stem_dims=(8,), embed_dim=(16, 32),
        num_heads=(2, 2), mlp_ratio=(1.0, 1.0), num_encoders=1, large_depth=1, num_classes=3,
    )  # fmt: skip
    plain = create_model(cfg)
    fast = create_model(cfg)
    fast.load_state_dict(plain.state_dict())
    to_fast_layout(fast)
    assert fast.stem.stages[0].weight.is_contiguous(memory_format=torch.channels_last)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    for m, inp in ((plain, x), (fast, x.contiguous(memory_format=torch.channels_last))):
        F.cross_entropy(m(inp), y).backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
    # the fused AdamW update equals the loop implementation's, from the same gradients (Adam's first step is about
    # lr * sign(g), so grads that agree to 1e-4 can still step a near-zero entry the other way)
    for a, b in zip(plain.parameters(), fast.parameters()):
        b.grad.copy_(a.grad)  # keeps the fast layout of the gradient
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2, fused=f) for m, f in ((plain, None), (fast, True))]
    for o in opts:
        o.step()
    for (name, a), (_, b) in zip(plain.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def toy16(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("toy16"), classes=3, per_class=6, size=16, val_per_class=2)


@pytest.mark.slow  # a 20-s time-budget run, then its resume
def test_memory_loader_budget_run_ends_complete_and_resumes(toy16, tmp_path):
    cfg = tiny(toy16, tmp_path, loader="memory", crop_pad=2, time_budget="20s", epochs=50, batch_size=4,
               tta="flip", model_ema=True, model_ema_decay=0.9, model_ema_warmup=True)  # fmt: skip
    res = train(cfg)
    assert res["complete"] and res["wall_s"] <= 20.0 + 2.0
    assert 1 <= res["steps"] <= 50 * 4  # planned from the measured speed, never past --epochs
    assert res["release_dir"] is not None and math.isfinite(res["val_loss"])


def test_distilled_training_steps_with_a_release_teacher(toy16, tmp_path):
    teacher = train(tiny(toy16, tmp_path / "t", epochs=1))
    res = train(tiny(toy16, tmp_path / "s", teacher=teacher["release_dir"], distill="soft", distill_alpha=0.5))
    assert res["steps"] == 3 and math.isfinite(res["val_loss"])
    with pytest.raises(FileNotFoundError, match="--teacher"):
        train(tiny(toy16, tmp_path / "s2", teacher="timm/resnet18=/no/such/file.pth"))


@pytest.mark.slow  # inductor compiles the tiny model's forward and backward: ~half a minute
def test_compiled_training_step_trains_the_same_weights(toy16, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # no stale / shared compile cache
    runs = {}
    for comp in (False, True):
        res = train(tiny(toy16, tmp_path / str(comp), loader="memory", crop_pad=2, batch_size=4, compile=comp))
        assert res["complete"] and res["steps"] == 4
        runs[comp] = load_file(str(Path(res["release_dir"]) / "model.safetensors"))
    assert runs[False].keys() == runs[True].keys()
    for k, v in runs[False].items():  # four AdamW steps from the same start on the same batches
        torch.testing.assert_close(runs[True][k], v, rtol=1e-3, atol=1e-4, msg=k)


def test_model_args_are_checked_against_the_named_model():
    """A conv-stem override is valid for a conv-stem model (img_scale 1), not for the 240-px default's 224/240."""
    ok = TrainConfig(model="crossvit_cifar_conv_32", model_args={"stem_dims": [32, 128]}, aa=None)
    ok.validate()
    with pytest.raises(ValueError, match="model_args: .*img_scale"):
        TrainConfig(model="crossvit_small_240", model_args={"stem_dims": [32, 128]}, aa=None).validate()
