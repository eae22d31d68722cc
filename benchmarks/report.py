"""Writing the results: a JSON file and a markdown table per task, and a summary of all tasks
(`summary.md`, `summary.png`) rebuilt from every task's JSON in the results folder.

The ratio is nopipe / peer on throughput (higher is better for nopipe); "met?" compares it with
the target in benchmarks/targets.py. Agreement rows give the share of answers that are the same: nopipe int8 against
float32, nopipe float32 against its peer. The load average, written when a task's results are, says
whether other work shared the CPU.
"""

import datetime
import json
import os
import platform
import tempfile
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from benchmarks.suite import Bench

RESULTS = Path(__file__).resolve().parent / "results"


def results_folder(options) -> Path:
    """--out, or benchmarks/results/ for a full run; anything less (--quick, --task, --only, the fixtures)
    goes to a fresh scratch folder, so that a partial run never mixes with the committed full results."""
    if options.out:
        return Path(options.out)
    if options.quick or options.partial or options.mode == "fixtures":
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(tempfile.gettempdir()) / "nopipe-bench" / f"{stamp}-{os.getpid()}"
    return RESULTS


def environment(bench: Bench, limits: dict | None = None) -> dict:
    versions = {}
    for package in ("torch", "transformers", "tokenizers", "ctranslate2", "onnxruntime", "nopipe"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                python=platform.python_version(), platform=platform.platform(), cpu=_cpu_name(),
                cpu_count=torch.multiprocessing.cpu_count(), threads=bench.options.threads,
                torch_threads=torch.get_num_threads(), load_average=[round(load, 2) for load in os.getloadavg()],
                models=bench.options.mode, quick=bench.options.quick, workers=bench.options.workers,
                limits=limits, versions=versions, sizes=asdict(bench.sizes))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write(bench: Bench, task: str, out: Path, limits: dict | None = None) -> Path:
    """<out>/<task>.json and .md for one task; returns the JSON path."""
    out.mkdir(parents=True, exist_ok=True)
    data = dict(task=task, environment=environment(bench, limits), notes=bench.notes, comparisons=bench.comparisons,
                measurements=bench.measurements)
    path = out / f"{task}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    (out / f"{task}.md").write_text(markdown([data], title=f"nopipe benchmark: {task}"))
    return path


def write_summary(out: Path) -> Path:
    """summary.md (+ summary.png when matplotlib is installed) from every task JSON in `out`."""
    runs = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    chart = out / "summary.png"
    made = bar_chart([row for run in runs for row in run["comparisons"]], chart)
    text = markdown(runs, title="nopipe benchmarks: nopipe / peer")
    text += "\n![ratios](summary.png)\n" if made else "\n(no chart: matplotlib is not installed)\n"
    path = out / "summary.md"
    path.write_text(text)
    return path


