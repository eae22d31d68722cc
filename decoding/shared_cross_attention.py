"""Cross-attention that the beams (or samples) of one input share, instead of one copy each.

Beam search decodes `num_beams` rows per input, and `generate()` repeats the encoder's output for
each of them: every decoder layer then projects, caches and reads `num_beams` identical copies of
the input's keys and values. At each step the decoder reads the whole cross-attention cache, so
on a CPU that reading is a large share of a step (distilbart-cnn, 8 inputs of ~100 tokens, 4 beams:
~30 MB per layer per step), and it grows with the input's length.

Here the encoder output stays one row per input. The decoder's queries, one per beam, are regrouped
so that an input's beams are the query positions of one attention call over that input's keys:

    queries (inputs * beams, heads, 1, dim) -> (inputs, heads, beams, dim)
    keys and values (inputs, heads, source_len, dim), read once per input

which is the trick transformers itself uses to share key/value heads (`pack_gqa`). Each beam's
attention is computed from the same numbers as before. Masks and biases rows, repeated per beam,
are read once per input. Every other attention call (self-attention, the encoder) is plain SDPA.

The function is registered with transformers' AttentionInterface under `SHARED_CROSS_ATTENTION`,
and `switch_to_shared_cross_attention(model)` switches a model to it: one that runs SDPA through that
interface (BART, Marian, M2M100, T5 do). The switch stays: for every call but the shared one the
function is transformers' SDPA itself, so the model computes exactly what it did, `generate()`
included.
"""

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


def one_row_per_input(tensor: torch.Tensor | None, rows: int, inputs: int) -> torch.Tensor | None:
    """A mask or bias repeated for each beam, (inputs * rows, ...) -> (inputs, ...); others as they are."""
    if tensor is None or tensor.shape[0] != inputs * rows:
        return tensor
    return tensor[::rows]


def shared_cross_attention(module, query, key, value, attention_mask, position_bias=None, **kwargs):
    """SDPA where `rows` consecutive query rows attend to the same key/value row.

    query: (inputs * rows, heads, 1, dim); key, value: (inputs, heads, source_len, dim).
    Returns (inputs * rows, 1, heads, dim), as `sdpa_attention_forward` would for repeated keys.
    """
    rows = rows_per_input(query, key)
    if rows == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, position_bias=position_bias,
                                      **kwargs)
    inputs, heads, _, dim = key.shape
    grouped = query.reshape(inputs, rows, heads, dim).transpose(1, 2)  # the beams become query positions
    kwargs["is_causal"] = False  # beams are not a sequence: none may be hidden from another
    output, weights = sdpa_attention_forward(
        module, grouped, key, value, one_row_per_input(attention_mask, rows, inputs),
        position_bias=one_row_per_input(position_bias, rows, inputs), **kwargs)
    return output.reshape(inputs * rows, 1, heads, dim), weights


AttentionInterface.register(SHARED_CROSS_ATTENTION, shared_cross_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(SHARED_CROSS_ATTENTION, sdpa_mask)  # the masks SDPA gets


def switch_to_shared_cross_attention(model) -> bool:
    """Switch an encoder-decoder model on SDPA to `shared_cross_attention`; whether it now shares."""
    if not model.config.is_encoder_decoder:
        return False
    if model.config._attn_implementation == SHARED_CROSS_ATTENTION:
        return True
    if model.config._attn_implementation != "sdpa" or not model._can_set_attn_implementation():
        return False
    model.set_attn_implementation(SHARED_CROSS_ATTENTION)
    return True
