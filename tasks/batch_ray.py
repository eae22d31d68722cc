"""The Ray Data engine for batch jobs: tasks/batch.py's job with its model calls spread over Ray actors.

    run_job("text-classification", model, "reviews.jsonl", "labels.parquet", engine="ray", concurrency=4)

Reading. The driver reads the input with nopipe's own reader (tasks.batch_io.read_rows), not with
ray.data.read_text/read_json: those drop blank lines and number rows their own way, and a bad row
must be reported by its row number in the file. Each shard (`shard_rows` rows) becomes one Arrow
block of (shard index, row number, the row pickled), put in Ray's object store as soon as it is read
(ray.data.from_arrow_refs), so the driver holds one shard at a time; the object store, which spills
to disk, holds the whole input before the first shard is answered. The rows go pickled because
their columns and types may differ from row to row (a bad row's especially), which one Arrow schema
cannot hold, and an actor must see each row exactly as the local engine would.

Answering. `Dataset.map_batches` runs `ShardAnswerer` in an actor pool (`concurrency` actors of
`num_cpus_per_actor` CPUs each; by default as many as the cluster's CPUs allow, and never more
than there are shards), a whole block, that is one shard, per call (batch_size=None). An actor
loads the model once and answers each shard with the local engine's code (shard_lines: the same
length-sorted batches, so the same answers, byte for byte). A ValueError on a shard (a bad row with
on_error="stop", an answer column the input already has) comes back as data, because Ray does not
hand the exception itself to the driver, which raises it with the local engine's message.

The actors are started with `compute=ActorPoolStrategy(size=...)`: map_batches' `concurrency=`
says the same but is deprecated since Ray 2.51.

Writing. Ray hands the answered shards back in input order (preserve_order); the driver writes them
with the local engine's shard files, manifest and final rename (tasks/batch.py), so the output
appears only when complete, and a killed job continues from its last complete shard, with either engine.
"""

import logging
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tasks.batch import Job, load_runner, read_rows, shard_lines, shards_of

INSTALL = "pip install 'nopipe[ray]'"


def require_ray():
    """The ray module with Ray Data, or an error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(f"engine='ray' needs Ray Data and pyarrow: {INSTALL}") from None
    return ray


def check_ray_options(address: str | None, concurrency: int | None, num_cpus_per_actor: float | None) -> None:
    """The Ray engine's options, checked before anything is started or written."""
    require_ray()
    if address is not None and (not isinstance(address, str) or not address):
        raise ValueError(f"address must be a Ray cluster's address such as 'ray://head:10001' or 'auto', got {address!r}")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"concurrency must be an int >= 1 (the number of actors, one model each), got {concurrency!r}")
    if num_cpus_per_actor is not None and (isinstance(num_cpus_per_actor, bool)
                                           or not isinstance(num_cpus_per_actor, (int, float)) or num_cpus_per_actor <= 0):
        raise ValueError(f"num_cpus_per_actor must be a number > 0 (the CPUs Ray reserves for each actor), "
                         f"got {num_cpus_per_actor!r}")


def answered_on_ray(job: Job, batch_size: int, on_error: str, done: dict, *, address: str | None,
                    concurrency: int | None, num_cpus_per_actor: float | None) -> Iterator[tuple[int, int, list, list]]:
    """(shard index, rows, output lines, bad-row lines) of every shard not done yet, in order, answered by Ray actors."""
    ray = require_ray()
    cpus = num_cpus_per_actor or 1
    with connected(ray, address), ordered_and_quiet(ray):
        fitting = actors_that_fit(ray, cpus)
        shards = shards_of(read_rows(job.source), job.shard_rows, skip=done["rows"])
        blocks = [ray.put(shard_table(index, shard)) for index, shard in enumerate(shards, start=done["shards"])]
        if not blocks:
            return
        answers = ray.data.from_arrow_refs(blocks).map_batches(
            ShardAnswerer, fn_constructor_args=(for_workers(job), batch_size, on_error, cpus),
            compute=ray.data.ActorPoolStrategy(size=min(len(blocks), concurrency or fitting)), num_cpus=cpus,
            batch_size=None, batch_format="pyarrow")
        expected = done["shards"]
        for shard in answers.iter_rows():
            if shard["stop"] is not None:
                raise ValueError(shard["stop"])
            if shard["shard"] != expected:
                raise RuntimeError(f"Ray returned shard {shard['shard']} where shard {expected} was due; "
                                   "the output would be out of order")
            expected += 1
            yield shard["shard"], shard["rows"], list(shard["lines"]), list(shard["bad"])


