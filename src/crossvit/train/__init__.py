"""Training, fine-tuning and evaluation. The Python API mirrors the CLI:

from crossvit.train import TrainConfig, train, validate
result = train(TrainConfig(data="data/", epochs=30))            # crossvit train data/ --epochs 30
metrics = validate(result["release_dir"], "data/")               # crossvit validate RUN/release data/
"""

from .config import TrainConfig
from .finetune import finetune_config
from .trainer import train
from .validation import validate

__all__ = ["TrainConfig", "train", "validate", "finetune_config"]
