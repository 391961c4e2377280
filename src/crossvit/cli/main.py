"""The ``crossvit`` command. Each subcommand lives in its own module with ``add_arguments`` and ``main``.

crossvit info                  # params / GMACs of the paper's models vs its tables
crossvit demo                  # train + evaluate + predict a small CrossViT on bundled data, in minutes
crossvit <command> --help
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help). Modules are imported only for the command that runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("crossvit.cli.info", "params and GMACs of models next to the paper's tables"),
    "demo": ("crossvit.train.demo", "train, evaluate and predict a small CrossViT on bundled data"),
    "train": ("crossvit.cli.train", "train from scratch (DeiT recipe, as in the paper)"),
    "finetune": ("crossvit.cli.finetune", "fine-tune released or own weights to new classes / size"),
    "validate": ("crossvit.cli.validate", "top-1/top-5, per-class and single-branch accuracy"),
    "plot": ("crossvit.train.plot", "PNG curves of a run directory"),
    "predict": ("crossvit.cli.predict", "top-k classes for images, folders and globs"),
    "attention": ("crossvit.cli.attention", "draw cross-attention maps of an image"),
    "export": ("crossvit.cli.export", "export to ONNX, TorchScript or an fp16 release, checked against PyTorch"),
    "benchmark": ("crossvit.cli.benchmark", "speed and memory against timm and other runtimes"),
    "quantize": ("crossvit.cli.quantize", "int8 post-training quantization (NNCF, OpenVINO) into a release"),
    "serve": ("crossvit.serve.cli", "HTTP server (batched) and web page: predictions and attention maps"),
}


# commands whose module imports an optional dependency (pyproject's extras)
EXTRAS: dict[str, str] = {"serve": "serve", "quantize": "int8", "export": "export"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossvit", description="CrossViT models, training and tools")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        parser = build_parser(command)
    except ModuleNotFoundError as e:
        if command and e.name and e.name.startswith("crossvit"):
            print(f"crossvit {command}: not available in this version ({e.name} is missing)", file=sys.stderr)
            return 2
        if command in EXTRAS and e.name:  # an optional dependency of this command
            print(f"crossvit {command}: needs {e.name}: pip install 'crossvit[{EXTRAS[command]}]'", file=sys.stderr)
            return 2
        raise
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).main(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"crossvit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crossvit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
