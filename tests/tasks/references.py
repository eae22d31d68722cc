"""The transformers 5 pipelines the encoder tasks are compared with."""

from functools import partial

from transformers import pipeline

from tests.paths import FIXTURES


def runner_and_pipeline(task: str, runner_class):
    """A getter: fixture name -> (our runner, the pipeline on the same folder), each loaded once.

    The pipeline runs one text at a time unless given a batch size: ten times slower, same scores.
    """
    cache = {}

    def get(name):
        if name not in cache:
            path = str(FIXTURES / name)
            cache[name] = runner_class.from_pretrained(path), partial(pipeline(task, model=path), batch_size=64)
        return cache[name]

    return get
