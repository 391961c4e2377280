"""``train(cfg)``: the whole run — data, model, optimizer, loop, checkpoints, logs, release — for 1 or N processes.

from crossvit.train import TrainConfig, train
result = train(TrainConfig(data="data/", model="crossvit_9_240", epochs=30, batch_size=128))
result["top1"], result["run_dir"]
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.build import Data, build_data, describe
from ..io.checkpoint import (
    find_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    verify_checkpoint,
    weights_hash,
)
from ..io.hub import save_pretrained
from ..io.model_card import RECIPE_KEYS
from ..models.model import CrossViT
from ..models.timm_model import is_timm_name
from ..runtime.cpu import cpu_description
from ..runtime.fast import compile_training, pick_attention
from . import distributed as D
from .budget import TimeBudget
from .config import TrainConfig, parse_duration
from .distill import build_distillation
from .elastic import restart_note, run_name
from .engine import evaluate, train_one_epoch
from .fast_step import to_fast_layout, use_fast_step
from .freeze import apply_freeze, check_parts, trainable_table
from .loaders import build_loaders
from .losses import build_criterion, build_mixup
from .model_setup import arch_config, build_model
from .multilabel import evaluate_multilabel, metrics_text
from .optim import WarmupCosine, build_optimizer
from .precision import grad_scaler, resolve_amp
from .progress import RunLog
from .state import TrainState
from .tta import VIEWS

log = logging.getLogger("crossvit")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _run_dir(cfg: TrainConfig, dist: D.DistInfo) -> Path:
    name = cfg.experiment
    if not name:
        name = D.broadcast_object(run_name(cfg.model) if dist.is_main else None)
    return Path(cfg.output).expanduser() / name


def _add_file_log(run_dir: Path) -> logging.Handler:
    h = logging.FileHandler(run_dir / "train.log")
    h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("crossvit").addHandler(h)
    return h


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says. Returns {run_dir, release_dir, top1, top5, best_top1, epochs, wall_s, ...}."""
    t_start = time.perf_counter()
    cfg.validate()
    arch = arch_config(cfg)  # raises on bad model / model_args / img_size, before any data is read
    check_parts(cfg.freeze, arch.num_encoders)  # --freeze encoders:K beyond the model fails now too
    if cfg.resume not in (None, "auto"):  # a damaged --resume file fails now, not after the data scan
        p = Path(cfg.resume)
        if not p.is_file():
            raise FileNotFoundError(f"--resume {p}: no such checkpoint")
        if p.with_name(p.name + ".sha256").exists():
            verify_checkpoint(p)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    dist = D.setup(cfg.device, cfg.dist_timeout)
    try:
        return _train(cfg, arch.img_size[0], dist, t_start)
    except RuntimeError as e:
        if dist.enabled and D.is_comm_error(e):  # a rank died or hung: say so instead of gloo/NCCL internals
            raise RuntimeError(
                f"rank {dist.rank} of {dist.world}: lost contact with the other processes ({D.first_line(e)}); "
                f"a rank died or stalled longer than --dist-timeout {cfg.dist_timeout:g}s. The last checkpoint is "
                "kept: restart and continue with --resume auto"
            ) from e
        raise
    finally:
        D.cleanup()


