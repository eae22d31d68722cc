"""Writing the results: a JSON file and a markdown table per task, and a summary of all tasks
(`summary.md`, `summary.png`) rebuilt from every task's JSON in the results folder.

The ratio is nopipe / peer on throughput (higher is better for nopipe); "met?" compares it with
the issue's target. Agreement rows give the share of answers that are the same: nopipe int8 against
float32, nopipe float32 against its peer. The load average, written when a task's results are, says
whether other work shared the CPU.
"""

import datetime
import json
import os
import platform
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from benchmarks.suite import Bench

RESULTS = Path(__file__).resolve().parent / "results"


def results_folder(options) -> Path:
    if options.out:
        return Path(options.out)
    return RESULTS / "fixtures" if options.mode == "fixtures" else RESULTS


def environment(bench: Bench) -> dict:
    versions = {}
    for package in ("torch", "transformers", "tokenizers", "ctranslate2", "nopipe"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                python=platform.python_version(), platform=platform.platform(), cpu=_cpu_name(),
                cpu_count=torch.multiprocessing.cpu_count(), threads=bench.options.threads,
                torch_threads=torch.get_num_threads(), load_average=[round(load, 2) for load in os.getloadavg()],
                models=bench.options.mode, quick=bench.options.quick,
                versions=versions, sizes=asdict(bench.sizes))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write(bench: Bench, task: str, out: Path) -> Path:
    """<out>/<task>.json and .md for one task; returns the JSON path."""
    out.mkdir(parents=True, exist_ok=True)
    data = dict(task=task, environment=environment(bench), notes=bench.notes, comparisons=bench.comparisons,
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
    lines = [f"# {title}", ""]
    for run in runs:
        env = run["environment"]
        v = env["versions"]
        load = "/".join(f"{value:.1f}" for value in env.get("load_average", []))
        lines.append(f"- **{run['task']}**: {env['date']}, {env['cpu']} ({env['cpu_count']} cores, load average "
                     f"{load} at the end), {env['threads']} threads, models: {env['models']}"
                     f"{' (quick)' if env['quick'] else ''}; torch {v['torch']}, transformers {v['transformers']}, "
                     f"ctranslate2 {v['ctranslate2']}")
    for kind, heading, value in (("speed ratio", "Speed: nopipe / peer (throughput)", "nopipe / peer"),
                                 ("agreement", "Answers: share that agree", "agree")):
        lines += ["", f"## {heading}", "", f"| task | model | workload | nopipe | peer | {value} | target | met? |",
                  "|---|---|---|---|---|---|---|---|"]
        for run in runs:
            for row in run["comparisons"]:
                if row["kind"] == kind:
                    lines.append(f"| {row['task']} | {row['model']} | {row['case']} | {row['ours']} | {row['peer']} "
                                 f"| {_value(row)} | {_target(row)} | {_met(row)} |")
    lines += ["", "## Measurements", "",
              "peak RSS: the process's peak during the timed run; system MB: that peak minus the RSS before "
              "the system was loaded (its weights, caches and activations; the first system of a run also carries "
              "~20 MB of one-time start-up).", "",
              "| task | model | workload | system | dtype | throughput | p50 ms | p95 ms | peak RSS MB | system MB "
              "| load s | via |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for row in run["measurements"]:
            speed = f"{row['value']:.2f} {row['unit']}" if "value" in row else f"not available: {row.get('error')}"
            lines.append(f"| {row['task']} | {row['model']} | {row['case']} | {row['system']} | {row['dtype']} | "
                         f"{speed} | {_number(row.get('p50_ms'))} | {_number(row.get('p95_ms'))} | "
                         f"{_number(row.get('peak_rss_mb'), 0)} | {_number(row.get('system_mb'), 0)} | "
                         f"{_number(row.get('load_seconds'))} | {row.get('entry', '')} |")
    notes = [note for run in runs for note in run["notes"]]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _value(row: dict) -> str:
    if row["value"] is None:
        return "n/a"
    return f"{100 * row['value']:.1f}%" if row["kind"] == "agreement" else f"{row['value']:.2f}x"


def _target(row: dict) -> str:
    if row["target"] is None:
        return "-"
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
