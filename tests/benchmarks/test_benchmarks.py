"""The benchmark suite on the fixture models: every task runs, and writes the report it promises.

One in-process run of `benchmarks.run` on every task (`--models fixtures --in-process`, one thread, a
temporary results folder: the committed benchmarks/results/ is never written) feeds most tests; one
test runs a task script as `python -m` the way real runs go, each system in a worker process of its
own, with the alone check. No test looks at a time: speed on the fixtures means nothing, and a
benchmark never asserts one.
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
        assert run_benchmarks(["--models", "fixtures", "--threads", "1", "--in-process", "--out", str(out)]) == 0
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
    peers = {row["peer"] for row in data["comparisons"] if row["kind"] == "speed ratio"}
    assert peers == {"ONNX Runtime int8", "ONNX Runtime float32"}
    assert any("no 'question-answering' pipeline" in note for note in data["notes"])


@pytest.mark.parametrize("task", ("text-classification", "token-classification", "question-answering"))
def test_encoders_are_measured_against_onnx_runtime_with_their_share_of_the_gemm_peak(results, task):
    data = task_results(results, task)
    targets = {(row["ours"], row["peer"], row["target"]) for row in data["comparisons"] if row["kind"] == "speed ratio"}
    assert {("nopipe int8", "ONNX Runtime int8", 1.2), ("nopipe float32", "ONNX Runtime float32", 1.0)} <= targets
    onnx = [row for row in data["measurements"] if row["system"] == "ONNX Runtime"]
    assert {row["dtype"] for row in onnx} == {"float32", "int8"} and all("value" in row for row in onnx), onnx
    limits = data["environment"]["limits"]
    assert limits["fp32_gflops"] > 0 and limits["int8_gops"] > 0 and limits["bandwidth_gbs"] > 0
    for row in data["measurements"]:
        if "value" in row and not row["case"].startswith("batch-size sweep"):
            assert row["of_limit"] > 0 and "GEMM peak" in row["limit"], row


def test_decoding_rows_show_their_share_of_the_bandwidth_and_int8_memory_is_compared(results):
    data = task_results(results, "text-generation")
    rows = [row for row in data["measurements"] if "value" in row]
    assert rows and all(row["of_limit"] > 0 and row["limit"].startswith("bandwidth") for row in rows)
    memory = [row for row in data["comparisons"] if row["kind"] == "memory ratio" and row["ours"] == "nopipe int8"]
    assert memory and all(row["target"] == 0.5 and row["met"] == (row["value"] <= 0.5) for row in memory)


def test_every_row_is_a_median_with_its_spread_and_threads(results):
    for task in TASKS:
        for row in task_results(results, task)["measurements"]:
            if "value" in row:
                assert row["value_min"] <= row["value"] <= row["value_max"] and row["repeats"] == 2
                assert row["threads"]["torch"] == 1 and row["threads"]["requested"] == 1


def test_the_summary_has_the_targets_table(results):
    summary = (results / "summary.md").read_text()
    assert "## Targets" in summary and "encoders int8: >= 1.2x ONNX Runtime int8" in summary


def test_summary_gathers_every_task_with_its_chart(results):
    summary = (results / "summary.md").read_text()
    for task in TASKS:
        assert f"**{task}**" in summary
    assert (results / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_a_task_script_runs_alone_with_a_worker_per_system(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", NOPIPE_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "benchmarks.question_answering", "--models", "fixtures",
                           "--threads", "1", "--repeats", "2", "--check-alone", "nopipe:int8", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {path.name for path in tmp_path.glob("*.json")} == {"question-answering.json"}
    assert (tmp_path / "summary.md").is_file()
    data = task_results(tmp_path, "question-answering")
    assert data["environment"]["workers"] is True
    measured = {(row["system"], row["dtype"]) for row in data["measurements"] if "value" in row}
    assert measured == {("nopipe", "float32"), ("nopipe", "int8"), ("nopipe", "bfloat16"), ("ONNX Runtime", "float32"),
                        ("ONNX Runtime", "int8")}
    assert all(row["repeats"] == 2 and len(row["values"]) == 2 for row in data["measurements"])
    alone = [row for row in data["comparisons"] if row["kind"] == "suite / alone"]
    assert len(alone) == 2 and all(row["value"] > 0 and row["peer"] == "nopipe int8 alone" for row in alone)
    agreement_rows = [row for row in data["comparisons"] if row["kind"] == "agreement"]
    assert agreement_rows and all(row["value"] is not None for row in agreement_rows)


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
    if script == "run":
        assert shown.startswith("usage: nopipe bench") and "python -m benchmarks.run [" not in shown


def test_nopipe_bench_command_passes_its_arguments_on(tmp_path):
    # --only names a model of another task, so nothing is measured: this checks the command, not the suite.
    code = nopipe(["bench", "--models", "fixtures", "--task", "question-answering", "--only", "gpt2",
                   "--out", str(tmp_path)])
    assert code == 0
    assert json.loads((tmp_path / "question-answering.json").read_text())["measurements"] == []


def test_only_a_full_run_writes_benchmarks_results():
    assert report.results_folder(Options()) == REPO / "benchmarks" / "results"
    for partial in (Options(mode="fixtures"), Options(quick=True), Options(partial=True)):
        assert REPO not in report.results_folder(partial).parents
    assert report.results_folder(Options(quick=True, out="/tmp/x")) == Path("/tmp/x")
    options, _ = parse_options(["--only", "gpt2"])
    assert options.partial and not parse_options([])[0].partial


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


def test_a_system_sees_the_whole_workload_once_before_its_first_timed_run():
    """One-time costs per input shape stay out of the clock: the cheap warm-up covers few shapes."""
    seen = []

    def run(case):
        seen.append(tuple(case.inputs))
        return len(case.inputs), case.inputs

    bench = Bench(Options(mode="fixtures", threads=1, repeats=2))
    workload, single = [1, 2, 3], [4, 5]
    bench.measure("task", "model", System("nopipe", "int8", lambda: run),
                  [Case("batch", workload, warmup=Case("warm-up", [1])),
                   Case("single", single, single=True, warmup=Case("warm-up", [4]))])
    whole, cheap = tuple(workload), (1,)
    assert seen[:5] == [whole, cheap, whole, cheap, whole]  # first touch, then warm-up and timed run, twice
    assert seen[5:] == [(4,), (5,), (4,), (4,), (5,), (4,), (4,), (5,)]  # each request alone, likewise


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


def test_rounds_rotate_the_order_and_leave_out_workers_without_the_case():
    from benchmarks.suite import Case as C
    from benchmarks.worker import Worker, rounds

    a, b, c = list(Worker(name, [C("x", [])]) for name in "abc")
    d = Worker("d", [C("y", [])])
    orders = [[worker.system for worker in order] for order in rounds([a, b, d, c], "x", 4)]
    assert orders == [list("abc"), list("bca"), list("cab"), list("abc")]


def test_summarize_keeps_the_median_and_its_spread():
    from benchmarks.worker import summarize

    rows = [dict(value=value, seconds=1 / value, peak_rss_mb=mb, system_mb=mb - 100) for value, mb in
            ((3.0, 150), (1.0, 120), (2.0, 130))]
    row = summarize(rows)
    assert (row["value"], row["value_min"], row["value_max"], row["repeats"]) == (2.0, 1.0, 3.0, 3)
    assert row["peak_rss_mb"] == 150 and row["seconds"] == pytest.approx(0.5)


def test_targets_table_says_met_not_met_or_not_measured():
    from benchmarks.targets import TARGETS, verdict

    batch_one = TARGETS[0]
    row = dict(kind="speed ratio", ours="nopipe int8", peer="CTranslate2 int8", target=1.3, task="text-generation",
               model="gpt2", case="batch 1, greedy, 32 new tokens", value=1.1, met=False)
    assert verdict(batch_one, [row])[0] == "not met" and "gpt2" in verdict(batch_one, [row])[1]
    assert verdict(batch_one, [dict(row, value=1.4, met=True)])[0] == "met"
    assert verdict(batch_one, [dict(row, case="batch 8, greedy, 32 new tokens")])[0] == "not measured"


def test_memory_ratios_are_met_when_at_most_the_target():
    bench = Bench(Options(threads=1))
    bench.measurements = [dict(task="t", model="m", case="c", system="nopipe", dtype=dtype, system_mb=mb, value=1.0)
                          for dtype, mb in (("int8", 40.0), ("float32", 100.0))]
    bench.compare_memory("t", "m", "c", ("nopipe", "int8"), ("nopipe", "float32"), 0.5)
    assert bench.comparisons[-1]["value"] == pytest.approx(0.4) and bench.comparisons[-1]["met"] is True


def test_share_of_limit_uses_the_peak_of_the_rows_dtype():
    from benchmarks.work import share_of_limit

    limits = dict(fp32_gflops=100.0, int8_gops=400.0, bandwidth_gbs=10.0)
    flops = dict(kind="flops", per_unit=1e9)
    assert share_of_limit(flops, 50.0, "float32", limits)["of_limit"] == 0.5
    assert share_of_limit(flops, 50.0, "int8", limits)["of_limit"] == 0.125
    weights = dict(kind="weights", per_unit=1e8)
    assert share_of_limit(weights, 10.0, "float32", limits)["of_limit"] == 0.4  # 4 GB/s of 10
    assert share_of_limit(weights, 10.0, "int8", limits)["of_limit"] == 0.1


def test_outputs_that_cannot_be_pickled_do_not_stop_a_worker():
    """CTranslate2's result objects cannot go through the pipe; the row still does, without them."""
    import threading

    from benchmarks.suite import sendable

    assert sendable([{"label": "A"}]) == [{"label": "A"}]
    assert sendable([threading.Lock()]) is None


