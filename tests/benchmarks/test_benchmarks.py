"""The benchmark suite on the fixture models: every task runs, and writes the report it promises.

One in-process run of `benchmarks.run` on every task (`--models fixtures`, one thread, a temporary
results folder: the committed benchmarks/results/ is never written) feeds most tests; one test runs a
task script as `python -m` to check that each script stands alone. No test looks at a time: speed
on the fixtures means nothing, and a benchmark never asserts one.
"""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.encoders import agreement
from benchmarks.generation import same_texts
from benchmarks.measure import percentile
from benchmarks.run import BENCHMARKS
from benchmarks.run import main as run_benchmarks
from benchmarks.suite import Bench, Case, NotAvailable, Options, System, parse_options
from tasks.cli import main as nopipe

REPO = Path(__file__).resolve().parents[2]
ENCODER_TASKS = ("text-classification", "token-classification")
GENERATION_TASKS = ("text-generation", "summarization", "translation", "text2text-generation")
TASKS = [benchmark.task for benchmark in BENCHMARKS]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """The results folder of one run of every task on the fixtures (CTranslate2 converts into a temporary cache)."""
    out = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOPIPE_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("HF_HUB_OFFLINE", "1")
        assert run_benchmarks(["--models", "fixtures", "--threads", "1", "--out", str(out)]) == 0
    return out


def task_results(results: Path, task: str) -> dict:
    return json.loads((results / f"{task}.json").read_text())


@pytest.mark.parametrize("task", TASKS)
def test_each_task_writes_json_and_markdown(results, task):
    data = task_results(results, task)
    assert data["task"] == task
    assert data["environment"]["models"] == "fixtures" and data["environment"]["threads"] == 1
    assert data["measurements"], "no system was measured"
    markdown = (results / f"{task}.md").read_text()
    assert "## Speed: nopipe / peer" in markdown and "## Answers" in markdown and "## Measurements" in markdown


@pytest.mark.parametrize("task", TASKS)
def test_every_model_of_a_task_is_measured_by_nopipe_in_float32_and_int8(results, task):
    data = task_results(results, task)
    for model in {row["model"] for row in data["measurements"]}:
        measured = {(row["system"], row["dtype"]) for row in data["measurements"]
                    if row["model"] == model and "value" in row}
        assert {("nopipe", "float32"), ("nopipe", "int8")} <= measured, model
    for row in data["measurements"]:
        if "value" in row:
            assert row["value"] > 0 and row["peak_rss_mb"] > 0 and "system_mb" in row


@pytest.mark.parametrize("task", ENCODER_TASKS + GENERATION_TASKS)
def test_speed_ratios_against_the_peers_are_reported(results, task):
    ratios = [row for row in task_results(results, task)["comparisons"] if row["kind"] == "speed ratio"]
    peers = {row["peer"] for row in ratios if row["value"] is not None}
    expected = "pipeline (default batch) float32" if task in ENCODER_TASKS else "generate() float32"
    assert expected in peers
    for row in ratios:
        assert row["ours"].startswith("nopipe ")
        assert row["value"] is None or row["value"] > 0
        assert row["met"] is None or row["met"] == (row["value"] >= row["target"])
        assert row["value"] is not None or row["why"]  # a ratio that could not be taken says why


@pytest.mark.parametrize("task", ENCODER_TASKS)
def test_encoder_pipeline_runs_at_its_default_and_best_batch_size(results, task):
    data = task_results(results, task)
    systems = {row["system"] for row in data["measurements"]}
    assert "pipeline (default batch)" in systems
    assert any(row["case"].startswith("batch-size sweep") for row in data["measurements"])
    targets = {(row["ours"], row["target"]) for row in data["comparisons"] if row["kind"] == "speed ratio"}
    assert ("nopipe float32", 2.0) in targets and ("nopipe int8", 3.0) in targets
    latency = [row for row in data["measurements"] if row["case"].startswith("single requests") and "value" in row]
    assert latency and all(row["p50_ms"] <= row["p95_ms"] for row in latency)


@pytest.mark.parametrize("task, target", [("text-classification", 0.99), ("token-classification", 0.99),
                                          ("question-answering", None)])
def test_int8_answers_are_compared_with_float32(results, task, target):
    rows = [row for row in task_results(results, task)["comparisons"]
            if row["kind"] == "agreement" and row["ours"] == "nopipe int8" and row["peer"] == "nopipe float32"]
    assert rows and all(row["target"] == target and 0.0 <= row["value"] <= 1.0 for row in rows)


@pytest.mark.parametrize("task", ENCODER_TASKS + GENERATION_TASKS)
def test_float32_answers_are_those_of_the_peer(results, task):
    """On the fixtures nopipe float32 gives the pipeline's labels and generate()'s greedy/beam texts."""
    rows = [row for row in task_results(results, task)["comparisons"]
            if row["kind"] == "agreement" and row["ours"] == "nopipe float32"]
    assert rows
    for row in rows:
        assert row["value"] == 1.0, row


def test_question_answering_says_it_has_no_pipeline_peer(results):
    data = task_results(results, "question-answering")
    assert not [row for row in data["comparisons"] if row["kind"] == "speed ratio"]
    assert any("no 'question-answering' pipeline" in note for note in data["notes"])


