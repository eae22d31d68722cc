"""shared_cross_attention: the beams of an input read one copy of its keys and values, and the switch
to it lasts one call."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from tiny_models import prompt_batch, tiny_model
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from decoding import generate
from decoding.shared_cross_attention import (
    SHARED_CROSS_ATTENTION,
    regroup_mask,
    rows_per_input,
    shared_cross_attention,
    sharing_cross_attention,
)


class CrossAttention(torch.nn.Module):
    is_causal = False


@pytest.mark.parametrize("mask_rows", ["none", "per input", "per row"])
def test_beams_sharing_keys_attend_as_with_their_own_copies(mask_rows):
    inputs, beams, heads, source, dim = 3, 4, 2, 7, 8
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(inputs * beams, heads, 1, dim, generator=generator)
    key, value = (torch.randn(inputs, heads, source, dim, generator=generator) for _ in range(2))
    mask = torch.ones(inputs, 1, 1, source, dtype=torch.bool)
    mask[1, ..., 5:] = False  # input 1 is padded: its beams must not see those positions
    given = {"none": None, "per input": mask, "per row": mask.repeat_interleave(beams, 0)}[mask_rows]
    expected, _ = sdpa_attention_forward(CrossAttention(), query, key.repeat_interleave(beams, 0),
                                         value.repeat_interleave(beams, 0),
                                         None if given is None else mask.repeat_interleave(beams, 0))
    actual, _ = shared_cross_attention(CrossAttention(), query, key, value, given)
    assert actual.shape == expected.shape == (inputs * beams, 1, heads, dim)
    assert torch.equal(actual, expected)


def test_ordinary_attention_is_left_to_sdpa():
    query, key = torch.zeros(6, 2, 1, 8), torch.zeros(6, 2, 5, 8)
    assert rows_per_input(query, key) == 1
    assert rows_per_input(torch.zeros(6, 2, 3, 8), torch.zeros(2, 2, 5, 8)) == 1  # several positions: not beams
    assert rows_per_input(query, torch.zeros(2, 2, 5, 8)) == 3
    per_row = torch.arange(6).view(6, 1, 1, 1)  # (inputs * rows, 1, 1, source_len) with inputs=2, rows=3
    assert regroup_mask(per_row, 2, 3, heads=2).flatten().tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]
    per_input = torch.arange(2).view(2, 1, 1, 1)
    assert regroup_mask(per_input, 2, 3, heads=2).flatten().tolist() == [0, 0, 1, 1]


def test_regrouped_attention_is_bitwise_the_attention_on_copies():
    """The beams in place of the heads: each beam's row comes out of the same kernel as on its own copy."""
    inputs, beams, heads, source, dim = 3, 4, 2, 9, 8
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(inputs * beams, heads, 1, dim, generator=generator)
    key, value = (torch.randn(inputs, heads, source, dim, generator=generator) for _ in range(2))
    bias = torch.randn(inputs * beams, heads, 1, source, generator=generator)  # T5: a float mask per row and head
    expected, _ = sdpa_attention_forward(CrossAttention(), query, key.repeat_interleave(beams, 0),
                                         value.repeat_interleave(beams, 0), None, position_bias=bias)
    actual, _ = shared_cross_attention(CrossAttention(), query, key, value, None, position_bias=bias)
    assert torch.equal(actual, expected)


def beam_call(model, input_ids, attention_mask):
    return generate(model, input_ids, attention_mask, num_beams=3, max_new_tokens=6)


@pytest.mark.parametrize("arch", ["bart", "t5"])
def test_the_switch_lasts_one_call(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    beam_call(model, input_ids, attention_mask)
    assert model.config._attn_implementation == "sdpa"


def test_the_switch_is_undone_when_the_call_fails():
    model = tiny_model("bart")
    input_ids, attention_mask = prompt_batch(model)
    seen = []

    def failing(ids, scores):
        seen.append(model.config._attn_implementation)
        raise RuntimeError("a processor that fails")

    with pytest.raises(RuntimeError, match="a processor that fails"):
        generate(model, input_ids, attention_mask, num_beams=3, max_new_tokens=6, logits_processors=[failing])
    assert seen == [SHARED_CROSS_ATTENTION]
    assert model.config._attn_implementation == "sdpa"


def test_overlapping_calls_share_the_switch_and_give_their_own_results():
    """Threads decoding on one model: the switch stays until the last call ends, and every call gives
    what it gives alone (a greedy call on the switched model goes straight to SDPA)."""
    model = tiny_model("marian")
    input_ids, attention_mask = prompt_batch(model)
    alone_beams = beam_call(model, input_ids, attention_mask)
    alone_greedy = generate(model, input_ids, attention_mask, max_new_tokens=6).sequences
    with ThreadPoolExecutor(max_workers=4) as pool:
        beams = [pool.submit(beam_call, model, input_ids, attention_mask) for _ in range(4)]
        greedy = [pool.submit(lambda: generate(model, input_ids, attention_mask, max_new_tokens=6).sequences)
                  for _ in range(4)]
        for future in beams:
            assert torch.equal(future.result().sequences, alone_beams.sequences)
            assert torch.equal(future.result().sequences_scores, alone_beams.sequences_scores)
        for future in greedy:
            assert torch.equal(future.result(), alone_greedy)
    assert model.config._attn_implementation == "sdpa"


def test_a_model_switched_by_its_owner_stays_switched():
    model = tiny_model("m2m100")
    input_ids, attention_mask = prompt_batch(model)
    model.set_attn_implementation(SHARED_CROSS_ATTENTION)
    try:
        with sharing_cross_attention(model) as shared:
            assert shared
        beam_call(model, input_ids, attention_mask)
        assert model.config._attn_implementation == SHARED_CROSS_ATTENTION
    finally:
        model.set_attn_implementation("sdpa")
