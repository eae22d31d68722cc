"""What every benchmark script shares: the `Case`s and `System`s it builds and the `Bench` that measures them.

A task script builds `Case`s (fixed workloads) and `System`s (nopipe and its peers), asks the Bench
to measure each system on the cases, then names the comparisons it reports:

    bench.measure(task, model, system, cases)                         # one row per case
    bench.compare(task, model, case, ("nopipe", "float32"), ("generate()", "float32"), target=1.2)
    bench.agree(task, model, case, ("nopipe", "int8"), ("nopipe", "float32"), same_answers)

Every system runs in a worker process of its own (benchmarks/worker.py says why), on the same
inputs, with the same number of threads; each runs the whole workload once before its first timed
run and a warm-up before each, and the repetitions of the systems of a workload are interleaved.
`--in-process` runs them here one after the other instead (quick to debug, and what the fixture
tests use; not for numbers).
"""

import cProfile
import io
import os
import pstats
import random
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from benchmarks.measure import PeakRSS, latencies, percentile, release_memory, rss_bytes, timed
from benchmarks.models import model_folder
from benchmarks.options import FIXTURES, FULL, QUICK, Options, Sizes, build_parser, parse_options  # noqa: F401 - re-exported


@dataclass
class Case:
    """One fixed workload that every system of a comparison runs.

    inputs: what the systems get (texts, dicts, prompt ids); texts: the same inputs as text, for
    systems that only take text; settings: keyword arguments for all; unit: what `value` counts
    per second; single: time each input alone (latency) instead of the list at once; warmup: a
    cheaper case run untimed before (default: the case itself).
    """

    name: str
    inputs: list
    settings: dict = field(default_factory=dict)
    unit: str = "items/s"
    single: bool = False
    warmup: "Case | None" = None
    texts: list | None = None
    work: dict | None = None  # FLOPs or weights read per unit (benchmarks/work.py), for the share of the limit


# A loaded system: run(case) -> (units done, outputs). Units are items, or new tokens for generation.
Run = Callable[[Case], tuple[int, list]]


@dataclass
class System:
    """A way to do the task: nopipe, or a peer. `load()` builds it (timed apart) and returns its Run."""

    name: str
    dtype: str
    load: Callable[[], Run]
    entry: str = ""  # what was called, e.g. "tasks.text_classification.TextClassifier" or "decoding.generate"


class NotAvailable(Exception):
    """A system that cannot run here (module not written yet, optional package missing)."""


