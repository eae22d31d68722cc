"""Bad values of the 4.57.6 options fail before any decoding, with an error that names the option and the fix.

Where 4.57.6 silently ignored a value it could not use (typical_p=1.5, epsilon_cutoff=2), nopipe refuses it.
"""

import pytest
import torch
from tiny_models import VOCAB, prompt_batch, tiny_model

from decoding import generate

IDS = torch.tensor([[5, 6, 7]])

# (settings, exception, words the message must contain)
BAD = {
    "typical_p_zero": (dict(do_sample=True, typical_p=0.0), ValueError, ["typical_p", "(0, 1]"]),
    "typical_p_above_one": (dict(do_sample=True, typical_p=1.5), ValueError, ["typical_p", "1.5"]),
    "typical_p_text": (dict(do_sample=True, typical_p="0.9"), TypeError, ["typical_p", "number"]),
    "epsilon_cutoff_one": (dict(do_sample=True, epsilon_cutoff=1.0), ValueError, ["epsilon_cutoff", "(0, 1)", "0.0 disables"]),
    "epsilon_cutoff_negative": (dict(do_sample=True, epsilon_cutoff=-0.1), ValueError, ["epsilon_cutoff"]),
    "eta_cutoff_nan": (dict(do_sample=True, eta_cutoff=float("nan")), TypeError, ["eta_cutoff", "finite"]),
    "encoder_repetition_penalty_zero": (dict(encoder_repetition_penalty=0.0), ValueError,
                                        ["encoder_repetition_penalty", "> 0", "1.0 disables"]),
    "encoder_repetition_penalty_inf": (dict(encoder_repetition_penalty=float("inf")), ValueError,
                                       ["encoder_repetition_penalty", "finite"]),
    "encoder_no_repeat_ngram_negative": (dict(encoder_no_repeat_ngram_size=-1), ValueError,
                                         ["encoder_no_repeat_ngram_size", ">= 0"]),
    "encoder_no_repeat_ngram_huge": (dict(encoder_no_repeat_ngram_size=10**30), ValueError, ["encoder_no_repeat_ngram_size"]),
    "sequence_bias_empty": (dict(sequence_bias={}), ValueError, ["sequence_bias", "not be empty"]),
    "sequence_bias_list_keys": (dict(sequence_bias={5: -1.0}), ValueError, ["sequence_bias", "tuple of token ids"]),
    "sequence_bias_nan": (dict(sequence_bias={(5,): float("nan")}), ValueError, ["sequence_bias", "finite", "(5,)"]),
    "sequence_bias_flat_list": (dict(sequence_bias=[5, -1.0]), ValueError, ["sequence_bias", "[token ids, bias]"]),
    "sequence_bias_outside_vocab": (dict(sequence_bias={(VOCAB + 3,): -1.0}), ValueError,
                                    ["sequence_bias", f"[{VOCAB + 3}]", f"vocabulary of {VOCAB}"]),
    "suppress_tokens_flat_int": (dict(suppress_tokens=5), TypeError, ["suppress_tokens", "list of non-negative token ids"]),
    "suppress_tokens_negative": (dict(suppress_tokens=[-1]), TypeError, ["suppress_tokens"]),
    "suppress_tokens_outside_vocab": (dict(suppress_tokens=[VOCAB]), ValueError, ["suppress_tokens", f"[{VOCAB}]"]),
    "suppress_tokens_forced_eos": (dict(suppress_tokens=[2, 9], forced_eos_token_id=2), ValueError,
                                   ["suppress_tokens contains [2]", "forced_eos_token_id", "remove it"]),
    "begin_suppress_tokens_outside_vocab": (dict(begin_suppress_tokens=[10**9]), ValueError, ["begin_suppress_tokens"]),
    "exponential_decay_not_a_pair": (dict(exponential_decay_length_penalty=1.5), TypeError,
                                     ["exponential_decay_length_penalty", "(start, factor)"]),
    "exponential_decay_negative_start": (dict(exponential_decay_length_penalty=(-1, 1.5)), ValueError,
                                         ["exponential_decay_length_penalty", "start"]),
    "exponential_decay_zero_factor": (dict(exponential_decay_length_penalty=(2, 0.0)), ValueError,
                                      ["exponential_decay_length_penalty", "factor", "> 0"]),
    "exponential_decay_without_eos": (dict(exponential_decay_length_penalty=(2, 1.5), eos_token_id=[]), ValueError,
                                      ["exponential_decay_length_penalty", "eos_token_id"]),
    "remove_invalid_values_text": (dict(remove_invalid_values="yes"), TypeError, ["remove_invalid_values", "True or False"]),
    "renormalize_logits_int": (dict(renormalize_logits=1), TypeError, ["renormalize_logits", "True or False"]),
    "guidance_scale_inf": (dict(guidance_scale=float("inf")), ValueError, ["guidance_scale", "finite"]),
    "negative_prompt_without_guidance": (dict(negative_prompt_ids=IDS), ValueError,
                                         ["negative_prompt_ids", "guidance_scale != 1"]),
    "negative_prompt_as_list": (dict(guidance_scale=2.0, negative_prompt_ids=[[5, 6]]), TypeError,
                                ["negative_prompt_ids", "2-D tensor"]),
    "negative_mask_of_another_shape": (dict(guidance_scale=2.0, negative_prompt_ids=IDS,
                                            negative_prompt_attention_mask=torch.ones(1, 2, dtype=torch.long)),
                                       ValueError, ["negative_prompt_attention_mask", "same shape"]),
    "watermarking_config_unknown_key": (dict(watermarking_config={"strength": 2.0}), TypeError,
                                        ["watermarking_config", "strength"]),
    "watermarking_config_ratio": (dict(watermarking_config={"greenlist_ratio": 1.0}), ValueError, ["greenlist_ratio", "(0, 1)"]),
    "watermarking_config_scheme": (dict(watermarking_config={"seeding_scheme": "hash"}), ValueError, ["seeding_scheme"]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_option_is_refused_with_its_name_and_fix(case):
    settings, error, words = BAD[case]
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(error) as raised:
        generate(model, input_ids, attention_mask, max_new_tokens=3, **settings)
    for word in words:
        assert word in str(raised.value), f"{word!r} missing from: {raised.value}"


def test_guidance_is_refused_for_encoder_decoder_models():
    model = tiny_model("bart")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match="guidance_scale .* decoder-only models; remove it"):
        generate(model, input_ids, attention_mask, max_new_tokens=3, guidance_scale=2.0)


@pytest.mark.parametrize("settings", [dict(typical_p=1.0), dict(epsilon_cutoff=0.0, eta_cutoff=0.0),
                                      dict(encoder_repetition_penalty=1.0, encoder_no_repeat_ngram_size=0),
                                      dict(guidance_scale=1.0), dict(guidance_scale=None), dict(suppress_tokens=[])])
def test_the_off_values_change_nothing(settings):
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=5)
    assert generate(model, input_ids, attention_mask, max_new_tokens=5, **settings).sequences.tolist() == \
        plain.sequences.tolist()


