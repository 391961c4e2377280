"""Any timm architecture as a model of this package, so that a CNN teacher is trained, checkpointed, resumed,
released and loaded exactly as a CrossViT is:

    crossvit train DATA --model timm/resnet18 --img-size 32
    crossvit train DATA --model timm/resnet18 --model-args '{"stem_type": "deep"}'   # keyword arguments for timm

The weights live under ``net.`` inside checkpoints; a release holds the timm model's own state dict and a
``config.json`` in timm's hub layout, so ``timm.create_model(NAME, pretrained=True,
pretrained_cfg_overlay=dict(file=".../model.safetensors"))`` reads it too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import timm
from torch import Tensor, nn

from .model import Predicts
from .registry import PretrainedCfg

TIMM_PREFIX = "timm/"


def is_timm_name(name: str | None) -> bool:
    """True for ``timm/NAME``: an architecture built by timm, not one of the CrossViTs registered here."""
    return bool(name) and name.startswith(TIMM_PREFIX)


@dataclass(frozen=True)
class TimmConfig:
    """What builds a timm classifier: the fields CrossViTConfig also has (sizes, classes, drop rates) + timm kwargs."""

    name: str  # timm's name, without the "timm/" prefix
    img_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    num_classes: int = 1000
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    model_args: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model as they are

    # CrossViT-only notions, so code that reads a model's cfg needs no special case
    num_encoders = None
    single_branch = False
    dynamic_img_size = False

    def replace(self, **changes: Any) -> TimmConfig:
        if "img_size" in changes and isinstance(changes["img_size"], int):
            changes["img_size"] = (changes["img_size"],) * 2
        known = {f.name for f in dataclasses.fields(self)}
        timm_args = {k: changes.pop(k) for k in list(changes) if k not in known}
        return dataclasses.replace(self, **changes, model_args={**self.model_args, **timm_args})

    def with_overrides(self, **changes: Any) -> TimmConfig:
        """``replace`` that ignores options given as None (the unset arguments of loaders)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return self.replace(**changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimmConfig:
        return cls(**{**d, "img_size": tuple(d.get("img_size", (224, 224)))})

    @classmethod
    def for_name(cls, name: str) -> TimmConfig:
        """The config of ``timm/NAME`` at timm's default input size; refuses a name timm does not know."""
        bare = name[len(TIMM_PREFIX) :] if is_timm_name(name) else name
        if not timm.is_model(bare):
            raise ValueError(f"--model {TIMM_PREFIX}{bare}: timm has no model of that name (see timm.list_models())")
        default = timm.get_pretrained_cfg(bare)
        size = default.input_size if default is not None else (3, 224, 224)
        return cls(bare, img_size=tuple(size[1:]), in_chans=int(size[0]))


class TimmClassifier(Predicts, nn.Module):
    """A timm model with the attributes the rest of the package reads (``cfg``, ``num_classes``, ``architecture``)."""

    def __init__(self, cfg: TimmConfig, pretrained_cfg: PretrainedCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.pretrained_cfg = pretrained_cfg  # the preprocessing it was trained with (None: ImageNet's)
        self.architecture = TIMM_PREFIX + cfg.name
        kwargs: dict[str, Any] = dict(num_classes=cfg.num_classes, in_chans=cfg.in_chans, drop_rate=cfg.drop_rate)
        if cfg.drop_path_rate:  # not every timm family has stochastic depth; asked for, it must exist
            kwargs["drop_path_rate"] = cfg.drop_path_rate
        default = timm.get_pretrained_cfg(cfg.name)
        if default is not None and tuple(default.input_size[1:]) != tuple(cfg.img_size):
            kwargs["img_size"] = cfg.img_size  # transformers fix their grid; retried without for CNNs below
        kwargs.update(cfg.model_args)
        try:
            self.net = timm.create_model(cfg.name, **kwargs)
        except TypeError as e:
            if "img_size" not in kwargs or "img_size" in cfg.model_args or "img_size" not in str(e):
                raise ValueError(f"--model {self.architecture}: timm refused {sorted(kwargs)}: {e}") from None
            kwargs.pop("img_size")  # a CNN: any input size, no img_size argument
            self.net = timm.create_model(cfg.name, **kwargs)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """A new head of ``num_classes`` (freshly initialised) where the class count changes."""
        if num_classes != self.cfg.num_classes:
            self.net.reset_classifier(num_classes)
            self.cfg = self.cfg.replace(num_classes=num_classes)

    def load_weights(self, state_dict: dict[str, Tensor], source: str) -> None:
        """timm's state dict of this architecture; a mismatch raises ValueError naming ``source``."""
        try:
            self.net.load_state_dict(state_dict)
        except RuntimeError as e:
            first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
            raise ValueError(f"{source}: not weights of {self.architecture} ({first[:300]})") from None

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, num_classes)


__all__ = ["TIMM_PREFIX", "TimmClassifier", "TimmConfig", "is_timm_name"]
