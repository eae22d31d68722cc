"""The KV cache: transformers 5 cache objects, with the self-attention keys and values preallocated.

transformers' `DynamicLayer` grows each layer's keys and values with `torch.cat` at every step,
which allocates and copies the whole history: for GPT-2 that is 24 copies per token, ~7% of a
step at batch 1 on a CPU. `PreallocatedLayer` sizes the buffers once, for the longest sequence
the call can produce, writes each new token in place, and hands attention a view of the filled
part. The view holds the same numbers in the same layout (only the stride of the batch and head
dimensions differs), so attention computes exactly what it computes on transformers' cache.

Beam search moves each beam's history to the row of the beam that continues it. The self-attention
cache is gathered into a second buffer (no allocation per step). The cross-attention cache of an
encoder-decoder model is left as it is: all beams of one input attend to the same encoder output,
so its rows within a prompt are equal and reordering them (as `generate()` does, at every step) is
a copy that changes nothing. That copy is the largest cost of beam search on long inputs.
"""

from functools import partial

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache


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
        """Row i takes the history of row beam_idx[i]; gathered into the spare buffers, which then swap."""
        if self.length == 0:
            return
        if self._spare is None:
            self._spare = tuple(torch.empty_like(buffer) for buffer in self._buffers)
        beam_idx = beam_idx.to(self.device)
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
    if isinstance(cache, EncoderDecoderCache):
        cache.self_attention_cache.reorder_cache(beam_idx)
    else:
        cache.reorder_cache(beam_idx)
