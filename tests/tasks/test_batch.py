"""Batch jobs (tasks/batch.py): every input format, answers equal to the runner's in input order, bad rows
stopped or written aside, nothing overwritten, and a killed job resumed to the uninterrupted output."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tasks
from tasks.batch import run_job
from tasks.cli import main
from tests.paths import FIXTURES

SST2 = str(FIXTURES / "distilbert-sst2")
QA = str(FIXTURES / "distilbert-squad")
MARIAN = str(FIXTURES / "marian-en-fr")
TEXTS = ["I loved every minute of it", "Terrible service and cold food", "ok", "The best day of my life, truly",
         "Not worth the money", "It rained all week but the hotel was lovely"] * 4
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def classifier():
    return tasks.load("text-classification", model=SST2)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_rows(classifier, rows: list[dict]) -> list[dict]:
    answers = classifier([row["text"] for row in rows])
    return [{**row, **answer} for row, answer in zip(rows, answers)]


def input_file(tmp_path: Path, kind: str, rows: list[dict]) -> Path:
    if kind == "jsonl":
        return write_jsonl(tmp_path / "in.jsonl", rows)
    if kind == "csv":
        path = tmp_path / "in.csv"
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return path
    if kind == "txt":
        path = tmp_path / "in.txt"
        path.write_text("".join(row["text"] + "\n" for row in rows), encoding="utf-8")
        return path
    pyarrow = pytest.importorskip("pyarrow", reason="Parquet needs the batch extra's pyarrow")
    import pyarrow.parquet as parquet

    path = tmp_path / "in.parquet"
    parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "csv", "txt", "parquet"])
def test_every_input_format_gives_the_runners_answers_in_input_order(tmp_path, classifier, kind):
    rows = [{"id": str(index), "text": text} for index, text in enumerate(TEXTS)]
    if kind == "txt":
        rows = [{"text": text} for text in TEXTS]
    source = input_file(tmp_path, kind, rows)
    summary = run_job("text-classification", SST2, source, tmp_path / "out.jsonl", shard_rows=5, batch_size=4,
                      runner=classifier, progress=False)
    assert summary.rows == len(TEXTS) and summary.skipped == 0 and summary.shards == 5
    out = read_jsonl(tmp_path / "out.jsonl")
    expected = expected_rows(classifier, rows)
    assert [row["text"] for row in out] == TEXTS
    assert [row["label"] for row in out] == [row["label"] for row in expected]
    assert [row["score"] for row in out] == pytest.approx([row["score"] for row in expected], abs=1e-6)
    assert not (tmp_path / "out.jsonl.parts").exists()


def test_parquet_output_keeps_nested_answers_as_columns(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs the batch extra's pyarrow")
    import pyarrow.parquet as parquet

    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in TEXTS[:6]])
    run_job("token-classification", str(FIXTURES / "bert-ner"), source, tmp_path / "out.parquet", progress=False)
    table = parquet.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 6 and table.column_names == ["text", "result"]
    ner = tasks.load("token-classification", model=str(FIXTURES / "bert-ner"))
    assert [len(entities) for entities in table.column("result").to_pylist()] == [len(e) for e in ner(TEXTS[:6])]


def test_parquet_output_takes_rows_whose_columns_differ_between_shards(tmp_path, classifier):
    """Rows with an `id` and rows without, in different shards: one schema, nulls where a row has no id."""
    pytest.importorskip("pyarrow", reason="Parquet needs the batch extra's pyarrow")
    import pyarrow.parquet as parquet

    rows = [{"text": text, "id": index} if index < 4 else {"text": text} for index, text in enumerate(TEXTS[:8])]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    run_job("text-classification", SST2, source, tmp_path / "out.parquet", shard_rows=4, progress=False)
    table = parquet.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist() == [0, 1, 2, 3, None, None, None, None]
    assert table.column("label").to_pylist() == [answer["label"] for answer in classifier(TEXTS[:8])]


def test_parquet_output_of_no_rows_is_an_empty_file(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs the batch extra's pyarrow")
    import pyarrow.parquet as parquet

    source = tmp_path / "in.txt"
    source.write_text("", encoding="utf-8")
    run_job("text-classification", SST2, source, tmp_path / "out.parquet", progress=False)
    assert parquet.read_table(tmp_path / "out.parquet").num_rows == 0


def test_question_answering_reads_question_and_context_columns(tmp_path):
    rows = [{"question": "Where does Sarah live?", "context": "My name is Sarah and I live in London."},
            {"question": "What is my name?", "context": "My name is Clara and I work in Berlin."}] * 3
    source = write_jsonl(tmp_path / "qa.jsonl", rows)
    run_job("question-answering", QA, source, tmp_path / "out.jsonl", batch_size=4, progress=False)
    qa = tasks.load("question-answering", model=QA)
    expected = qa(question=[row["question"] for row in rows], context=[row["context"] for row in rows])
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [row["answer"] for row in out] == [answer["answer"] for answer in expected]


def test_translation_adds_the_translation_column(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in TEXTS[:4]])
    run_job("translation_en_to_fr", MARIAN, source, tmp_path / "out.jsonl", progress=False, max_new_tokens=8)
    translator = tasks.load("translation_en_to_fr", model=MARIAN)
    expected = [translator(text, max_new_tokens=8)[0]["translation_text"] for text in TEXTS[:4]]
    assert [row["translation_text"] for row in read_jsonl(tmp_path / "out.jsonl")] == expected


def test_text_generation_runs_in_the_runners_batches_with_prompt_lookup_when_asked(tmp_path):
    """Greedy text generation over a file: batched like the runner, and with prompt_lookup_num_tokens the
    same texts (speculative decoding is exact), in the input's order."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in TEXTS[:6]])
    options = dict(max_new_tokens=12, do_sample=False, return_full_text=False)
    run_job("text-generation", str(FIXTURES / "gpt2"), source, tmp_path / "plain.jsonl", progress=False,
            batch_size=4, **options)
    run_job("text-generation", str(FIXTURES / "gpt2"), source, tmp_path / "guessed.jsonl", progress=False,
            batch_size=4, prompt_lookup_num_tokens=4, **options)
    generator = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    expected = [answer[0]["generated_text"] for answer in generator(TEXTS[:6], batch_size=4, **options)]
    for name in ("plain.jsonl", "guessed.jsonl"):
        assert [row["generated_text"] for row in read_jsonl(tmp_path / name)] == expected


