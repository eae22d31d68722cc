"""Seeding that matches `transformers.set_seed`, so sampled outputs can be compared with it."""

import os
import random

import numpy as np
import torch


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed `random`, numpy and torch (CPU and every CUDA device), like `transformers.set_seed`.

    Sampling draws from torch's global generator, so the same seed here and in transformers gives
    the same tokens when the logits and processor order are the same.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)  # a numpy int (say, from a config array) is the same seed as the Python int
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
