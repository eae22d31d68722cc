"""Refuse a call whose tensors cannot fit in the device's memory, before allocating them.

Every row of a call (inputs x beams or returned sequences) keeps a key/value cache as long as the
sequence may grow and a row of scores over the vocabulary. num_return_sequences=10**9 or
max_length=10**30 would otherwise be handed to torch, which dies in an allocation (or the kernel
kills the process) instead of saying which option to lower. The estimate is a lower bound (the cache
and one step's scores only), so a call refused here could never have run.
"""

import os

import torch

SCORE_COPIES = 3  # logits, processed scores and probabilities of one step, float32


def physical_memory(device: torch.device) -> int | None:
    """Bytes of memory on the device: the GPU's total, or the machine's RAM (None when unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def first_int(config, names: tuple[str, ...]) -> int | None:
    """The first of `names` that the config sets to a positive int."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def cache_bytes_per_position(config, element_bytes: int) -> int:
    """Bytes of keys and values one row adds per position, over all decoder layers (0 when unknown)."""
    layers = first_int(config, ("decoder_layers", "num_decoder_layers", "num_hidden_layers", "n_layer", "num_layers"))
    width = first_int(config, ("hidden_size", "d_model", "n_embd"))
    heads = first_int(config, ("num_attention_heads", "decoder_attention_heads", "n_head", "num_heads"))
    kv_heads = first_int(config, ("num_key_value_heads",)) or heads
    head_dim = first_int(config, ("head_dim", "d_kv")) or (width // heads if width and heads else None)
    if not (layers and kv_heads and head_dim):
        return 0
    return layers * 2 * kv_heads * head_dim * element_bytes


def estimated_bytes(config, rows: int, max_length: int, vocab_size: int, element_bytes: int) -> int:
    """A lower bound of what the call allocates: every row's cache at max_length and one step's scores."""
    cache = rows * max_length * cache_bytes_per_position(config, element_bytes)
    scores = rows * vocab_size * 4 * SCORE_COPIES
    return cache + scores


def check_fits_in_memory(model, *, batch: int, expand: int, max_length: int, expanded_by: str) -> None:
    """ValueError naming the option to lower when the call cannot fit in the device's memory.

    expand: rows per input (num_beams or num_return_sequences, named by `expanded_by`)."""
    total = physical_memory(model.device)
    if total is None:
        return
    rows = batch * expand
    vocab_size = first_int(model.config, ("vocab_size",)) or 0
    element_bytes = torch.finfo(model.dtype).bits // 8 if model.dtype.is_floating_point else 4
    need = estimated_bytes(model.config, rows, max_length, vocab_size, element_bytes)
    if need <= total:
        return
    if expand > 1 and batch * max_length * cache_bytes_per_position(model.config, element_bytes) <= total:
        fix = f"lower {expanded_by}={expand}"
    else:
        fix = f"lower max_new_tokens/max_length (max_length={max_length}) or the batch ({batch} inputs)"
    raise ValueError(f"this call needs at least {need / 2**30:.3g} GiB ({rows} rows x {max_length} positions of "
                     f"cache and scores) but the {model.device.type} has {total / 2**30:.3g} GiB; {fix}")
