"""The KV cache: transformers 5 cache objects, with the self-attention keys and values preallocated.

transformers' `DynamicLayer` grows each layer's keys and values with `torch.cat` at every step,
which allocates and copies the whole history: for GPT-2 that is 24 copies per token, ~7% of a
step at batch 1 on a CPU. `PreallocatedLayer` sizes the buffers once, for the longest sequence
the call can produce, writes each new token in place, and hands attention a view of the filled
part. The view holds the same numbers in the same layout (only the stride of the batch and head
dimensions differs), so attention computes exactly what it computes on transformers' cache.

Beam search moves each beam's history to the row of the beam that continues it. Most rows keep their
own, so when few rows move only those are rewritten, in place; when many do, the self-attention cache
is gathered into a second buffer (no allocation per step). The cross-attention cache of an
encoder-decoder model is left as it is: all beams of one input attend to the same encoder output,
so its rows within a prompt are equal and reordering them (as `generate()` does, at every step) is
a copy that changes nothing. That copy is the largest cost of beam search on long inputs.
"""

from functools import partial

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache

# A beam reorder writes only the rows that change when they are at most 1 in FEW_MOVED_ROWS: copying a
# changed row through a temporary moves its data twice, where gathering all rows moves every row once.
# Measured (64 rows x 12 heads x 33 positions x 64 dims, 2 threads): 10 rows changed 145 us against
# 291 for the whole gather, 32 rows 421 against 290; they cross near 20 of 64.
FEW_MOVED_ROWS = 4