def test_llama_cpp_is_an_optional_peer_that_says_why_it_is_missing(monkeypatch):
    from benchmarks.peers import llama_cpp_system

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    system = llama_cpp_system(1, call=None)
    assert (system.name, system.dtype) == ("llama.cpp", "q4_1")
    with pytest.raises(NotAvailable, match="llama_cpp is not installed"):
        system.load()


def test_agreement_on_the_trained_fixtures_compares_labels_with_float32s(tmp_path):
    from benchmarks import agreement
    from tasks.text_classification import TextClassifier

    runner = TextClassifier.from_pretrained(str(agreement.FIXTURES / "distilbert-sst2"), device="cpu")
    texts = agreement.agreement_texts(runner.tokenizer, 60)
    assert len(texts) == 60 and texts[0] in agreement.CORPUS.read_text()  # corpus lines first, then word runs
    labels = agreement.top_labels(runner, texts, tokens=False)
    assert [runner.model.config.id2label[int(i)] for i in labels] == [answer["label"] for answer in runner(texts)]
    output = tmp_path / "agreement.txt"
    table = agreement.main(["--texts", "6", "--only", "distilbert-sst2", "bert-ner", "--output", str(output)])
    assert output.read_text() == table
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "6 texts" in rows["distilbert-sst2"] and "tokens" in rows["bert-ner"]
    assert rows["distilbert-sst2"].count("differ") == len(agreement.SYSTEMS)