def _train(cfg: TrainConfig, img_size: int, dist: D.DistInfo, t_start: float) -> dict[str, Any]:
    # --- setup: run directory, data, then the model and everything that updates it --------------------------------
    amp = resolve_amp(cfg.amp, dist.device)
    run_dir = _run_dir(cfg, dist)
    # rank 0's view decides, so every rank resumes (or not) alike, also after an elastic restart
    existed = D.broadcast_object((run_dir / "last.pth").exists() or (run_dir / "best.pth").exists())
    fh = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = _add_file_log(run_dir)  # before the setup: train.log also holds what building the model says
    D.barrier()
    data = build_data(cfg, img_size, dist.rank, dist.world, run_dir)
    num_classes = cfg.num_classes or len(data.classes)
    classes = list(cfg.label_names) if cfg.label_names else data.classes
    if len(classes) != num_classes:
        raise ValueError(f"--label-names: {len(classes)} names for {num_classes} classes")
    cfg = replace(cfg, num_classes=num_classes)
    # the CPU SDPA backward in bf16 is the slow half of a small model's step; explicit matmuls run on the GEMM units
    attention = cfg.attention if cfg.attention != "auto" else pick_attention(dist.device, amp, training=True)
    if is_timm_name(cfg.model):
        attention = "timm's own"  # what the log says; a timm model is not switched
    state = setup(cfg, data, classes, dist, amp, attention, img_size)

    # --- resume: the newest good checkpoint of this run, or the one --resume names -------------------------------
    resume = cfg.resume
    if resume == "auto" or (resume is None and existed):
        found = find_resumable(run_dir) if dist.is_main else None
        resume = D.broadcast_object(str(found) if found else None)  # the same checkpoint on every rank
        if resume is None and cfg.resume == "auto":
            log.info("--resume auto: no good checkpoint in %s, starting fresh", run_dir)
    budget_state = resume_from(state, resume) if resume else {}

    if dist.enabled:
        state.net = nn.parallel.DistributedDataParallel(
            state.model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    if cfg.compile:  # only the training step: eval mode (BatchNorm statistics, no dropout) would be a second graph
        state.net = compile_training(state.net, cfg.compile_mode)
    runlog = None
    if dist.is_main:
        cfg.save(run_dir / "config.yaml")
        note = restart_note(resume)  # train.log keeps a line per restart
        if note:
            log.warning(note)
        runlog = RunLog(run_dir, cfg.tensorboard)
        _log_start(state, run_dir, data, img_size, attention)
    state.budget = _time_budget(cfg, t_start, budget_state, state.steps, dist)

    # --- the epoch loop -------------------------------------------------------------------------------------------
    metrics: dict[str, Any] = {}
    try:
        last = cfg.epochs if cfg.stop_epoch is None else min(cfg.epochs, cfg.stop_epoch)
        for epoch in range(state.start_epoch, last):
            if state.scheduler.done(state.step):
                break
            t0, step0 = time.perf_counter(), state.step
            state.sampler.set_epoch(epoch)
            res = train_one_epoch(state, epoch)
            t_eval = time.perf_counter()
            final = epoch + 1 == last or state.scheduler.done(state.step)  # the run's figure: --final-tta
            metrics = (
                _validate(cfg, state.eval_model, state.val_dl, dist.device, amp, final)
                if state.val_dl is not None
                else {}
            )
            eval_s = time.perf_counter() - t_eval
            top1 = metrics.get("mAP" if cfg.multi_label else "top1")  # the figure best.pth is chosen by
            is_best = top1 is not None and top1 > state.best_top1
            if is_best:
                state.best_top1 = top1
            row = {
                "epoch": epoch + 1,
                "train_loss": res.loss,
                "val_loss": metrics.get("loss"),
                "top1": metrics.get("top1"),
                "top5": metrics.get("top5"),
                **{k: metrics[k] for k in ("mAP", "f1_micro", "f1_macro") if k in metrics},
                "lr": res.lr,
                "train_img_s": res.img_s * dist.world,
                "epoch_s": time.perf_counter() - t0,
            }
            # every rank's RNG goes into the checkpoint, so a resumed DDP run continues each rank exactly
            rngs = D.gather_object(rng_state(), dist) if dist.enabled else rng_state()
            if state.budget is not None:  # every rank plans from its own clock; rank 0's plan is the one all follow
                state.budget.on_epoch(state.step, state.step - step0, time.perf_counter() - t0, eval_s, state.scheduler)
                state.scheduler.set_total(int(D.broadcast_object(state.scheduler.total if dist.is_main else None)))
            if dist.is_main:
                log.info(
                    "epoch %d/%d train_loss %.4f%s lr %.3e %.0f img/s %.1fs",
                    epoch + 1,
                    cfg.epochs,
                    res.loss,
                    metrics_text(metrics),
                    res.lr,
                    row["train_img_s"],
                    row["epoch_s"],
                )
                runlog.epoch(row)
                ckpt = _checkpoint(state, epoch, rngs, metrics, classes)
                save_checkpoint(run_dir / "last.pth", ckpt)
                if is_best or state.val_dl is None:
                    save_checkpoint(run_dir / "best.pth", ckpt)
            D.barrier()
    finally:
        if runlog is not None:
            runlog.close()

    # --- finish: the last metrics, the ranks' agreement, the release ----------------------------------------------
    if not metrics and state.val_dl is not None:  # nothing left to train (resumed a finished run): still report
        metrics = _validate(cfg, state.eval_model, state.val_dl, dist.device, amp, final=True)
    result = _finish(state, run_dir, data, metrics, classes)
    if fh is not None:
        logging.getLogger("crossvit").removeHandler(fh)
        fh.close()
    return result | {"wall_s": time.perf_counter() - t_start}


def setup(
    cfg: TrainConfig, data: Data, classes: list[str], dist: D.DistInfo, amp: str, attention: str, img_size: int
) -> TrainState:
    """The model (frozen parts, attention, layout), its optimizer, schedule, scaler, EMA, loss and the loaders."""
    seed_everything(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_model(cfg, cfg.num_classes).to(dist.device)
    model.label_names = classes
    apply_freeze(model, cfg.freeze, cfg.linear_probe)
    if isinstance(model, CrossViT):  # a timm architecture keeps its own attention
        model.set_attention_impl(attention)
    fast = use_fast_step(cfg.fast_step, dist.device)
    if fast:
        to_fast_layout(model)
    seed_everything(cfg.seed + dist.rank)  # different augmentation per rank
    train_dl, sampler, steps, val_dl = build_loaders(cfg, data, dist, img_size)
    lr = cfg.resolved_lr(dist.world)
    optimizer = build_optimizer(model, cfg, lr, fused=fast)
    scheduler = WarmupCosine(optimizer, lr, cfg.epochs * steps, cfg.warmup_epochs * steps, cfg.warmup_lr, cfg.min_lr)
    ema = None
    if cfg.model_ema:
        from timm.utils import ModelEmaV3  # timm.utils imports timm's training helpers: only runs with EMA pay

        ema = ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup)
    criterion = build_distillation(cfg, build_criterion(cfg), cfg.num_classes, dist.device)
    return TrainState(
        cfg, dist, amp, model, optimizer, scheduler, grad_scaler(amp, dist.device), criterion, train_dl, sampler,
        steps, val_dl, mixup=build_mixup(cfg, cfg.num_classes), ema=ema,
    )  # fmt: skip


def resume_from(state: TrainState, path: str) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into ``state`` (weights, EMA, optimizer, scaler, position, RNG); returns the
    time budget it recorded."""
    cfg, dist = state.cfg, state.dist
    st = load_checkpoint(path)
    try:
        state.model.load_state_dict(st["model"])
    except RuntimeError as e:  # another architecture: name the option and both models
        saved = st.get("config") or {}
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise ValueError(
            f"--resume {path}: checkpoint of another architecture (model {saved.get('model')}, model_args "
            f"{saved.get('model_args')}, img_size {saved.get('img_size')}) than this run's (model {cfg.model}, "
            f"model_args {cfg.model_args}, img_size {cfg.img_size}): {first[:300]}"
        ) from None
    if state.ema is not None and st.get("model_ema") is not None:
        state.ema.module.load_state_dict(st["model_ema"])
    state.optimizer.load_state_dict(st["optimizer"])
    state.scaler.load_state_dict(st["scaler"])
    state.start_epoch, state.step = int(st["epoch"]), int(st["step"])
    state.best_top1 = float(st.get("best_top1", -1.0))
    budget_state = st.get("budget") or {}
    if budget_state.get("total_steps"):
        state.scheduler.set_total(int(budget_state["total_steps"]))
    if dist.world == int(st.get("world", 1)):
        set_rng_state(st["rng"][dist.rank] if isinstance(st["rng"], list) else st["rng"])
    else:
        log.warning(
            "resuming on %d processes from a %s-process run: data order is not bit-exact", dist.world, st.get("world")
        )
    log.info("resumed from %s at epoch %d (step %d)", path, state.start_epoch, state.step)
    return budget_state


def _log_start(state: TrainState, run_dir: Path, data: Data, img_size: int, attention: str) -> None:
    cfg, dist = state.cfg, state.dist
    n_params = sum(p.numel() for p in state.model.parameters())
    log.info(
        "run %s | data %s: %d train / %d val images, %d classes | model %s %.2fM params %dpx | %d process(es) on "
        "%s, %s, %s attention | lr %.3g, global batch %d (%d per micro-batch x %d accumulation x %d process(es)), "
        "%d steps/epoch",
        run_dir, describe(cfg.data), data.train_len, data.val_len, cfg.num_classes, cfg.model, n_params / 1e6,
        img_size, dist.world, dist.device, state.amp, attention, cfg.resolved_lr(dist.world),
        cfg.global_batch(dist.world), cfg.batch_size, cfg.grad_accum_steps, dist.world, state.steps,
    )  # fmt: skip
    if dist.device.type == "cpu":
        log.info("cpu: %s; %d threads per process%s", cpu_description(), torch.get_num_threads(),
                 f", compiled training step ({cfg.compile_mode})" if cfg.compile else "")  # fmt: skip
    if any(not p.requires_grad for p in state.model.parameters()) or cfg.layer_decay is not None:
        log.info("trainable parameters:\n%s", trainable_table(state.model))


def _time_budget(
    cfg: TrainConfig, t_start: float, budget_state: dict[str, Any], steps: int, dist: D.DistInfo
) -> TimeBudget | None:
    if cfg.time_budget is None:
        return None
    # a resumed run continues the budget it had: the time its earlier attempts used is counted
    seconds = parse_duration(cfg.time_budget, "--time-budget")
    factor = VIEWS[cfg.resolved_final_tta] / VIEWS[cfg.tta]  # the last validation may cost more than the others
    budget = TimeBudget(
        seconds, t_start, budget_state.get("used_s", 0.0), max_steps=cfg.epochs * steps, final_eval_factor=factor
    )
    budget.planned = bool(budget_state.get("total_steps"))
    if dist.is_main:
        log.info(
            "time budget %s (%.0fs, %.0fs used): the step count is planned from the measured speed",
            cfg.time_budget,
            budget.seconds,
            budget.used(),
        )
    return budget


def _checkpoint(state: TrainState, epoch: int, rngs: Any, metrics: dict[str, Any], classes: list[str]) -> dict:
    """Everything a resumed run needs to continue exactly (tensors and plain values: loads with weights_only)."""
    budget = state.budget
    return {
        "model": state.model.state_dict(),
        "model_ema": state.ema.module.state_dict() if state.ema is not None else None,
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "epoch": epoch + 1,
        "step": state.step,
        "best_top1": state.best_top1,
        "rng": rngs,
        "world": state.dist.world,
        "config": state.cfg.to_dict(),
        "label_names": classes,
        "metrics": {k: v for k, v in metrics.items() if k != "confusion"},
        "budget": {"used_s": budget.used(), "total_steps": state.scheduler.total} if budget else None,
    }


def _finish(
    state: TrainState, run_dir: Path, data: Data, metrics: dict[str, Any], classes: list[str]
) -> dict[str, Any]:
    """Check the ranks agree, write the release (rank 0, a complete run) and say what the run gave."""
    cfg, dist, model = state.cfg, state.dist, state.model
    hashes = D.gather_object(weights_hash(model), dist)
    if dist.is_main and dist.enabled:
        (run_dir / "ranks.json").write_text(json.dumps({"weights_sha256": hashes}, indent=2) + "\n")
        if len(set(hashes)) != 1:
            log.error("ranks ended with different weights: %s", hashes)
    complete = state.scheduler.done(state.step)
    best_top1 = state.best_top1 if state.best_top1 >= 0 else None
    release_dir = None
    if dist.is_main and cfg.save_release and complete:
        record = {k: v for k, v in cfg.to_dict().items() if k in RECIPE_KEYS}
        record.update(
            data_description=describe(cfg.data), train_images=data.train_len, val_images=data.val_len,
            world=dist.world, amp=state.amp, top1=metrics.get("top1"), top5=metrics.get("top5"), best_top1=best_top1,
            tta=cfg.resolved_final_tta,  # what the card's top-1 was measured with
        )  # fmt: skip
        multi = {"multi_label": True, "threshold": cfg.threshold} if cfg.multi_label else {}
        extra = {"training": record, **multi}
        release_dir = save_pretrained(state.eval_model, run_dir / "release", label_names=classes, extra=extra)
        log.info("release written to %s", release_dir)
    return {
        "run_dir": str(run_dir),
        "release_dir": str(release_dir) if release_dir else None,
        "top1": metrics.get("top1"),
        "top5": metrics.get("top5"),
        **{k: metrics[k] for k in ("mAP", "f1_micro", "f1_macro") if k in metrics},
        "val_loss": metrics.get("loss"),
        "best_top1": best_top1,
        "epochs": cfg.epochs,
        "steps": state.step,
        "amp": state.amp,
        "world": dist.world,
        "complete": complete,
        "weights_sha256": hashes,
        "model": model,
        "classes": classes,
    }


def _validate(cfg: TrainConfig, model: nn.Module, val_dl, device, amp: str, final: bool = False) -> dict[str, Any]:
    """The validation metrics; ``final``: the run's last validation, with --final-tta."""
    if cfg.multi_label:
        return evaluate_multilabel(model, val_dl, device, amp, cfg.threshold)
    tta = cfg.resolved_final_tta if final else cfg.tta
    if final and tta != cfg.tta:
        log.info("last validation: %s TTA (--final-tta), the epochs before it %s", tta, cfg.tta)
    return evaluate(model, val_dl, device, amp, tta=tta)
