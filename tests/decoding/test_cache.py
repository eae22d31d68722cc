"""decoding/cache.py: a beam reorder gives each row its source row's history, whether it rewrites only
the rows that move (the usual step) or gathers every row into the spare buffers, and over steps that
mix the two."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from decoding.cache import PreallocatedLayer, reorder_beams

ROWS, HEADS, HEAD_DIM, CAPACITY = 8, 2, 3, 6


def two_layer_cache() -> DynamicCache:
    cache = DynamicCache()
    cache.layers = [PreallocatedLayer(CAPACITY), PreallocatedLayer(CAPACITY)]
    return cache


def add_position(cache: DynamicCache, generator: torch.Generator) -> None:
    for layer in cache.layers:
        layer.update(*torch.randn(2, ROWS, HEADS, 1, HEAD_DIM, generator=generator).unbind())


def histories(cache: DynamicCache) -> list[torch.Tensor]:
    return [torch.stack([layer.keys, layer.values]).clone() for layer in cache.layers]


# A step's sources: row i takes row sources[i]'s history. Few moved rows, many, all from one row, swaps.
sources = st.lists(st.integers(0, ROWS - 1), min_size=ROWS, max_size=ROWS)
mostly_kept = st.lists(st.tuples(st.integers(0, ROWS - 1), st.integers(0, ROWS - 1)), max_size=2).map(
    lambda moves: [next((source for row, source in moves if row == i), i) for i in range(ROWS)])


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.one_of(sources, mostly_kept), min_size=1, max_size=CAPACITY - 1), seed=st.integers(0, 99))
def test_each_row_takes_its_sources_history_step_after_step(steps, seed):
    generator = torch.Generator().manual_seed(seed)
    cache = two_layer_cache()
    add_position(cache, generator)
    for step in steps:
        beam_idx = torch.tensor(step)
        expected = [history[:, beam_idx] for history in histories(cache)]
        reorder_beams(cache, beam_idx)
        for got, want in zip(histories(cache), expected):
            assert torch.equal(got, want)
        add_position(cache, generator)


def test_a_reorder_that_moves_few_rows_writes_them_in_place_and_one_that_moves_many_gathers():
    cache = two_layer_cache()
    add_position(cache, torch.Generator().manual_seed(0))
    few = torch.arange(ROWS)
    few[3] = 5  # one row of eight moves
    reorder_beams(cache, few)
    assert all(layer._spare is None for layer in cache.layers)
    reorder_beams(cache, torch.zeros(ROWS, dtype=torch.long))  # every row takes row 0's history
    assert all(layer._spare is not None for layer in cache.layers)


def test_the_encoder_decoder_cache_reorders_its_self_attention_only():
    cache = EncoderDecoderCache(two_layer_cache(), DynamicCache())
    add_position(cache.self_attention_cache, torch.Generator().manual_seed(1))
    before = histories(cache.self_attention_cache)
    beam_idx = torch.tensor([1, 1, 2, 3, 4, 5, 6, 0])
    reorder_beams(cache, beam_idx)
    for got, want in zip(histories(cache.self_attention_cache), before):
        assert torch.equal(got, want[:, beam_idx])


def test_layers_never_filled_are_left_alone():
    """T5's cache has a layer per encoder layer, more than its decoder fills."""
    cache = two_layer_cache()
    cache.layers.append(PreallocatedLayer(CAPACITY))
    for layer in cache.layers[:2]:
        layer.update(*torch.randn(2, ROWS, HEADS, 1, HEAD_DIM).unbind())
    reorder_beams(cache, torch.zeros(ROWS, dtype=torch.long))
    cache.layers[2].reorder_cache(torch.zeros(ROWS, dtype=torch.long))
    assert not cache.layers[2].is_initialized
