"""Data for training and evaluation: bundled digits, ImageFolder trees, tar shards; robust image reading."""

from ..io.images import BadImageError, load_image
from .build import Data, build_data
from .digits import digits_datasets
from .folder import FolderDataset, scan_folder, split_samples
from .images import BadImagePolicy
from .memory import InMemoryDataset, cache_dataset
from .shards import ShardDataset, write_shards

__all__ = [
    "BadImageError",
    "BadImagePolicy",
    "Data",
    "FolderDataset",
    "InMemoryDataset",
    "ShardDataset",
    "build_data",
    "cache_dataset",
    "digits_datasets",
    "load_image",
    "scan_folder",
    "split_samples",
    "write_shards",
]
