"""TextClassifier gives what transformers' `text-classification` pipeline gives, on every fixture and option.

The reference is the pipeline of the installed transformers 5 (its text classification is the same
as 4.57.6's apart from the removed `return_all_scores`). Labels must be equal, scores within 1e-5.
"""

import warnings
from types import SimpleNamespace

import pytest
import torch

from tasks.text_classification import TextClassifier, default_activation, ranked_labels
from tests.paths import FIXTURES, corpus_lines
from tests.tasks.references import runner_and_pipeline

FIXTURE_NAMES = ["distilbert-sst2", "bert-stars", "roberta-emotion", "bert-multilabel"]
LINES = [line for line in corpus_lines() if line.strip()]
PAIRS = [{"text": first, "text_pair": second} for first, second in zip(LINES[0:20], LINES[20:40])]
LONG_TEXT = " ".join(LINES[:8])  # ~200 tokens; the fixtures read 128


@pytest.fixture(scope="module")
def loaded():
    """(runner, pipeline) per fixture, loaded once for the module."""
    return runner_and_pipeline("text-classification", TextClassifier)


def assert_same(ours, theirs):
    """Same nesting, same labels in the same order, scores within 1e-5."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"expected a dict, got {ours!r}"
        assert ours["label"] == theirs["label"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
        assert set(ours) == {"label", "score"}
        return
    assert isinstance(ours, list) and len(ours) == len(theirs), f"{ours!r} vs {theirs!r}"
    for mine, reference in zip(ours, theirs):
        assert_same(mine, reference)


# --- parity with the pipeline ------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("options", [
    {},
    {"top_k": None},
    {"top_k": 3},
    {"function_to_apply": "sigmoid", "top_k": None},
    {"function_to_apply": "none", "top_k": 2},
], ids=repr)
def test_corpus_matches_the_pipeline(loaded, name, options):
    runner, reference = loaded(name)
    assert_same(runner(LINES, **options), reference(LINES, **options))


@pytest.mark.parametrize("options", [{"top_k": 1}, {"function_to_apply": "softmax"}, {"function_to_apply": "SIGMOID"}],
                         ids=repr)
def test_more_options_match_the_pipeline(loaded, options):
    runner, reference = loaded("bert-stars")
    assert_same(runner(LINES, **options), reference(LINES, **options))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("options", [{}, {"top_k": None}, {"top_k": 2}], ids=repr)
def test_a_single_text_has_the_pipelines_shape(loaded, name, options):
    runner, reference = loaded(name)
    theirs = reference(LINES[4], **options)
    assert isinstance(theirs, list)  # the legacy default wraps one text's dict in a list, top_k gives a list
    assert_same(runner(LINES[4], **options), theirs)


@pytest.mark.parametrize("name", ["distilbert-sst2", "roberta-emotion"])
@pytest.mark.parametrize("options", [{}, {"top_k": None}], ids=repr)
def test_text_pairs_match_the_pipeline(loaded, name, options):
    runner, reference = loaded(name)
    assert_same(runner(PAIRS, **options), reference(PAIRS, **options))
    single = reference(PAIRS[0], **options)
    assert isinstance(single, dict) == (options == {})  # a pair is not wrapped in a list
    assert_same(runner(PAIRS[0], **options), single)


def test_multi_label_model_gets_sigmoid_by_default(loaded):
    runner, reference = loaded("bert-multilabel")
    scores = [entry["score"] for entry in runner(LINES[0], top_k=None)]
    assert sum(scores) != pytest.approx(1.0, abs=1e-3)  # independent probabilities, not a softmax
    assert_same(runner(LINES[0], top_k=None), reference(LINES[0], top_k=None))


# --- batching, stages, int8 ----------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_size_does_not_change_results(loaded, batch_size):
    runner, _ = loaded("bert-stars")
    assert_same(runner(LINES, top_k=None, batch_size=batch_size), runner(LINES, top_k=None, batch_size=32))


def test_stages_run_one_at_a_time_give_the_call_result(loaded):
    runner, _ = loaded("roberta-emotion")
    features = runner.preprocess(LINES[:5])
    assert [sorted(item) for item in features] == [["attention_mask", "input_ids"]] * 5
    logits = runner.forward(features)
    assert logits.shape == (5, runner.model.config.num_labels)
    stepped = [runner.postprocess(row, top_k=None) for row in logits]
    assert_same(stepped, runner(LINES[:5], top_k=None))


def test_int8_model_gives_mostly_the_same_labels(loaded):
    runner, _ = loaded("bert-stars")
    quantized = TextClassifier.from_pretrained(str(FIXTURES / "bert-stars"), dtype="int8")
    assert quantized.dtype == "int8"
    same = sum(mine["label"] == theirs["label"] for mine, theirs in zip(quantized(LINES), runner(LINES)))
    assert same >= 0.8 * len(LINES)


def test_a_text_longer_than_the_model_is_refused_with_its_length(loaded):
    runner, _ = loaded("distilbert-sst2")
    with pytest.raises(ValueError, match=r"inputs\[1\] is \d+ tokens long but the model reads at most 128; "
                                         "shorten it or pass truncation=True to cut it to the limit"):
        runner([LINES[0], LONG_TEXT])


def test_truncation_cuts_with_a_warning_as_the_pipeline_cuts(loaded):
    runner, reference = loaded("distilbert-sst2")
    with pytest.warns(UserWarning, match=r"inputs\[1\] is \d+ tokens long; truncated to its first 128 tokens"):
        ours = runner([LINES[0], LONG_TEXT], top_k=None, truncation=True)
    assert_same(ours, reference([LINES[0], LONG_TEXT], top_k=None, truncation=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a text that fits gives no warning
        runner(LINES[0], truncation=True)


# --- pure functions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("problem_type, num_labels, expected", [
    ("regression", 1, "none"),
    ("multi_label_classification", 7, "sigmoid"),
    (None, 1, "sigmoid"),
    ("single_label_classification", 2, "softmax"),
    (None, 5, "softmax"),  # a multi-label model without problem_type gets softmax, as in the pipeline
])
def test_default_activation_follows_the_pipeline(problem_type, num_labels, expected):
    assert default_activation(SimpleNamespace(problem_type=problem_type, num_labels=num_labels)) == expected


def test_ranked_labels_are_sorted_and_ties_keep_label_order():
    ranked = ranked_labels(torch.tensor([0.2, 0.5, 0.2, 0.1]), {0: "a", 1: "b", 2: "c", 3: "d"}, top_k=3)
    assert [entry["label"] for entry in ranked] == ["b", "a", "c"]
    assert len(ranked_labels(torch.tensor([0.2, 0.8]), {0: "a", 1: "b"}, top_k=None)) == 2


# --- bad input -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, error, message", [
    (None, TypeError, "inputs must be a string"),
    (42, TypeError, "inputs must be a string or a list of strings, got int"),
    ("", ValueError, "inputs contains an empty string"),
    ("   ", ValueError, "inputs contains an empty string"),
    ([], ValueError, "inputs is empty"),
    (["fine", 3], TypeError, r"inputs\[1\] must be a string"),
    (["fine", ""], ValueError, r"inputs\[1\] contains an empty string"),
    ({"txt": "a"}, ValueError, "must have the keys 'text' and optionally 'text_pair'"),
    ({"text": "a", "text_pair": ""}, ValueError, r"inputs\['text_pair'\] contains an empty string"),
    (b"abc", TypeError, r"inputs must be a string or a list of strings, got bytes; decode it first"),
    (["fine", b"abc"], TypeError, r"inputs\[1\] must be a string or a list of strings, got bytes; decode it"),
], ids=repr)
def test_bad_inputs_name_the_argument(loaded, inputs, error, message):
    runner, _ = loaded("distilbert-sst2")
    with pytest.raises(error, match=message):
        runner(inputs)


@pytest.mark.parametrize("options, error, message", [
    ({"top_k": 0}, ValueError, "top_k must be >= 1"),
    ({"top_k": -2}, ValueError, "top_k must be >= 1"),
    ({"top_k": "2"}, TypeError, "top_k must be a positive int or None"),
    ({"top_k": 1.5}, TypeError, "top_k must be a positive int or None"),
    ({"function_to_apply": "relu"}, ValueError, "function_to_apply must be one of 'softmax', 'sigmoid', 'none'"),
    ({"truncation": "yes"}, TypeError, "truncation must be True or False"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
], ids=repr)
def test_bad_options_name_the_argument(loaded, options, error, message):
    runner, _ = loaded("distilbert-sst2")
    with pytest.raises(error, match=message):
        runner(LINES[0], **options)
