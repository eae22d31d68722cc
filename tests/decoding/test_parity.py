"""Greedy and beam search give the tokens of transformers' `model.generate()`, on every architecture.

Each case runs the reference and our loop on the same tiny random model and padded batch (left
padding for decoder-only, right padding for encoder-decoder) and compares every token.
"""

import pytest
import torch
from tiny_models import (
    ARCHITECTURES,
    DECODER_ONLY,
    ENCODER_DECODER,
    assert_parity,
    assert_same_tokens,
    liked_eos,
    prompt_batch,
    reference,
    tiny_model,
)

import decoding.shared_cross_attention as shared_cross_attention
from decoding import generate, model_step
from decoding.lean_layers import lean_pass_for

GREEDY_CASES = {
    "plain": dict(max_new_tokens=10),
    "repetition_penalty": dict(max_new_tokens=10, repetition_penalty=1.8),
    "no_repeat_ngram": dict(max_new_tokens=12, no_repeat_ngram_size=2),
    "bad_words": dict(max_new_tokens=10, bad_words_ids=[[40], [41], [50, 51], [7, 8, 9]]),
    "max_length": dict(max_length=14),
}


@pytest.mark.parametrize("case", GREEDY_CASES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_greedy_matches_generate(arch, case):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    assert_parity(model, input_ids, attention_mask, **GREEDY_CASES[case])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_greedy_rows_finish_at_their_own_eos_and_get_padded(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    eos = liked_eos(arch)
    actual = assert_parity(model, input_ids, attention_mask, max_new_tokens=12, eos_token_id=eos, min_new_tokens=2)
    assert (actual == eos).any(), "the chosen EOS should end at least one row"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_min_length_holds_eos_back(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    eos = liked_eos(arch)
    start = 1 if model.config.is_encoder_decoder else input_ids.shape[1]
    settings = dict(max_new_tokens=12, eos_token_id=eos, min_length=start + 6)
    assert_parity(model, input_ids, attention_mask, **settings)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_several_eos_ids(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    eos = liked_eos(arch)
    for settings in (dict(max_new_tokens=10, eos_token_id=[eos, 5, 6]),
                     dict(max_new_tokens=10, eos_token_id=[5, eos], num_beams=3, num_return_sequences=2)):
        assert_parity(model, input_ids, attention_mask, **settings)


BEAM_CASES = {
    "default": dict(num_beams=3, max_new_tokens=10),
    "length_penalty_early_true": dict(num_beams=4, max_new_tokens=10, length_penalty=2.0, early_stopping=True,
                                      num_return_sequences=3),
    "never": dict(num_beams=3, max_new_tokens=10, early_stopping="never", length_penalty=0.7),
    "never_negative_penalty": dict(num_beams=3, max_new_tokens=9, early_stopping="never", length_penalty=-1.0),
    "false_with_ngram": dict(num_beams=3, max_new_tokens=12, early_stopping=False, length_penalty=-0.5,
                             no_repeat_ngram_size=2),
    "min_new_tokens_rep_penalty": dict(num_beams=2, max_new_tokens=10, min_new_tokens=5, repetition_penalty=1.4),
    "forced_bos_eos": dict(num_beams=3, max_new_tokens=8, forced_bos_token_id=9, forced_eos_token_id=[10, 11]),
    "bad_words_min_new_tokens": dict(num_beams=3, max_new_tokens=10, min_new_tokens=5,
                                     bad_words_ids=[[40], [41], [50, 51]]),
}


@pytest.mark.parametrize("case", BEAM_CASES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_beam_search_matches_generate(arch, case, monkeypatch):
    """EOS is a token the model likes, so hypotheses finish at different lengths and the
    finished-hypothesis bookkeeping, early stopping and output trimming all take part.

    With the encoder output repeated per beam, as generate() does, and the model's own forward, the
    scores are the same to the bit."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(BEAM_CASES[case], eos_token_id=liked_eos(arch))
    expected = reference(model, input_ids, attention_mask, return_dict_in_generate=True, output_scores=True,
                         **settings)
    actual = generate(model, input_ids, attention_mask, share_cross_attention=False, **settings)
    assert_same_tokens(expected.sequences, actual.sequences)
    if lean_pass_for(model) is not None:
        # The lean forward (Llama, GPT-2) rounds a few sums in another order: the same tokens, scores within float32
        # rounding (1e-5, or 1.3e-6 of scores that a negative length penalty makes large); transformers' own
        # forward, run by the same loop, still gives generate()'s scores to the bit.
        torch.testing.assert_close(actual.sequences_scores, expected.sequences_scores, rtol=1.3e-6, atol=1e-5)
        monkeypatch.setattr(model_step, "lean_pass_for", lambda model: None)
        actual = generate(model, input_ids, attention_mask, share_cross_attention=False, **settings)
        assert_same_tokens(expected.sequences, actual.sequences)
    torch.testing.assert_close(actual.sequences_scores, expected.sequences_scores, rtol=0, atol=0)


@pytest.mark.parametrize("case", BEAM_CASES)
@pytest.mark.parametrize("arch", ENCODER_DECODER)
def test_beams_sharing_the_cross_attention_give_the_tokens_of_generate(arch, case, monkeypatch):
    """By default the beams of an input read one copy of its encoder output: the same tokens, and the
    same scores to the bit (each beam's attention row is computed by the same kernel as on its own copy)."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(BEAM_CASES[case], eos_token_id=liked_eos(arch))
    expected = reference(model, input_ids, attention_mask, return_dict_in_generate=True, output_scores=True,
                         **settings)
    shared_calls = []
    original = shared_cross_attention.keys_per_input_and_head
    monkeypatch.setattr(shared_cross_attention, "keys_per_input_and_head",
                        lambda states, rows: shared_calls.append(rows) or original(states, rows))
    actual = generate(model, input_ids, attention_mask, **settings)
    assert shared_calls and set(shared_calls) == {settings["num_beams"]}  # the shared path really ran
    assert_same_tokens(expected.sequences, actual.sequences)
    torch.testing.assert_close(actual.sequences_scores, expected.sequences_scores, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["bart", "marian"])
def test_beam_search_with_the_models_own_generation_config(arch):
    """BART: forced BOS/EOS; Marian: bad_words_ids=[[pad]] and forced EOS, straight from generation_config."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    for settings in (dict(num_beams=4), dict(num_beams=2, max_length=9), dict()):
        assert_parity(model, input_ids, attention_mask, **settings)


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_decoder_only_without_attention_mask_infers_padding(arch):
    """Without a mask, transformers derives one from the pad token (when pad is not also EOS)."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    for settings in (dict(max_new_tokens=6), dict(max_new_tokens=6, num_beams=2)):
        assert_parity(model, input_ids, None, **settings)


@pytest.mark.parametrize("arch", ENCODER_DECODER)
def test_encoder_decoder_without_attention_mask(arch):
    model = tiny_model(arch)
    input_ids, _ = prompt_batch(model, lengths=(5, 5))
    settings = dict(max_new_tokens=6, num_beams=2)
    assert_parity(model, input_ids, None, **settings)


def test_default_length_is_twenty_new_tokens():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model, lengths=(5,))
    actual = assert_parity(model, input_ids, attention_mask)
    assert actual.shape[1] <= 5 + 20


@pytest.mark.parametrize("arch", ENCODER_DECODER)
def test_encoder_runs_once_for_beam_search(arch, monkeypatch):
    """The encoder output is computed once per prompt and repeated for the beams, not re-run per step."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    encoder = model.get_encoder()
    calls = []
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    generate(model, input_ids, attention_mask, num_beams=3, max_new_tokens=5)
    assert len(calls) == 1


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_decoder_only_feeds_the_prompt_once_then_one_token_per_step(arch):
    """The KV cache is used: one forward on the whole prompt, then one per new token on that token only."""
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    widths = []
    # The input embeddings see every token the model is fed, whichever forward pass runs (a lean pass's or the model's).
    hook = model.get_input_embeddings().register_forward_hook(lambda module, args, output: widths.append(args[0].shape[1]))
    try:
        generate(model, input_ids, attention_mask, max_new_tokens=5, min_new_tokens=5)
    finally:
        hook.remove()
    assert widths == [input_ids.shape[1], 1, 1, 1, 1]
