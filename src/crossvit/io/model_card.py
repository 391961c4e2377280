"""The model card of a release: ``README.md`` with the YAML front matter the Hugging Face Hub reads.

    text = card_text(config, source="user/crossvit-digits")    # config: the release's config.json as a dict
    huggingface_hub.ModelCard(text).data.pipeline_tag          # 'image-classification'

Everything in the card comes from the release's ``config.json``: the architecture (``crossvit_config``), params and
GMACs (``model_stats``, counted by :mod:`crossvit.models.flops` when the release is written), the label names, and
the training run (``training``: recipe and measured accuracy, recorded by the trainer). So a card can be written
again anywhere the release is copied or uploaded, naming the place it will be loaded from.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..models.config import CrossViTConfig
from ..models.flops import count_macs, count_params
from ..models.registry import get_entry, list_models
from ..models.single import build_model
from ..models.timm_model import TimmConfig

CARD_NAME = "README.md"
PAPER = "CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification"
ARXIV = "https://arxiv.org/abs/2103.14899"
BIBTEX = """@inproceedings{chen2021crossvit,
  title     = {{CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification}},
  author    = {Chen, Chun-Fu Richard and Fan, Quanfu and Panda, Rameswar},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2021}
}"""
# TrainConfig fields a card states, with their labels
RECIPE = (
    ("model", "model"), ("initial_checkpoint", "initial weights"), ("pretrained", "released ImageNet weights"),
    ("data_description", "data"), ("train_images", "training images"), ("val_images", "validation images"),
    ("val_fraction", "validation split (--val-split-size)"), ("epochs", "epochs"),
    ("batch_size", "batch size (per process)"), ("world", "processes"), ("opt", "optimizer"),
    ("lr", "learning rate"), ("weight_decay", "weight decay"), ("warmup_epochs", "warm-up epochs"),
    ("smoothing", "label smoothing"), ("aa", "RandAugment"), ("mixup", "mixup"), ("cutmix", "cutmix"),
    ("reprob", "random erasing"), ("drop_path", "drop-path rate"), ("model_ema", "EMA weights"),
    ("amp", "precision"), ("seed", "seed"), ("time_budget", "time budget"), ("teacher", "distilled from"),
    ("tta", "test-time augmentation"),
)  # fmt: skip
RECIPE_KEYS = frozenset(k for k, _ in RECIPE)
MAX_LISTED_LABELS = 100


def _storage(weights_dtype: str) -> list[str]:
    """A line for weights stored below fp32 (older releases have no ``weights_dtype``: fp32)."""
    if weights_dtype == "fp32":
        return []
    return ["", f"The weights are stored in {weights_dtype} (half the file); they load into an fp32 model."]


def model_stats(model) -> dict[str, float]:
    """Params (M) and GMACs of one image at the model's input size."""
    return {"params_m": round(count_params(model) / 1e6, 3), "gmacs": round(count_macs(model) / 1e9, 4)}


def stats_of_config(cfg: CrossViTConfig | TimmConfig) -> dict[str, float]:
    """The same counts from an architecture alone (a randomly initialised copy: counts do not depend on weights)."""
    return model_stats(build_model(cfg))


def _timm_has(arch: str) -> bool:
    import timm  # optional at import time: only the card's tag depends on it

    return arch in timm.list_models("crossvit_*")


def card_data(config: dict[str, Any]) -> ModelCardData:
    arch = config.get("architecture", "crossvit")
    if "timm_config" in config:  # a timm architecture trained here
        tags = ["image-classification", "timm"]
    else:
        tags = ["image-classification", "vision-transformer", "crossvit"] + (["timm"] if _timm_has(arch) else [])
    train = config.get("training") or {}
    datasets = [train["dataset_id"]] if train.get("dataset_id") else None
    evals = None
    if train.get("top1") is not None:
        ds_name = train.get("data_description") or "validation split"
        ds_type = train.get("dataset_id") or "imagefolder"
        evals = [
            EvalResult(task_type="image-classification", dataset_type=ds_type, dataset_name=ds_name,
                       dataset_split="validation", metric_type="accuracy", metric_name=f"top-{k}",
                       metric_value=round(float(train[f"top{k}"]), 3))
            for k in (1, 5) if train.get(f"top{k}") is not None
        ]  # fmt: skip
    return ModelCardData(
        library_name="crossvit",
        license=train.get("license", "apache-2.0"),
        pipeline_tag="image-classification",
        tags=tags,
        datasets=datasets,
        metrics=["accuracy"] if evals else None,
        eval_results=evals,
        model_name=arch,
    )


