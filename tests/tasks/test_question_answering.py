"""QuestionAnswerer gives what transformers 4.57.6's `question-answering` pipeline gave on the same fixtures.

transformers 5.3 removed that pipeline, so the reference is tests/goldens/question_answering.json,
written by tests/goldens/make_qa_goldens.py under transformers 4.57.6. Answers, start and end must
be equal, scores within 1e-5, except where we differ on purpose (module docstring of
tasks/question_answering.py): when the pipeline returns fewer than `top_k` answers, or pads its
list with zero-score spans from outside the context, its positive-score answers must be the start
of ours, and ours go on with further distinct answers up to `top_k`.
"""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.question_answering import Answers, QuestionAnswerer, question_context_pairs, ranked_spans, span_probabilities
from tests.paths import FIXTURES, GOLDENS

GOLDEN = json.loads((GOLDENS / "question_answering.json").read_text(encoding="utf-8"))
CASES = {case["id"]: case for case in GOLDEN["cases"]}
WOLFGANG = "My name is Wolfgang and I live in Berlin."
CURIE = CASES["distilbert-top-k-3"]["inputs"]["context"]
LONG = CASES["distilbert-long-small-windows"]["inputs"]["context"]


@pytest.fixture(scope="module")
def loaded():
    """A runner per fixture, loaded once for the module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = QuestionAnswerer.from_pretrained(str(FIXTURES / name))
        return cache[name]

    return get


def ask(runner, case: dict):
    """Call the runner the way the golden case called the pipeline."""
    if case["positional"]:
        return runner(case["inputs"], **case["options"])
    return runner(**case["inputs"], **case["options"])


def pair_count(case: dict) -> int:
    inputs = case["inputs"]
    if case["positional"]:
        return 1 if isinstance(inputs, dict) else len(inputs)
    return 1 if isinstance(inputs["question"], str) else len(inputs["question"])


def assert_same_answer(ours: dict, theirs: dict):
    assert set(ours) == {"score", "start", "end", "answer"}
    assert (ours["answer"], ours["start"], ours["end"]) == (theirs["answer"], theirs["start"], theirs["end"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


def assert_same_answers(ours: list[dict], theirs: list[dict]):
    assert [answer["answer"] for answer in ours] == [answer["answer"] for answer in theirs]
    for mine, reference in zip(ours, theirs):
        assert_same_answer(mine, reference)


def assert_pipeline_answers_come_first(ours: list[dict], theirs: list[dict], top_k: int):
    """Where the pipeline came short of top_k (or filled up with zero-score spans outside the context)."""
    found = [answer for answer in theirs if answer["score"] > 0]
    assert_same_answers(ours[:len(found)], found)
    assert len(found) <= len(ours) <= top_k
    assert len({answer["answer"].lower() for answer in ours}) == len(ours)  # distinct answers
    extra = ours[len(found):]
    assert all(answer["score"] > 0 for answer in extra)
    assert [answer["score"] for answer in extra] == sorted((answer["score"] for answer in extra), reverse=True)


# --- parity with the 4.57.6 goldens --------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_answers_match_the_4_57_pipeline(loaded, case):
    ours, theirs = ask(loaded(case["fixture"]), case), case["output"]
    top_k = case["options"].get("top_k", 1)
    if pair_count(case) == 1:
        ours, theirs = [ours], [theirs]
    assert isinstance(ours, list) and len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs):
        if top_k == 1:
            assert isinstance(mine, dict)
            assert_same_answer(mine, reference)
        elif len(reference) == top_k and all(answer["score"] > 0 for answer in reference):
            assert isinstance(mine, list) and len(mine) == top_k
            assert_same_answers(mine, reference)
        else:
            assert_pipeline_answers_come_first(mine, reference, top_k)


def test_where_the_pipeline_comes_short_of_top_k_we_do_not(loaded):
    """huggingface/transformers#38984: long words make many spans one answer; the pipeline stops early."""
    case = CASES["roberta-fewer-than-top-k-4"]
    assert len(case["output"]) == 2
    ours = ask(loaded(case["fixture"]), case)
    assert len(ours) == 4
    assert_same_answers(ours[:2], case["output"])
    context = case["inputs"]["context"]
    for answer in ours[2:]:  # further whole-word answers, each its own slice of the context
        assert context[answer["start"]:answer["end"]] == answer["answer"]
        assert answer["start"] in (0, 29, 33, 62) and answer["end"] in (28, 32, 62, 63)


