"""Model cards: every release has a README.md the Hub parses, with stats, recipe, accuracy and a working snippet."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard

import crossvit
from crossvit.data.synthetic import make_image_folder
from crossvit.io.model_card import usage_code
from crossvit.models.flops import count_macs, count_params
from crossvit.models.registry import get_pretrained_cfg
from crossvit.train import TrainConfig, train

TINY = dict(
    img_size=(48, 48), img_scale=(1.0, 32 / 48), patch_size=(12, 16), embed_dim=(24, 48), num_heads=(2, 2),
    mlp_ratio=(2.0, 2.0), num_encoders=2, large_depth=2, num_classes=3,
)  # fmt: skip
LABELS = ["cat", "astronaut", "coffee"]


def tiny(**kw) -> crossvit.CrossViT:
    return crossvit.CrossViT(crossvit.CrossViTConfig(**{**TINY, **kw})).eval()


def run_snippet(card_text: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(usage_code(card_text), "<model card snippet>", "exec"), {})
    return out.getvalue()


def test_save_pretrained_writes_a_card_the_hub_parses(tmp_path) -> None:
    model = tiny()
    d = crossvit.save_pretrained(model, tmp_path / "rel", label_names=LABELS)
    card = ModelCard.load(d / "README.md")
    meta = card.data.to_dict()
    assert meta["library_name"] == "crossvit" and meta["pipeline_tag"] == "image-classification"
    assert meta["license"] == "apache-2.0" and "crossvit" in meta["tags"]
    assert "metrics" not in meta  # no run: no accuracy claimed
    text = card.content
    m = re.search(r"\*\*([\d.]+) M parameters, ([\d.]+) GMACs\*\*", text)
    assert float(m.group(1)) == pytest.approx(count_params(model) / 1e6, abs=0.005)
    assert float(m.group(2)) == pytest.approx(count_macs(model) / 1e9, abs=0.0005)
    assert "`cat`, `astronaut`, `coffee`" in text and "2103.14899" in text
    assert "records no training run" in text
    printed = run_snippet(text)  # loads the release from its path and classifies an image
    assert any(name in printed for name in LABELS), printed


def test_card_names_the_tokenizer_the_model_has(tmp_path) -> None:
    plain = ModelCard.load(crossvit.save_pretrained(tiny(), tmp_path / "plain") / "README.md").content
    assert "linear patch embedding" in plain and "convolutional tokenizer" not in plain
    stem = tiny(img_size=(32, 32), img_scale=(1.0, 1.0), patch_size=(4, 8), stem_dims=(8, 16), stem_depths=(1, 2))
    text = ModelCard.load(crossvit.save_pretrained(stem, tmp_path / "stem") / "README.md").content
    assert "linear patch embedding," not in text
    assert "1 x 8 channels, 2 x 16 channels; stride 4" in text


def test_card_of_a_training_run_states_recipe_and_measured_accuracy(tmp_path) -> None:
    data = make_image_folder(tmp_path / "data", classes=3, per_class=4, size=16, val_per_class=2)
    arch = dict(img_size=[16, 16], img_scale=[1.0, 1.0], patch_size=[4, 8], embed_dim=[16, 32], num_heads=[2, 2],
                mlp_ratio=[1.0, 1.0], num_encoders=1, small_depth=1, large_depth=1)  # fmt: skip
    cfg = TrainConfig(
        data=str(data), model="crossvit_tiny_240", model_args=arch, epochs=1, warmup_epochs=0, batch_size=6,
        lr=1e-3, aa=None, workers=0, amp="fp32", tensorboard=False, output=str(tmp_path / "runs"),
        experiment="run", crop_pct=1.0,
    )  # fmt: skip
    r = train(cfg)
    card = ModelCard.load(Path(r["release_dir"]) / "README.md")
    res = card.data.eval_results
    assert [e.metric_name for e in res] == ["top-1", "top-5"]
    assert res[0].metric_value == pytest.approx(r["top1"], abs=1e-3) and card.data.metrics == ["accuracy"]
    assert f"top-1 **{r['top1']:.2f} %**" in card.content
    assert "| epochs | 1 |" in card.content and "| learning rate | 0.001 |" in card.content
    assert "| training images | 12 |" in card.content
    run_snippet(card.content)


def test_released_weights_card_names_imagenet(tmp_path) -> None:
    model = tiny(num_classes=1000)
    model.released_weights = get_pretrained_cfg("crossvit_9_240")  # as create_model(pretrained=True) marks it
    d = crossvit.save_pretrained(model, tmp_path / "rel")
    card = ModelCard.load(d / "README.md")
    assert card.data.datasets == ["imagenet-1k"] and card.data.eval_results[0].metric_value == 73.994
    model.reset_classifier(5)  # a new head: the ImageNet accuracy no longer applies
    card = ModelCard.load(crossvit.save_pretrained(model, tmp_path / "rel5") / "README.md")
    assert card.data.datasets is None and card.data.eval_results is None


class FakeHfApi:
    """Records what push_to_hub sends; a "repo" is a local directory."""

    repos: dict[str, Path] = {}
    root: Path

    def __init__(self, token=None) -> None:
        self.token = token

    def create_repo(self, repo_id, private=None, repo_type=None, exist_ok=False):
        self.repos.setdefault(repo_id, self.root / repo_id.replace("/", "--")).mkdir(parents=True, exist_ok=True)

    def create_commit(self, repo_id, operations, commit_message, repo_type=None, revision=None):
        for op in operations:
            src = op.path_or_fileobj
            data = src if isinstance(src, bytes) else Path(src).read_bytes()
            (self.repos[repo_id] / op.path_in_repo).write_bytes(data)
        return type("CommitInfo", (), {"commit_url": f"https://hf.co/{repo_id}/commit/1"})()


def test_push_to_hub_uploads_release_with_its_card(tmp_path, monkeypatch) -> None:
    FakeHfApi.root, FakeHfApi.repos = tmp_path / "hub", {}
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    d = crossvit.save_pretrained(tiny(), tmp_path / "rel", label_names=LABELS)
    before = (d / "README.md").read_text()
    url = crossvit.push_to_hub(d, "me/crossvit-tiny")
    repo = FakeHfApi.repos["me/crossvit-tiny"]
    assert url.endswith("/commit/1") and sorted(p.name for p in repo.iterdir()) == sorted(p.name for p in d.iterdir())
    assert (d / "README.md").read_text() == before  # the local release is untouched
    card = ModelCard.load(repo / "README.md")
    assert "from_pretrained('me/crossvit-tiny')" in card.content

    def fake_download(repo_id, filename, cache_dir=None, **kw) -> str:
        return str(FakeHfApi.repos[repo_id] / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    printed = run_snippet(card.content)  # the card's snippet, as written, loads the uploaded repo
    assert any(name in printed for name in LABELS)
    # a damaged release is refused before anything is uploaded
    cfg = json.loads((d / "config.json").read_text())
    cfg["weights_sha256"] = "0" * 64
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="sha256"):
        crossvit.push_to_hub(d, "me/other")
    assert "me/other" not in FakeHfApi.repos
    with pytest.raises(FileNotFoundError, match="not a release directory"):
        crossvit.push_to_hub(tmp_path, "me/other")


def test_push_a_model_object(tmp_path, monkeypatch) -> None:
    FakeHfApi.root, FakeHfApi.repos = tmp_path / "hub", {}
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    model = tiny()
    crossvit.push_to_hub(model, "me/m")
    assert torch.equal(crossvit.from_pretrained(FakeHfApi.repos["me/m"]).pos_embed[0], model.pos_embed[0])