def _architecture(cfg: CrossViTConfig, arch: str) -> list[str]:
    desc = get_entry(arch).description if arch in list_models() else "a CrossViT configuration of its own"
    names = ("S (small patches)", "L (large patches)")
    rows = ["| branch | input (px) | patch | patch grid | width | heads | MLP ratio |", "|---|---|---|---|---|---|---|"]
    branches = [1] if cfg.single_branch else [0, 1]
    for b in branches:
        (h, w), (gh, gw) = cfg.branch_img_size[b], cfg.grid_size[b]
        rows.append(
            f"| {names[b]} | {h}x{w} | {cfg.patch_size[b]} | {gh}x{gw} | {cfg.embed_dim[b]} | {cfg.num_heads[b]} "
            f"| {cfg.mlp_ratio[b]:g} |"
        )
    layout = (
        f"single branch (the L branch alone, {cfg.num_encoders * cfg.large_depth} blocks)"
        if cfg.single_branch
        else f"K={cfg.num_encoders} multi-scale encoders of N={cfg.small_depth} S-branch and M={cfg.large_depth} "
        f"L-branch blocks, fused by `{cfg.fusion}` (L={cfg.cross_depth})"
    )
    return [
        f"`{arch}`: {desc}. A dual-branch vision transformer from [{PAPER}]({ARXIV}) (Chen, Fan, Panda, ICCV "
        f"2021): {layout}; {'CLS tokens' if cfg.cls_token else 'no CLS tokens'}, "
        f"{_tokenizer(cfg)}, input {cfg.img_size[0]}x{cfg.img_size[1]} px.",
        "",
        *rows,
    ]


def _tokenizer(cfg: CrossViTConfig) -> str:
    if cfg.stem_dims:
        stages = ", ".join(f"{d} x {c} channels" for c, d in zip(cfg.stem_dims, cfg.stem_stage_depths))
        return (
            f"a convolutional tokenizer shared by both branches (3x3 convolutions by stage: {stages}; "
            f"stride {cfg.stem_stride}) under linear patch embeddings"
        )
    return f"{'three-convolution' if cfg.multi_conv else 'linear'} patch embedding"


def _timm_architecture(cfg: TimmConfig) -> list[str]:
    args = f", **{cfg.model_args}" if cfg.model_args else ""
    return [
        f"`timm/{cfg.name}`: timm's architecture (`timm.create_model({cfg.name!r}{args})`), trained with crossvit's "
        f"pipeline; input {cfg.img_size[0]}x{cfg.img_size[1]} px."
    ]


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _training(train: dict[str, Any], source: str) -> list[str]:
    if not train:
        return ["This release records no training run (recipe and accuracy unknown)."]
    if train.get("note"):
        top1 = f": ImageNet-1k top-1 **{train['top1']:.2f} %**" if train.get("top1") is not None else ""
        return [f"Weights: {train['note']}{top1}."]
    rows = ["| setting | value |", "|---|---|"]
    rows += [f"| {label} | {_fmt(train[key])} |" for key, label in RECIPE if key in train]
    out = ["Recipe, as the training run recorded it:", "", *rows, ""]
    if train.get("top1") is not None:
        best = f" (best epoch {train['best_top1']:.2f} %)" if train.get("best_top1") is not None else ""
        top5 = f", top-5 {train['top5']:.2f} %" if train.get("top5") is not None else ""
        out.append(
            f"Measured at the end of the run on its validation split ({_fmt(train.get('val_images'))} images): "
            f"top-1 **{train['top1']:.2f} %**{top5}{best}."
        )
        if train.get("val_fraction") is not None and train.get("data_description"):
            # the split is chosen by file name, so the same folder gives the same images on any machine
            tta = f" --tta {train['tta']}" if train.get("tta") not in (None, "none") else ""
            amp = " --amp auto" if train.get("amp") in ("bf16", "fp16") else ""  # bf16 only where the CPU has it
            out += [
                "",
                "To measure it again (the same carved split, the release's stored weights):",
                "",
                f"    crossvit validate {train['data_description']} --checkpoint {source} "
                f"--val-split-size {_fmt(train['val_fraction'])}{tta}{amp}",
            ]
    else:
        out.append("The run had no validation split: no accuracy was measured.")
    return out


