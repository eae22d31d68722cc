"""Bad settings and inputs fail before any decoding, with an error that names the argument and the fix."""

import pytest
import torch
from tiny_models import (
    ARCHITECTURES,
    assert_parity,
    assert_same_tokens,
    fixture_model,
    prompt_batch,
    reference,
    tiny_model,
)

from decoding import generate, stream

# (settings, exception, words the message must contain)
BAD_SETTINGS = {
    "temperature_zero": (dict(do_sample=True, temperature=0.0), ValueError, ["temperature", "> 0", "do_sample=False"]),
    "temperature_negative": (dict(do_sample=True, temperature=-0.5), ValueError, ["temperature", "> 0"]),
    "top_p_zero": (dict(do_sample=True, top_p=0.0), ValueError, ["top_p", "(0, 1]", "0.0"]),
    "top_p_above_one": (dict(do_sample=True, top_p=1.5), ValueError, ["top_p", "(0, 1]", "1.5"]),
    "top_k_negative": (dict(do_sample=True, top_k=-1), ValueError, ["top_k", ">= 0", "-1"]),
    "top_k_float": (dict(do_sample=True, top_k=2.5), TypeError, ["top_k", "int"]),
    "min_p_above_one": (dict(do_sample=True, min_p=1.5), ValueError, ["min_p", "[0, 1]"]),
    "num_beams_zero": (dict(num_beams=0), ValueError, ["num_beams", ">= 1", "got 0"]),
    "num_beams_str": (dict(num_beams="4"), TypeError, ["num_beams", "int"]),
    "more_sequences_than_beams": (dict(num_beams=2, num_return_sequences=3), ValueError,
                                  ["num_return_sequences (3)", "num_beams (2)", "raise num_beams"]),
    "greedy_several_sequences": (dict(num_return_sequences=2), ValueError, ["num_return_sequences", "do_sample=True"]),
    "max_new_tokens_negative": (dict(max_new_tokens=-1), ValueError, ["max_new_tokens", ">= 1", "-1"]),
    "max_new_tokens_zero": (dict(max_new_tokens=0), ValueError, ["max_new_tokens", ">= 1"]),
    "min_length_above_max_length": (dict(min_length=30, max_length=20), ValueError,
                                    ["min_length (30)", "max_length (20)", "lower min_length"]),
    "min_new_tokens_above_max_new_tokens": (dict(min_new_tokens=9, max_new_tokens=5), ValueError,
                                            ["min_new_tokens (9)", "5 new tokens", "raise max_new_tokens"]),
    "repetition_penalty_zero": (dict(repetition_penalty=0.0), ValueError, ["repetition_penalty", "> 0"]),
    "early_stopping_word": (dict(num_beams=2, early_stopping="always"), ValueError, ["early_stopping", "'never'"]),
    "bad_words_flat": (dict(bad_words_ids=[5, 6]), ValueError, ["bad_words_ids", "[[12], [7, 9]]"]),
    "misspelt_setting": (dict(temprature=0.5), TypeError, ["temprature", "did you mean 'temperature'"]),
    "stop_strings_without_tokenizer": (dict(stop_strings=["."]), ValueError, ["stop_strings", "tokenizer="]),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_bad_setting_is_refused_with_its_name_and_fix(arch, case):
    settings, error, words = BAD_SETTINGS[case]
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(error) as raised:
        generate(model, input_ids, attention_mask, **settings)
    for word in words:
        assert word in str(raised.value), f"{word!r} missing from: {raised.value}"


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bart", "marian"])
def test_prompt_longer_than_the_context_is_refused(arch):
    """The tiny models have 64 positions; 70 tokens do not fit, with or without a length setting."""
    model = tiny_model(arch)
    input_ids = torch.randint(3, 90, (1, 70))
    for settings in (dict(max_new_tokens=5), dict(), dict(num_beams=2, max_new_tokens=3)):
        with pytest.raises(ValueError, match=r"is 70 tokens long but the model's context is 64 positions; "
                                             r"truncate it, e\.g\. tokenizer\(\.\.\., truncation=True, max_length=64\)"):
            generate(model, input_ids, **settings)


def test_output_past_the_position_table_is_refused():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match="max_length 67 is past the model's context of 64 positions; lower max_new_tokens"):
        generate(model, input_ids, attention_mask, max_new_tokens=60)


@pytest.mark.parametrize("arch", ["t5", "m2m100"])
def test_long_input_is_fine_without_a_position_table(arch):
    """T5's relative and M2M100's self-extending positions take long inputs, as in transformers."""
    model = tiny_model(arch)
    input_ids = torch.randint(3, 90, (1, 70))
    input_ids[0, -1] = model.generation_config.eos_token_id
    assert_parity(model, input_ids, max_new_tokens=4)


@pytest.mark.parametrize("bad_input, error, words", [
    ([[5, 6, 7]], TypeError, ["input_ids", "torch.LongTensor", "return_tensors='pt'"]),
    (torch.tensor([5, 6, 7]), ValueError, ["2-D", "input_ids[None]"]),
    (torch.tensor([[5.0, 6.0]]), TypeError, ["integer token ids"]),
    (torch.zeros((1, 0), dtype=torch.long), ValueError, ["empty"]),
])
def test_bad_input_ids_are_refused(bad_input, error, words):
    with pytest.raises(error) as raised:
        generate(tiny_model("gpt2"), bad_input, max_new_tokens=3)
    for word in words:
        assert word in str(raised.value)


def test_attention_mask_of_another_shape_is_refused():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        generate(model, input_ids, attention_mask[:, 1:], max_new_tokens=3)


def test_a_strategy_cannot_replace_beam_search():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match="cannot be combined with num_beams=2; pass num_beams=1"):
        generate(model, input_ids, attention_mask, num_beams=2, strategy=lambda scores: scores.argmax(-1))


def test_stream_refuses_beams_and_batches():
    model, tokenizer = fixture_model("gpt2")
    input_ids = tokenizer(["one", "two"], return_tensors="pt", padding=True)["input_ids"]
    with pytest.raises(ValueError, match=r"one prompt: input_ids of shape \(1, seq_len\)"):
        list(stream(model, tokenizer, input_ids, max_new_tokens=3))
    with pytest.raises(ValueError, match="cannot show num_beams=2"):
        list(stream(model, tokenizer, input_ids[:1], max_new_tokens=3, num_beams=2))


def test_minimum_from_generation_config_only_warns():
    """BART-CNN's generation_config asks min_length=56; a caller asking for 10 tokens gets a warning
    and 10 tokens, as with generate()."""
    model, tokenizer = fixture_model("bart-cnn")
    encoded = tokenizer(["A short article about nothing in particular."], return_tensors="pt")
    with pytest.warns(UserWarning, match=r"min_length \(56\) is larger than max_length \(11\).*generation_config"):
        actual = generate(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=10).sequences
    assert_same_tokens(reference(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=10), actual)


def test_all_architectures_accept_their_own_defaults():
    """No setting at all: every tiny model's generation_config passes validation."""
    for arch in ARCHITECTURES:
        model = tiny_model(arch)
        input_ids, attention_mask = prompt_batch(model)
        assert generate(model, input_ids, attention_mask, max_new_tokens=2).sequences.shape[0] == 3
