"""Calls that cannot fit in memory are refused before torch allocates anything, naming the option."""

import pytest
import torch

from decoding import generate
from decoding.memory import cache_bytes_per_position, estimated_bytes, physical_memory
from tests.decoding.tiny_models import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model("gpt2")


def test_the_cache_estimate_counts_layers_heads_and_positions(model):
    config = model.config
    per_position = cache_bytes_per_position(config, element_bytes=4)
    assert per_position == config.n_layer * 2 * config.n_embd * 4
    expected = 3 * 10 * per_position + 3 * 50 * 4 * 3  # 3 rows x 10 positions of cache, 3 float32 copies of 50 scores
    assert estimated_bytes(config, rows=3, max_length=10, vocab_size=50, element_bytes=4) == expected


def test_the_machine_memory_is_known_here():
    assert physical_memory(torch.device("cpu")) > 2**30


def test_too_many_rows_are_refused_naming_the_option(model):
    """4096 samples per input is allowed, but not for 100,000 inputs at once."""
    ids = torch.ones((100_000, 3), dtype=torch.long)
    with pytest.raises(ValueError, match="lower num_return_sequences=4096"):
        generate(model, ids, max_new_tokens=3, num_return_sequences=4096, do_sample=True)


def test_a_long_max_length_without_a_position_table_is_refused_naming_it():
    model = tiny_model("t5")  # relative positions: max_length is not capped by a position table
    ids = torch.full((64, 3), 5)
    with pytest.raises(ValueError, match=r"lower max_new_tokens/max_length .* or the batch \(64 inputs\)"):
        generate(model, ids, max_new_tokens=2**24 - 8)


def test_a_call_that_fits_runs(model):
    ids = torch.tensor([[1, 2, 3]])
    out = generate(model, ids, max_new_tokens=2, num_return_sequences=4, do_sample=True)
    assert out.sequences.shape == (4, 5)