def markdown(runs: list[dict], title: str) -> str:
    """The report: how it was measured, the targets, the ratios, the answers, every measurement."""
    from benchmarks.targets import table

    lines = [f"# {title}", "", METHOD, ""]
    for run in runs:
        lines.append(_run_line(run))
    comparisons = [row for run in runs for row in run["comparisons"]]
    lines += ["", "## Targets", ""] + table(comparisons)
    for kind, heading, value in (("speed ratio", "Speed: nopipe / peer (medians)", "nopipe / peer"),
                                 ("memory ratio", "Memory: system MB, ours / reference", "ratio"),
                                 ("agreement", "Answers: share that agree", "agree"),
                                 ("suite / alone", "Alone check: speed in the suite / alone", "suite / alone")):
        rows = [row for row in comparisons if row["kind"] == kind]
        if not rows and kind in ("memory ratio", "suite / alone"):
            continue
        lines += ["", f"## {heading}", "", f"| task | model | workload | nopipe | peer | {value} | target | met? |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {row['task']} | {row['model']} | {row['case']} | {row['ours']} | {row['peer']} "
                  f"| {_value(row)} | {_target(row)} | {_met(row)} |" for row in rows]
    lines += ["", "## Measurements", "", MEASUREMENTS, "",
              "| task | model | workload | system | dtype | median (min-max) | runs | reached (share of limit) | p50 ms "
              "| p95 ms | peak RSS MB | system MB | load s | threads | via |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_measurement(row) for run in runs for row in run["measurements"]]
    notes = [note for run in runs for note in run["notes"]]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


METHOD = ("Each system runs in a worker process of its own per workload (spawned: no thread pool is inherited), "
          "all loaded before the first timed run; the repetitions are interleaved across systems (round 1: A, B, C; "
          "round 2: B, C, A; ...) and each row is the median, with min and max. Ratios are medians over medians.")
MEASUREMENTS = ("peak RSS: the worker's peak during the timed runs; system MB: that peak minus the worker's RSS before "
                "the system was loaded (its weights, caches and activations). reached: useful GFLOP/s (encoders: "
                "FLOPs of the forward pass / time) or GB/s (decoding: weights read per new token / time per token), "
                "and its share of the machine's limit measured at the start (benchmarks/machine.py).")


def _run_line(run: dict) -> str:
    env, limits = run["environment"], run["environment"].get("limits")
    v = env["versions"]
    load = "/".join(f"{value:.1f}" for value in env.get("load_average", []))
    machine = "" if not limits else (f"; limits: fp32 GEMM {limits['fp32_gflops']} GFLOP/s, int8 GEMM "
                                     f"{limits['int8_gops']} GOP/s, memory {limits['bandwidth_gbs']} GB/s")
    where = "a worker per system" if env.get("workers", False) else "one process (--in-process)"
    return (f"- **{run['task']}**: {env['date']}, {env['cpu']} ({env['cpu_count']} cores, load average {load} at "
            f"the end), {env['threads']} threads, {where}, models: {env['models']}{' (quick)' if env['quick'] else ''}; "
            f"torch {v['torch']}, transformers {v['transformers']}, ctranslate2 {v['ctranslate2']}, "
            f"onnxruntime {v.get('onnxruntime')}{machine}")


def _measurement(row: dict) -> str:
    if "value" in row:
        speed = f"{row['value']:.2f} {row['unit']}"
        if "value_min" in row:
            speed += f" ({row['value_min']:.2f}-{row['value_max']:.2f})"
    else:
        speed = f"not available: {row.get('error')}"
    reached = f"{row['reached']} ({100 * row['of_limit']:.0f}% of {row['limit']})" if "of_limit" in row else ""
    threads = row.get("threads") or {}
    shown_threads = f"torch {threads.get('torch')}" if threads else ""
    return (f"| {row['task']} | {row['model']} | {row['case']} | {row['system']} | {row['dtype']} | {speed} | "
            f"{row.get('repeats', '')} | {reached} | {_number(row.get('p50_ms'))} | {_number(row.get('p95_ms'))} | "
            f"{_number(row.get('peak_rss_mb'), 0)} | {_number(row.get('system_mb'), 0)} | "
            f"{_number(row.get('load_seconds'))} | {shown_threads} | {row.get('entry', '')} |")


def _value(row: dict) -> str:
    if row["value"] is None:
        return "n/a"
    return f"{100 * row['value']:.1f}%" if row["kind"] == "agreement" else f"{row['value']:.2f}x"


def _target(row: dict) -> str:
    if row["target"] is None:
        return "-"
    if row["kind"] == "memory ratio":
        return f"<= {row['target']:.2f}x"
    return f">= {100 * row['target']:.0f}%" if row["kind"] == "agreement" else f">= {row['target']:.2f}x"


def _met(row: dict) -> str:
    if row["value"] is None:
        return f"n/a ({row.get('why', '')})"
    if row["met"] is None:
        return "-"
    return "yes" if row["met"] else "**no**"


def _number(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def bar_chart(comparisons: list[dict], path: Path) -> bool:
    """Horizontal bars of the speed ratios, green where the target is met, red where missed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [row for row in comparisons if row["kind"] == "speed ratio" and row["value"] is not None]
    if not rows:
        return False
    labels = [f"{row['task']} {row['model']}\n{row['case']}: {row['ours']} / {row['peer']}" for row in rows]
    colors = ["grey" if row["met"] is None else "tab:green" if row["met"] else "tab:red" for row in rows]
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    positions = range(len(rows))
    axes.barh(positions, [row["value"] for row in rows], color=colors)
    for position, row in zip(positions, rows):
        if row["target"] is not None:
            axes.plot([row["target"]] * 2, [position - 0.4, position + 0.4], color="black", linewidth=2)
    axes.axvline(1.0, color="black", linestyle=":", linewidth=1)
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("nopipe / peer throughput (black tick: target; green met, red missed, grey no target)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
