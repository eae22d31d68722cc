"""Items/s of a text-classification job over a dataset file: nopipe's batch engines (local and Ray) against
the loops a user would otherwise write around a runner.

    python -m benchmarks.batch_jobs [--model distilbert-sst2|FOLDER] [--rows 10000] [--repeats 3]

The default model is DistilBERT-SST2 at its real size (random weights built from its config by
benchmarks/models.py; speed does not depend on the weights); `--model FOLDER` takes any classifier.

Five systems, each in a process of its own (a fresh interpreter per run, interleaved A B C D E, B C D E A, ...):
- `engine`: tasks.batch.run_job (shards, length-sorted batches, answers written to JSON lines);
- `ray-2x1`, `ray-1x2`: the same job with engine="ray" on a local Ray of this machine's CPUs: 2 actors
  of 1 CPU each, or 1 actor of 2 CPUs (the same shards and batches, so the same output);
- `loop`: `for row in rows: runner(row["text"])`, one text at a time, answers written the same way;
- `batches`: the runner on fixed batches of 32 in file order (no sorting), answers written the same way.
Loading the model is left out of the local figures. Ray's figures leave out starting Ray, but not
starting the actors, each of which loads the model: that is part of every Ray job. The texts are the
test corpus' lines, cycled to `--rows` rows with a row number appended, so their lengths vary as real
reviews do. Targets: the local engine >= 1.5x the loop; Ray (2 actors x 1 CPU) >= 0.8x the local engine.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.worker import last_line_of_module, rotated

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "corpus.txt"
SYSTEMS = ("engine", "ray-2x1", "ray-1x2", "loop", "batches")
RAY_LAYOUTS = {"ray-2x1": (2, 1), "ray-1x2": (1, 2)}  # (actors, CPUs per actor)


def write_dataset(path: Path, rows: int) -> None:
    """`rows` JSON lines {"text": ...} from the corpus, lengths as the corpus has them."""
    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, "w", encoding="utf-8") as file:
        for index in range(rows):
            file.write(json.dumps({"text": f"{lines[index % len(lines)]} ({index})"}) + "\n")


def measure(system: str, model: str, source: Path, out: Path) -> float:
    """Rows per second of one system in this process, the model already loaded (Ray: Ray already started)."""
    if system in RAY_LAYOUTS:
        return measure_ray(system, model, source, out)
    import tasks
    from tasks.batch import run_job
    from tasks.batch_io import read_rows, to_json

    runner = tasks.load("text-classification", model=model)
    rows = [row for _, row in read_rows(source)]
    started = time.perf_counter()
    if system == "engine":
        run_job("text-classification", model, source, out, runner=runner, progress=False, overwrite=True)
    else:
        with open(out, "w", encoding="utf-8") as file:
            if system == "loop":
                for row in rows:
                    file.write(to_json({**row, **runner(row["text"])[0]}) + "\n")
            else:
                for start in range(0, len(rows), 32):
                    batch = rows[start:start + 32]
                    for row, answer in zip(batch, runner([row["text"] for row in batch], batch_size=32)):
                        file.write(to_json({**row, **answer}) + "\n")
    return len(rows) / (time.perf_counter() - started)


def measure_ray(system: str, model: str, source: Path, out: Path) -> float:
    """Rows per second of the Ray engine, its actors started and their models loaded inside the figure."""
    import ray

    from tasks.batch import run_job

    actors, cpus = RAY_LAYOUTS[system]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        started = time.perf_counter()
        summary = run_job("text-classification", model, source, out, progress=False, overwrite=True, engine="ray",
                          concurrency=actors, num_cpus_per_actor=cpus)
        return summary.rows / (time.perf_counter() - started)
    finally:
        ray.shutdown()


def run_in_own_process(system: str, model: str, source: Path, out: Path) -> float:
    return float(last_line_of_module("benchmarks.batch_jobs", "--worker", system, "--model", model,
                                     "--source", str(source), "--out", str(out)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="distilbert-sst2", help="a benchmark model name or a folder")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(measure(args.worker, args.model, Path(args.source), Path(args.out)))
        return
    if not Path(args.model).is_dir():
        from benchmarks.models import model_folder

        args.model = str(model_folder(args.model))
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "reviews.jsonl"
        write_dataset(source, args.rows)
        speeds = {system: [] for system in SYSTEMS}
        for repeat in range(args.repeats):
            for system in rotated(SYSTEMS, repeat):
                speeds[system].append(run_in_own_process(system, args.model, source, Path(folder) / f"{system}.jsonl"))
    medians = {system: statistics.median(values) for system, values in speeds.items()}
    print(f"{args.rows} rows, model {args.model}, {args.repeats} interleaved repeats (rows/s: median, min-max)")
    for system, values in speeds.items():
        print(f"  {system:8s} {medians[system]:9.1f}  ({min(values):.1f}-{max(values):.1f})")
    print(f"  engine / loop    {medians['engine'] / medians['loop']:.2f}x (target >= 1.5x)")
    print(f"  engine / batches {medians['engine'] / medians['batches']:.2f}x")
    print(f"  ray-2x1 / engine {medians['ray-2x1'] / medians['engine']:.2f}x (target >= 0.8x)")
    print(f"  ray-1x2 / engine {medians['ray-1x2'] / medians['engine']:.2f}x")


if __name__ == "__main__":
    main()