# -- bad rows ------------------------------------------------------------------------------------------

BAD = [{"text": "fine"}, {"text": ""}, {"text": 42}, {"other": "no text column"}, {"text": "\u200b"}, {"text": "good"}]


def test_a_bad_row_stops_the_job_naming_its_row(tmp_path, classifier):
    source = write_jsonl(tmp_path / "in.jsonl", BAD)
    with pytest.raises(ValueError, match=r"row 2: text must be a non-empty text.*on_error='skip'"):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", runner=classifier, progress=False)
    assert not (tmp_path / "out.jsonl").exists()


def test_skipped_rows_go_to_the_errors_file_with_their_reason(tmp_path, classifier):
    source = write_jsonl(tmp_path / "in.jsonl", BAD)
    with (tmp_path / "in.jsonl").open("a", encoding="utf-8") as file:
        file.write("not json\n")
    summary = run_job("text-classification", SST2, source, tmp_path / "out.jsonl", runner=classifier,
                      on_error="skip", progress=False)
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert [error["row"] for error in errors] == [2, 3, 4, 5, 7]
    assert "no column 'text'" in errors[2]["error"] and "not JSON" in errors[4]["error"]
    assert "token" in errors[3]["error"]  # the runner's own refusal of a text without tokens, on its row
    assert [row["text"] for row in read_jsonl(tmp_path / "out.jsonl")] == ["fine", "good"]
    assert (summary.rows, summary.skipped) == (2, 5)


# -- files are never lost --------------------------------------------------------------------------------

