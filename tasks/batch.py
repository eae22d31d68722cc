"""Batch jobs: one task over a whole dataset, resumable, nothing lost.

    from tasks.batch import run_job
    run_job("text-classification", "path/to/model", "reviews.jsonl", "labels.parquet", column="text")

The input is read as a stream, in shards of `shard_rows` rows. Each shard is answered in
length-sorted batches (little compute goes to padding), its rows put back in input order, and
written to `<dest>.parts/` atomically (a temporary file, then a rename), with a manifest that says
which job it belongs to and how many rows are done. Killed at any point, the same call continues
after the last complete shard, and the output equals an uninterrupted run's, row for row. When all
shards are written they become `dest` (JSON lines or Parquet, by suffix) and the parts folder goes.

A bad row (a value that is not text, an empty text, a text the runner refuses) stops the job with
its row number, or with `on_error="skip"` is written to `<dest>.errors.jsonl` with the reason; it is
never dropped silently. An existing `dest` is never overwritten unless `overwrite=True`.

With `engine="ray"` (tasks/batch_ray.py) the shards are answered by a pool of Ray actors, one model each,
with this module's code, and written here as above: the same output, errors file and resume.
"""

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path

from tasks.batch_io import count_rows, read_rows, to_json, write_atomically, write_output
from tasks.registry import TASKS, canonical_task

MANIFEST = "manifest.json"
ON_ERROR = ("stop", "skip")
ENGINES = ("local", "ray")


@dataclass
class JobSummary:
    """What a finished job did: rows answered, rows skipped as bad, shards (resumed ones included)."""

    output: Path
    rows: int
    skipped: int
    shards: int
    resumed_shards: int
    errors: Path | None


@dataclass(frozen=True)
class Job:
    """A job's identity and paths; `fingerprint` tells a resumed job from another one."""

    task: str  # the canonical task name
    load_as: str  # the name the caller gave (translation_en_to_fr names the languages too)
    model: str
    source: Path
    dest: Path
    column: str
    shard_rows: int
    options: dict
    seed: int | None

    @property
    def parts(self) -> Path:
        return self.dest.with_name(self.dest.name + ".parts")

    @property
    def errors(self) -> Path:
        return self.dest.with_name(self.dest.name + ".errors.jsonl")

    @cached_property
    def fingerprint(self) -> str:
        """The job's settings and the input file's size, time and first megabyte, hashed (once per run:
        every shard's manifest carries it)."""
        stat = self.source.stat()
        with open(self.source, "rb") as file:
            head = hashlib.sha256(file.read(2**20)).hexdigest()
        described = to_json({"task": self.load_as, "model": self.model, "column": self.column, "options": self.options,
                             "shard_rows": self.shard_rows, "seed": self.seed, "input": [stat.st_size, stat.st_mtime_ns, head]})
        return hashlib.sha256(described.encode()).hexdigest()[:16]

    def shard(self, index: int, kind: str = "shard") -> Path:
        return self.parts / f"{kind}-{index:06d}.jsonl"


class BadRow(ValueError):
    """A row the task cannot answer; the job stops on it, naming its row number."""


def run_job(task: str, model, source, dest, *, column: str = "text", batch_size: int = 32, on_error: str = "stop",
            overwrite: bool = False, shard_rows: int = 1024, seed: int | None = None, progress: bool = True,
            runner=None, engine: str = "local", address: str | None = None, concurrency: int | None = None,
            num_cpus_per_actor: float | None = None, **task_options) -> JobSummary:
    """Answer every row of `source` with `task` and write the rows with their answers to `dest`.

    column: the text column (question-answering reads "question" and "context"). batch_size: rows per
    model call. on_error: "stop" (a ValueError naming the row) or "skip" (the row goes to
    `<dest>.errors.jsonl`). seed: makes sampled generation reproducible, shard by shard, across resumes.
    runner: an already loaded runner for `task` (else `model` is loaded). task_options: the runner's
    call options (top_k, max_new_tokens, ...).
    engine: "local" (this process) or "ray" (a pool of Ray actors, tasks/batch_ray.py; the same output).
    address, concurrency, num_cpus_per_actor: the Ray engine's cluster, actors and CPUs per actor.
    """
    job = new_job(task, model, source, dest, column, shard_rows, task_options, seed, on_error, batch_size)
    ray_options = {"address": address, "concurrency": concurrency, "num_cpus_per_actor": num_cpus_per_actor}
    check_engine(engine, runner, ray_options)
    done = start_or_resume(job, overwrite)
    if engine == "ray":
        from tasks.batch_ray import answered_on_ray

        answered = answered_on_ray(job, batch_size, on_error, done, **ray_options)
    else:
        answered = answered_here(runner if runner is not None else load_runner(job), job, batch_size, on_error, done)
    total = count_rows(job.source) if progress else None
    bar = progress_bar(total, done["rows"]) if progress else None
    shards, rows, skipped = done["shards"], done["rows"], done["skipped"]
    try:
        for index, size, lines, bad_lines in answered:
            write_shard(job, index, lines, bad_lines)
            die_if_asked("before-manifest", index + 1)
            shards, rows, skipped = index + 1, rows + size, skipped + len(bad_lines)
            write_manifest(job, shards=shards, rows=rows, skipped=skipped)
            die_if_asked("after-shard", shards)
            if bar is not None:
                bar.update(size)
    finally:
        if bar is not None:
            bar.close()
    finish(job, shards, skipped)
    return JobSummary(job.dest, rows - skipped, skipped, shards, done["shards"], job.errors if skipped else None)


