"""Training, fine-tuning and evaluation. The Python API mirrors the CLI:

from crossvit.train import TrainConfig, train, validate
result = train(TrainConfig(data="data/", epochs=30))            # crossvit train data/ --epochs 30
metrics = validate(result["release_dir"], "data/")               # crossvit validate RUN/release data/
"""

from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "train", "validate", "finetune_config"]


def __getattr__(name: str):  # lazy: importing crossvit.train stays cheap
    if name == "validate":
        from .validation import validate

        return validate
    if name == "finetune_config":
        from .cli_finetune import finetune_config

        return finetune_config
    raise AttributeError(name)