class Bench:
    """Runs systems on cases and keeps what it measured, for the report.

    With workers, `measure` only queues a system; `finish` (after each workload) runs the queue in
    workers and then the comparisons that waited for its rows.
    """

    def __init__(self, options: Options):
        self.options = options
        self.sizes = options.sizes
        self.measurements: list[dict] = []
        self.comparisons: list[dict] = []
        self.notes: list[str] = []
        self.picks: dict = {}  # (task, model, case) -> the batch size a sweep chose
        self.limits: dict | None = None  # the machine's (benchmarks/machine.py), set by main
        self.workload: tuple | None = None  # (task, model, folder) of the recipe running now
        self._outputs: dict[tuple, list] = {}
        self._queued: list[tuple] = []
        self._waiting: list[Callable] = []
        self._systems: dict[tuple, tuple] = {}  # (task, model, system, dtype) -> its queued item
        self._alone: dict[tuple, list[dict]] = {}  # the same key -> its rows measured with no other worker alive
        torch.set_num_threads(options.threads)

    # ---- which models -------------------------------------------------------------------------
    def models(self, task: str, names: list[str]) -> list[tuple[str, Path]]:
        """(name, folder) of the models of `task` to run here, built on first use; a model that cannot
        be had (SmolLM2 without its package) gets a note saying why."""
        if self.options.models:
            names = [name for name in names if name in self.options.models]
        elif self.sizes.first_model_only:
            names = names[:1]
        chosen = []
        for name in names:
            try:
                chosen.append((name, model_folder(name, self.options.mode)))
            except Exception as error:  # noqa: BLE001 - one missing model should not stop the suite
                self.note(task, f"{name} skipped: {_reason(error)}")
        return chosen

    def note(self, task: str, text: str) -> None:
        self.notes.append(f"{task}: {text}")
        print(f"[{task}] {text}", flush=True)

    def run_workload(self, benchmark, model: str, folder: Path) -> None:
        """benchmark.run for one model, then its queued systems and waiting comparisons."""
        self.workload = (benchmark.task, model, str(folder))
        benchmark.run(self, model, folder)
        self.finish()

    # ---- measuring ----------------------------------------------------------------------------
    def measure(self, task: str, model: str, system: System, cases: list[Case]) -> None:
        """Measure `system` on `cases`: queued for the workers, or here at once (--in-process)."""
        if self.options.workers and self.workload is not None:
            self._queued.append((task, model, system, cases))
            self._systems[(task, model, system.name, system.dtype)] = (task, model, system, cases)
        else:
            self.measure_here(task, model, system, cases)

    def measure_here(self, task: str, model: str, system: System, cases: list[Case]) -> None:
        """Load `system`, then for each case and repetition: warm up, time the fixed workload; one row per case.

        peak_rss_mb is the process's peak during the timed run; system_mb is that peak minus the
        RSS before the system was loaded: its weights, caches and activations.
        """
        base = dict(task=task, model=model, system=system.name, dtype=system.dtype, entry=system.entry)
        release_memory()
        before = rss_bytes()
        try:
            load_seconds, run = timed(system.load)
        except Exception as error:  # noqa: BLE001 - any failure is a row of the report, not a crash
            self._failed(base, cases, _reason(error))
            return
        for case in cases:
            rows = [self.time_row(run, case, base, load_seconds, before, first=index == 0)
                    for index in range(self.sizes.repeats)]
            self._keep(base, case, rows, rows[0].pop("outputs", None), thread_settings(self.options.threads))

    def time_row(self, run: Run, case: Case, base: dict, load_seconds: float, before: int, first: bool) -> dict:
        """One timed repetition of `case`: its row (with `outputs`), or a row with the error; `first`: the
        system's first repetition of it, before which it sees the whole workload once (`first_touch`)."""
        row = dict(base, case=case.name, unit=case.unit, load_seconds=round(load_seconds, 2))
        try:
            if first:
                first_touch(run, case)
            row.update(self._time_case(run, case, profile=self.options.profile and base["system"] == "nopipe"))
            row["system_mb"] = round(row["peak_rss_mb"] - before / 2**20, 1)
        except Exception as error:  # noqa: BLE001
            row["error"] = _reason(error)
            if os.environ.get("NOPIPE_BENCH_DEBUG"):
                traceback.print_exc()
        return row

    def _failed(self, base: dict, cases: list[Case], reason: str) -> None:
        print(f"[{base['task']}] {base['model']} {base['system']} ({base['dtype']}): not available: {reason}", flush=True)
        for case in cases:
            self.measurements.append(dict(base, case=case.name, unit=case.unit, error=reason))

    def _keep(self, base: dict, case: Case, rows: list[dict], outputs, threads: dict) -> None:
        """Record the summary of a case's repetitions (and its outputs, for the agreement checks)."""
        from benchmarks.worker import summarize

        for row in rows:
            row.pop("outputs", None)
        good = [row for row in rows if "value" in row]
        row = dict(summarize(good) if good else rows[0], threads=threads)
        if good and case.work and self.limits:
            from benchmarks.work import share_of_limit

            row.update(share_of_limit(case.work, row["value"], base["dtype"], self.limits))
        if outputs is not None:
            self._outputs[(base["task"], base["model"], case.name, base["system"], base["dtype"])] = outputs
        self.measurements.append(row)
        spread = f" (min {row['value_min']:.2f}, max {row['value_max']:.2f}, {row['repeats']} runs)" if good else ""
        shown = f"{row['value']:.2f} {case.unit}{spread}" if good else f"error: {row['error']}"
        print(f"[{base['task']}] {base['model']} | {case.name} | {base['system']} ({base['dtype']}): {shown}", flush=True)

    def _time_case(self, run: Run, case: Case, profile: bool) -> dict:
        run(case.warmup or case)
        _seed()
        if case.single:
            with PeakRSS() as memory:
                seconds = latencies(lambda item: run(Case(case.name, [item], case.settings)), case.inputs)
            total = sum(seconds)
            return dict(value=len(case.inputs) / total, seconds=round(total, 3), units=len(case.inputs),
                        p50_ms=1000 * percentile(seconds, 0.5), p95_ms=1000 * percentile(seconds, 0.95),
                        peak_rss_mb=round(memory.peak_mb, 1))
        with PeakRSS() as memory:
            seconds, (units, outputs) = timed(lambda: run(case))
        if profile:
            print_profile(run, case)
        return dict(value=units / seconds, seconds=round(seconds, 3), units=units,
                    peak_rss_mb=round(memory.peak_mb, 1), outputs=outputs)

    def flush(self, queued: list[tuple] | None = None) -> None:
        """Run `queued` (default: every queued system) in workers, interleaved; record their rows."""
        from benchmarks.worker import Job, run_in_workers, system_key

        queued = self._queued if queued is None else queued
        self._queued = [item for item in self._queued if item not in queued]
        if not queued:
            return
        task, model, folder = self.workload
        options = replace(self.options, fixed_sizes=self.sizes)
        jobs = [(Job(task, model, folder, options, system_key(system, cases), dict(self.picks)), system, cases)
                for _, _, system, cases in queued]
        for worker in run_in_workers(jobs, self.sizes.repeats):
            base = dict(task=queued[0][0], model=queued[0][1], system=worker.system.name, dtype=worker.system.dtype,
                        entry=worker.system.entry)
            if worker.ready is None:
                self._failed(base, worker.cases, worker.error or "the worker did not start")
                continue
            for case in worker.cases:
                rows = worker.rows.get(case.name) or [dict(base, case=case.name, unit=case.unit,
                                                          error=worker.error or "not run")]
                self._keep(base, case, rows, worker.outputs.get(case.name), worker.ready)

    def finish(self) -> None:
        """Run what is queued, re-measure the --check-alone systems alone, then the waiting comparisons."""
        queued = list(self._queued)
        self.flush()
        for item in queued:
            if (item[2].name, item[2].dtype) in self.options.check_alone and self.options.workers:
                self.check_alone(item)
        waiting, self._waiting = self._waiting, []
        for comparison in waiting:
            comparison()

    def check_alone(self, item: tuple) -> None:
        """Measure one system again with no other worker alive; record suite / alone per case (about 1.0
        when the suite's interleaving does not disturb it)."""
        task, model, system, cases = item
        suite_rows = {case.name: self.find(task, model, case.name, system.name, system.dtype) for case in cases}
        for row in self.measured_alone(item):
            suite_row = suite_rows.get(row["case"])
            value = suite_row["value"] / row["value"] if suite_row and "value" in suite_row and "value" in row else None
            self._record("suite / alone", task, model, row["case"], (system.name, system.dtype),
                         (system.name, system.dtype + " alone"), None, value, row.get("error", "not measured"))
            print(f"[{task}] {model} | {row['case']} | {system.name} ({system.dtype}) alone: "
                  f"{row.get('value', float('nan')):.2f}; suite / alone = {value}", flush=True)

    def measured_alone(self, item: tuple) -> list[dict]:
        """The system's rows measured again in a worker with no other worker alive (once per system)."""
        task, model, system, _ = item
        key = (task, model, system.name, system.dtype)
        if key not in self._alone:
            kept, self.measurements = self.measurements, []
            self.flush([item])
            self._alone[key], self.measurements = self.measurements, kept
        return self._alone[key]

    def find(self, task, model, case, system, dtype) -> dict | None:
        for row in self.measurements:
            if (row["task"], row["model"], row["case"], row["system"], row["dtype"]) == (task, model, case, system, dtype):
                return row
        return None

    # ---- comparing ----------------------------------------------------------------------------
    def compare(self, task: str, model: str, case: str, ours: tuple, peer: tuple, target: float | None = None) -> None:
        """Record ours/peer throughput (higher is better for both) against `target` (once both are measured)."""
        if self._queued:
            self._waiting.append(lambda: self.compare(task, model, case, ours, peer, target))
            return
        mine, theirs = self.find(task, model, case, *ours), self.find(task, model, case, *peer)
        missing = [f"{' '.join(which)}: {found.get('error') if found else 'not measured'}"
                   for which, found in ((ours, mine), (peer, theirs)) if not found or "value" not in found]
        value = None if missing else mine["value"] / theirs["value"]
        self._record("speed ratio", task, model, case, ours, peer, target, value, "; ".join(missing))

    def compare_memory(self, task: str, model: str, case: str, ours: tuple, reference: tuple,
                       target: float | None) -> None:
        """Record ours/reference memory (system MB: what loading and running it added; lower is better).

        With workers, both are measured again alone: side by side, a worker's RSS also holds the pages
        of a weight file its neighbours map (an int8 worker cannot page out the float32 file while the
        float32 worker maps it: distilbert int8 +554 MB beside it, +303 alone)."""
        if self._queued:
            self._waiting.append(lambda: self.compare_memory(task, model, case, ours, reference, target))
            return
        mine, theirs = self.memory_row(task, model, case, ours), self.memory_row(task, model, case, reference)
        known = all(found and found.get("system_mb", 0) > 0 for found in (mine, theirs))
        value = mine["system_mb"] / theirs["system_mb"] if known else None
        self._record("memory ratio", task, model, case, ours, reference, target, value, "memory not measured")

    def memory_row(self, task: str, model: str, case: str, system: tuple) -> dict | None:
        """The row whose system MB a memory comparison reads: measured alone when workers run side by side."""
        item = self._systems.get((task, model, *system))
        if item is None:
            return self.find(task, model, case, *system)
        return next((row for row in self.measured_alone(item) if row["case"] == case), None)

    def agree(self, task: str, model: str, case: str, ours: tuple, reference: tuple,
              same_answers: Callable[[list, list], float], target: float | None = None) -> None:
        """Record the share of answers `ours` has in common with `reference` (e.g. int8 vs float32)."""
        if self._queued:
            self._waiting.append(lambda: self.agree(task, model, case, ours, reference, same_answers, target))
            return
        mine = self._outputs.get((task, model, case, *ours))
        theirs = self._outputs.get((task, model, case, *reference))
        value = None if mine is None or theirs is None else same_answers(mine, theirs)
        self._record("agreement", task, model, case, ours, reference, target, value, "outputs not available")

    def _record(self, kind, task, model, case, ours, peer, target, value, why) -> None:
        row = dict(task=task, model=model, case=case, kind=kind, ours=" ".join(ours), peer=" ".join(peer),
                   target=target, value=value, met=None if value is None or target is None else
                   value <= target if kind == "memory ratio" else value >= target)
        if value is None:
            row["why"] = why
        self.comparisons.append(row)

    def pick_batch_size(self, task: str, model: str, make_system: Callable[[int], System], case: Case) -> int | None:
        """The batch size at which `make_system(batch_size)` is fastest on `case` (None if it never ran).

        With workers, the sweep runs at once (its systems interleaved), so the recipe can go on with its pick.
        """
        sweep = {size: make_system(size) for size in self.sizes.sweep_batch_sizes}
        before = list(self._queued)
        for system in sweep.values():
            self.measure(task, model, system, [case])
        self.flush([item for item in self._queued if item not in before])
        values = {size: (self.find(task, model, case.name, system.name, system.dtype) or {}).get("value", 0.0)
                  for size, system in sweep.items()}
        best = max(values, key=values.get) if any(values.values()) else None
        self.picks[(task, model, case.name)] = best
        return best


