"""Sampling draws the tokens of `generate(do_sample=True, ...)` under the same seed, on every architecture.

Both sides are seeded with `core.seed.set_seed` just before the call; the same tokens come out
only if the processed probabilities agree to the last bit and the generator is used in the same
order (one `torch.multinomial` per step). EOS is a token the model likes, so rows finish at
different steps and get padded.
"""

import pytest
from tiny_models import ARCHITECTURES, assert_parity, liked_eos, prompt_batch, tiny_model

from core.seed import set_seed
from decoding import generate

SAMPLING_CASES = {
    "defaults": dict(),  # transformers' top_k=50 applies
    "temperature": dict(temperature=0.7, top_k=0),
    "hot_temperature": dict(temperature=1.8, top_k=None),
    "top_k": dict(top_k=5),
    "top_p": dict(top_p=0.8, top_k=0),
    "min_p": dict(min_p=0.1, top_k=0),
    "temperature_top_k_top_p": dict(temperature=1.3, top_k=8, top_p=0.9),
    "all_warpers": dict(temperature=0.9, top_k=20, top_p=0.95, min_p=0.05),
    "penalties": dict(repetition_penalty=1.5, no_repeat_ngram_size=2, top_p=0.9),
    "num_return_sequences": dict(num_return_sequences=3, top_k=10, temperature=1.2),
    "min_new_tokens": dict(min_new_tokens=6, top_p=0.85),
    "beam_sampling": dict(num_beams=3, top_k=10),
    "beam_sampling_sequences": dict(num_beams=3, num_return_sequences=2, temperature=0.8, top_p=0.9),
}


@pytest.mark.parametrize("case", SAMPLING_CASES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sampling_matches_generate_under_the_same_seed(arch, case):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(SAMPLING_CASES[case], do_sample=True, max_new_tokens=10,
                    eos_token_id=liked_eos(arch))
    assert_parity(model, input_ids, attention_mask, seed=7, **settings)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_different_seeds_draw_different_tokens(arch):
    """The comparison above would be empty if sampling were greedy in disguise."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    drawn = set()
    for seed in range(4):
        set_seed(seed)
        drawn.add(tuple(generate(model, input_ids, attention_mask, do_sample=True, max_new_tokens=8,
                                 top_k=0).sequences.flatten().tolist()))
    assert len(drawn) > 1
