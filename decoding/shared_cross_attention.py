"""Cross-attention that the beams (or samples) of one input share, instead of one copy each.

Beam search decodes `num_beams` rows per input, and `generate()` repeats the encoder's output for
each of them: every decoder layer then projects, caches and reads `num_beams` identical copies of
the input's keys and values. At each step the decoder reads the whole cross-attention cache, so
on a CPU that reading is a large share of a step (distilbart-cnn, 8 inputs of ~100 tokens, 4 beams:
~30 MB per layer per step), and it grows with the input's length.

Here the encoder output stays one row per input, so the keys and values are projected and cached
once per input. At each step the attention call sees them as one row per (input, head), repeated
for the beams as a stride-0 view, with the beams in the place of the heads:

    queries (inputs * beams, heads, 1, dim)   -> (inputs * heads, beams, 1, dim)
    keys    (inputs, heads, source_len, dim)  -> (inputs * heads, beams, source_len, dim), stride 0 over beams

SDPA then computes each beam's row with the same arithmetic as on its own copy (one query row
against one key row, in the same kernel), so the scores are the ones of `generate()` to the bit,
while the keys of an input are read from memory once and from the CPU cache for its other beams.
Masks and biases are regrouped the same way. Every other attention call (self-attention, the
encoder) is plain SDPA.

The function is registered with transformers' AttentionInterface under `SHARED_CROSS_ATTENTION`;
`sharing_cross_attention(model)` switches an encoder-decoder model that runs SDPA through that
interface (BART, Marian, M2M100, T5 do) to it for the length of one call and switches it back
after, also when the call fails. Calls that overlap on one model share one switch: it is undone
when the last of them ends. While switched, a call that does not share (one row per input) goes
straight to transformers' SDPA, so it computes exactly what it would otherwise.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

SHARED_CROSS_ATTENTION = "nopipe_shared_cross_sdpa"


def rows_per_input(query: torch.Tensor, key: torch.Tensor) -> int:
    """How many query rows share one key row: 1 for ordinary attention."""
    if key.shape[0] == query.shape[0] or query.shape[2] != 1 or query.shape[0] % key.shape[0]:
        return 1
    return query.shape[0] // key.shape[0]


def beams_in_place_of_heads(tensor: torch.Tensor, inputs: int, rows: int) -> torch.Tensor:
    """(inputs * rows, heads, 1, x) -> (inputs * heads, rows, 1, x): row i * rows + r, head h moves to
    row i * heads + h, position r."""
    _, heads, _, width = tensor.shape
    return tensor.reshape(inputs, rows, heads, width).transpose(1, 2).reshape(inputs * heads, rows, 1, width)


def regroup_mask(mask: torch.Tensor | None, inputs: int, rows: int, heads: int) -> torch.Tensor | None:
    """A mask or bias for the regrouped call: (inputs * heads, rows or 1, 1, source_len).

    mask: (inputs * rows or inputs or 1, heads or 1, 1, source_len), rows repeated per beam or one per input.
    """
    if mask is None:
        return None
    if mask.shape[0] == inputs * rows:
        return beams_in_place_of_heads(mask.expand(-1, heads, -1, -1), inputs, rows)
    return mask.expand(inputs, heads, -1, -1).reshape(inputs * heads, 1, 1, mask.shape[-1])


def keys_per_input_and_head(states: torch.Tensor, rows: int) -> torch.Tensor:
    """(inputs, heads, source_len, dim) -> (inputs * heads, rows, source_len, dim), repeated as a stride-0 view."""
    inputs, heads, source_len, dim = states.shape
    return states.reshape(inputs * heads, 1, source_len, dim).expand(-1, rows, -1, -1)


def shared_cross_attention(module, query, key, value, attention_mask, position_bias=None, **kwargs):
    """SDPA where `rows` consecutive query rows attend to the same key/value row.

    query: (inputs * rows, heads, 1, dim); key, value: (inputs, heads, source_len, dim).
    Returns (inputs * rows, 1, heads, dim), what `sdpa_attention_forward` returns for repeated keys.
    """
    rows = rows_per_input(query, key)
    if rows == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, position_bias=position_bias,
                                      **kwargs)
    inputs, heads = key.shape[:2]
    kwargs["is_causal"] = False  # the beams stand in for heads: none may be hidden from another
    output, weights = sdpa_attention_forward(
        module, beams_in_place_of_heads(query, inputs, rows), keys_per_input_and_head(key, rows),
        keys_per_input_and_head(value, rows), regroup_mask(attention_mask, inputs, rows, heads),
        position_bias=regroup_mask(position_bias, inputs, rows, heads), **kwargs)
    # output: (inputs * heads, 1, rows, dim) -> (inputs * rows, 1, heads, dim)
    dim = output.shape[-1]
    return output.reshape(inputs, heads, rows, dim).transpose(1, 2).reshape(inputs * rows, 1, heads, dim), weights


AttentionInterface.register(SHARED_CROSS_ATTENTION, shared_cross_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(SHARED_CROSS_ATTENTION, sdpa_mask)  # the masks SDPA gets

_lock = threading.Lock()
_switched: dict[int, int] = {}  # id(model) -> calls running on the switched model


def can_share_cross_attention(model) -> bool:
    """An encoder-decoder model whose attention is SDPA through transformers' AttentionInterface."""
    implementation = model.config._attn_implementation
    return bool(model.config.is_encoder_decoder) and (
        implementation == SHARED_CROSS_ATTENTION
        or (implementation == "sdpa" and model._can_set_attn_implementation()))


@contextmanager
def sharing_cross_attention(model, wanted: bool = True) -> Iterator[bool]:
    """Run the body with `model` switched to `shared_cross_attention`; yields whether it is.

    The model is switched back to SDPA when the last overlapping call on it leaves, also on an
    exception. A model already switched by its owner stays switched.
    """
    if not (wanted and can_share_cross_attention(model)):
        yield False
        return
    with _lock:
        if _switched.get(id(model), 0) == 0 and model.config._attn_implementation == SHARED_CROSS_ATTENTION:
            owned = False  # switched outside nopipe's calls: not ours to undo
        else:
            owned = True
            if _switched.get(id(model), 0) == 0:
                model.set_attn_implementation(SHARED_CROSS_ATTENTION)
            _switched[id(model)] = _switched.get(id(model), 0) + 1
    try:
        yield True
    finally:
        if owned:
            with _lock:
                _switched[id(model)] -= 1
                if _switched[id(model)] == 0:
                    del _switched[id(model)]
                    model.set_attn_implementation("sdpa")