class WorkerBench(Bench):
    """The Bench of a worker process: serves one system (found by its key) to the parent and ignores
    every other; comparisons and notes belong to the parent."""

    def __init__(self, options: Options, connection, key: tuple, picks: dict):
        super().__init__(replace(options, workers=False))
        self.connection, self.key, self.picks = connection, key, picks

    def note(self, task: str, text: str) -> None:
        pass

    def compare(self, *args, **kwargs) -> None:
        pass

    def compare_memory(self, *args, **kwargs) -> None:
        pass

    def agree(self, *args, **kwargs) -> None:
        pass

    def pick_batch_size(self, task: str, model: str, make_system, case: Case) -> int | None:
        """Serve this worker's system if it is one of the sweep's; then the parent's pick."""
        for size in self.sizes.sweep_batch_sizes:
            self.measure(task, model, make_system(size), [case])
        return self.picks.get((task, model, case.name))

    def measure(self, task: str, model: str, system: System, cases: list[Case]) -> None:
        """If this is the worker's system: load it, say "ready", then time each case the parent names."""
        from benchmarks.peers import import_systems
        from benchmarks.worker import _Served, system_key

        if system_key(system, cases) != self.key:
            return
        import_systems(ctranslate2=system.name == "CTranslate2")
        base = dict(task=task, model=model, system=system.name, dtype=system.dtype, entry=system.entry)
        release_memory()
        before = rss_bytes()
        try:
            load_seconds, run = timed(system.load)
        except Exception as error:  # noqa: BLE001 - the parent reports it
            self.connection.send(("error", _reason(error)))
            raise _Served() from error
        self.connection.send(("ready", thread_settings(self.options.threads)))
        while (message := self.connection.recv())[0] == "run":
            row = self.time_row(run, cases[message[1]], base, load_seconds, before, first=message[2])
            outputs = row.pop("outputs", None)
            self.connection.send(("row", row, sendable(outputs) if message[2] else None))
        raise _Served()


