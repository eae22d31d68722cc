"""Runners are safe to call from threads: many threads with mixed options on one runner give, call for
call, the answer the same call gives alone. Before each runner kept a tokenizer per thread, a
TokenClassifier called with different `stride` values returned another call's tokens about once in
200 to 1,200 calls (a fast tokenizer keeps its truncation and stride settings in shared state)."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

import tasks
from tests.paths import FIXTURES, corpus_lines

LINES = [line for line in corpus_lines() if line.strip()]
LONG_TEXTS = [" ".join(LINES[first:first + 8]) for first in range(0, 40, 8)]  # longer than the 128 the model reads
CALLS = 600


def run_in_threads(calls: list, threads: int = 8) -> list:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_token_classifier_with_mixed_strides_in_threads():
    runner = tasks.load("ner", model=str(FIXTURES / "bert-ner"))
    rng = random.Random(0)
    cases = [(rng.choice(LONG_TEXTS), rng.choice([8, 16, 32, 48]), rng.choice(["simple", "first", "none"]))
             for _ in range(CALLS)]
    expected = {case: runner(case[0], stride=case[1], aggregation_strategy=case[2]) for case in set(cases)}
    calls = [lambda case=case: runner(case[0], stride=case[1], aggregation_strategy=case[2]) for case in cases]
    for case, got in zip(cases, run_in_threads(calls)):
        assert got == expected[case], f"stride={case[1]} {case[2]} gave another call's answer"


def test_classifier_with_and_without_truncation_in_threads():
    runner = tasks.load("text-classification", model=str(FIXTURES / "distilbert-sst2"))
    rng = random.Random(1)
    texts = LINES[:10]
    cases = [(rng.choice(texts + LONG_TEXTS[:2]), rng.choice([True, False])) for _ in range(CALLS)]
    cases = [(text, truncation) for text, truncation in cases if truncation or text in texts]  # fits unless cut
    with pytest.warns(UserWarning):
        expected = {case: runner(case[0], truncation=case[1], top_k=None) for case in set(cases)}
        results = run_in_threads([lambda case=case: runner(case[0], truncation=case[1], top_k=None) for case in cases])
    for case, got in zip(cases, results):
        assert got == expected[case]


def test_question_answerer_with_mixed_windows_in_threads():
    runner = tasks.load("question-answering", model=str(FIXTURES / "distilbert-squad"))
    rng = random.Random(2)
    cases = [(rng.choice(LONG_TEXTS), rng.choice([(64, 16), (96, 32), (None, None)])) for _ in range(CALLS // 2)]

    def ask(case):
        (context, (max_seq_len, doc_stride)) = case
        return runner(question="Who was there?", context=context, max_seq_len=max_seq_len, doc_stride=doc_stride)

    expected = {case: ask(case) for case in set(cases)}
    for case, got in zip(cases, run_in_threads([lambda case=case: ask(case) for case in cases])):
        assert got == expected[case]


def test_text_generator_with_mixed_options_in_threads():
    runner = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    rng = random.Random(3)
    prompts = ["The old lighthouse keeper", "Once upon a time", "The river"]
    cases = [(rng.choice(prompts), rng.choice([3, 6]), rng.choice([1, 2])) for _ in range(48)]

    def write(case):
        prompt, new_tokens, beams = case
        return runner(prompt, max_new_tokens=new_tokens, num_beams=beams, do_sample=False)

    expected = {case: write(case) for case in set(cases)}
    for case, got in zip(cases, run_in_threads([lambda case=case: write(case) for case in cases], threads=4)):
        assert got == expected[case]