def test_bart_forced_bos_cannot_be_suppressed():
    """The tiny BART forces BOS 0 from its generation_config: suppressing 0 left no token (greedy wrote 0 anyway)."""
    model = tiny_model("bart")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match=r"suppress_tokens contains \[0\], the forced_bos_token_id \(maybe from model"):
        generate(model, input_ids, attention_mask, max_new_tokens=3, suppress_tokens=[0])


def test_negative_prompts_must_match_the_rows():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)  # 3 prompts
    negative = torch.tensor([[5, 6], [7, 8]])
    with pytest.raises(ValueError, match="negative_prompt_ids has 2 rows but the call generates 3; give one row per"):
        generate(model, input_ids, attention_mask, max_new_tokens=3, guidance_scale=2.0, negative_prompt_ids=negative)
    with pytest.raises(ValueError, match="negative_prompt_ids has 1 rows but the call generates 6"):
        generate(model, input_ids[:3], attention_mask, max_new_tokens=3, guidance_scale=2.0, num_beams=2,
                 negative_prompt_ids=negative[:1])
    three = generate(model, input_ids, attention_mask, max_new_tokens=3, guidance_scale=2.0,
                     negative_prompt_ids=torch.tensor([[5, 6]] * 3))
    assert three.sequences.shape[0] == 3


def test_negative_prompt_ids_outside_the_embeddings():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match=f"negative_prompt_ids holds ids outside the model's {VOCAB} embeddings"):
        generate(model, input_ids, attention_mask, max_new_tokens=3, guidance_scale=2.0,
                 negative_prompt_ids=torch.tensor([[5, VOCAB]] * 3))


@pytest.mark.parametrize("fn, words", [
    (lambda prompt, ids: [], ["prefix_allowed_tokens_fn returned []", "non-empty list"]),
    (lambda prompt, ids: [VOCAB + 1], ["prefix_allowed_tokens_fn returned ids outside", f"vocabulary of {VOCAB}"]),
    (lambda prompt, ids: None, ["prefix_allowed_tokens_fn returned None"]),
    ([1, 2], ["prefix_allowed_tokens_fn must be a function"]),
])
def test_bad_prefix_allowed_tokens_fn(fn, words):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises((ValueError, TypeError)) as raised:
        generate(model, input_ids, attention_mask, max_new_tokens=3, prefix_allowed_tokens_fn=fn)
    for word in words:
        assert word in str(raised.value), f"{word!r} missing from: {raised.value}"