def first_touch(run: Run, case: Case) -> None:
    """Run the whole workload once, untimed, where the case's own warm-up is a cheaper one.

    Why: the first call on each input shape pays one-time costs (oneDNN and AMX kernels are made per
    shape, the allocator grows), and the cheap warm-up covers few of the workload's shapes. Measured on
    distilbert-sst2, 32 texts, 5 repetitions: nopipe int8 42.4 items/s in the first repetition and
    53.5-57.0 in the others, bfloat16 33.7 against 52.2-56.3. Every system gets the same pass.
    """
    if case.warmup is None:
        return  # the warm-up before each repetition is the workload itself
    if case.single:
        for item in case.inputs:
            run(Case(case.name, [item], case.settings))  # as _time_case times them
    else:
        run(case)


def sendable(outputs):
    """The outputs if they can go through a pipe, else None: CTranslate2's result objects cannot be
    pickled, and no agreement check reads them."""
    import pickle

    try:
        pickle.dumps(outputs)
    except (TypeError, pickle.PicklingError, AttributeError):
        return None
    return outputs


def thread_settings(threads: int) -> dict:
    """What decides how many threads each engine runs: recorded with every row."""
    settings = dict(requested=threads, torch=torch.get_num_threads(), torch_interop=torch.get_num_interop_threads())
    settings.update({name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
                     if name in os.environ})
    return settings


