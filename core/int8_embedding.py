"""int8 word embeddings: the last float32 weights of an int8 model.

Dynamic quantization reaches linear layers only, so an int8 model kept its word embeddings in float32:
distilbert's 23 M embedding weights (94 MB) outweighed its 66 MB of int8 linear layers, and an int8
encoder held 0.58-0.60x a float32 one's memory. Here each row is stored as int8 with one float32 scale
(symmetric, the row's largest magnitude maps to 127); a lookup reads the chosen rows and scales them
back. The error per value is at most half a step (max|row| / 254), far below the int8 linear layers'.
"""

from __future__ import annotations

import torch
from torch import nn


class Int8Embedding(nn.Module):
    """A lookup table of int8 rows, each with a float32 scale; answers in float32 like the table it replaces.

    output_scale: the factor the replaced module multiplied its rows by (transformers' ScaledWordEmbedding
    classes: sqrt(d_model) for BART, Marian, M2M100 when configured so; 1.0 for a plain nn.Embedding).
    """

    def __init__(self, rows: torch.Tensor, scales: torch.Tensor, padding_idx: int | None, output_scale: float):
        super().__init__()
        self.register_buffer("rows", rows)
        self.register_buffer("scales", scales)
        self.num_embeddings, self.embedding_dim = rows.shape
        self.padding_idx = padding_idx
        self.output_scale = output_scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        flat = input_ids.reshape(-1)
        values = self.rows.index_select(0, flat).to(torch.float32) * self.scales.index_select(0, flat)
        if self.output_scale != 1.0:
            values = values * self.output_scale
        return values.view(*input_ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 rows"


def output_scale_of(module: nn.Module) -> float | None:
    """The factor `module`'s forward applies to its rows, or None when its forward is not a plain lookup.

    A plain nn.Embedding returns its rows; transformers' *ScaledWordEmbedding classes (BART, M2M100,
    MBart, ...) return them times `embed_scale`. Any other subclass (learned or sinusoidal positions)
    does its own work and is left alone, as is a table with max_norm (a lookup that rewrites rows).
    """
    if getattr(module, "max_norm", None) is not None:
        return None
    if type(module) is nn.Embedding:
        return 1.0
    if isinstance(module, nn.Embedding) and type(module).__name__.endswith("ScaledWordEmbedding"):
        scale = getattr(module, "embed_scale", None)
        return 1.0 if scale is None else float(scale)
    return None


def quantize_word_embeddings(model: nn.Module) -> nn.Module:
    """Replace the model's word embeddings (every module sharing the input embeddings' weight: BART's
    encoder, decoder and shared table are one) by Int8Embedding; other embedding tables stay float."""
    getter = getattr(model, "get_input_embeddings", None)
    try:
        table = getter() if getter is not None else None
    except (AttributeError, NotImplementedError):
        table = None
    weight = getattr(table, "weight", None)
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        return model
    sharing = [(name, module) for name, module in model.named_modules(remove_duplicate=False)
               if isinstance(module, nn.Embedding) and module.weight is weight]
    if not sharing or any(output_scale_of(module) is None for _, module in sharing):
        return model
    rows, scales = quantize_rows(weight)
    for name, module in sharing:
        _replace_module(model, name, Int8Embedding(rows, scales, module.padding_idx, output_scale_of(module)))
    return model


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A float (rows, dim) table as int8 rows and a float32 scale per row (symmetric: max|row| -> 127)."""
    with torch.no_grad():
        weight = weight.detach().to(torch.float32)
        largest = weight.abs().amax(dim=1, keepdim=True)
        scales = torch.where(largest > 0, largest / 127.0, torch.ones_like(largest))
        rows = torch.round(weight / scales).clamp_(-127, 127).to(torch.int8)
    return rows, scales


def _replace_module(model: nn.Module, dotted_name: str, replacement: nn.Module) -> None:
    """Set the submodule at `dotted_name` (e.g. "model.encoder.embed_tokens") to `replacement`."""
    parent_name, _, child_name = dotted_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, replacement)
