"""Every runner, fed hostile texts and option values: a valid answer, or a ValueError/TypeError raised by
nopipe's own code that names the argument. Never a raw error from torch or the tokenizers, never NaN.

The CI run draws a sample (HOSTILE_EXAMPLES, a few dozen per runner); `pytest -m long` draws many more.
"""

import math
import os
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tasks
from tests.paths import FIXTURES

OUR_CODE = tuple(str(Path(__file__).resolve().parents[2] / name) for name in ("core", "tasks", "decoding"))
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "25"))

# Texts: printable words, every Unicode category (lone surrogates, controls, combining marks, zero-width),
# and the classic trouble makers.
TROUBLE = ["\u200b", "\x00", "\u0301\u0302", "\ud800", "a\ud800b", "\ufeff", " \t\n", "word " * 300, "🙂" * 50,
           "\u202e" + "text", "[CLS] [SEP] <s></s> <pad>", "a" * 5000]
TEXTS = st.one_of(st.sampled_from(TROUBLE), st.text(min_size=0, max_size=60),
                  st.text(st.characters(codec=None), min_size=1, max_size=30))
VALUES = [None, -1, 0, 1, 2, 3, 10**30, -(10**30), 1.5, float("nan"), float("inf"), -float("inf"), 1e300,
          "x", "", [], [1], [[1]], [[10**9]], [[[1], [2, 3]]], "low", True, False, {"a": 1}]

RUNNER_OPTIONS = {
    "text-classification": ("distilbert-sst2", ["top_k", "function_to_apply", "truncation", "batch_size"]),
    "token-classification": ("bert-ner", ["aggregation_strategy", "ignore_labels", "stride", "batch_size"]),
    "question-answering": ("distilbert-squad", ["top_k", "doc_stride", "max_answer_len", "max_seq_len",
                                                "max_question_len", "handle_impossible_answer", "align_to_words"]),
    "text-generation": ("gpt2", ["max_new_tokens", "temperature", "top_k", "top_p", "num_beams", "repetition_penalty",
                                 "length_penalty", "do_sample", "num_return_sequences", "min_length",
                                 "no_repeat_ngram_size", "max_length", "truncation", "penalty_alpha", "num_beam_groups",
                                 "diversity_penalty", "dola_layers", "force_words_ids"]),
    "summarization": ("bart-cnn", ["max_length", "min_length", "num_beams", "length_penalty", "temperature",
                                   "do_sample", "top_p", "no_repeat_ngram_size", "truncation", "penalty_alpha",
                                   "num_beam_groups", "diversity_penalty", "force_words_ids"]),
}
SAFE = {"text-generation": dict(max_new_tokens=3, do_sample=False), "summarization": dict(max_length=6, min_length=1)}


@pytest.fixture(scope="module")
def runners():
    return {task: tasks.load(task, model=str(FIXTURES / folder)) for task, (folder, _) in RUNNER_OPTIONS.items()}


def raised_by_nopipe(error: BaseException) -> bool:
    """The innermost frame that raised is in core/, tasks/ or decoding/ (not in torch or the tokenizers)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(OUR_CODE)


def scores_in(answer) -> list:
    if isinstance(answer, dict):
        return [value for key, value in answer.items() if key == "score"] + \
            [score for value in answer.values() for score in scores_in(value)]
    if isinstance(answer, list):
        return [score for item in answer for score in scores_in(item)]
    return []


def call(runner, task: str, text, options: dict):
    if task == "question-answering":
        return runner(question="Where?" if not isinstance(text, str) or len(text) % 2 else text,
                      context=text, **options)
    return runner(text, **options)


def check_answer_or_clear_error(runner, task: str, text, options: dict, names: list[str]) -> None:
    try:
        answer = call(runner, task, text, {**SAFE.get(task, {}), **options})
    except (ValueError, TypeError) as error:
        assert raised_by_nopipe(error), "".join(traceback.format_exception(error))
        message = str(error)
        named = [name for name in [*options, "inputs", "question", "context", "prompt", "max_length",
                                   "max_new_tokens", "min_length"] if name in message]
        assert named, f"the error names no argument: {message}"
        return
    except UserWarning:
        return
    assert all(isinstance(score, float) and math.isfinite(score) for score in scores_in(answer)), answer


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("task", list(RUNNER_OPTIONS))
def test_hostile_text_and_options(runners, task):
    names = RUNNER_OPTIONS[task][1]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(text=TEXTS, options=st.dictionaries(st.sampled_from(names), st.sampled_from(VALUES), max_size=2))
    def hostile(text, options):
        check_answer_or_clear_error(runners[task], task, text, options, names)

    hostile()


@pytest.mark.long
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("task", list(RUNNER_OPTIONS))
def test_hostile_text_and_options_at_length(runners, task):
    names = RUNNER_OPTIONS[task][1]

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=TEXTS, options=st.dictionaries(st.sampled_from(names), st.sampled_from(VALUES), max_size=3))
    def hostile(text, options):
        check_answer_or_clear_error(runners[task], task, text, options, names)

    hostile()


@pytest.mark.parametrize("task", list(RUNNER_OPTIONS))
@pytest.mark.parametrize("text", ["\u200b", "\x00\x01", "\u0301\u0302"], ids=["zero-width", "nul", "combining"])
def test_text_without_tokens_is_refused_by_every_task(runners, task, text):
    """One rule for every task: a text of which the tokenizer keeps nothing is an error naming it."""
    tokenizer = runners[task].tokenizer
    if tokenizer(text, add_special_tokens=False)["input_ids"]:
        pytest.skip(f"{type(tokenizer).__name__} keeps a token of {text!r}")
    with pytest.raises(ValueError, match="has no tokens"):
        call(runners[task], task, text, SAFE.get(task, {}))


@pytest.mark.parametrize("task", list(RUNNER_OPTIONS))
def test_a_lone_surrogate_is_named(runners, task):
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at character 4"):
        call(runners[task], task, "good\ud800 day", SAFE.get(task, {}))