def test_zero_score_spans_outside_the_context_are_not_answers(loaded):
    case = CASES["distilbert-top-k-beyond-spans"]
    assert {"score": 0.0, "start": 0, "end": 0, "answer": ""} in case["output"]  # the pipeline's filler
    ours = ask(loaded(case["fixture"]), case)
    assert [answer["answer"] for answer in ours] == ["Paris", ".", "Paris."]  # every span of "Paris." there is


def test_the_goldens_cover_every_option():
    options = {key for case in CASES.values() for key in case["options"]}
    assert options >= {"top_k", "handle_impossible_answer", "max_answer_len", "align_to_words", "doc_stride",
                       "max_seq_len", "max_question_len"}
    assert {case["fixture"] for case in CASES.values()} == {"distilbert-squad", "roberta-squad"}


# --- input forms, batching, stages, int8 ------------------------------------------------------------------

def test_every_input_form_gives_the_same_answer(loaded):
    runner = loaded("distilbert-squad")
    pair = {"question": "Where do I live?", "context": WOLFGANG}
    expected = runner(question=pair["question"], context=pair["context"])
    assert runner(pair) == expected
    assert runner([pair]) == expected  # a single pair gives a single result, as in the pipeline
    assert runner(question=[pair["question"]], context=pair["context"]) == expected
    assert runner(pair["question"], pair["context"]) == expected


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_a_batch_of_pairs_gives_each_pairs_own_answers(loaded, batch_size):
    runner = loaded("roberta-squad")
    questions = ["Who wrote Hamlet?", "Where do I live?", "Who was Marie Curie?"]
    contexts = [LONG, WOLFGANG, CURIE]
    batched = runner(question=questions, context=contexts, top_k=3, max_seq_len=64, doc_stride=24,
                     batch_size=batch_size)
    for question, context, answers in zip(questions, contexts, batched):
        assert_same_answers(answers, runner(question=question, context=context, top_k=3, max_seq_len=64,
                                            doc_stride=24))


def test_stages_run_one_at_a_time_give_the_call_result(loaded):
    runner = loaded("distilbert-squad")
    pairs = [{"question": "Who wrote Hamlet?", "context": LONG}, {"question": "Where do I live?", "context": WOLFGANG}]
    windows = runner.preprocess(pairs, max_seq_len=64, doc_stride=24)
    assert [window.source for window in windows].count(0) > 1 and [window.source for window in windows].count(1) == 1
    logits = runner.forward([window.features for window in windows])
    assert logits.shape == (len(windows), max(len(window) for window in windows), 2)
    for index, pair in enumerate(pairs):
        mine = [position for position, window in enumerate(windows) if window.source == index]
        stepped = runner.postprocess(pair["context"], [windows[i] for i in mine], [logits[i] for i in mine], top_k=2)
        assert_same_answers(stepped, runner(**pair, top_k=2, max_seq_len=64, doc_stride=24))


def test_the_same_answer_in_two_windows_is_one_answer_with_the_scores_summed(loaded):
    runner = loaded("distilbert-squad")
    windows = runner.preprocess([{"question": "Where do I live?", "context": WOLFGANG}])
    logits = runner.forward([window.features for window in windows])
    once = runner.postprocess(WOLFGANG, windows, list(logits), top_k=3)
    twice = runner.postprocess(WOLFGANG, windows * 2, list(logits) * 2, top_k=3)
    assert [answer["answer"] for answer in twice] == [answer["answer"] for answer in once]
    assert [answer["score"] for answer in twice] == pytest.approx([2 * answer["score"] for answer in once])


def test_int8_model_gives_mostly_the_same_answers(loaded):
    runner = loaded("distilbert-squad")
    quantized = QuestionAnswerer.from_pretrained(str(FIXTURES / "distilbert-squad"), dtype="int8")
    cases = [case for case in CASES.values() if case["fixture"] == "distilbert-squad" and not case["positional"]
             and isinstance(case["inputs"]["question"], str)]
    same = 0
    for case in cases:
        ours, int8 = ask(runner, case), ask(quantized, case)
        best, best_int8 = (ours[0], int8[0]) if isinstance(ours, list) else (ours, int8)
        same += (best["start"], best["end"]) == (best_int8["start"], best_int8["end"])
    assert same >= 0.8 * len(cases)