def check_engine(engine: str, runner, ray_options: dict) -> None:
    """The engine is one nopipe has, gets only the options it uses, and (Ray) is installed: all checked before
    anything is written."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    given = [name for name, value in ray_options.items() if value is not None]
    if engine == "local" and given:
        raise ValueError(f"{given[0]} is an option of the Ray engine; pass engine='ray' to use it")
    if engine == "ray" and runner is not None:
        raise ValueError("runner= is for the local engine: the Ray engine loads the model once in each actor; "
                         "pass the model (a folder or hub id) instead")
    if engine == "ray":
        from tasks.batch_ray import check_ray_options

        check_ray_options(**ray_options)


def answered_here(runner, job: Job, batch_size: int, on_error: str, done: dict) -> Iterator[tuple[int, int, list, list]]:
    """(shard index, rows, output lines, bad-row lines) of every shard not done yet, answered in this process."""
    shards = shards_of(read_rows(job.source), job.shard_rows, skip=done["rows"])
    for index, shard in enumerate(shards, start=done["shards"]):
        yield index, len(shard), *shard_lines(runner, job, shard, batch_size, on_error, index)


def new_job(task, model, source, dest, column, shard_rows, options, seed, on_error, batch_size) -> Job:
    """The job, its arguments checked before anything is read or written."""
    name, _ = canonical_task(task)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a folder, a .gguf file or a hub id, got {type(model).__name__}")
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise ValueError(f"source={str(source)!r} is not a file; pass the dataset's path (.jsonl, .csv, .parquet or .txt)")
    if source.resolve() == dest.resolve():
        raise ValueError("dest is the source file; write the answers to another file")
    for value, what in ((shard_rows, "shard_rows"), (batch_size, "batch_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be an int >= 1, got {value!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    if not isinstance(column, str) or not column:
        raise ValueError(f"column must be the name of the text column, got {column!r}")
    return Job(name, task, str(model), source, dest, column, shard_rows, options, seed)


def start_or_resume(job: Job, overwrite: bool) -> dict:
    """The rows and shards already done: zero for a new job, the manifest's for the same job resumed."""
    manifest = job.parts / MANIFEST
    if manifest.is_file():
        done = json.loads(manifest.read_text(encoding="utf-8"))
        if done.get("fingerprint") != job.fingerprint:
            raise ValueError(f"{job.parts} holds the parts of another job (other settings or another input); "
                             "finish that job, or move the folder away to start this one")
        return done
    if job.dest.exists() and not overwrite:
        raise ValueError(f"{job.dest} exists; pass overwrite=True to replace it, or choose another dest")
    if job.parts.exists() and any(job.parts.iterdir()):
        raise ValueError(f"{job.parts} exists and is not a job's parts folder (no {MANIFEST}); move it away")
    job.parts.mkdir(parents=True, exist_ok=True)
    return write_manifest(job, shards=0, rows=0, skipped=0)


def write_manifest(job: Job, *, shards: int, rows: int, skipped: int) -> dict:
    done = {"fingerprint": job.fingerprint, "task": job.task, "model": job.model, "shards": shards, "rows": rows,
            "skipped": skipped}
    write_atomically(job.parts / MANIFEST, [to_json(done)])
    return done


def load_runner(job: Job):
    import tasks

    return tasks.load(job.load_as, model=job.model)


def progress_bar(total: int | None, done: int):
    """Items/s and the time left, on stderr."""
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="row", dynamic_ncols=True, smoothing=0.1)


def shards_of(rows: Iterator[tuple[int, dict]], size: int, skip: int) -> Iterator[list[tuple[int, dict]]]:
    """The rows after the first `skip`, in lists of `size`."""
    rows = islice(rows, skip, None)
    while shard := list(islice(rows, size)):
        yield shard


def die_if_asked(point: str, shards: int) -> None:
    """Fault injection for the resume tests: NOPIPE_BATCH_DIE_AT=after-shard:N ends the process once N shards
    are recorded; before-manifest:N after the Nth shard's file is written but before the manifest counts it."""
    where, _, count = os.environ.get("NOPIPE_BATCH_DIE_AT", "").partition(":")
    if where == point and shards >= int(count):
        os._exit(3)


def write_shard(job: Job, index: int, lines: list[str], bad_lines: list[str]) -> None:
    """The shard's answers (and its bad rows, if any), each file complete or absent."""
    write_atomically(job.shard(index, "errors"), bad_lines)
    write_atomically(job.shard(index), lines)


