"""One dataclass, :class:`TrainConfig`, holds every training option; flags and YAML recipes resolve into it.

Precedence (lowest first): the dataclass defaults (the paper's DeiT recipe) < a YAML recipe (``-c recipe.yaml``)
< command-line flags. The resolved config is saved as ``config.yaml`` in the run directory, so

    crossvit train -c runs/x/config.yaml

repeats a run. Flag names follow timm's / DeiT's ``train.py`` (``--lr``, ``--warmup-epochs``, ``--aa``, ``--reprob``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.tensor_loader import auto_augment_policy
from ..models.config import CrossViTConfig
from ..models.registry import get_entry, resolve_name
from ..models.timm_model import TimmConfig, is_timm_name
from ..runtime.fast import COMPILE_MODES
from .freeze import check_parts
from .tta import TTA_CHOICES

AMP_CHOICES = ("auto", "bf16", "fp16", "fp32")
BAD_IMAGE_CHOICES = ("skip", "error")
WD_TOKENS_CHOICES = ("decay", "exclude")
LOADER_CHOICES = ("workers", "memory")
REMODE_CHOICES = ("pixel", "rand", "const")  # timm's RandomErasing: per-pixel noise, one random colour, zeros
FAST_STEP_CHOICES = ("auto", "fast", "plain")
DISTILL_CHOICES = ("soft", "hard")


def _f(default: Any, help: str, flags: tuple[str, ...] = (), **kw: Any) -> Any:
    """A dataclass field that carries its argparse flags and help text."""
    meta = {"help": help, "flags": flags, **kw}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every training option. Defaults: the paper's ImageNet recipe (Sec. 4.1, Table 9) with DeiT's augmentation."""

    # --- data ----------------------------------------------------------------------------------------------------
    data: str | None = _f(None, "ImageFolder root (train/, val/) or tar-shards dir; none: the digits demo recipe")
    train_split: str = _f("train", "sub-directory with the training images (or .tar shards)")
    val_split: str = _f("val", "sub-directory with the validation images (or .tar shards)")
    val_fraction: float | None = _f(
        None,
        "carve a deterministic validation set out of train/: a fraction (0.1) or images per class (50)",
        ("--val-split-size",),
    )
    cache_images: bool = _f(False, "decode every image once and keep it in memory (small data sets, e.g. CIFAR)")
    on_bad_image: str = _f(
        "skip", "unreadable image: skip it (warn, list in skipped_images.txt) or error", choices=BAD_IMAGE_CHOICES
    )
    labels_csv: str | None = _f(
        None,
        "multi-label data: a CSV of 'path,label1;label2;...' rows (paths relative to the data dir), read for the "
        "training images; <name>.csv next to it with the val split's name (e.g. val.csv) is the validation set",
    )
    workers: int = _f(4, "data-loading worker processes (0: load in the main process)", ("-j", "--workers"))
    # --- model ---------------------------------------------------------------------------------------------------
    model: str = _f("crossvit_small_240", "registered model name (crossvit info --list)")
    model_args: dict = _f({}, "CrossViTConfig fields overriding the named model (YAML only, e.g. embed_dim: [64, 128])")
    pretrained: bool = _f(False, "start from the released ImageNet weights of --model")
    initial_checkpoint: str | None = _f(
        None, "start from these weights: a release dir, our last.pth/best.pth, or a timm / official file"
    )
    num_classes: int | None = _f(None, "classes (default: the number of class folders / labels found)")
    img_size: int | None = _f(None, "input resolution (default: the model's); pos-embeds are resized on load")
    drop: float = _f(0.0, "dropout before the heads")
    drop_path: float = _f(0.1, "stochastic depth rate (Table 9: 0.1)")
    # --- optimisation --------------------------------------------------------------------------------------------
    epochs: int = _f(300, "epochs")
    batch_size: int = _f(64, "images per step per process", ("-b", "--batch-size"))
    opt: str = _f("adamw", "optimizer", choices=("adamw", "sgd"))
    lr: float | None = _f(None, "absolute learning rate; default: --lr-base scaled by global batch / --lr-base-size")
    lr_base: float = _f(4e-3, "learning rate at --lr-base-size (paper: 4e-3 at 4096)")
    lr_base_size: int = _f(4096, "global batch size at which --lr-base applies")
    min_lr: float = _f(1e-5, "floor of the cosine schedule")
    warmup_lr: float = _f(1e-6, "learning rate at the start of warm-up")
    warmup_epochs: int = _f(30, "linear warm-up epochs")
    weight_decay: float = _f(0.05, "weight decay (biases and norms never decayed)")
    wd_tokens: str = _f(
        "decay",
        "pos-embed / CLS-token weight decay: 'decay' as the released weights were trained, 'exclude' as the paper/timm",
        choices=WD_TOKENS_CHOICES,
    )
    momentum: float = _f(0.9, "SGD momentum")
    opt_eps: float = _f(1e-8, "AdamW epsilon")
    clip_grad: float | None = _f(None, "clip the gradient norm to this value")
    grad_accum_steps: int = _f(
        1, "micro-batches per optimizer step: one update of -b B x N images; --lr-base scales with the full batch"
    )
    layer_decay: float | None = _f(
        None, "layer-wise lr decay (BEiT / timm fine-tuning, e.g. 0.75): encoder k of K gets lr x decay^(K+1-k)"
    )
    freeze: list | None = _f(
        None,
        "parts that do not train: patch_embed (patch/pos embeddings, CLS tokens), branch0, branch1 (a branch's "
        "stem, blocks and final norm), encoders:K (the stem and the first K multi-scale encoders)",
        nargs="+",
        type=str,
    )
    linear_probe: bool = _f(False, "train the heads only; every other weight stays as loaded")
    loss: str = _f(
        "auto",
        "auto: cross-entropy, or BCE for --labels-csv data; bce: per-class sigmoid",
        choices=("auto", "ce", "bce"),
    )
    threshold: float = _f(0.5, "multi-label: probability above which a label counts as predicted (F1, predict)")
    # --- augmentation --------------------------------------------------------------------------------------------
    aa: str | None = _f("rand-m9-mstd0.5-inc1", "timm auto-augment policy ('none' to disable)")
    color_jitter: float = _f(0.4, "colour jitter (used when --aa is none)")
    hflip: float = _f(0.5, "horizontal flip probability")
    scale: list = _f([0.08, 1.0], "RandomResizedCrop scale range", nargs=2, type=float)
    train_interpolation: str = _f("bicubic", "resize interpolation for training")
    reprob: float = _f(0.25, "random erasing probability")
    remode: str = _f("pixel", "random erasing fill", choices=REMODE_CHOICES)
    recount: int = _f(1, "random erasing count")
    mixup: float = _f(0.8, "mixup alpha (0: off)")
    cutmix: float = _f(1.0, "cutmix alpha (0: off)")
    mixup_prob: float = _f(1.0, "probability of applying mixup or cutmix to a batch")
    mixup_switch_prob: float = _f(0.5, "probability of cutmix instead of mixup when both are on")
    mixup_mode: str = _f("batch", "mixup mode", choices=("batch", "pair", "elem"))
    smoothing: float = _f(0.1, "label smoothing")
    aug_repeats: int | None = _f(
        None, "repeated augmentation: copies of each image per epoch (default: 3 for crossvit_18*, else off)"
    )
    mean: list | None = _f(None, "normalisation mean (default: ImageNet)", nargs=3, type=float)
    std: list | None = _f(None, "normalisation std (default: ImageNet)", nargs=3, type=float)
    # --- evaluation ----------------------------------------------------------------------------------------------
    crop_pct: float = _f(0.875, "evaluation: resize to size / crop_pct, then centre-crop (paper and code: 0.875)")
    eval_interpolation: str = _f("bicubic", "evaluation resize interpolation")
    model_ema: bool = _f(False, "keep an exponential moving average of the weights (DeiT: on)")
    model_ema_decay: float = _f(0.99996, "EMA decay")
    # --- speed, time budget, distillation --------------------------------------------------------------------------
    loader: str = _f(
        "workers",
        "workers: per-image timm transforms in DataLoader workers; memory: the whole (same-size) data set as one "
        "uint8 tensor, batches cut and augmented by tensor ops (random --crop-pad translation, --hflip): for CIFAR",
        choices=LOADER_CHOICES,
    )
    crop_pad: int = _f(4, "--loader memory: random translation of up to this many pixels (zero padding)")
    time_budget: str | None = _f(
        None,
        "wall-clock budget for the whole command ('30m', '2h', '1h30m', '900s'): the step count is measured and fixed "
        "so that warm-up and decay end on time (--epochs becomes an upper bound)",
    )
    fast_step: str = _f(
        "auto",
        "training step: fast = channels-last memory layout and the fused AdamW kernel (same gradients as the plain "
        "step); auto = fast on CPU; plain = neither",
        choices=FAST_STEP_CHOICES,
    )
    compile: bool = _f(
        False,
        "compile the training step with torch.compile (inductor), which fuses the elementwise work around the "
        "convolutions and matrix products; whether that pays depends on the model and the CPU (crossvit benchmark "
        "--train --compile measures it). The one-off 1-2 min of compilation counts in --time-budget; evaluation "
        "runs the eager model",
    )
    compile_mode: str = _f(
        "default",
        "--compile: default, or max-autotune (Inductor also times its C++ GEMM templates against oneDNN for every "
        "matrix shape and keeps the faster, epilogue fused: a few minutes more compilation, a faster step where the "
        "templates win; crossvit benchmark --train --compile-mode max-autotune measures it)",
        choices=COMPILE_MODES,
    )
    tta: str = _f(
        "none",
        "test-time augmentation of validation: flip averages the logits of x and its mirror image; flip-shift also "
        "those of both moved by one pixel down-right and up-left (six views, three times flip's cost)",
        choices=TTA_CHOICES,
    )
    final_tta: str = _f(
        "same",
        "test-time augmentation of the run's last validation only (its final figure, the one the release card "
        "records): e.g. flip-shift, whose six views would cost three times flip's at every epoch; same: --tta",
        choices=("same", *TTA_CHOICES),
    )
    model_ema_warmup: bool = _f(False, "EMA decay ramps up from 0 in the first steps (timm ModelEmaV3 warm-up)")
    teacher: str | None = _f(
        None, "distil from this model: a release dir, a run dir or checkpoint of ours, or timm/NAME=WEIGHTS_FILE"
    )
    distill: str = _f(
        "soft",
        "distillation target: soft (KL to the teacher's tempered softmax) or hard (its argmax)",
        choices=DISTILL_CHOICES,
    )
    distill_alpha: float = _f(0.5, "weight of the distillation term; 1 - alpha goes to the label loss")
    distill_tau: float = _f(1.0, "temperature of the soft distillation")
    # --- run -----------------------------------------------------------------------------------------------------
    stop_epoch: int | None = _f(
        None, "stop (checkpointed) after this epoch; a later run with --resume continues the same schedule"
    )
    output: str = _f("runs", "parent directory of run directories")
    experiment: str | None = _f(None, "run directory name (default: <model>-<time>); an existing one resumes")
    resume: str | None = _f(None, "resume from this checkpoint, or 'auto': the newest good one in the run dir")
    amp: str = _f(
        "auto", "precision: auto = bf16 on CPUs with bf16 units, fp16 on CUDA; fp32 = none", choices=AMP_CHOICES
    )
    device: str = _f("auto", "cpu, cuda, cuda:N or auto")
    attention: str = _f(
        "auto",
        "attention kernel: auto = the measured-fastest for the device and precision (explicit matmuls in "
        "cache-sized tiles for bf16 training on CPU, fused SDPA otherwise; crossvit.runtime.fast.pick_attention)",
        choices=("auto", "sdpa", "math", "tiled"),
    )
    seed: int = _f(0, "random seed (offset by rank)")
    threads: int | None = _f(
        None, "torch CPU threads per process (default: torch's choice; 1 is fastest for tiny models on busy CPUs)"
    )
    log_interval: int = _f(50, "steps between log lines when not on a terminal")
    tensorboard: bool = _f(True, "write TensorBoard scalars to the run dir")
    save_release: bool = _f(True, "write the release dir (model.safetensors + config.json) at the end")
    dist_timeout: float = _f(600.0, "seconds a rank waits for the others before the process group fails")
    skip_nonfinite: int = _f(0, "skip up to this many steps whose loss is NaN/inf (default 0: stop at the first)")
    label_names: list | None = _f(None, "class names (default: folder names)", nargs="+", type=str)

    # ---------------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @property
    def mixup_active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def resolved_aug_repeats(self) -> int:
        if self.aug_repeats is not None:
            return self.aug_repeats
        return 3 if self.model.startswith("crossvit_18") else 0

    def resolved_lr(self, world_size: int) -> float:
        if self.lr is not None:
            return self.lr
        return self.lr_base * self.global_batch(world_size) / self.lr_base_size

    def global_batch(self, world_size: int) -> int:
        """Images per optimizer step over all processes (micro-batch x accumulation steps x processes)."""
        return self.batch_size * self.grad_accum_steps * world_size

    @property
    def multi_label(self) -> bool:
        return bool(self.labels_csv)

    @property
    def resolved_final_tta(self) -> str:
        """The TTA of the run's last validation: --final-tta, or --tta where it says same."""
        return self.tta if self.final_tta == "same" else self.final_tta

    @property
    def resolved_loss(self) -> str:
        return ("bce" if self.multi_label else "ce") if self.loss == "auto" else self.loss

    def validate(self) -> None:
        """Check options before any work starts; errors name the option."""
        for f in dataclasses.fields(self):  # argparse checks choices on the command line; a YAML recipe skips it
            allowed = f.metadata.get("choices")
            value = getattr(self, f.name)
            if allowed is not None and value not in allowed:
                flag = (f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),))[0]
                raise ValueError(f"{flag}: must be one of {', '.join(map(str, allowed))}, got {value!r}")

        if is_timm_name(self.model):
            TimmConfig.for_name(self.model)  # a name timm does not know -> ValueError naming --model
        else:
            resolve_name(self.model)  # unknown model -> ValueError with close matches
        checks = [
            (self.epochs >= 1, "--epochs", f"must be >= 1, got {self.epochs}"),
            (
                0 <= self.warmup_epochs <= self.epochs,
                "--warmup-epochs",
                f"must be in [0, --epochs={self.epochs}], got {self.warmup_epochs}",
            ),
            (self.batch_size >= 1, "--batch-size", f"must be >= 1, got {self.batch_size}"),
            (self.lr is None or self.lr > 0, "--lr", f"must be > 0, got {self.lr}"),
            (self.lr_base > 0 and self.lr_base_size > 0, "--lr-base", "--lr-base and --lr-base-size must be > 0"),
            (self.weight_decay >= 0, "--weight-decay", f"must be >= 0, got {self.weight_decay}"),
            (0 <= self.smoothing < 1, "--smoothing", f"must be in [0, 1), got {self.smoothing}"),
            (0 <= self.reprob <= 1, "--reprob", f"must be in [0, 1], got {self.reprob}"),
            (self.recount >= 1, "--recount", f"must be at least 1, got {self.recount}"),
            (self.mixup >= 0 and self.cutmix >= 0, "--mixup/--cutmix", "alphas must be >= 0"),
            (0 <= self.drop_path < 1, "--drop-path", f"must be in [0, 1), got {self.drop_path}"),
            (0 < self.crop_pct <= 1, "--crop-pct", f"must be in (0, 1], got {self.crop_pct}"),
            (self.workers >= 0, "--workers", f"must be >= 0, got {self.workers}"),
            (self.aug_repeats is None or self.aug_repeats >= 0, "--aug-repeats", "must be >= 0"),
            (self.threads is None or self.threads >= 1, "--threads", f"must be >= 1, got {self.threads}"),
            (self.dist_timeout > 0, "--dist-timeout", "must be > 0 seconds"),
            (self.skip_nonfinite >= 0, "--skip-nonfinite", f"must be >= 0, got {self.skip_nonfinite}"),
            (self.val_fraction is None or self.val_fraction > 0, "--val-split-size", "must be > 0"),
            (self.crop_pad >= 0, "--crop-pad", f"must be >= 0, got {self.crop_pad}"),
            (0 <= self.distill_alpha <= 1, "--distill-alpha", f"must be in [0, 1], got {self.distill_alpha}"),
            (self.distill_tau > 0, "--distill-tau", f"must be > 0, got {self.distill_tau}"),
            (self.grad_accum_steps >= 1, "--grad-accum-steps", f"must be >= 1, got {self.grad_accum_steps}"),
            (
                self.layer_decay is None or 0 < self.layer_decay <= 1,
                "--layer-decay",
                f"must be in (0, 1] (0.75 is usual; 1 = no decay), got {self.layer_decay}",
            ),
            (0 < self.threshold < 1, "--threshold", f"must be in (0, 1), got {self.threshold}"),
        ]
        for ok, option, why in checks:
            if not ok:
                raise ValueError(f"{option}: {why}")
        if self.compile_mode != "default" and not self.compile:
            raise ValueError(f"--compile-mode {self.compile_mode}: applies to a compiled step; add --compile")
        if self.time_budget is not None:
            parse_duration(self.time_budget, "--time-budget")
        if self.aa:  # before any data is read; the per-image pipeline builds the same policy later
            auto_augment_policy(self.aa, 32, (0.5, 0.5, 0.5), "bicubic")
        check_parts(self.freeze)
        if self.multi_label and self.loss == "ce":
            raise ValueError("--loss ce: multi-label data (--labels-csv) has several labels per image; use --loss bce")
        if self.mixup_active and self.mixup_prob > 0 and self.batch_size % 2:
            raise ValueError(
                f"--batch-size: mixup/cutmix pair images within a batch and need an even batch size, got "
                f"{self.batch_size}; use {self.batch_size + 1} or turn them off with --mixup 0 --cutmix 0"
            )
        if self.mixup_active and self.batch_size < 2:
            raise ValueError("--batch-size: mixup/cutmix need at least 2 images per batch")
        if is_timm_name(self.model):  # CrossViT-only options name parts and depths a timm model lacks
            for flag, given in (("--freeze", self.freeze), ("--linear-probe", self.linear_probe),
                                ("--layer-decay", self.layer_decay)):  # fmt: skip
                if given:
                    raise ValueError(f"{flag}: applies to CrossViT models, not to --model {self.model}")
        elif self.model_args:
            try:  # on the named model's config: its fields decide what an override may combine with
                base = get_entry(self.model).cfg
            except ValueError:  # an unknown name is reported where the model is built, with suggestions
                base = CrossViTConfig()
            try:
                base.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.model_args.items()})
            except (TypeError, ValueError) as e:
                raise ValueError(f"model_args: {e}") from None


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str | float | int, option: str = "duration") -> float:
    """'30m', '2h', '1h30m', '90s', '45' (seconds) -> seconds; a clear error naming ``option`` otherwise."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
        if not m or not any(m.groups()):
            raise ValueError(f"{option}: {text!r} is not a duration like 30m, 2h, 1h30m or 900s")
        seconds = sum(float(v) * u for v, u in zip(m.groups(), _UNITS.values()) if v)
    if seconds <= 0:
        raise ValueError(f"{option}: must be longer than 0 seconds, got {text!r}")
    return seconds
