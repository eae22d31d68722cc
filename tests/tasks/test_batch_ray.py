"""The Ray engine of batch jobs (tasks/batch_ray.py): the local engine's output byte for byte, its bad-row
reports row for row, nothing overwritten. One local Ray cluster of 2 CPUs serves the whole module (Ray
starts slowly); each job starts its own actors, which load the model once."""

import json
import os
import sys

import pytest

from tasks.batch import run_job
from tasks.cli import main
from tests.tasks.test_batch import BAD, QA, SST2, TEXTS, read_jsonl, run_cli, write_jsonl

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'nopipe[ray]'")
pytest.importorskip("pyarrow", reason="the Ray engine needs the ray extra's pyarrow")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def with_bad_rows(tmp_path):
    """TEXTS with every kind of bad row among them: a blank line, a line that is not JSON, BAD's values (all rows
    with the columns id and text, in that order, as one Parquet schema needs)."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": index, "text": text} for index, text in enumerate(TEXTS[:9])])
    with open(source, "a", encoding="utf-8") as file:
        file.write("\nnot json\n" + "".join(json.dumps({"id": 100 + index, **row}) + "\n" for index, row in enumerate(BAD)))
    return source


def read_output(path):
    if path.suffix == ".parquet":
        import pyarrow.parquet as parquet

        return parquet.read_table(path).to_pylist()
    return read_jsonl(path)


@pytest.mark.parametrize("suffix, actors", [(".jsonl", 2), (".parquet", 1)])
def test_ray_writes_the_local_engines_files(tmp_path, suffix, actors):
    source = with_bad_rows(tmp_path)
    common = {"shard_rows": 5, "batch_size": 3, "on_error": "skip", "progress": False}
    local = run_job("text-classification", SST2, source, tmp_path / f"local{suffix}", **common)
    spread = run_job("text-classification", SST2, source, tmp_path / f"ray{suffix}", engine="ray", concurrency=actors,
                     num_cpus_per_actor=1, **common)
    assert (spread.rows, spread.skipped, spread.shards) == (local.rows, local.skipped, local.shards) == (11, 6, 4)
    assert [row["text"] for row in read_output(tmp_path / f"ray{suffix}")] == TEXTS[:9] + ["fine", "good"]
    assert read_output(tmp_path / f"ray{suffix}") == read_output(tmp_path / f"local{suffix}")
    if suffix == ".jsonl":
        assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    errors = tmp_path / f"ray{suffix}.errors.jsonl"
    assert [error["row"] for error in read_jsonl(errors)] == [10, 11, 13, 14, 15, 16]  # the file's lines
    assert errors.read_bytes() == (tmp_path / f"local{suffix}.errors.jsonl").read_bytes()
    assert not (tmp_path / f"ray{suffix}.parts").exists()


def test_question_answering_reads_question_and_context_on_ray_as_locally(tmp_path):
    rows = [{"question": "Where does Sarah live?", "context": "My name is Sarah and I live in London."},
            {"question": "What is my name?", "context": "My name is Clara and I work in Berlin."},
            {"question": "", "context": "No question here."}] * 3
    source = write_jsonl(tmp_path / "qa.jsonl", rows)
    common = {"shard_rows": 4, "batch_size": 2, "on_error": "skip", "progress": False}
    run_job("question-answering", QA, source, tmp_path / "local.jsonl", **common)
    run_job("question-answering", QA, source, tmp_path / "ray.jsonl", engine="ray", concurrency=1, **common)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert len(read_jsonl(tmp_path / "ray.jsonl")) == 6 and "answer" in read_jsonl(tmp_path / "ray.jsonl")[0]
    assert [error["row"] for error in read_jsonl(tmp_path / "ray.jsonl.errors.jsonl")] == [3, 6, 9]


def test_a_bad_row_stops_the_ray_job_as_it_stops_the_local_one(tmp_path):
    source = with_bad_rows(tmp_path)
    with pytest.raises(ValueError) as local:
        run_job("text-classification", SST2, source, tmp_path / "local.jsonl", shard_rows=5, progress=False)
    with pytest.raises(ValueError, match=r"line 10 is not JSON.*on_error='skip'") as spread:
        run_job("text-classification", SST2, source, tmp_path / "ray.jsonl", shard_rows=5, progress=False,
                engine="ray", concurrency=1)
    assert str(spread.value) == str(local.value)
    assert not (tmp_path / "ray.jsonl").exists()
    assert json.loads((tmp_path / "ray.jsonl.parts" / "manifest.json").read_text())["rows"] == 5  # the shard before it


def test_a_local_job_killed_midway_is_finished_by_ray(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": index, "text": text} for index, text in enumerate(TEXTS)])
    common = ["--input", str(source), "--shard-rows", "5", "--batch-size", "3"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    assert run_cli([*common, "--output", str(tmp_path / "whole.jsonl")], env).returncode == 0
    killed = run_cli([*common, "--output", str(tmp_path / "out.jsonl")], {**env, "NOPIPE_BATCH_DIE_AT": "after-shard:2"})
    assert killed.returncode == 3
    summary = run_job("sentiment-analysis", SST2, source, tmp_path / "out.jsonl", shard_rows=5, batch_size=3,
                      progress=False, engine="ray", concurrency=1)
    assert (summary.resumed_shards, summary.shards) == (2, 5)
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


# -- refused before anything starts ----------------------------------------------------------------------

def test_an_existing_output_is_not_overwritten_by_ray(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    dest = tmp_path / "out.jsonl"
    dest.write_text("the user's own file\n")
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        run_job("text-classification", SST2, source, dest, progress=False, engine="ray")
    assert dest.read_text() == "the user's own file\n"


@pytest.mark.parametrize("arguments, message", [
    ({"engine": "spark"}, "engine must be 'local' or 'ray', got 'spark'"),
    ({"concurrency": 2}, "concurrency is an option of the Ray engine; pass engine='ray'"),
    ({"address": "auto"}, "address is an option of the Ray engine"),
    ({"num_cpus_per_actor": 2}, "num_cpus_per_actor is an option of the Ray engine"),
    ({"engine": "ray", "concurrency": 0}, "concurrency must be an int >= 1"),
    ({"engine": "ray", "num_cpus_per_actor": -1}, "num_cpus_per_actor must be a number > 0"),
    ({"engine": "ray", "runner": object()}, "runner= is for the local engine"),
])
def test_engine_arguments_are_checked_before_anything_is_written(tmp_path, arguments, message):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", progress=False, **arguments)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does where Ray is not installed
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    with pytest.raises(ImportError, match=r"pip install 'nopipe\[ray\]'"):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", progress=False, engine="ray")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


def test_an_actor_larger_than_the_cluster_is_refused_not_waited_for(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    with pytest.raises(ValueError, match="num_cpus_per_actor=4 is more than the Ray cluster's 2 CPUs"):
        run_job("text-classification", SST2, source, tmp_path / "out.jsonl", progress=False, engine="ray",
                num_cpus_per_actor=4)
    assert not (tmp_path / "out.jsonl").exists()


# -- the command ------------------------------------------------------------------------------------------

def test_the_command_runs_a_job_on_ray(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}, {"text": ""}, {"text": "awful"}])
    common = ["batch", "sentiment-analysis", "--model", SST2, "--input", str(source), "--on-error", "skip"]
    assert main([*common, "--output", str(tmp_path / "local.jsonl")]) == 0
    code = main([*common, "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--concurrency", "1",
                 "--num-cpus-per-actor", "1"])
    err = capsys.readouterr().err
    assert code == 0 and "2 rows answered" in err and "1 bad rows" in err
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


@pytest.mark.parametrize("flags, message", [
    (["--concurrency", "2"], "--concurrency is an option of the Ray engine; pass --engine ray"),
    (["--engine", "ray", "--threads", "2"], "with --engine ray, --num-cpus-per-actor sets each actor's"),
])
def test_the_command_refuses_flags_of_the_other_engine(tmp_path, capsys, flags, message):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "fine"}])
    code = main(["batch", "sentiment-analysis", "--model", SST2, "--input", str(source), "--output",
                 str(tmp_path / "out.jsonl"), *flags])
    assert code == 2 and message in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]
