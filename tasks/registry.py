"""Every task nopipe runs, described once: its pipeline names, its runner, its default model, its command.

A new task is one more `TaskSpec` here (and its module); `tasks.load`, the `nopipe` command and
the benchmarks read this table and nothing else. The defaults are the 4.57.6 pipelines' models, at
the revisions those pipelines pinned, so `tasks.load("summarization")` gives what
`pipeline("summarization")` gave.
"""

import importlib
import re
from dataclasses import dataclass
from typing import NamedTuple


class HubModel(NamedTuple):
    """A model on the Hugging Face hub at a fixed revision."""

    repo_id: str
    revision: str


@dataclass(frozen=True)
class TaskSpec:
    """One task. `runner` is "module:Class" (imported on demand: each task pulls its own model code);
    `command` is its `nopipe` subcommand; `reads` says what the command reads ("texts", or
    "question-context" pairs); `output_key` is the key of a generated text in an answer."""

    name: str
    runner: str
    default_model: HubModel
    command: str
    aliases: tuple[str, ...] = ()
    reads: str = "texts"
    output_key: str | None = None

    @property
    def generates(self) -> bool:
        """Whether the task writes text (and so takes the decoding options)."""
        return self.output_key is not None

    def runner_class(self) -> type:
        module, name = self.runner.split(":")
        return getattr(importlib.import_module(module), name)


T5_BASE = HubModel("google-t5/t5-base", "a9723ea")
TASK_SPECS = (
    TaskSpec("text-classification", "tasks.text_classification:TextClassifier",
             HubModel("distilbert/distilbert-base-uncased-finetuned-sst-2-english", "714eb0f"),
             command="classify", aliases=("sentiment-analysis",)),
    TaskSpec("token-classification", "tasks.token_classification:TokenClassifier",
             HubModel("dbmdz/bert-large-cased-finetuned-conll03-english", "4c53496"), command="ner", aliases=("ner",)),
    TaskSpec("question-answering", "tasks.question_answering:QuestionAnswerer",
             HubModel("distilbert/distilbert-base-cased-distilled-squad", "564e9b5"), command="qa",
             reads="question-context"),
    TaskSpec("text-generation", "tasks.text_generation:TextGenerator", HubModel("openai-community/gpt2", "607a30d"),
             command="generate", output_key="generated_text"),
    TaskSpec("text2text-generation", "tasks.text2text:Text2TextGenerator", T5_BASE, command="text2text",
             output_key="generated_text"),
    TaskSpec("summarization", "tasks.summarization:Summarizer", HubModel("sshleifer/distilbart-cnn-12-6", "a4f8f3e"),
             command="summarize", output_key="summary_text"),
    TaskSpec("translation", "tasks.translation:Translator", T5_BASE, command="translate",
             output_key="translation_text"),
)
TASKS = {spec.name: spec for spec in TASK_SPECS}
ALIASES = {alias: spec.name for spec in TASK_SPECS for alias in spec.aliases}
COMMANDS = {spec.command: spec for spec in TASK_SPECS}
TRANSLATION_TASK = re.compile(r"^translation_([a-zA-Z_-]+?)_to_([a-zA-Z_-]+)$")


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


def runner_class(task: str) -> type:
    """The runner class for a pipeline task name."""
    return TASKS[canonical_task(task)[0]].runner_class()
