"""Hostile values for every 4.57.6 option: an answer, or a ValueError/TypeError raised by nopipe's own code.

Hypothesis draws one option and one value from a pool of the values that break code (NaN, infinities,
huge ints, wrong types, empty and nested containers, ids past the vocabulary) and runs greedy, sampled
and beam decoding on a tiny model. A raw error from torch or Python (IndexError, OverflowError,
RuntimeError...) or one raised outside decoding/ fails the test.
"""

import math
import traceback
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import VOCAB, prompt_batch, tiny_model

from decoding import generate

DECODING = str(Path(__file__).resolve().parents[2] / "decoding")
OPTIONS = ["typical_p", "epsilon_cutoff", "eta_cutoff", "top_h", "suppress_tokens", "begin_suppress_tokens",
           "sequence_bias", "encoder_repetition_penalty", "encoder_no_repeat_ngram_size", "renormalize_logits",
           "remove_invalid_values", "exponential_decay_length_penalty", "max_time", "guidance_scale",
           "negative_prompt_ids", "negative_prompt_attention_mask", "watermarking_config", "output_scores",
           "output_logits", "return_dict_in_generate", "prefix_allowed_tokens_fn", "temperature", "length_penalty", "num_beams",
           "max_new_tokens"]
HOSTILE = [None, True, 0, 1, -1, 0.5, 1.0, 2.0, 10**30, -10**30, 10**400, math.nan, math.inf, -math.inf, 1e-300,
           1e300, "0.5", "", [], [0], [VOCAB], [-1], [[1, 2]], [1.5], (2, 1.5), (2, math.inf), (-1, 2.0), (2, -1.0),
           (10**30, 1.5), (2,), {}, {(1,): 1.0}, {(1, 2): math.nan}, {1: 1.0}, {(VOCAB,): 1.0}, [[[1, 2], 1.0]],
           [[1, 2], 1.0], {"bias": 2.0}, {"bias": math.inf}, {"greenlist_ratio": 0.0}, {"context_width": 10**9},
           {"seeding_scheme": "selfhash"}, {"hashing_key": -5}, torch.tensor([[1, 2]]), torch.tensor([1, 2]),
           torch.tensor([[0.5]]), torch.zeros((1, 0), dtype=torch.long), torch.tensor([[VOCAB + 5]])]
MODES = [dict(), dict(do_sample=True), dict(num_beams=2)]


@settings(max_examples=150, deadline=None)
@given(option=st.sampled_from(OPTIONS), value=st.sampled_from(HOSTILE), mode=st.sampled_from(MODES),
       arch=st.sampled_from(["gpt2", "bart"]))
def test_an_answer_or_a_clear_error(option, value, mode, arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    settings = {"max_new_tokens": 3, **mode, option: value}
    try:
        out = generate(model, input_ids, attention_mask, **settings)
    except (ValueError, TypeError) as error:
        frames = traceback.extract_tb(error.__traceback__)
        assert frames[-1].filename.startswith(DECODING), f"{option}={value!r} raised outside decoding/: {error!r}"
        assert option in str(error) or option in ("num_beams", "max_new_tokens"), f"{error} does not name {option}"
        return
    assert out.sequences.shape[0] == input_ids.shape[0]
    assert not torch.isnan(out.sequences.float()).any()