def test_summary_gathers_every_task_with_its_chart(results):
    summary = (results / "summary.md").read_text()
    for task in TASKS:
        assert f"**{task}**" in summary
    assert (results / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_a_task_script_runs_alone(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", NOPIPE_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "benchmarks.question_answering", "--models", "fixtures",
                           "--threads", "1", "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {path.name for path in tmp_path.glob("*.json")} == {"question-answering.json"}
    assert (tmp_path / "summary.md").is_file()


@pytest.mark.parametrize("script", ["run", "text_classification", "token_classification", "question_answering",
                                    "text_generation", "summarization", "translation", "text2text"])
def test_every_script_has_a_command_line(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "benchmarks" / f"{script}.py"), run_name="__main__")
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert "--models {real,fixtures}" in shown and "--quick" in shown and "--out" in shown
    assert ("--task" in shown) == (script == "run")


def test_nopipe_bench_command_passes_its_arguments_on(tmp_path):
    # --only names a model of another task, so nothing is measured: this checks the command, not the suite.
    code = nopipe(["bench", "--models", "fixtures", "--task", "question-answering", "--only", "gpt2",
                   "--out", str(tmp_path)])
    assert code == 0
    assert json.loads((tmp_path / "question-answering.json").read_text())["measurements"] == []


def test_default_results_folder_is_benchmarks_results():
    assert report.results_folder(Options()) == REPO / "benchmarks" / "results"
    assert report.results_folder(Options(mode="fixtures")) == REPO / "benchmarks" / "results" / "fixtures"
    assert report.results_folder(Options(out="/tmp/x")) == Path("/tmp/x")


# ---- the pieces, alone ------------------------------------------------------------------------------
def test_texts_option_sets_every_models_workload():
    options, _ = parse_options(["--texts", "512"])
    assert options.sizes.texts == 512 and not options.sizes.scale_by_model
    assert Options().sizes.texts == 128 and Options().sizes.scale_by_model
    with pytest.raises(SystemExit):
        parse_options(["--texts", "0"])


def test_quick_takes_each_tasks_first_model_unless_only_names_others(monkeypatch):
    monkeypatch.setattr("benchmarks.suite.model_folder", lambda name, mode: Path(name))
    names = ["distilbert-sst2", "bert-stars", "roberta-emotion"]
    assert Bench(Options(quick=True, threads=1)).models("t", names) == [("distilbert-sst2", Path("distilbert-sst2"))]
    chosen = Bench(Options(quick=True, threads=1, models=("bert-stars",))).models("t", names)
    assert [name for name, _ in chosen] == ["bert-stars"]
    assert len(Bench(Options(threads=1)).models("t", names)) == 3


def test_a_system_that_cannot_load_is_a_row_of_the_report_not_a_crash(tmp_path):
    def missing():
        raise NotAvailable("ctranslate2 is not installed")

    bench = Bench(Options(mode="fixtures", threads=1))
    bench.measure("task", "model", System("CTranslate2", "int8", missing), [Case("case", [1, 2])])
    bench.measure("task", "model", System("nopipe", "int8", lambda: lambda case: (len(case.inputs), case.inputs)),
                  [Case("case", [1, 2])])
    bench.compare("task", "model", "case", ("nopipe", "int8"), ("CTranslate2", "int8"), target=1.0)
    assert bench.measurements[0]["error"] == "ctranslate2 is not installed"
    assert bench.measurements[1]["units"] == 2
    ratio = bench.comparisons[0]
    assert ratio["value"] is None and ratio["met"] is None and "not installed" in ratio["why"]
    report.write(bench, "task", tmp_path)
    assert "n/a (CTranslate2 int8: ctranslate2 is not installed)" in (tmp_path / "task.md").read_text()


def test_optional_packages_missing(monkeypatch, tmp_path):
    from benchmarks.peers import ct2_folder

    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    monkeypatch.setitem(sys.modules, "ctranslate2.converters", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(NotAvailable, match="ctranslate2 is not installed"):
        ct2_folder(tmp_path)
    rows = [dict(kind="speed ratio", value=1.5, target=1.0, met=True, task="t", model="m", case="c", ours="a",
                 peer="b")]
    assert report.bar_chart(rows, tmp_path / "chart.png") is False


def test_agreement_compares_labels_and_token_positions():
    def label(answer):
        return answer

    assert agreement(["A", "B", "A", "A"], ["A", "B", "B", "A"], label) == 0.75
    # NER: {position: label}; a position only one side labelled counts against it.
    assert agreement([{1: "B-PER", 2: "I-PER"}], [{1: "B-PER", 3: "B-LOC"}], label) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        agreement(["A"], ["A", "B"], label)


def test_same_texts_ignores_spacing_only():
    assert same_texts([{"summary_text": "a  b"}, {"summary_text": "c"}],
                      [{"summary_text": "a b "}, {"summary_text": "d"}], tokenizer=None) == 0.5


def test_percentile_interpolates():
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([float(value) for value in range(1, 101)], 0.5) == pytest.approx(50.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
