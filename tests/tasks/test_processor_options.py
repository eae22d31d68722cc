"""The 4.57.6 options reach the task runners: the greedy one-prompt cases of tests/goldens/processors.json,
passed as keywords to the text-generation and text2text-generation runners, give 4.57.6's token ids.

The runners learn the option names from decoding.DecodingConfig (tasks/settings.py), so this checks
that nothing between the call and decoding.generate drops or changes them. text2text gets num_beams=1:
the 4.57.6 cases called generate() directly, without the seq2seq pipelines' default of 4 beams.
"""

import json

import pytest

import tasks
from tests.paths import FIXTURES, GOLDENS

CASES = [case for case in json.loads((GOLDENS / "processors.json").read_text(encoding="utf-8"))["cases"]
         if case["options"].get("do_sample") is False and "num_beams" not in case["options"]
         and len(case["prompts"]) == 1 and case["negative_prompt"] is None and case["fixture"] != "bart-cnn"]
RUNNERS = {}


def runner(fixture: str):
    """The text-generation runner of a decoder-only fixture, the text2text one of an encoder-decoder one."""
    if fixture not in RUNNERS:
        task = "text2text-generation" if fixture == "t5" else "text-generation"
        RUNNERS[fixture] = tasks.load(task, model=str(FIXTURES / fixture))
    return RUNNERS[fixture]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_runner_gives_4576_tokens(case):
    extra = dict(num_beams=1) if case["fixture"] == "t5" else {}
    answer = runner(case["fixture"])(case["prompts"][0], return_tensors=True, **case["options"], **extra)
    ids = answer[0]["generated_token_ids"]
    assert list(map(int, ids)) == case["expected"]["sequences"][0]


def test_every_option_is_a_runner_option():
    """No new option needs a runner change: check_options knows every DecodingConfig field."""
    from decoding import DecodingConfig
    from tasks.settings import check_options

    names = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h", "suppress_tokens", "begin_suppress_tokens",
             "sequence_bias", "encoder_repetition_penalty", "encoder_no_repeat_ngram_size", "renormalize_logits",
             "remove_invalid_values", "exponential_decay_length_penalty", "max_time", "guidance_scale",
             "negative_prompt_ids", "negative_prompt_attention_mask", "watermarking_config", "prefix_allowed_tokens_fn")
    assert set(names) <= set(DecodingConfig.setting_names())
    check_options(dict.fromkeys(names))
