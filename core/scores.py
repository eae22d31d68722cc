"""Turning logits into scores, the way the pipelines do it.

The pipelines compute in float32 numpy with a max-shift before `exp`; `torch.softmax` does the same
shift, so scores agree to ~1e-7. Half-precision logits are cast to float32 first, as the pipelines do,
so a bfloat16 model does not return bfloat16-rounded probabilities.
"""

import torch

from core.choices import ACTIVATION_NAMES


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities over the last axis. `logits: (..., classes)` -> same shape, float32."""
    return torch.softmax(logits.float(), dim=-1)


def sigmoid(logits: torch.Tensor) -> torch.Tensor:
    """Independent per-class probabilities (multi-label and single-logit models)."""
    return torch.sigmoid(logits.float())


def identity(logits: torch.Tensor) -> torch.Tensor:
    """Raw logits, for regression heads whose outputs are values rather than classes."""
    return logits.float()


ACTIVATIONS = dict(zip(ACTIVATION_NAMES, (softmax, sigmoid, identity)))
