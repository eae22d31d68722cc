"""An unreachable hub fails in one line at once (not after half a minute of retries), a cached model
still loads without it, and loading from Python prints nothing unless asked."""

import os
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging as transformers_logging

from core import hub
from core.loading import load_model, load_tokenizer
from tests.paths import FIXTURES, TESTS

ROOT = TESTS.parent
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def run_without_network(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter whose hub endpoint is a closed port and whose hub cache is empty
    (huggingface_hub reads both when imported), HF_HUB_OFFLINE unset."""
    environment = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    environment.update(HF_ENDPOINT=CLOSED_PORT, HF_HUB_CACHE=str(tmp_path / "hub"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=300)


def test_an_unreachable_hub_fails_at_once_in_one_line(tmp_path):
    """Before: five retries with backoff (1+2+4+8+8 s) and a line each, then a long OSError."""
    result = run_without_network("""
        from core.loading import ModelLoadError, load_tokenizer
        try:
            load_tokenizer("nopipe-tests/not-a-cached-model")
        except ModelLoadError as error:
            print(error)
    """, tmp_path)
    message = result.stdout.strip()
    assert result.returncode == 0, result.stderr
    assert "\n" not in message and "Retrying" not in result.stderr, result.stderr
    assert "'nopipe-tests/not-a-cached-model' is not in the local cache and the hub could not be reached" in message
    assert CLOSED_PORT in message and "HF_HUB_OFFLINE=1" in message and "--model PATH" in message


def cache_snapshot_of(fixture, hub_cache, repo_id) -> None:
    """The hub cache layout of `repo_id` at refs/main holding the files of a fixture model."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(FIXTURES / fixture, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_a_cached_model_loads_when_the_hub_is_unreachable(tmp_path):
    cache_snapshot_of("distilbert-sst2", tmp_path / "hub", "nopipe-tests/sst2")
    result = run_without_network("""
        from transformers import AutoModelForSequenceClassification
        from core.loading import load_model, load_tokenizer
        tokenizer = load_tokenizer("nopipe-tests/sst2")
        model, _ = load_model("nopipe-tests/sst2", AutoModelForSequenceClassification)
        print(type(model).__name__, *tokenizer("a test")["input_ids"])
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    expected = load_tokenizer(FIXTURES / "distilbert-sst2")("a test")["input_ids"]
    assert result.stdout.split() == ["DistilBertForSequenceClassification", *map(str, expected)]
    assert "Retrying" not in result.stderr


def test_the_probe_is_asked_once_per_process(monkeypatch):
    asked = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_answers", lambda endpoint, timeout: asked.append(endpoint) or False)
    hub.forget_hub_probe()
    try:
        assert not hub.hub_is_reachable() and not hub.hub_is_reachable()
        assert asked == [hub.hub_endpoint()]
    finally:
        hub.forget_hub_probe()


def test_a_probe_that_hangs_is_abandoned(monkeypatch):
    """A name lookup is not bounded by the request's timeout: the probe gives up on its own."""
    release = threading.Event()
    monkeypatch.setattr(hub, "_answers", lambda endpoint, timeout: release.wait(30))
    try:
        assert hub._probe("http://example.invalid", timeout=0.1) is False
    finally:
        release.set()


def test_offline_means_unreachable_without_asking(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_answers", lambda endpoint, timeout: pytest.fail("asked the network"))
    assert hub.hub_is_reachable() is False


# -- quiet loading ----------------------------------------------------------------------------------

def test_loading_prints_nothing_unless_verbose(capfd):
    load_model(FIXTURES / "roberta-emotion", AutoModelForSequenceClassification)
    load_tokenizer(FIXTURES / "roberta-emotion")
    quiet = capfd.readouterr()
    assert quiet.out == "" and quiet.err == ""
    load_model(FIXTURES / "roberta-emotion", AutoModelForSequenceClassification, verbose=True)
    assert "Loading weights" in capfd.readouterr().err


def test_quiet_loading_restores_the_settings_it_changed():
    before = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    with hub.quiet_loading():
        assert transformers_logging.get_verbosity() == transformers_logging.ERROR
        assert not transformers_logging.is_progress_bar_enabled()
    assert (transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()) == before


def test_quiet_loading_restores_after_an_error_and_keeps_a_users_choice():
    transformers_logging.set_verbosity_info()
    try:
        with pytest.raises(RuntimeError), hub.quiet_loading():
            raise RuntimeError("a failed load")
        assert transformers_logging.get_verbosity() == transformers_logging.INFO
    finally:
        transformers_logging.set_verbosity_warning()


def test_overlapping_quiet_loads_in_threads_restore_once_at_the_end():
    before = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    inside, leave = threading.Barrier(4), threading.Event()

    def load():
        with hub.quiet_loading():
            inside.wait(10)
            leave.wait(10)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    assert transformers_logging.get_verbosity() == transformers_logging.ERROR
    leave.set()
    for thread in threads:
        thread.join(10)
    assert (transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()) == before
