"""How much work a case is, so that a throughput can be set against the machine's limit (benchmarks/machine.py).

Encoders are bound by arithmetic: a text of n tokens costs 2 FLOPs per weight of every linear layer
per token, plus the attention products (4 n^2 d per layer). Batch-1 decoding is bound by memory:
each new token reads every weight of every linear layer (the LM head included) once, 4 bytes each
in float32 and 1 in int8. Embedding lookups, norms and softmax are left out: they are small, so the
shares are slight overestimates of the work, never of the waste.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

BYTES_PER_WEIGHT = {"float32": 4, "int8": 1, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Shape:
    """What the work depends on: weights in linear layers, layers, width."""

    linear_weights: int
    layers: int
    width: int


@cache
def model_shape(folder: Path, head: str) -> Shape:
    """The model's Shape, counted on the meta device (no weights are read or allocated)."""
    import torch
    import transformers
    from transformers.pytorch_utils import Conv1D

    config = transformers.AutoConfig.from_pretrained(str(folder))
    with torch.device("meta"):
        model = getattr(transformers, head).from_config(config)
    weights = sum(module.weight.numel() for module in model.modules() if isinstance(module, torch.nn.Linear | Conv1D))
    layers = next(getattr(config, name) for name in ("num_hidden_layers", "n_layers", "n_layer", "num_layers")
                  if getattr(config, name, None))
    width = next(getattr(config, name) for name in ("hidden_size", "dim", "n_embd", "d_model") if getattr(config, name, None))
    return Shape(weights, layers, width)


def encoder_flops(shape: Shape, lengths: list[int]) -> float:
    """FLOPs of the forward passes over texts of these token lengths (no padding: the useful work)."""
    return sum(2 * shape.linear_weights * n + 4 * shape.layers * n * n * shape.width for n in lengths)


def flops_work(shape: Shape, lengths: list[int]) -> dict:
    """A case's work: FLOPs per item, compared with the GEMM peak."""
    return dict(kind="flops", per_unit=encoder_flops(shape, lengths) / len(lengths))


def decoding_work(shape: Shape, batch: int) -> dict:
    """A decoding case's work: weights read per new token (one read per step serves the whole batch)."""
    return dict(kind="weights", per_unit=shape.linear_weights / batch, batch=batch)


def share_of_limit(work: dict, value: float, dtype: str, limits: dict) -> dict:
    """What a row reached (GFLOP/s or GB/s) and its share of the machine's limit for that dtype."""
    if work["kind"] == "flops":
        reached = value * work["per_unit"] / 1e9
        peak = limits["int8_gops"] if dtype == "int8" else limits["fp32_gflops"]
        return dict(reached=f"{reached:.1f} GFLOP/s", of_limit=round(reached / peak, 3),
                    limit=f"{'int8' if dtype == 'int8' else 'fp32'} GEMM peak {peak} G/s")
    reached = value * work["per_unit"] * BYTES_PER_WEIGHT.get(dtype, 4) / 1e9
    return dict(reached=f"{reached:.1f} GB/s", of_limit=round(reached / limits["bandwidth_gbs"], 3),
                limit=f"bandwidth {limits['bandwidth_gbs']} GB/s")