def import_benchmarks() -> dict:
    """Every task's benchmark by task name (what a worker looks its recipe up in)."""
    from benchmarks.run import BENCHMARKS

    return {benchmark.task: benchmark for benchmark in BENCHMARKS}


def _seed() -> None:
    """Same random state before every timed run, so sampled runs draw the same kind of tokens."""
    random.seed(0)
    torch.manual_seed(0)
    if "ctranslate2" in sys.modules:  # only where it runs: importing it elsewhere brings its OpenMP runtime along
        sys.modules["ctranslate2"].set_random_seed(0)


def _reason(error: Exception) -> str:
    if isinstance(error, NotAvailable):
        return str(error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:300]}"


def print_profile(run: Run, case: Case, top: int = 15) -> None:
    """Run `case` once more under cProfile and torch.profiler; print where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    profiler = cProfile.Profile()
    with profile(activities=[ProfilerActivity.CPU]) as torch_profile:
        profiler.runcall(run, case)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    print(f"\n--- profile of {case.name}: Python functions by own time ---")
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[-4000:])
    print(f"\n--- profile of {case.name}: torch operators by self CPU time ---")
    print(torch_profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main(benchmarks: list, argv=None, description: str = "", prog: str | None = None) -> Path:
    """Parse the options, probe the machine's limits, run each chosen benchmark on a fresh Bench, write
    its results and the summary of the results folder; return that folder.

    A benchmark has a `task` name, its `models`, and `run(bench, model, folder)` for one model.
    """
    by_task = {benchmark.task: benchmark for benchmark in benchmarks}
    options, chosen = parse_options(argv, description, list(by_task), prog)
    from benchmarks import machine, report
    from benchmarks.peers import import_systems
    from core.hub import quiet_process

    quiet_process()
    if not options.workers:
        import_systems()
    out = report.results_folder(options)
    out.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made fails now, not after the measuring
    print(f"results will be written to {out}", flush=True)
    def probe() -> dict:
        return machine.probe_in_worker(options.threads) if options.workers else machine.probe(options.threads)

    limits = probe()
    print(f"machine: {machine.describe(limits)}", flush=True)
    for task in chosen:
        bench, benchmark = Bench(options), by_task[task]
        bench.limits = limits = machine.higher(limits, probe())  # a busy machine lowers a probe: keep the best
        for model, folder in bench.models(task, benchmark.models):
            bench.run_workload(benchmark, model, folder)
        report.write(bench, task, out, limits)
    summary = report.write_summary(out)
    print(f"results written to {out} (summary: {summary})", flush=True)
    return out
