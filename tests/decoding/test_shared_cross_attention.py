"""shared_cross_attention: the beams of an input as the query positions of one attention call."""

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from decoding.shared_cross_attention import one_row_per_input, rows_per_input, shared_cross_attention


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
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def test_ordinary_attention_is_left_to_sdpa():
    query, key = torch.zeros(6, 2, 1, 8), torch.zeros(6, 2, 5, 8)
    assert rows_per_input(query, key) == 1
    assert rows_per_input(torch.zeros(6, 2, 3, 8), torch.zeros(2, 2, 5, 8)) == 1  # several positions: not beams
    assert rows_per_input(query, torch.zeros(2, 2, 5, 8)) == 3
    mask = torch.arange(6).view(6, 1, 1, 1)
    assert one_row_per_input(mask, 3, 2).flatten().tolist() == [0, 3]
    assert one_row_per_input(mask[:1], 3, 2) is not None and one_row_per_input(mask[:1], 3, 2).shape[0] == 1
