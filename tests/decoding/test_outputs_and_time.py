"""output_scores / output_logits give generate()'s per-step scores and logits; max_time stops every row.

The reference is transformers' generate(return_dict_in_generate=True, ...): the same number of steps,
each (rows, vocab), equal to 1e-5 (beams of an encoder-decoder model share their cross-attention
here, which moves the last bits).
"""

import pytest
import torch
from tiny_models import new_tokens, prompt_batch, reference, tiny_model

from decoding import generate

CASES = {
    "greedy": dict(),
    "sampling": dict(do_sample=True, top_k=5, temperature=0.8),
    "beams": dict(num_beams=3, num_return_sequences=2),
    "processed": dict(repetition_penalty=1.3, no_repeat_ngram_size=2, renormalize_logits=True),
}


def assert_close_steps(expected, actual) -> None:
    assert len(actual) == len(expected), f"{len(actual)} steps, generate() made {len(expected)}"
    for step, (want, got) in enumerate(zip(expected, actual)):
        assert got.shape == want.shape, f"step {step}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        assert torch.allclose(got, want, atol=1e-5, rtol=0), f"step {step}: max diff {(got - want).abs().max()}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_scores_and_logits_are_generate_ones(arch, case):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(max_new_tokens=6, **CASES[case])
    torch.manual_seed(0)
    expected = reference(model, input_ids, attention_mask, return_dict_in_generate=True, output_scores=True,
                         output_logits=True, **settings)
    torch.manual_seed(0)
    actual = generate(model, input_ids, attention_mask, output_scores=True, output_logits=True,
                      return_dict_in_generate=True, **settings)
    assert actual.sequences.tolist() == expected.sequences.tolist()
    assert_close_steps(expected.scores, actual.scores)
    assert_close_steps(expected.logits, actual.logits)


def test_only_what_was_asked_for_is_kept():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=3)
    assert plain.scores is None and plain.logits is None
    scores_only = generate(model, input_ids, attention_mask, max_new_tokens=3, output_scores=True, trace=True)
    assert len(scores_only.scores) == 3 and scores_only.logits is None and len(scores_only.trace) == 3


@pytest.mark.parametrize("settings", [dict(), dict(num_beams=2), dict(do_sample=True)])
@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_max_time_zero_stops_after_one_step(arch, settings):
    """The clock is read after each step: with no time at all every row gets one token, as in 4.57.6."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    out = generate(model, input_ids, attention_mask, max_new_tokens=8, max_time=0.0, **settings)
    assert new_tokens(model, out.sequences, input_ids.shape[1]).shape[1] == 1


def test_plenty_of_time_changes_nothing():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    timed = generate(model, input_ids, attention_mask, max_new_tokens=8, max_time=600.0)
    untimed = generate(model, input_ids, attention_mask, max_new_tokens=8)
    assert timed.sequences.tolist() == untimed.sequences.tolist()


@pytest.mark.parametrize("settings, words", [
    (dict(max_time=-1.0), ["max_time", ">= 0"]),
    (dict(max_time=float("nan")), ["max_time"]),
    (dict(output_scores="yes"), ["output_scores", "True or False"]),
    (dict(return_dict_in_generate=1), ["return_dict_in_generate", "True or False"]),
])
def test_bad_output_and_time_options(settings, words):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises((ValueError, TypeError)) as raised:
        generate(model, input_ids, attention_mask, max_new_tokens=2, **settings)
    for word in words:
        assert word in str(raised.value)