def snippet(config: dict[str, Any], source: str) -> str:
    """Python that loads the release from ``source`` and classifies one image; it runs as written."""
    h, w = (config.get("crossvit_config") or config["timm_config"])["img_size"]
    k = min(3, int(config.get("num_classes", 1)))
    return (
        "import crossvit\n"
        "from PIL import Image\n\n"
        f"model = crossvit.from_pretrained({source!r}).eval()\n"
        f'image = Image.new("RGB", ({w}, {h}), "gray")  # your picture: Image.open("photo.jpg").convert("RGB")\n'
        f"print(model.predict([image], topk={k}))\n"
    )


def card_text(config: dict[str, Any], source: str) -> str:
    """The whole README.md for a release's ``config`` that users load from ``source`` (a hub id or a path)."""
    timm_cfg = TimmConfig.from_dict(config["timm_config"]) if "timm_config" in config else None
    cfg = timm_cfg or CrossViTConfig.from_dict(config["crossvit_config"])
    arch = config.get("architecture", "crossvit")
    stats = config.get("model_stats") or stats_of_config(cfg)
    labels = config.get("label_names")
    n = int(config.get("num_classes", cfg.num_classes))
    if labels and len(labels) <= MAX_LISTED_LABELS:
        label_text = f"{n} classes, in output order: " + ", ".join(f"`{x}`" for x in labels) + "."
    elif labels:
        label_text = f"{n} classes; their names are `label_names` in `config.json`."
    else:
        label_text = f"{n} classes; the release names none (outputs are class indices)."
    body = [
        f"# {arch}",
        "",
        "## Model",
        "",
        *(_timm_architecture(timm_cfg) if timm_cfg else _architecture(cfg, arch)),
        "",
        f"**{stats['params_m']:.2f} M parameters, {stats['gmacs']:.3f} GMACs** per {cfg.img_size[0]}x"
        f"{cfg.img_size[1]} image (multiply-accumulates of every convolution, linear layer and attention product).",
        *_storage(config.get("weights_dtype", "fp32")),
        "",
        "## Training",
        "",
        *_training(config.get("training") or {}, source),
        "",
        "## Labels",
        "",
        label_text,
        "",
        "## Usage",
        "",
        "```python",
        snippet(config, source).rstrip("\n"),
        "```",
        "",
        "Files: `model.safetensors` (timm's key layout) and `config.json` (timm's fields plus the full architecture).",
        "",
        "## Citation",
        "",
        "```bibtex",
        BIBTEX,
        "```",
        "",
    ]
    text = f"---\n{card_data(config).to_yaml()}\n---\n\n" + "\n".join(body)
    ModelCard(text)  # parses the front matter as the Hub will: a card it cannot read is an error now
    return text


def usage_code(text: str) -> str:
    """The Python block under the card's Usage heading."""
    part = text.split("## Usage", 1)[1]
    return part.split("```python\n", 1)[1].split("```", 1)[0]


__all__ = ["CARD_NAME", "card_data", "card_text", "model_stats", "snippet", "stats_of_config", "usage_code"]