# --- pure functions on hand-made arrays --------------------------------------------------------------------

def test_masked_tokens_get_no_probability():
    logits = torch.tensor([[1.0, 1.0], [5.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    keep = torch.tensor([True, True, True, False])
    start, end = span_probabilities(logits, keep)
    assert start[3] == 0 and end[3] == 0
    assert start.sum() == pytest.approx(1.0) and end.sum() == pytest.approx(1.0)
    assert start.argmax() == 1 and end.argmax() == 2


def test_spans_stay_in_the_context_and_the_length_band():
    start = torch.tensor([0.0, 0.5, 0.3, 0.2, 0.0])
    end = torch.tensor([0.0, 0.1, 0.2, 0.7, 0.0])
    context = torch.tensor([False, True, True, True, False])
    scores, starts, ends = ranked_spans(start, end, context, max_answer_len=2)
    assert list(zip(starts.tolist(), ends.tolist())) == [(2, 3), (3, 3), (1, 2), (2, 2), (1, 1)]
    assert scores.tolist() == pytest.approx([0.3 * 0.7, 0.2 * 0.7, 0.5 * 0.2, 0.3 * 0.2, 0.5 * 0.1])


def test_answers_merge_case_insensitively(loaded):
    runner = loaded("distilbert-squad")
    context = "Berlin is big. berlin is old."
    window = runner.preprocess([{"question": "Which city?", "context": context}])[0]
    token_at = lambda char: window.encoding.char_to_token(char, sequence_index=1)  # noqa: E731
    answers = Answers(context, align_to_words=True)
    answers.add(window.encoding, token_at(0), token_at(5), 0.25)  # "Berlin"
    answers.add(window.encoding, token_at(15), token_at(20), 0.5)  # "berlin"
    assert answers.best(5) == [{"score": 0.75, "start": 0, "end": 6, "answer": "Berlin"}]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 24).flatmap(lambda tokens: st.tuples(
    st.lists(st.floats(-20, 20), min_size=tokens, max_size=tokens),
    st.lists(st.floats(-20, 20), min_size=tokens, max_size=tokens),
    st.lists(st.booleans(), min_size=tokens, max_size=tokens),
    st.integers(1, 30))))
def test_ranked_spans_keep_their_invariants(arrays):
    start_logits, end_logits, context, max_answer_len = arrays
    context = torch.tensor(context)
    keep = context.clone()
    keep[0] = True  # the CLS slot
    start, end = span_probabilities(torch.tensor([start_logits, end_logits]).T, keep)
    scores, starts, ends = ranked_spans(start, end, context, max_answer_len)
    assert bool((starts <= ends).all()) and bool((ends < starts + max_answer_len).all())
    assert bool(context[starts].all()) and bool(context[ends].all())
    assert bool(((scores >= 0) & (scores <= 1)).all())
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)
    band = sum(1 for s in range(len(context)) for e in range(s, min(s + max_answer_len, len(context)))
               if context[s] and context[e])
    assert len(scores) == band  # every valid span, none left out


@pytest.fixture(scope="module")
def wolfgang_window(loaded):
    runner = loaded("distilbert-squad")
    return runner, runner.preprocess([{"question": "Where do I live?", "context": WOLFGANG}])[0]


@settings(max_examples=60, deadline=None)
@given(logits=st.lists(st.tuples(st.floats(-30, 30), st.floats(-30, 30)), min_size=40, max_size=40),
       top_k=st.integers(1, 12), max_answer_len=st.integers(1, 20), align_to_words=st.booleans(),
       handle_impossible_answer=st.booleans())
def test_answers_of_any_logits_are_slices_of_the_context(wolfgang_window, logits, top_k, max_answer_len,
                                                         align_to_words, handle_impossible_answer):
    runner, window = wolfgang_window
    assert len(window) <= 40
    logits = torch.tensor(logits)[:len(window)]
    answers = runner.postprocess(WOLFGANG, [window], [logits], top_k=top_k, max_answer_len=max_answer_len,
                                 align_to_words=align_to_words, handle_impossible_answer=handle_impossible_answer)
    answers = [answers] if top_k == 1 else answers
    assert 1 <= len(answers) <= top_k
    assert len({answer["answer"].lower() for answer in answers}) == len(answers)
    for answer in answers:
        assert 0 <= answer["start"] <= answer["end"] <= len(WOLFGANG)
        assert WOLFGANG[answer["start"]:answer["end"]] == answer["answer"]
        assert 0 <= answer["score"] <= 1 + 1e-6  # one window: its span probabilities sum to at most 1
        assert answer["answer"] or handle_impossible_answer


