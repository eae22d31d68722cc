"""Numeric settings are bounded: a huge, tiny, NaN or infinite value is a clear error before any arithmetic.

Before these checks, temperature=inf turned top_k=1 into random text, length_penalty=10**10 computed a
huge Python integer for a minute, and num_beams=10**6 or max_new_tokens=10**30 reached torch.
"""

import math

import pytest
from tiny_models import VOCAB, prompt_batch, tiny_model

from decoding import DecodingConfig, generate

# (settings, words the message must contain)
OUT_OF_BOUNDS = {
    "temperature_inf": (dict(do_sample=True, temperature=math.inf), ["temperature", "finite", "1e+30"]),
    "temperature_1e300": (dict(do_sample=True, temperature=1e300), ["temperature", "1e+300"]),
    "temperature_huge_int": (dict(do_sample=True, temperature=10**400), ["temperature", "finite"]),
    "temperature_underflows_float32": (dict(do_sample=True, temperature=1e-300), ["temperature", "1e-30"]),
    "temperature_nan": (dict(do_sample=True, temperature=math.nan), ["temperature", "> 0"]),
    "length_penalty_nan": (dict(num_beams=2, length_penalty=math.nan), ["length_penalty", "finite", "nan"]),
    "length_penalty_inf": (dict(num_beams=2, length_penalty=math.inf), ["length_penalty", "finite"]),
    "length_penalty_minus_inf": (dict(num_beams=2, length_penalty=-math.inf), ["length_penalty", "-10"]),
    "length_penalty_int_1e10": (dict(num_beams=2, length_penalty=10**10), ["length_penalty", "10000000000"]),
    "length_penalty_int_1e400": (dict(num_beams=2, length_penalty=10**400), ["length_penalty", "between -10 and 10"]),
    "repetition_penalty_inf": (dict(repetition_penalty=math.inf), ["repetition_penalty", "finite"]),
    "repetition_penalty_nan": (dict(repetition_penalty=math.nan), ["repetition_penalty", "> 0"]),
    "num_beams_1e6": (dict(num_beams=10**6), ["num_beams", "at most 4096", "1,000,000"]),
    "num_beams_1e30": (dict(num_beams=10**30), ["num_beams", "at most 4096"]),
    "num_beams_above_vocab": (dict(num_beams=VOCAB + 1), ["num_beams (97)", f"vocabulary size ({VOCAB})", "lower num_beams"]),
    "num_return_sequences_1e30": (dict(do_sample=True, num_return_sequences=10**30), ["num_return_sequences", "4096"]),
    "max_new_tokens_1e30": (dict(max_new_tokens=10**30), ["max_new_tokens", "at most 16,777,216"]),
    "max_length_1e30": (dict(max_length=10**30), ["max_length", "at most"]),
    "min_new_tokens_1e30": (dict(min_new_tokens=10**30), ["min_new_tokens", "at most"]),
    "min_length_1e30": (dict(min_length=10**30), ["min_length", "at most"]),
    "no_repeat_ngram_size_1e30": (dict(no_repeat_ngram_size=10**30), ["no_repeat_ngram_size", "at most"]),
}


@pytest.mark.parametrize("case", OUT_OF_BOUNDS)
@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_out_of_bounds_setting_is_refused_with_its_name(arch, case):
    settings, words = OUT_OF_BOUNDS[case]
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError) as raised:
        generate(model, input_ids, attention_mask, **settings)
    for word in words:
        assert word in str(raised.value), f"{word!r} missing from: {raised.value}"


def test_an_int_length_penalty_becomes_a_float():
    model = tiny_model("gpt2")
    assert DecodingConfig.from_model(model, length_penalty=2).length_penalty == 2.0
    assert isinstance(DecodingConfig.from_model(model, length_penalty=2).length_penalty, float)
    input_ids, attention_mask = prompt_batch(model)
    as_int = generate(model, input_ids, attention_mask, num_beams=2, length_penalty=2, max_new_tokens=4)
    as_float = generate(model, input_ids, attention_mask, num_beams=2, length_penalty=2.0, max_new_tokens=4)
    assert as_int.sequences.tolist() == as_float.sequences.tolist()


@pytest.mark.parametrize("settings", [dict(do_sample=True, temperature=1e-3, top_k=1), dict(num_beams=VOCAB),
                                      dict(num_beams=2, length_penalty=-10), dict(do_sample=True, temperature=1e30)])
def test_values_at_the_bounds_still_run(settings):
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    assert generate(model, input_ids, attention_mask, max_new_tokens=2, **settings).sequences.shape[0] == 3
