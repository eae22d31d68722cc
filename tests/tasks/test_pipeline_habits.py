"""What a pipeline user types works, or says what to type instead: the pipeline's construction keywords,
and a generator of inputs answered lazily (bounded memory for a stream)."""

import itertools

import pytest
import torch

import tasks
from tests.paths import FIXTURES

SST2 = str(FIXTURES / "distilbert-sst2")


def counting(texts, read: list):
    """A generator over `texts` that records how many were read."""
    for text in texts:
        read.append(text)
        yield text


def test_torch_dtype_and_batch_size_at_construction():
    runner = tasks.load("text-classification", model=SST2, torch_dtype=torch.bfloat16, batch_size=3)
    assert runner.dtype == "bfloat16" and runner.batch_size == 3
    with pytest.raises(ValueError, match="torch_dtype=.* and dtype=.* disagree"):
        tasks.load("text-classification", model=SST2, torch_dtype="bfloat16", dtype="float32")


@pytest.mark.parametrize("keyword, fix", [("device_map", "pass device="), ("model_kwargs", "pass its keys"),
                                          ("framework", "PyTorch only")])
def test_pipeline_only_keywords_name_the_nopipe_way(keyword, fix):
    with pytest.raises(TypeError, match=rf"{keyword}= is a pipeline\(\) keyword nopipe does not take: .*{fix}"):
        tasks.load("text-classification", model=SST2, **{keyword: "auto"})


@pytest.mark.parametrize("task, folder, options", [
    ("text-classification", "distilbert-sst2", {}),
    ("token-classification", "bert-ner", {"aggregation_strategy": "simple"}),
    ("text-generation", "gpt2", {"max_new_tokens": 2, "do_sample": False}),
    ("translation", "marian-en-fr", {"max_new_tokens": 3}),
])
def test_a_generator_is_answered_as_it_is_read(task, folder, options):
    runner = tasks.load(task, model=str(FIXTURES / folder))
    texts = ["The old lighthouse keeper", "Once upon a time", "The river"] * 20
    read = []
    answers = runner(counting(itertools.islice(itertools.cycle(texts), 10_000), read), batch_size=2, **options)
    first = list(itertools.islice(answers, 3))
    assert len(first) == 3 and len(read) <= 8  # a few batches read, not the 10,000 inputs
    assert first == runner(texts[:8], batch_size=2, **options)[:3]  # the first chunk: four batches of two


def test_a_generator_of_questions_is_answered_lazily():
    runner = tasks.load("question-answering", model=str(FIXTURES / "distilbert-squad"))
    pairs = ({"question": "Where?", "context": f"Sarah lives in town number {index}."} for index in range(10_000))
    answers = runner(pairs, batch_size=2)
    assert next(answers)["answer"] == runner(question="Where?", context="Sarah lives in town number 0.")["answer"]


# -- an unknown input limit is no limit (issue: flan-t5 tokenizers without model_max_length) ----------

def test_a_model_without_a_declared_limit_reads_a_long_input_as_the_pipeline_does(recwarn):
    """T5 has no position table; a tokenizer without model_max_length then gives no limit to check."""
    runner = tasks.load("text2text-generation", model=str(FIXTURES / "t5"))
    runner.tokenizer.model_max_length = int(1e30)  # what transformers sets when the tokenizer names none
    long_text = "word " * 800
    assert len(runner.tokenizer(long_text)["input_ids"]) > 800
    assert runner(long_text, max_new_tokens=3)[0]["generated_text"] is not None
    assert not [warning for warning in recwarn if "limit" in str(warning.message)]


def test_windows_without_a_declared_limit_use_the_default_and_say_so():
    from types import SimpleNamespace

    from core.windows import DEFAULT_WINDOW, max_input_tokens, window_length

    tokenizer, config = SimpleNamespace(model_max_length=int(1e30)), SimpleNamespace()
    assert max_input_tokens(tokenizer, config) is None
    with pytest.warns(UserWarning, match=f"windows of {DEFAULT_WINDOW} tokens"):
        assert window_length(tokenizer, config) == DEFAULT_WINDOW
    assert window_length(SimpleNamespace(model_max_length=int(1e30)), SimpleNamespace(max_position_embeddings=64)) == 64


@pytest.mark.parametrize("name", ["output_scores", "output_logits", "return_dict_in_generate"])
@pytest.mark.parametrize(("task", "folder"), [("text-generation", "gpt2"), ("summarization", "bart-cnn")])
def test_generate_outputs_on_a_runner_are_refused_not_ignored(task, folder, name):
    runner = tasks.load(task, model=str(FIXTURES / folder))
    with pytest.raises(TypeError, match=rf"{name}=True .* decoding.generate\(runner.model"):
        runner("The old lighthouse keeper", **{name: True})
    assert runner("The old lighthouse keeper", max_new_tokens=2, **{name: False})  # off is no request
