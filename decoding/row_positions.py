"""Each row's own decoder positions in an encoder-decoder model, for batched speculative decoding.

A decoder-only model takes position ids, so rows that kept different numbers of guesses each see
their own text numbered 0..n-1 (decoding/speculative_rows.py). transformers' encoder-decoder
decoders take none: BART, mBART, Marian, Pegasus and M2M100 number the fed tokens from the cache's
length, and T5 measures distances between cache slots. So:
- for decoders with a table of absolute positions, `decoder_positions(positions)` makes the
  decoder's position module return the rows of its table at each row's own positions, for the
  model calls inside the `with` (a forward hook reading a context variable: other threads and
  other calls are untouched);
- T5's relative attention bias is right whenever no row has holes between its kept positions,
  so its rows are gathered to the right end after every call that leaves holes (`RELATIVE`).
Other encoder-decoder models keep the aligned loop (`layout` returns None).
"""

import threading
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F

ABSOLUTE, RELATIVE = "absolute", "relative"

# The position modules whose output is the row of a table at (position + offset), each checked by a test.
TABLE_MODULES = {"BartLearnedPositionalEmbedding", "MBartLearnedPositionalEmbedding",
                 "MarianSinusoidalPositionalEmbedding", "PegasusSinusoidalPositionalEmbedding"}
# M2M100's (NLLB's too): a table whose row for position p is p + padding_idx + 1, and padding_idx for a pad token.
PADDED_TABLE_MODULES = {"M2M100SinusoidalPositionalEmbedding"}
RELATIVE_MODEL_TYPES = {"t5", "mt5"}

_positions: ContextVar[torch.Tensor | None] = ContextVar("nopipe_decoder_positions", default=None)
_installing = threading.Lock()


def layout(model) -> str | None:
    """ABSOLUTE when the decoder's position table can be read per row, RELATIVE for T5's bias, else None."""
    if model.config.model_type in RELATIVE_MODEL_TYPES:
        return RELATIVE
    module = position_module(model)
    if module is not None and type(module).__name__ in TABLE_MODULES | PADDED_TABLE_MODULES:
        return ABSOLUTE
    return None


def position_module(model):
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return getattr(decoder, "embed_positions", None)


@contextmanager
def decoder_positions(model, positions: torch.Tensor):
    """Within the block, the decoder embeds fed token j of row r at positions[r, j] (rows, n)."""
    install(position_module(model))
    token = _positions.set(positions)
    try:
        yield
    finally:
        _positions.reset(token)


def install(module) -> None:
    """Hook the position module once (hooks are not part of the state dict; the module is unchanged)."""
    with _installing:
        if not getattr(module, "_nopipe_row_positions", False):
            module.register_forward_pre_hook(numbered_from_zero, with_kwargs=True)
            module.register_forward_hook(own_positions, with_kwargs=True)
            module._nopipe_row_positions = True


def numbered_from_zero(module, args, kwargs):
    """The pre-hook: inside a `decoder_positions` block, the module's own lookup (numbered from the cache's
    length, which counts the holes and can pass the table's end) reads positions 0..n-1 instead; its
    output is replaced anyway (`own_positions`)."""
    positions = _positions.get()
    if positions is None:
        return None
    if type(module).__name__ in PADDED_TABLE_MODULES:  # (input_ids, inputs_embeds, cache_length)
        return (*args[:2], 0), kwargs
    return args, {**kwargs, "position_ids": torch.arange(positions.shape[1], device=positions.device)}


def own_positions(module, args, kwargs, output):
    """The forward hook: each row's table rows when a `decoder_positions` block is active, else the output as is."""
    positions = _positions.get()
    if positions is None:
        return None
    if type(module).__name__ in PADDED_TABLE_MODULES:
        input_ids = args[0] if args else kwargs["input_ids"]
        real = input_ids.ne(module.padding_idx).long()
        index = (positions + 1) * real + module.padding_idx
        if int(index.max()) >= module.weights.shape[0]:  # grown as the module grows it for plain decoding
            module.make_weights(int(index.max()) + 1 + module.offset, module.embedding_dim, module.padding_idx)
        return module.weights.index_select(0, index.flatten()).view(*index.shape, -1).detach()
    return F.embedding(positions + getattr(module, "offset", 0), module.weight)
