"""Running a model: loading it for inference, fast paths (bf16, torch.compile, OpenVINO, int8), prediction on
images, attention maps and export. Imports crossvit.models and crossvit.io."""

from ..models.model import register_runtime
from .fast import to_inference
from .prediction import predict

register_runtime(predict=predict, to_inference=to_inference)
