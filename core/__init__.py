"""Shared machinery for every task: the runners' base, loading, device/dtype placement, batching, windows,
checks, seeding.

The names below load their module on first use, so that importing one small module of core (say
core.checks) does not import the model-loading code and transformers with it.
"""

import importlib

_EXPORTS = {
    "ModelLoadError": "core.loading", "load_model": "core.loading", "load_tokenizer": "core.loading",
    "Placement": "core.device", "place_model": "core.device", "resolve_device": "core.device",
    "resolve_dtype": "core.device", "set_seed": "core.seed", "sorted_batches": "core.batching",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = sorted(_EXPORTS)