def test_summarization_lookup_keeps_greedys_tokens_and_reports_acceptance_and_verification_cost():
    from benchmarks import summarization_lookup as lookup

    plain = lookup.measure("generate-greedy", texts=2, new_tokens=12, threads=1, mode="fixtures")
    guessed = lookup.measure("nopipe-lookup", texts=2, new_tokens=12, threads=1, mode="fixtures")
    assert guessed["tokens"] == plain["tokens"] and [len(row) for row in plain["tokens"]] == [12, 12]
    assert plain["acceptance"] is None and 0 <= guessed["acceptance"] <= 1
    assert lookup.verification_cost(threads=1, mode="fixtures", repeats=2) > 0


def test_summarization_lookup_in_batches_keeps_greedys_tokens_in_both_loops():
    from benchmarks import summarization_lookup as lookup

    plain = lookup.measure("generate-greedy", texts=3, new_tokens=10, threads=1, mode="fixtures", batch=2)
    for system in ("nopipe-lookup", "nopipe-lookup-aligned"):
        guessed = lookup.measure(system, texts=3, new_tokens=10, threads=1, mode="fixtures", batch=2)
        assert guessed["tokens"] == plain["tokens"] and [len(row) for row in plain["tokens"]] == [10, 10, 10]
        assert 0 <= guessed["acceptance"] <= 1
    assert lookup.systems(2) == lookup.BATCH_SYSTEMS and "generate-lookup" not in lookup.BATCH_SYSTEMS


def test_agreement_shares_round_down():
    from benchmarks.agreement import share_down

    assert share_down(17135, 17142) == "99.9" and share_down(5, 5) == "100.0" and share_down(1, 3) == "33.3"


def test_speculative_report_compares_every_system_with_plain_greedy(capsys):
    from benchmarks import speculative

    def run(speed, tokens, rate=None):
        return {"tokens_per_s": speed, "acceptance": rate, "tokens": tokens}

    runs = {"nopipe-greedy": [run(10.0, [[1, 2]]), run(12.0, [[1, 2]])],
            "nopipe-int8-draft": [run(15.0, [[1, 2]], 0.5), run(15.0, [[1, 2]], 0.5)],
            "nopipe-int8-draft-aligned": [run(11.0, [[1, 3]], 0.2), run(11.0, [[1, 3]], 0.2)]}
    speculative.report("batch 8, repeat", runs)
    printed = capsys.readouterr().out
    assert "nopipe-int8-draft / nopipe-greedy 1.36x (same tokens: True)" in printed
    assert "nopipe-int8-draft-aligned / nopipe-greedy 1.00x (same tokens: False)" in printed
    assert "50% of guesses kept" in printed and "generate-lookup" not in printed
    assert speculative.PARTS["int8-draft-batch"][0][1] == speculative.DRAFT_BATCH_SYSTEMS