class PreallocatedLayer(DynamicLayer):
    """One attention layer's keys and values in buffers of `capacity` positions, filled in place.

    keys / values: (rows, heads, length, head_dim) views of the first `length` positions, as on a
    DynamicLayer. A call that goes past `capacity` (it cannot with our loop) doubles the buffers.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._buffers = None  # (keys, values): (rows, heads, capacity, head_dim)
        self._spare = None  # the same shapes, the target of a beam reorder

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._buffers = (_empty_like_with_length(key_states, self.capacity),
                         _empty_like_with_length(value_states, self.capacity))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self._grow(max(end, 2 * self.capacity))
        keys, values = self._buffers
        keys[:, :, self.length:end].copy_(key_states)
        values[:, :, self.length:end].copy_(value_states)
        self.length = end
        self._point_at_filled()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        """Keep the first `max_length` positions (speculative decoding takes back the guesses it did not keep)."""
        if max_length < 0:
            max_length = self.length + max_length
        self.length = min(self.length, max_length)
        if self.is_initialized:
            self._point_at_filled()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Row i takes the history of row beam_idx[i] (transformers' cache API; reorder_beams calls
        take_histories itself, with the moved rows found once for every layer)."""
        if not self.is_initialized:  # nothing written yet (T5 makes more layers than its decoder fills)
            return
        beam_idx = beam_idx.to(self.device)
        self.take_histories(beam_idx, rows_that_move(beam_idx))

    def take_histories(self, beam_idx: torch.Tensor, moved: torch.Tensor) -> None:
        """Row i takes the history of row beam_idx[i]; `moved` lists the rows i where beam_idx[i] != i.

        Many rows keep their own history from one step to the next (beam 4, 32 tokens: 85% of them
        with flan-t5-base's shape and random weights, 16 inputs; 48% with SmolLM2's trained weights, 4
        prompts), so when few rows move only those are written (flan-t5-base int8: 8% a call);
        otherwise every row is gathered into the spare buffers, which then swap.
        """
        if self.length == 0 or len(moved) == 0:
            return
        if len(moved) * FEW_MOVED_ROWS <= len(beam_idx):
            for buffer in self._buffers:  # the sources are copied out first: a source may be overwritten
                filled = buffer[:, :, :self.length]
                filled.index_copy_(0, moved, filled.index_select(0, beam_idx[moved]))
            return
        if self._spare is None:
            self._spare = tuple(torch.empty_like(buffer) for buffer in self._buffers)
        for source, target in zip(self._buffers, self._spare):
            torch.index_select(source[:, :, :self.length], 0, beam_idx, out=target[:, :, :self.length])
        self._buffers, self._spare = self._spare, self._buffers
        self._point_at_filled()

    def gather_positions(self, order: torch.Tensor) -> None:
        """Row r keeps positions order[r] (rows, length), in that order: speculative decoding closes the
        holes its rows left (decoding/speculative_rows.py). A layer never filled (T5 makes one per
        encoder layer, more than its decoder has) has nothing to gather."""
        if not self.is_initialized:
            return
        rows, heads, _, head_dim = self._buffers[0].shape
        index = order.to(self.device)[:, None, :, None].expand(rows, heads, order.shape[1], head_dim)
        for buffer in self._buffers:
            gathered = torch.gather(buffer[:, :, :self.length], 2, index)
            buffer[:, :, :order.shape[1]].copy_(gathered)
        self.length = order.shape[1]
        self._point_at_filled()

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only these rows (rows,), in this order: finished rows leave a batch (decoding/speculative_rows.py)."""
        if self.is_initialized:
            rows = rows.to(self.device)
            self._buffers = tuple(buffer.index_select(0, rows) for buffer in self._buffers)
            self._spare = None
            self._point_at_filled()

    def _grow(self, capacity: int) -> None:
        grown = []
        for buffer in self._buffers:
            bigger = _empty_like_with_length(buffer, capacity)
            bigger[:, :, :self.length].copy_(buffer[:, :, :self.length])
            grown.append(bigger)
        self._buffers, self._spare, self.capacity = tuple(grown), None, capacity

    def _point_at_filled(self) -> None:
        self.keys, self.values = (buffer[:, :, :self.length] for buffer in self._buffers)


def _empty_like_with_length(states: torch.Tensor, length: int) -> torch.Tensor:
    """An uninitialised (rows, heads, length, head_dim) buffer for `states` (rows, heads, n, head_dim)."""
    rows, heads, _, head_dim = states.shape
    return torch.empty((rows, heads, length, head_dim), dtype=states.dtype, device=states.device)


def new_cache(model, capacity: int) -> Cache:
    """An empty cache of the kind `generate()` creates (layer types from the decoder config), whose plain
    full-attention self-attention layers are preallocated for `capacity` positions. Sliding-window
    and other special layers keep their transformers classes."""
    config = model.config.get_text_config(decoder=True)
    self_attention = DynamicCache(config=config)
    self_attention.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer
                             for layer in self_attention.layers]
    if self_attention.layer_class_to_replicate is DynamicLayer:  # layers made on first use
        self_attention.layer_class_to_replicate = partial(PreallocatedLayer, capacity)
    if model.config.is_encoder_decoder:
        return EncoderDecoderCache(self_attention, DynamicCache(config=config))
    return self_attention


def reorder_beams(cache: Cache, beam_idx: torch.Tensor) -> None:
    """Make cache row i hold the history of row beam_idx[i] (beam search keeps the winners' pasts).

    beam_idx never leaves a prompt's group of beams, so the cross-attention cache (equal rows within
    a group) needs no reordering.
    """
    self_attention = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
    moved = None
    for layer in self_attention.layers:
        if not isinstance(layer, PreallocatedLayer):
            layer.reorder_cache(beam_idx)
        elif layer.is_initialized:
            beam_idx = beam_idx.to(layer.device)
            moved = rows_that_move(beam_idx) if moved is None else moved.to(layer.device)
            layer.take_histories(beam_idx, moved)


def rows_that_move(beam_idx: torch.Tensor) -> torch.Tensor:
    """The rows i with beam_idx[i] != i (a host sync on a GPU: reorder_beams asks once a step)."""
    return torch.nonzero(beam_idx != torch.arange(len(beam_idx), device=beam_idx.device)).squeeze(1)
