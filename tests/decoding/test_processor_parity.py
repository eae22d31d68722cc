"""The 4.57.6 options against transformers 5's own generate(), which still runs their processors: the same
tokens on the tiny models of every architecture, in batches, with sampling and with beams.

The 4.57.6 goldens (test_processor_goldens.py) check the same options against the release the pipelines
ran; this checks them in combination with everything else transformers 5 generate() does.
"""

import pytest
from tiny_models import DECODER_ONLY, ENCODER_DECODER, assert_same_tokens, prompt_batch, reference, tiny_model
from transformers import WatermarkingConfig

import decoding
from core.seed import set_seed

SAMPLING = dict(do_sample=True, top_k=0, max_new_tokens=8)
GREEDY = dict(max_new_tokens=8)
BEAMS = dict(num_beams=3, num_return_sequences=2, max_new_tokens=6)

CASES = {
    "typical_p": dict(SAMPLING, typical_p=0.6),
    "epsilon_cutoff": dict(SAMPLING, epsilon_cutoff=0.02),
    "eta_cutoff": dict(SAMPLING, eta_cutoff=0.02, num_return_sequences=2),
    "top_h": dict(SAMPLING, top_h=0.5, temperature=0.7),
    "warpers_together": dict(SAMPLING, temperature=0.8, top_h=0.9, top_k=20, typical_p=0.9, epsilon_cutoff=1e-3),
    "beam_sampling_typical": dict(BEAMS, do_sample=True, typical_p=0.8, top_k=0),
    "suppress_tokens": dict(GREEDY, suppress_tokens=[3, 5, 7, 11, 13]),
    "begin_suppress_tokens": dict(GREEDY, begin_suppress_tokens=list(range(3, 40))),
    "sequence_bias": dict(GREEDY, sequence_bias={(5,): 4.0, (5, 6): 9.0, (7, 8, 9): -3.0}),
    "sequence_bias_beams": dict(BEAMS, sequence_bias=[[[10], 3.0], [[10, 11], 5.0]]),
    "encoder_repetition_penalty": dict(GREEDY, encoder_repetition_penalty=2.5),
    "encoder_repetition_penalty_beams": dict(BEAMS, encoder_repetition_penalty=0.2),
    "encoder_no_repeat_ngram_size": dict(GREEDY, encoder_no_repeat_ngram_size=1),
    "encoder_no_repeat_ngram_size_beams": dict(BEAMS, encoder_no_repeat_ngram_size=2),
    "exponential_decay_length_penalty": dict(GREEDY, max_new_tokens=20, exponential_decay_length_penalty=(2, 1.5)),
    "remove_invalid_values": dict(GREEDY, remove_invalid_values=True, no_repeat_ngram_size=1),
    "renormalize_logits_beams": dict(BEAMS, renormalize_logits=True, repetition_penalty=2.0),
    "watermark": dict(GREEDY, watermarking_config=dict(bias=3.0)),
    "watermark_selfhash_sampling": dict(SAMPLING, watermarking_config=dict(bias=2.0, seeding_scheme="selfhash")),
}
DECODER_ONLY_CASES = {
    "guidance": dict(GREEDY, guidance_scale=2.5),
    "guidance_sampling": dict(SAMPLING, guidance_scale=1.5),
}


def reference_settings(settings: dict) -> dict:
    """transformers' generate() takes a watermark as a WatermarkingConfig (its keyword skips the dict conversion)."""
    if "watermarking_config" in settings:
        return dict(settings, watermarking_config=WatermarkingConfig(**settings["watermarking_config"]))
    return settings


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("arch", DECODER_ONLY + ENCODER_DECODER)
def test_same_tokens_as_generate(arch, case):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    run_with(model, input_ids, attention_mask, CASES[case])


@pytest.mark.parametrize("case", DECODER_ONLY_CASES)
@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_guidance_same_tokens_as_generate(arch, case):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    run_with(model, input_ids, attention_mask, DECODER_ONLY_CASES[case])


def run_with(model, input_ids, attention_mask, settings: dict) -> None:
    """tiny_models.assert_parity, with the watermark given to each side in the form it takes."""
    set_seed(0)
    expected = reference(model, input_ids, attention_mask, **reference_settings(settings))
    set_seed(0)
    actual = decoding.generate(model, input_ids, attention_mask, **settings).sequences
    assert_same_tokens(expected, actual)


def only_even_tokens(prompt: int, row_ids) -> list[int]:
    return list(range(2 * (prompt % 2), 60, 2))


@pytest.mark.parametrize("settings", [GREEDY, BEAMS, dict(SAMPLING, num_return_sequences=2)])
@pytest.mark.parametrize("arch", DECODER_ONLY + ENCODER_DECODER)
def test_prefix_allowed_tokens_fn_same_tokens_as_generate(arch, settings):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    run_with(model, input_ids, attention_mask, dict(settings, prefix_allowed_tokens_fn=only_even_tokens))
