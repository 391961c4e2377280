"""``train(cfg)``: the whole run — data, model, optimizer, loop, checkpoints, logs, release — for 1 or N processes.

from crossvit.train import TrainConfig, train
result = train(TrainConfig(data="data/", model="crossvit_9_240", epochs=30, batch_size=128))
result["top1"], result["run_dir"]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.build import Data, build_data, describe
from ..data.samplers import ShardSampler, train_sampler
from ..fast import pick_attention
from ..hub import save_pretrained
from ..model_card import RECIPE_KEYS
from . import distributed as D
from .checkpoint import find_resumable, load_checkpoint, rng_state, save_checkpoint, set_rng_state, verify_checkpoint
from .config import TrainConfig
from .engine import evaluate, train_one_epoch
from .model_setup import arch_config, build_model
from .optim import WarmupCosine, build_optimizer
from .precision import grad_scaler, resolve_amp
from .progress import RunLog

log = logging.getLogger("crossvit")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _run_dir(cfg: TrainConfig, dist: D.DistInfo) -> Path:
    name = cfg.experiment
    if not name:
        name = D.broadcast_object(f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}" if dist.is_main else None)
    return Path(cfg.output).expanduser() / name


def _loaders(cfg: TrainConfig, data: Data, dist: D.DistInfo):
    workers = min(cfg.workers, num_threads_hint())  # more workers than CPUs only adds contention
    common = {"num_workers": workers, "pin_memory": dist.device.type == "cuda"}
    if data.iterable:
        train_dl = DataLoader(data.train, batch_size=cfg.batch_size, drop_last=True, **common)
        steps = data.train_len // (cfg.batch_size * dist.world)
        sampler = data.train
    else:
        sampler = train_sampler(data.train, dist.rank, dist.world, cfg.seed, cfg.resolved_aug_repeats())
        train_dl = DataLoader(data.train, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **common)
        steps = len(train_dl)
    if steps < 1:
        raise ValueError(
            f"--batch-size {cfg.batch_size}: larger than the {data.train_len} training images per "
            f"{'process' if dist.world == 1 else f'each of {dist.world} processes'}; lower it"
        )
    val_dl = None
    if data.val is not None:
        kw = {} if data.iterable else {"sampler": ShardSampler(len(data.val), dist.rank, dist.world)}
        val_dl = DataLoader(data.val, batch_size=cfg.batch_size, **kw, **common)
    return train_dl, sampler, steps, val_dl


def _criterion(cfg: TrainConfig) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.mixup_active and cfg.mixup_prob > 0:
        return SoftTargetCrossEntropy()  # smoothing is applied inside Mixup to the soft targets
    if cfg.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return nn.CrossEntropyLoss()


def _mixup(cfg: TrainConfig, num_classes: int):
    if not (cfg.mixup_active and cfg.mixup_prob > 0):
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        prob=cfg.mixup_prob,
        switch_prob=cfg.mixup_switch_prob,
        mode=cfg.mixup_mode,
        label_smoothing=cfg.smoothing,
        num_classes=num_classes,
    )


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
    amp = resolve_amp(cfg.amp, dist.device)
    run_dir = _run_dir(cfg, dist)
    existed = (run_dir / "last.pth").exists() or (run_dir / "best.pth").exists()
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    D.barrier()
    data = build_data(cfg, img_size, dist.rank, dist.world, run_dir)
    num_classes = cfg.num_classes or len(data.classes)
    classes = list(cfg.label_names) if cfg.label_names else data.classes
    if len(classes) != num_classes:
        raise ValueError(f"--label-names: {len(classes)} names for {num_classes} classes")
    cfg = replace(cfg, num_classes=num_classes)
    seed_everything(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_model(cfg, num_classes).to(dist.device)
    model.label_names = classes
    # the CPU SDPA backward in bf16 is the slow half of a small model's step; explicit matmuls run on the GEMM units
    attention = cfg.attention if cfg.attention != "auto" else pick_attention(dist.device, amp, training=True)
    model.set_attention_impl(attention)
    seed_everything(cfg.seed + dist.rank)  # different augmentation per rank

    train_dl, sampler, steps, val_dl = _loaders(cfg, data, dist)
    lr = cfg.resolved_lr(dist.world)
    optimizer = build_optimizer(model, cfg, lr)
    scheduler = WarmupCosine(optimizer, lr, cfg.epochs * steps, cfg.warmup_epochs * steps, cfg.warmup_lr, cfg.min_lr)
    scaler = grad_scaler(amp, dist.device)
    ema = None
    if cfg.model_ema:
        from timm.utils import ModelEmaV2

        ema = ModelEmaV2(model, decay=cfg.model_ema_decay)
    criterion, mixup = _criterion(cfg), _mixup(cfg, num_classes)

    start_epoch, step, best_top1 = 0, 0, -1.0
    resume = cfg.resume
    if resume == "auto" or (resume is None and existed):
        found = find_resumable(run_dir)
        resume = str(found) if found else None
        if resume is None and cfg.resume == "auto":
            log.info("--resume auto: no good checkpoint in %s, starting fresh", run_dir)
    if resume:
        st = load_checkpoint(resume)
        try:
            model.load_state_dict(st["model"])
        except RuntimeError as e:  # another architecture: name the option and both models
            saved = st.get("config") or {}
            first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
            raise ValueError(
                f"--resume {resume}: checkpoint of another architecture (model {saved.get('model')}, model_args "
                f"{saved.get('model_args')}, img_size {saved.get('img_size')}) than this run's (model {cfg.model}, "
                f"model_args {cfg.model_args}, img_size {cfg.img_size}): {first[:300]}"
            ) from None
        if ema is not None and st.get("model_ema") is not None:
            ema.module.load_state_dict(st["model_ema"])
        optimizer.load_state_dict(st["optimizer"])
        scaler.load_state_dict(st["scaler"])
        start_epoch, step, best_top1 = int(st["epoch"]), int(st["step"]), float(st.get("best_top1", -1.0))
        if dist.world == int(st.get("world", 1)):
            set_rng_state(st["rng"][dist.rank] if isinstance(st["rng"], list) else st["rng"])
        else:
            log.warning(
                "resuming on %d processes from a %s-process run: data order is not bit-exact",
                dist.world,
                st.get("world"),
            )
        log.info("resumed from %s at epoch %d (step %d)", resume, start_epoch, step)

    net: nn.Module = model
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )

    runlog, fh = None, None
    if dist.is_main:
        cfg.save(run_dir / "config.yaml")
        fh = _add_file_log(run_dir)
        runlog = RunLog(run_dir, cfg.tensorboard)
        n_params = sum(p.numel() for p in model.parameters())
        log.info(
            "run %s | data %s: %d train / %d val images, %d classes | model %s %.2fM params %dpx | %d process(es) on "
            "%s, %s, %s attention | lr %.3g, global batch %d, %d steps/epoch",
            run_dir,
            describe(cfg.data),
            data.train_len,
            data.val_len,
            num_classes,
            cfg.model,
            n_params / 1e6,
            img_size,
            dist.world,
            dist.device,
            amp,
            attention,
            lr,
            cfg.batch_size * dist.world,
            steps,
        )

    metrics: dict[str, Any] = {}
    skipped = 0  # NaN/inf steps skipped so far: --skip-nonfinite is a budget for the whole run
    try:
        last = cfg.epochs if cfg.stop_epoch is None else min(cfg.epochs, cfg.stop_epoch)
        for epoch in range(start_epoch, last):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            res = train_one_epoch(
                net,
                train_dl,
                steps,
                optimizer,
                scheduler,
                criterion,
                scaler,
                dist.device,
                amp,
                epoch,
                cfg.epochs,
                step,
                mixup,
                ema,
                cfg.clip_grad,
                dist.is_main,
                cfg.log_interval,
                skip_nonfinite=cfg.skip_nonfinite - skipped,
            )
            step = res.step
            skipped += res.skipped
            eval_model = ema.module if ema is not None else model
            metrics = evaluate(eval_model, val_dl, dist.device, amp) if val_dl is not None else {}
            top1 = metrics.get("top1")
            is_best = top1 is not None and top1 > best_top1
            if is_best:
                best_top1 = top1
            row = {
                "epoch": epoch + 1,
                "train_loss": res.loss,
                "val_loss": metrics.get("loss"),
                "top1": top1,
                "top5": metrics.get("top5"),
                "lr": res.lr,
                "train_img_s": res.img_s * dist.world,
                "epoch_s": time.perf_counter() - t0,
            }
            # every rank's RNG goes into the checkpoint, so a resumed DDP run continues each rank exactly
            rngs = _gather_rng(dist)
            if dist.is_main:
                log.info(
                    "epoch %d/%d train_loss %.4f%s lr %.3e %.0f img/s %.1fs",
                    epoch + 1,
                    cfg.epochs,
                    res.loss,
                    f" val_loss {metrics['loss']:.4f} top1 {top1:.2f} top5 {metrics['top5']:.2f}" if metrics else "",
                    res.lr,
                    row["train_img_s"],
                    row["epoch_s"],
                )
                runlog.epoch(row)
                state = {
                    "model": model.state_dict(),
                    "model_ema": ema.module.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,
                    "step": step,
                    "best_top1": best_top1,
                    "rng": rngs,
                    "world": dist.world,
                    "config": cfg.to_dict(),
                    "label_names": classes,
                    "metrics": {k: v for k, v in metrics.items() if k != "confusion"},
                }
                save_checkpoint(run_dir / "last.pth", state)
                if is_best or val_dl is None:
                    save_checkpoint(run_dir / "best.pth", state)
            D.barrier()
    finally:
        if runlog is not None:
            runlog.close()

    if not metrics and val_dl is not None:  # nothing left to train (resumed a finished run): still report
        metrics = evaluate(ema.module if ema is not None else model, val_dl, dist.device, amp)
    hashes = _rank_hashes(model, dist)
    if dist.is_main and dist.enabled:
        (run_dir / "ranks.json").write_text(json.dumps({"weights_sha256": hashes}, indent=2) + "\n")
        if len(set(hashes)) != 1:
            log.error("ranks ended with different weights: %s", hashes)
    complete = step >= cfg.epochs * steps
    release_dir = None
    if dist.is_main and cfg.save_release and complete:
        record = {k: v for k, v in cfg.to_dict().items() if k in RECIPE_KEYS}
        record.update(
            data_description=describe(cfg.data), train_images=data.train_len, val_images=data.val_len,
            world=dist.world, amp=amp, top1=metrics.get("top1"), top5=metrics.get("top5"),
            best_top1=best_top1 if best_top1 >= 0 else None,
        )  # fmt: skip
        release_dir = save_pretrained(
            ema.module if ema is not None else model, run_dir / "release", label_names=classes,
            extra={"training": record},
        )  # fmt: skip
        log.info("release written to %s", release_dir)
    if fh is not None:
        logging.getLogger("crossvit").removeHandler(fh)
        fh.close()
    return {
        "run_dir": str(run_dir),
        "release_dir": str(release_dir) if release_dir else None,
        "top1": metrics.get("top1"),
        "top5": metrics.get("top5"),
        "val_loss": metrics.get("loss"),
        "best_top1": best_top1 if best_top1 >= 0 else None,
        "epochs": cfg.epochs,
        "steps": step,
        "amp": amp,
        "world": dist.world,
        "complete": complete,
        "weights_sha256": hashes,
        "wall_s": time.perf_counter() - t_start,
        "model": model,
        "classes": classes,
    }


def weights_hash(model: nn.Module) -> str:
    """sha256 over every tensor of the state dict (sorted keys): equal hashes mean bit-identical weights."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _rank_hashes(model: nn.Module, dist: D.DistInfo) -> list[str]:
    mine = weights_hash(model)
    if not dist.enabled:
        return [mine]
    import torch.distributed as tdist

    out: list[Any] = [None] * dist.world
    tdist.all_gather_object(out, mine)
    return out


def _gather_rng(dist: D.DistInfo):
    mine = rng_state()
    if not dist.enabled:
        return mine
    import torch.distributed as tdist

    out: list[Any] = [None] * dist.world
    tdist.all_gather_object(out, mine)
    return out


def num_threads_hint() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
