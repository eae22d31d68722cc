"""What every benchmark script shares: options, workload sizes, and the `Bench` that measures.

A task script builds `Case`s (fixed workloads) and `System`s (nopipe and its peers), asks the Bench
to measure each system on the cases, then names the comparisons it reports:

    bench.measure(task, model, system, cases)                         # one row per case
    bench.compare(task, model, case, ("nopipe", "float32"), ("generate()", "float32"), target=1.2)
    bench.agree(task, model, case, ("nopipe", "int8"), ("nopipe", "float32"), same_answers)

Every system runs in this process, on the same inputs, with the same number of threads; each is
warmed up before its timed run, and freed before the next one loads.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from benchmarks.measure import PeakRSS, latencies, percentile, release_memory, rss_bytes, timed
from benchmarks.models import MODELS, MODES, model_folder


@dataclass(frozen=True)
class Sizes:
    """How big the workloads are.

    The issue asks for 512 texts per encoder model. On 2 CPU cores distilbert reads about 600
    tokens/s in float32 (bert-large about 70), and each encoder model runs about six passes over
    its texts (nopipe float32 and int8, the pipeline at its default and at its best batch size, the
    sweep, the single requests): 512 texts of ~150 tokens would take over 20 minutes for distilbert
    alone. `FULL` keeps the issue's length mix (5 to 300 tokens) and batch sizes, with 128 texts
    (fewer for the bigger models, see `BenchModel.workload_share`) and 32 new tokens for the seq2seq
    tasks, so that the whole suite runs in about 40 minutes; `--texts 512` gives the issue's size.
    Fewer texts make nopipe's length-sorted batches (32 texts each) pad more: with 128 texts about a
    quarter of the tokens it reads are padding, with 512 about a sixteenth, and 32 texts are one batch.
    """

    texts: int = 128  # encoder tasks: texts of mixed length (a model's `workload_share` scales it)
    min_tokens: int = 5
    max_tokens: int = 300
    latency_items: int = 16  # single requests timed one by one for p50/p95
    sweep_items: int = 16  # texts on which the pipeline's best batch size is searched
    sweep_batch_sizes: tuple = (1, 4, 8, 16)
    prompt_tokens: int = 32  # text generation
    new_tokens: int = 128
    generation_batches: tuple = (1, 8)
    sampling: bool = True  # also time sampled generation, not only greedy
    seq2seq_batch: int = 16  # summarization / translation / text2text
    seq2seq_new_tokens: int = 32
    beams: int = 4
    pipeline_peers: bool = True  # the text-generation pipeline besides generate()
    first_model_only: bool = False  # each task's first model only (unless --only names others)
    scale_by_model: bool = True  # encoder texts times the model's workload_share (off with --texts)


FULL = Sizes()
QUICK = Sizes(texts=32, latency_items=8, sweep_items=16, sweep_batch_sizes=(1, 8, 16), new_tokens=32,
              sampling=False, seq2seq_batch=8, seq2seq_new_tokens=16, pipeline_peers=False, first_model_only=True)
FIXTURES = Sizes(texts=12, max_tokens=60, latency_items=3, sweep_items=6, sweep_batch_sizes=(1, 4),
                 prompt_tokens=8, new_tokens=6, generation_batches=(1, 4), seq2seq_batch=4, seq2seq_new_tokens=4)


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


@dataclass
class Options:
    mode: str = "real"
    threads: int = 2
    quick: bool = False
    out: str | None = None
    profile: bool = False
    models: tuple = ()  # restrict to these model names
    texts: int | None = None  # encoder texts per model, instead of the sizes' own

    @property
    def sizes(self) -> Sizes:
        sizes = FIXTURES if self.mode == "fixtures" else QUICK if self.quick else FULL
        return sizes if self.texts is None else replace(sizes, texts=self.texts, scale_by_model=False)


def parse_options(argv=None, description: str = "", tasks: list[str] = ()) -> tuple[Options, list[str]]:
    """The options, and the tasks to run (`--task` is offered when there is more than one)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(tasks) > 1:
        parser.add_argument("--task", nargs="+", choices=tasks, default=list(tasks), metavar="TASK",
                            help=f"run only these tasks (default: all): {', '.join(tasks)}")
    parser.add_argument("--models", choices=MODES, default="real",
                        help="real: real-size models built offline (default); fixtures: the tiny test models "
                             "and tiny workloads")
    parser.add_argument("--only", nargs="+", default=(), metavar="MODEL", choices=sorted(MODELS),
                        help=f"benchmark only these models: {', '.join(MODELS)}")
    parser.add_argument("--threads", type=int, default=2, help="torch and CTranslate2 threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="each task's first model, smaller workloads, greedy "
                                                             "only, no pipeline peer for generation (~10 minutes)")
    parser.add_argument("--texts", type=int, metavar="N", help="encoder tasks: N texts for every model "
                                                                "(default 128, fewer for the big models; the issue's is 512)")
    parser.add_argument("--out", help="results folder (default benchmarks/results, or "
                                      "benchmarks/results/fixtures with --models fixtures)")
    parser.add_argument("--profile", action="store_true", help="print the top functions (cProfile) and "
                                                               "operators (torch.profiler) of each nopipe run")
    args = parser.parse_args(argv)
    for name in ("threads", "texts"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    options = Options(mode=args.models, threads=args.threads, quick=args.quick, out=args.out, profile=args.profile,
                      models=tuple(args.only), texts=args.texts)
    return options, getattr(args, "task", list(tasks))


class Bench:
    """Runs systems on cases and keeps what it measured, for the report."""

    def __init__(self, options: Options):
        self.options = options
        self.sizes = options.sizes
        self.measurements: list[dict] = []
        self.comparisons: list[dict] = []
        self.notes: list[str] = []
        self._outputs: dict[tuple, list] = {}
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

    # ---- measuring ----------------------------------------------------------------------------
    def measure(self, task: str, model: str, system: System, cases: list[Case]) -> None:
        """Load `system`, then for each case: warm up, time the fixed workload, record one row.

        peak_rss_mb is the process's peak during the timed run; system_mb is that peak minus the
        RSS before the system was loaded: its weights, caches and activations.
        """
        base = dict(task=task, model=model, system=system.name, dtype=system.dtype, entry=system.entry)
        release_memory()
        before = rss_bytes()
        try:
            load_seconds, run = timed(system.load)
        except Exception as error:  # noqa: BLE001 - any failure is a row of the report, not a crash
            reason = _reason(error)
            print(f"[{task}] {model} {system.name} ({system.dtype}): not available: {reason}", flush=True)
            for case in cases:
                self.measurements.append(dict(base, case=case.name, unit=case.unit, error=reason))
            return
        for case in cases:
            row = dict(base, case=case.name, unit=case.unit, load_seconds=round(load_seconds, 2))
            try:
                row.update(self._time_case(run, case, profile=self.options.profile and system.name == "nopipe"))
                row["system_mb"] = round(row["peak_rss_mb"] - before / 2**20, 1)
            except Exception as error:  # noqa: BLE001
                row["error"] = _reason(error)
                if os.environ.get("NOPIPE_BENCH_DEBUG"):
                    traceback.print_exc()
            outputs = row.pop("outputs", None)
            if outputs is not None:
                self._outputs[(task, model, case.name, system.name, system.dtype)] = outputs
            self.measurements.append(row)
            shown = f"{row['value']:.2f} {case.unit}" if "value" in row else f"error: {row['error']}"
            print(f"[{task}] {model} | {case.name} | {system.name} ({system.dtype}): {shown}", flush=True)

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

    def find(self, task, model, case, system, dtype) -> dict | None:
        for row in self.measurements:
            if (row["task"], row["model"], row["case"], row["system"], row["dtype"]) == (task, model, case, system, dtype):
                return row
        return None

    # ---- comparing ----------------------------------------------------------------------------
    def compare(self, task: str, model: str, case: str, ours: tuple, peer: tuple, target: float | None = None) -> None:
        """Record ours/peer throughput (higher is better for both) against `target`."""
        mine, theirs = self.find(task, model, case, *ours), self.find(task, model, case, *peer)
        missing = [f"{' '.join(which)}: {found.get('error') if found else 'not measured'}"
                   for which, found in ((ours, mine), (peer, theirs)) if not found or "value" not in found]
        value = None if missing else mine["value"] / theirs["value"]
        self._record("speed ratio", task, model, case, ours, peer, target, value, "; ".join(missing))

    def agree(self, task: str, model: str, case: str, ours: tuple, reference: tuple,
              same_answers: Callable[[list, list], float], target: float | None = None) -> None:
        """Record the share of answers `ours` has in common with `reference` (e.g. int8 vs float32)."""
        mine = self._outputs.get((task, model, case, *ours))
        theirs = self._outputs.get((task, model, case, *reference))
        value = None if mine is None or theirs is None else same_answers(mine, theirs)
        self._record("agreement", task, model, case, ours, reference, target, value, "outputs not available")

    def _record(self, kind, task, model, case, ours, peer, target, value, why) -> None:
        row = dict(task=task, model=model, case=case, kind=kind, ours=" ".join(ours), peer=" ".join(peer),
                   target=target, value=value, met=None if value is None or target is None else value >= target)
        if value is None:
            row["why"] = why
        self.comparisons.append(row)

    def pick_batch_size(self, task: str, model: str, make_system: Callable[[int], System], case: Case) -> int | None:
        """The batch size at which `make_system(batch_size)` is fastest on `case` (None if it never ran)."""
        best, best_value = None, 0.0
        for batch_size in self.sizes.sweep_batch_sizes:
            self.measure(task, model, make_system(batch_size), [case])
            value = self.measurements[-1].get("value", 0.0)
            if value > best_value:
                best, best_value = batch_size, value
        return best


def _seed() -> None:
    """Same random state before every timed run, so sampled runs draw the same kind of tokens."""
    random.seed(0)
    torch.manual_seed(0)
    try:
        import ctranslate2
        ctranslate2.set_random_seed(0)
    except ImportError:
        pass


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


def main(benchmarks: list, argv=None, description: str = "") -> Path:
    """Parse the options, run each chosen benchmark on a fresh Bench, write its results and the
    summary of the results folder; return that folder.

    A benchmark has a `task` name, its `models`, and `run(bench, model, folder)` for one model.
    """
    by_task = {benchmark.task: benchmark for benchmark in benchmarks}
    options, chosen = parse_options(argv, description, list(by_task))
    from benchmarks import report
    from benchmarks.peers import import_systems
    from core.hub import quiet_process

    quiet_process()
    import_systems()
    out = report.results_folder(options)
    for task in chosen:
        bench, benchmark = Bench(options), by_task[task]
        for model, folder in bench.models(task, benchmark.models):
            benchmark.run(bench, model, folder)
        report.write(bench, task, out)
    summary = report.write_summary(out)
    print(f"results written to {out} (summary: {summary})", flush=True)
    return out
