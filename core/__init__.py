"""Shared machinery for every task: loading, device/dtype placement, batching and seeding."""

from core.batching import sorted_batches
from core.device import Placement, place_model, resolve_device, resolve_dtype
from core.loading import ModelLoadError, load_model, load_tokenizer
from core.seed import set_seed

__all__ = [
    "ModelLoadError",
    "Placement",
    "load_model",
    "load_tokenizer",
    "place_model",
    "resolve_device",
    "resolve_dtype",
    "set_seed",
    "sorted_batches",
]