def test_an_existing_output_is_refused_unless_overwrite(tmp_path, classifier):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    dest = tmp_path / "out.jsonl"
    dest.write_text("the user's own file\n")
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        run_job("text-classification", SST2, source, dest, runner=classifier, progress=False)
    assert dest.read_text() == "the user's own file\n"
    run_job("text-classification", SST2, source, dest, runner=classifier, progress=False, overwrite=True)
    assert read_jsonl(dest)[0]["text"] == "fine"


def test_an_answer_never_overwrites_an_input_column(tmp_path, classifier):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine", "label": "gold"}])
    with pytest.raises(ValueError, match="already has a column 'label'"):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", runner=classifier, progress=False)


def test_the_parts_of_another_job_are_not_mixed_in(tmp_path, classifier):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in TEXTS])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NOPIPE_BATCH_DIE_AT": "after-shard:1"}
    killed = run_cli(["--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--shard-rows", "5"], env)
    assert killed.returncode == 3
    with pytest.raises(ValueError, match="holds the parts of another job"):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", runner=classifier, progress=False,
                shard_rows=7)


def test_a_folder_the_job_did_not_write_is_left_alone(tmp_path, classifier):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    parts = tmp_path / "out.jsonl.parts"
    parts.mkdir()
    (parts / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a job's parts folder"):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", runner=classifier, progress=False)
    assert (parts / "notes.txt").read_text() == "mine"


# -- resume -------------------------------------------------------------------------------------------------

def run_cli(arguments: list[str], env: dict, task: str = "sentiment-analysis") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tasks.cli", "batch", task, "--model", SST2, *arguments]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("point", ["after-shard:2", "before-manifest:3"])
def test_a_job_killed_and_run_again_gives_the_uninterrupted_output(tmp_path, point):
    rows = [{"id": index, "text": text} for index, text in enumerate(TEXTS)] + [{"id": 99, "text": ""}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ["--input", str(source), "--shard-rows", "5", "--batch-size", "3", "--on-error", "skip"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    whole = run_cli([*common, "--output", str(tmp_path / "whole.jsonl")], env)
    assert whole.returncode == 0, whole.stderr
    killed = run_cli([*common, "--output", str(tmp_path / "out.jsonl")], {**env, "NOPIPE_BATCH_DIE_AT": point})
    assert killed.returncode == 3 and not (tmp_path / "out.jsonl").exists()
    resumed = run_cli([*common, "--output", str(tmp_path / "out.jsonl")], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "shards from an earlier run" in resumed.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert (tmp_path / "out.jsonl.errors.jsonl").read_bytes() == (tmp_path / "whole.jsonl.errors.jsonl").read_bytes()


def test_a_job_killed_at_a_random_moment_resumes_to_the_same_output(tmp_path):
    rows = [{"text": f"{TEXTS[index % len(TEXTS)]} number {index}"} for index in range(600)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ["--input", str(source), "--shard-rows", "20"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    assert run_cli([*common, "--output", str(tmp_path / "whole.jsonl")], env).returncode == 0
    command = [sys.executable, "-m", "tasks.cli", "batch", "sentiment-analysis", "--model", SST2, *common,
               "--output", str(tmp_path / "out.jsonl")]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "out.jsonl.parts" / "manifest.json"
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text() or "{}").get("shards", 0) >= 2:
            process.send_signal(signal.SIGKILL)  # mid-shard: the next shard is being answered
            break
        time.sleep(0.005)
    process.wait(timeout=60)
    resumed = run_cli([*common, "--output", str(tmp_path / "out.jsonl")], env)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_the_command_reports_what_it_wrote(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}, {"text": ""}])
    code = main(["batch", "sentiment-analysis", "--model", SST2, "--input", str(source), "--output",
                 str(tmp_path / "out.jsonl"), "--on-error", "skip", "--option", "top_k=2"])
    err = capsys.readouterr().err
    assert code == 0 and "1 rows answered" in err and "1 bad rows" in err
    assert len(read_jsonl(tmp_path / "out.jsonl")[0]["result"]) == 2  # top_k=2 reached the runner
    assert main(["batch", "sentiment-analysis", "--model", SST2, "--input", str(source), "--output",
                 str(tmp_path / "out.jsonl")]) == 2
    assert "--overwrite" in capsys.readouterr().err
