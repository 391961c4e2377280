"""From the command line and YAML files to a :class:`TrainConfig`: one flag per field, named as the field."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from .config import TrainConfig

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_optional_float(v: str) -> float | None:
    return None if v.lower() in ("none", "null") else float(v)


def add_train_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None) -> None:
    """One flag per :class:`TrainConfig` field (``model_args`` is YAML-only). Defaults are SUPPRESSed so that only
    the flags a user typed override the recipe."""
    shown = defaults or TrainConfig()
    parser.allow_abbrev = False  # --warmup-epoch must be an error, not a silent --warmup-epochs
    parser.add_argument("-c", "--config", metavar="YAML", help="YAML recipe; flags given here override it")
    for name, f in FIELDS.items():
        if name == "model_args":
            continue
        meta = f.metadata
        flags = list(meta.get("flags") or ()) or [_flag(name)]
        if name == "data":
            parser.add_argument("data", nargs="?", default=argparse.SUPPRESS, help=meta["help"])
            continue
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        default = getattr(shown, name)
        help_ = f"{meta['help']} (default: {default})"
        if f.type in ("bool",):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            if "nargs" in meta:
                kw["nargs"] = meta["nargs"]
                kw["type"] = meta["type"]
            elif "choices" in meta:
                kw["choices"] = meta["choices"]
            elif f.type in ("int", "int | None"):
                kw["type"] = int
            elif f.type == "float":
                kw["type"] = float
            elif f.type == "float | None":
                kw["type"] = _parse_optional_float
        parser.add_argument(*flags, help=help_, **kw)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe; unknown keys are an error that names them and the closest valid keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a mapping of option: value, found {type(data).__name__}")
    check_keys(data, str(path))
    return data


def check_keys(data: dict[str, Any], source: str) -> None:
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k).replace("-", "_"), list(FIELDS), n=3, cutoff=0.5)
            hints.append(f"{k!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ValueError(f"{source}: unknown option(s) {'; '.join(hints)}")


def resolve(
    args: argparse.Namespace | None = None, base: dict[str, Any] | None = None, **overrides: Any
) -> TrainConfig:
    """TrainConfig from defaults < ``base`` (a command's own defaults) < YAML (``args.config``) < flags < overrides."""
    values: dict[str, Any] = dict(base or {})
    ns = vars(args) if args is not None else {}
    if ns.get("config"):
        values.update(load_yaml(ns["config"]))
    values.update({k: v for k, v in ns.items() if k in FIELDS})
    values.update(overrides)
    check_keys(values, "options")
    if isinstance(values.get("aa"), str) and values["aa"].lower() in ("none", "null", ""):
        values["aa"] = None
    return TrainConfig(**values)