def finish(job: Job, shards: int, skipped: int) -> None:
    """Shards -> dest, bad rows -> the errors file; then the parts folder, holding only what the job wrote, goes."""
    write_output(job.dest, [job.shard(index) for index in range(shards)])
    if skipped:
        write_output(job.errors, [job.shard(index, "errors") for index in range(shards)])
    for index in range(shards):
        for kind in ("shard", "errors"):
            job.shard(index, kind).unlink(missing_ok=True)
    (job.parts / MANIFEST).unlink(missing_ok=True)
    if not any(job.parts.iterdir()):
        job.parts.rmdir()


# -- answering one shard ------------------------------------------------------------------------------

def shard_lines(runner, job: Job, shard: list[tuple[int, dict]], batch_size: int, on_error: str, index: int):
    """(output lines, bad-row lines) of one shard: the JSON lines of its files, as either engine writes them."""
    answered, bad = answer_shard(runner, job, shard, batch_size, on_error, index)
    return [to_json(row) for row in answered], [to_json(row) for row in bad]


def answer_shard(runner, job: Job, shard: list[tuple[int, dict]], batch_size: int, on_error: str, index: int):
    """(output rows in input order, bad rows) of one shard."""
    if job.seed is not None:
        from core.seed import set_seed

        set_seed(job.seed + index)
    inputs, bad = [], []
    for number, row in shard:
        try:
            inputs.append((number, row, task_input(job, number, row)))
        except BadRow as error:
            bad.append(report_bad(number, row, error, on_error))
    answers = answer_in_batches(runner, job, inputs, batch_size, on_error, bad)
    answered = [with_answer(row, answers[number]) for number, row, _ in inputs if number in answers]
    return answered, sorted(bad, key=lambda item: item["row"])


def task_input(job: Job, number: int, row: dict):
    """The runner's input for a row (a text, or a question/context pair), or BadRow saying why not."""
    if "__bad_row__" in row:
        raise BadRow(row["__bad_row__"])
    columns = ("question", "context") if job.task == "question-answering" else (job.column,)
    values = []
    for column in columns:
        if column not in row:
            raise BadRow(f"row {number} has no column {column!r} (its columns: {', '.join(map(str, row))}); "
                         "pass column=... (--column) to name the text column")
        value = row[column]
        if not isinstance(value, str) or not value.strip():
            raise BadRow(f"row {number}: {column} must be a non-empty text, got {value!r}")
        values.append(value)
    return tuple(values) if job.task == "question-answering" else values[0]


def report_bad(number: int, row: dict, error: Exception, on_error: str) -> dict:
    """Stop on a bad row, or keep it for the errors file."""
    message = str(error) if f"row {number}" in str(error) else f"row {number}: {error}"
    if on_error == "stop":
        raise ValueError(message + " (on_error='skip' writes bad rows to an errors file and goes on)") from error
    return {"row": number, "error": message, "input": {key: value for key, value in row.items() if key != "__bad_row__"}}


def answer_in_batches(runner, job: Job, inputs: list, batch_size: int, on_error: str, bad: list) -> dict:
    """{row number: answer}: the inputs longest first in batches; a batch the runner refuses is retried row by
    row, so the refusal lands on the row that caused it."""
    order = sorted(inputs, key=lambda item: -sum(map(len, item[2])) if isinstance(item[2], tuple) else -len(item[2]))
    answers = {}
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        try:
            answers.update(zip((number for number, _, _ in batch), call(runner, job, [value for _, _, value in batch])))
        except ValueError:
            for number, row, value in batch:
                try:
                    answers[number] = call(runner, job, [value])[0]
                except ValueError as error:
                    bad.append(report_bad(number, row, error, on_error))
    return answers


def call(runner, job: Job, values: list) -> list:
    """The runner's answers for a list of inputs, one per input."""
    options = dict(job.options)
    if job.task == "question-answering":
        answers = runner(question=[q for q, _ in values], context=[c for _, c in values], **options)
        return answers if len(values) > 1 else [answers]
    if TASKS[job.task].generates:
        options.setdefault("batch_size", len(values))
    return runner(values, **options)


def with_answer(row: dict, answer) -> dict:
    """The input row with the answer's columns added; a name the input already uses is refused, not overwritten."""
    columns = answer_columns(answer)
    taken = sorted(set(columns) & set(row))
    if taken:
        raise ValueError(f"the input already has a column {taken[0]!r}, which the answer would overwrite; "
                         "rename it in the input")
    return {**row, **columns}


def answer_columns(answer) -> dict:
    """An answer as columns: a dict's keys (label/score, answer/start/end/score, summary_text, ...), a
    one-item list's item, anything else (entities, several labels or sequences) in a column "result"."""
    if isinstance(answer, dict):
        return answer
    if isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict):
        return answer[0]
    return {"result": answer}