# --- bad input -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(question="Where?"), TypeError, "context is missing: pass question= and context= strings"),
    (dict(question=None, context=WOLFGANG), TypeError, "question must be a string or a non-empty list"),
    (dict(question=42, context=WOLFGANG), TypeError, "question must be a string or a non-empty list"),
    (dict(question="Where?", context=""), ValueError, "context contains an empty string"),
    (dict(question="  ", context=WOLFGANG), ValueError, "question contains an empty string"),
    (dict(question="Where?", context=7), TypeError, "question must be a string or a non-empty list .* context=int"),
    (dict(question=[], context=WOLFGANG), TypeError, "question must be a string or a non-empty list"),
    (dict(question=["a?", "b?"], context=[WOLFGANG]), ValueError, "got 2 questions and context=a list of 1"),
    (dict(question=["a?", 3], context=WOLFGANG), TypeError, r"question\[1\] must be a string"),
    (dict(question={"question": "Where?"}), ValueError, "must have exactly the keys 'question' and 'context'"),
    (dict(question=[{"question": "Where?", "context": ""}]), ValueError,
     r"inputs\[0\]\['context'\] contains an empty string"),
    # text that passes the empty-string check, but of which the tokenizer keeps nothing
    (dict(question="Where?", context="\u200b"), ValueError, r"context has no tokens.*'\\u200b'"),
    (dict(question="Where?", context="\x00\x01", top_k=2), ValueError, "context has no tokens"),
    (dict(question="\u200b", context=WOLFGANG), ValueError, "question has no tokens"),
    (dict(question=["Where?", "Who?"], context=[WOLFGANG, "\u200b\u200b"]), ValueError,
     r"context\[1\] has no tokens"),
], ids=repr)
def test_bad_inputs_name_the_argument(loaded, kwargs, error, message):
    with pytest.raises(error, match=message):
        loaded("distilbert-squad")(**kwargs)


@pytest.mark.parametrize("options, error, message", [
    ({"top_k": 0}, ValueError, "top_k must be >= 1"),
    ({"top_k": "3"}, TypeError, "top_k must be an int"),
    ({"max_answer_len": 0}, ValueError, "max_answer_len must be >= 1"),
    ({"max_question_len": 0}, ValueError, "max_question_len must be >= 1"),
    ({"max_seq_len": 0}, ValueError, "max_seq_len must be >= 1"),
    ({"max_seq_len": 512}, ValueError, "max_seq_len=512 is more than the 128 tokens the model reads"),
    ({"doc_stride": 128}, ValueError, "doc_stride .* must be an int >= 0 and smaller than max_seq_len=128"),
    ({"doc_stride": -1}, ValueError, "doc_stride"),
    ({"max_seq_len": 32, "doc_stride": 24}, ValueError,
     r"question 0 is \d+ tokens long, which leaves \d+ context tokens per window of max_seq_len=32, "
     "not more than doc_stride=24; use a shorter question, a smaller doc_stride or a larger max_seq_len"),
    ({"handle_impossible_answer": 1}, TypeError, "handle_impossible_answer must be True or False"),
    ({"align_to_words": "yes"}, TypeError, "align_to_words must be True or False"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
], ids=repr)
def test_bad_options_name_the_argument(loaded, options, error, message):
    with pytest.raises(error, match=message):
        loaded("distilbert-squad")(question="Where do I live?", context=WOLFGANG, **options)


def test_pair_forms_are_read_like_the_pipeline():
    assert question_context_pairs("q?", "c.") == ([{"question": "q?", "context": "c."}], True)
    assert question_context_pairs(["a?", "b?"], "c.")[0] == [{"question": "a?", "context": "c."},
                                                             {"question": "b?", "context": "c."}]
    assert question_context_pairs([{"question": "a?", "context": "c."}], None)[1] is True
    assert question_context_pairs(["a?", "b?"], ["c.", "d."])[1] is False
