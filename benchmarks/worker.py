"""Each system in a process of its own, repetitions interleaved across systems.

Why: CTranslate2's OpenMP threads, once it has run in a process, stay and halve torch's speed on a
2-core machine (nopipe int8 GPT-2 made 103-117 tokens/s in a fresh process, 49-51 after one
CTranslate2 call). So the parent process never loads a system: for one workload (a task and a
model) it starts one worker per system (multiprocessing, spawn: a fresh interpreter, no inherited
thread pools), waits until each has loaded, then runs the repetitions in rounds whose order rotates
(round 1: A, B, C; round 2: B, C, A; ...), so that a slow minute of a shared machine falls on every
system alike. The row of a system is the median of its repetitions, with the min and max beside it.

A worker finds its system by running the benchmark's own recipe (`benchmark.run(bench, model,
folder)`) on a `WorkerBench` that ignores every system but its own: systems are closures, which
cannot be sent to another process, and the recipe is the one place that knows how to build them.
"""

import multiprocessing
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

SETTLE_SECONDS = 0.3  # between two timed runs: OpenMP pools spin ~200 ms after their work before sleeping
START_TIMEOUT = 1800  # a worker loads (and may convert or export) its model in this time


@dataclass(frozen=True)
class Job:
    """What a worker needs to rebuild its system: the recipe (task, model, folder), the options, and
    the system's key (name, dtype, case names); `picks` are the batch sizes the parent's sweeps chose."""

    task: str
    model: str
    folder: str
    options: object
    key: tuple
    picks: dict = field(default_factory=dict)


def system_key(system, cases) -> tuple:
    return (system.name, system.dtype, tuple(case.name for case in cases))


class _Served(Exception):
    """Ends the recipe in a worker once its system has been served."""


def serve(connection, job: Job) -> None:
    """The worker's main: rebuild the system through the recipe, load it, run what the parent asks."""
    from benchmarks.suite import WorkerBench, import_benchmarks
    from core.hub import quiet_process

    quiet_process()
    bench = WorkerBench(job.options, connection, job.key, job.picks)
    try:
        import_benchmarks()[job.task].run(bench, job.model, Path(job.folder))
        connection.send(("error", f"the recipe of {job.task} has no system {job.key[:2]}"))
    except _Served:
        pass
    except Exception as error:  # noqa: BLE001 - the parent reports it as the system's row
        traceback.print_exc()
        connection.send(("error", f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"))
    connection.close()


@dataclass
class Worker:
    """The parent's handle on one worker: its process, its end of the pipe, its system and cases."""

    system: object
    cases: list
    process: object = None
    connection: object = None
    ready: dict | None = None
    error: str | None = None
    rows: dict = field(default_factory=dict)  # case name -> list of rows, one per repetition
    outputs: dict = field(default_factory=dict)  # case name -> outputs of the first repetition

    def ask(self, message, timeout: float):
        """Send `message` (None: only listen) and wait for the answer; an error answer marks the worker failed."""
        if message is not None:
            self.connection.send(message)
        if not self.connection.poll(timeout):
            raise TimeoutError(f"no answer within {timeout:.0f} s")
        answer = self.connection.recv()
        if answer[0] == "error":
            self.error = answer[1]
        return answer


def start(job: Job, system, cases) -> Worker:
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = context.Process(target=serve, args=(theirs, job), daemon=True)
    process.start()
    theirs.close()
    return Worker(system, cases, process, mine)


def wait_ready(worker: Worker) -> None:
    try:
        answer = worker.ask(None, START_TIMEOUT)
        if answer[0] == "ready":
            worker.ready = answer[1]
    except (TimeoutError, EOFError) as error:
        worker.error = f"the worker did not load: {type(error).__name__}: {error}"


def rounds(workers: list[Worker], case_name: str, repeats: int) -> list[list[Worker]]:
    """The order of each repetition of `case_name`: the workers that have that case, rotated by one each round."""
    having = [worker for worker in workers if any(case.name == case_name for case in worker.cases)]
    return [rotated(having, index) for index in range(repeats)] if having else []


def rotated(items: list | tuple, round_index: int) -> list:
    """`items` in the order of round `round_index` (A, B, C; then B, C, A; ...), so a slow minute falls on all."""
    shift = round_index % len(items)
    return list(items[shift:]) + list(items[:shift])


def last_line_of_module(module: str, *arguments: str) -> str:
    """Run `python -m module arguments` in a fresh process (the scripts whose systems each need one) and
    return the last line it printed: the worker's result."""
    command = [sys.executable, "-m", module, *arguments]
    done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def run_case(worker: Worker, case_name: str, first: bool) -> None:
    """One timed repetition of `case_name` in `worker` (its outputs kept from the first)."""
    if worker.error:
        return
    index = next(index for index, case in enumerate(worker.cases) if case.name == case_name)
    try:
        answer = worker.ask(("run", index, first), START_TIMEOUT)
    except (TimeoutError, EOFError) as error:
        worker.error = f"the worker stopped: {type(error).__name__}: {error}"
        return
    if answer[0] == "row":
        worker.rows.setdefault(case_name, []).append(answer[1])
        if first:
            worker.outputs[case_name] = answer[2]
    time.sleep(SETTLE_SECONDS)


def stop(worker: Worker) -> None:
    try:
        if not worker.error:
            worker.connection.send(("stop",))
    except (BrokenPipeError, OSError):
        pass
    worker.process.join(timeout=30)
    if worker.process.is_alive():
        worker.process.kill()
    worker.connection.close()


def run_in_workers(jobs: list[tuple[Job, object, list]], repeats: int) -> list[Worker]:
    """Start a worker per (job, system, cases), wait until all have loaded, run `repeats` interleaved
    rounds of each case, stop them; the workers keep their rows and outputs."""
    workers = [start(job, system, cases) for job, system, cases in jobs]
    try:
        for worker in workers:
            wait_ready(worker)
        case_names = list(dict.fromkeys(case.name for worker in workers for case in worker.cases))
        for case_name in case_names:
            for number, order in enumerate(rounds(workers, case_name, repeats)):
                for worker in order:
                    run_case(worker, case_name, first=number == 0)
    finally:
        for worker in workers:
            stop(worker)
    return workers


def summarize(rows: list[dict]) -> dict:
    """One row from the repetitions of a case: the median throughput, its min and max, and the
    medians of the other timings (peak memory: the highest seen)."""
    values = [row["value"] for row in rows]
    summary = dict(rows[0], value=statistics.median(values), value_min=min(values), value_max=max(values),
                   repeats=len(rows), values=[round(value, 3) for value in values])
    for name in ("seconds", "p50_ms", "p95_ms"):
        if name in rows[0]:
            summary[name] = statistics.median(row[name] for row in rows)
    for name in ("peak_rss_mb", "system_mb"):
        if name in rows[0]:
            summary[name] = max(row[name] for row in rows)
    return summary