def actors_that_fit(ray, cpus: float) -> int:
    """As many actors as the cluster's CPUs hold; an error if not even one fits (Ray would wait for ever)."""
    available = ray.cluster_resources().get("CPU", 0)
    if available < cpus:
        raise ValueError(f"num_cpus_per_actor={cpus:g} is more than the Ray cluster's {available:g} CPUs; "
                         "pass a smaller num_cpus_per_actor")
    return int(available // cpus)


@contextmanager
def connected(ray, address: str | None):
    """Ray as the caller left it, else the cluster at `address` (or $RAY_ADDRESS), else a local Ray on this
    machine's CPUs; what this function started, it shuts down."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def ordered_and_quiet(ray):
    """Ray Data's context for the job: results in input order, no progress bars or info lines of its own
    (the job has its bar); restored afterwards."""
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = context.execution_options.preserve_order, context.enable_progress_bars, logger.level
    context.execution_options.preserve_order, context.enable_progress_bars = True, False
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars, level = saved
        logger.setLevel(level)


def shard_table(index: int, shard: list[tuple[int, dict]]):
    """One shard as an Arrow block: its index, each row's number, each row pickled."""
    import pyarrow as pa

    return pa.table({"shard": [index] * len(shard), "row": [number for number, _ in shard],
                     "data": [pickle.dumps(row) for _, row in shard]})


def for_workers(job: Job) -> Job:
    """The job with a local model folder as an absolute path, the same for actors started in another folder."""
    return replace(job, model=str(Path(job.model).resolve())) if Path(job.model).exists() else job


class ShardAnswerer:
    """A Ray actor's work: the model loaded once, then whole shards answered by the local engine's code."""

    def __init__(self, job: Job, batch_size: int, on_error: str, cpus: float):
        import torch

        torch.set_num_threads(max(1, int(cpus)))
        self.job, self.batch_size, self.on_error = job, batch_size, on_error
        self.runner = load_runner(job)

    def __call__(self, batch):
        """A block of rows (one whole shard; more, in order, would do) -> one row per shard: its lines, its bad
        rows, or why it stopped."""
        import pyarrow as pa

        answered = {"shard": [], "rows": [], "lines": [], "bad": [], "stop": []}
        for index, shard in shards_in(batch):
            try:
                lines, bad = shard_lines(self.runner, self.job, shard, self.batch_size, self.on_error, index)
                stop = None
            except ValueError as error:
                lines, bad, stop = [], [], str(error)
            for column, value in zip(answered, (index, len(shard), lines, bad, stop)):
                answered[column].append(value)
            if stop is not None:
                break
        schema = pa.schema([("shard", pa.int64()), ("rows", pa.int64()), ("lines", pa.list_(pa.string())),
                            ("bad", pa.list_(pa.string())), ("stop", pa.string())])
        return pa.table(answered, schema=schema)


def shards_in(batch) -> Iterator[tuple[int, list[tuple[int, dict]]]]:
    """(shard index, [(row number, row), ...]) for each shard in a batch of shard_table rows."""
    current, rows = None, []
    for index, number, data in zip(*(batch.column(name).to_pylist() for name in ("shard", "row", "data"))):
        if index != current and rows:
            yield current, rows
            rows = []
        current = index
        rows.append((number, pickle.loads(data)))
    if rows:
        yield current, rows
