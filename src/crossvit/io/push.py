"""``push_to_hub``: upload a release (or a model) to the Hugging Face Hub, with a card that names the repo.

    crossvit.push_to_hub("runs/x/release", "me/crossvit-digits")      # token from `hf auth login` / HF_TOKEN
    crossvit.from_pretrained("me/crossvit-digits")

One commit holds ``config.json``, ``model.safetensors`` and a ``README.md`` written for the repo id (its usage
snippet loads ``repo_id``); the local release is left as it is.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import huggingface_hub

from ..models.model import CrossViT
from .hub import CONFIG_NAME, WEIGHTS_NAME, load_config, save_pretrained
from .model_card import CARD_NAME, card_text
from .weights import file_sha256


def push_to_hub(
    source: str | Path | CrossViT,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload CrossViT release",
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload the release ``source`` to it; returns the commit URL."""
    if isinstance(source, CrossViT):
        with tempfile.TemporaryDirectory() as tmp:
            return push_to_hub(save_pretrained(source, tmp), repo_id, token, private, commit_message, revision)
    d = Path(source)
    if not (d / CONFIG_NAME).is_file() or not (d / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{d}: not a release directory ({CONFIG_NAME} + {WEIGHTS_NAME})")
    config = load_config(d / CONFIG_NAME)
    expected = config.get("weights_sha256")
    if expected and file_sha256(d / WEIGHTS_NAME) != expected:  # never publish a damaged pair
        raise ValueError(f"{d / WEIGHTS_NAME}: its sha256 differs from the one {d / CONFIG_NAME} records")
    card = card_text(config, repo_id).encode()
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    ops = [
        huggingface_hub.CommitOperationAdd(path_in_repo=CONFIG_NAME, path_or_fileobj=str(d / CONFIG_NAME)),
        huggingface_hub.CommitOperationAdd(path_in_repo=WEIGHTS_NAME, path_or_fileobj=str(d / WEIGHTS_NAME)),
        huggingface_hub.CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card),
    ]
    info = api.create_commit(repo_id, ops, commit_message=commit_message, repo_type="model", revision=revision)
    return str(getattr(info, "commit_url", info))


__all__ = ["push_to_hub"]
