"""Every way loading can fail has its own clear error that names the fix."""

import importlib.util
import shutil

import pytest
from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering, AutoModelForSequenceClassification

import core.loading
from core import ModelLoadError, defaults, load_model, load_tokenizer
from core.loading import resolve_source
from core.runner import TaskRunner
from tests.paths import FIXTURES


class SentimentRunner(TaskRunner):
    head = AutoModelForSequenceClassification
    needs_fast_tokenizer = True


def test_loads_model_and_tokenizer_from_a_local_folder_and_reports_placement():
    runner = SentimentRunner.from_pretrained(FIXTURES / "distilbert-sst2", device="cpu")
    assert runner.device.type == "cpu" and runner.dtype == "float32"
    assert runner.tokenizer.is_fast
    assert type(runner.model).__name__ == "DistilBertForSequenceClassification"
    assert "distilbert-sst2" in repr(runner) and "float32" in repr(runner)


def test_missing_folder_names_the_path():
    with pytest.raises(ModelLoadError, match="does not exist; check the path"):
        load_model("./no/such/model", AutoModelForSequenceClassification)


def test_missing_gguf_file_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "model.gguf"), AutoModelForCausalLM)


def test_a_file_that_is_not_a_model_folder(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"0")
    with pytest.raises(ModelLoadError, match="is a file, not a model folder"):
        load_model(str(path), AutoModelForCausalLM)


def test_uncached_hub_id_offline_says_it_is_not_available_offline(monkeypatch):
    monkeypatch.setattr(core.loading, "_hub_is_offline", lambda: True)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1 is set.*not in the local cache.*local folder"):
        load_model("nopipe-tests/not-a-cached-model", AutoModelForSequenceClassification)


def test_unreachable_hub_says_to_check_network_or_pass_a_folder(monkeypatch):
    # The environment keeps huggingface_hub offline (no real network call); our message for the
    # online case is what is checked here.
    monkeypatch.setattr(core.loading, "_hub_is_offline", lambda: False)
    with pytest.raises(ModelLoadError, match="hub could not be reached.*network.*local folder"):
        load_model("nopipe-tests/not-a-cached-model", AutoModelForSequenceClassification)


def test_checkpoint_without_the_task_head_is_refused():
    """GPT-2 has a QA class in transformers, but this checkpoint has no trained QA weights."""
    with pytest.raises(ValueError, match="no trained weights for GPT2ForQuestionAnswering.*not fine-tuned"):
        load_model(FIXTURES / "gpt2", AutoModelForQuestionAnswering)


def test_architecture_without_the_task_head_lists_the_supported_ones():
    with pytest.raises(ValueError, match="marian model cannot be used with AutoModelForSequenceClassification"
                                         ".*one of: .*bert"):
        load_model(FIXTURES / "marian-en-fr", AutoModelForSequenceClassification)


def test_folder_without_tokenizer_says_to_save_one(tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(FIXTURES / "distilbert-sst2" / name, tmp_path / name)
    load_model(tmp_path, AutoModelForSequenceClassification)  # the weights alone are fine
    with pytest.raises(ModelLoadError, match="tokenizer.*save_pretrained"):
        load_tokenizer(tmp_path)


def test_slow_tokenizer_is_refused_where_offsets_are_needed():
    with pytest.raises(ValueError, match="slow .*tokenizer.*character offsets.*fast tokenizer is required"):
        load_tokenizer(FIXTURES / "marian-en-fr", require_fast=True)


def test_slow_tokenizer_object_is_refused_by_a_runner_that_needs_offsets():
    slow = load_tokenizer(FIXTURES / "marian-en-fr")
    with pytest.raises(ValueError, match="fast tokenizer is required"):
        SentimentRunner.from_pretrained(FIXTURES / "distilbert-sst2", tokenizer=slow)


@pytest.mark.parametrize("model", [None, 3, ""])
def test_model_argument_of_the_wrong_type(model):
    with pytest.raises(TypeError, match="model must be a local folder, a .gguf file or a hub id"):
        resolve_source(model)


def test_hub_ids_pass_through_and_gguf_paths_split():
    assert resolve_source("gpt2") == ("gpt2", None)
    assert resolve_source("openai-community/gpt2") == ("openai-community/gpt2", None)
    gguf = defaults.find_smollm2_gguf()
    assert resolve_source(str(gguf)) == (str(gguf.parent), gguf.name)
    assert resolve_source(gguf.parent, gguf_file=gguf.name) == (str(gguf.parent), gguf.name)


def test_gguf_without_its_packages_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "gguf" else real_find_spec(name, *args))
    with pytest.raises(ModelLoadError, match=r"needs the gguf package.*pip install 'nopipe\[gguf\]'"):
        load_model(str(defaults.find_smollm2_gguf()), AutoModelForCausalLM)


def test_trust_remote_code_is_off_unless_asked(monkeypatch):
    seen = {}

    def fake_config(name, **kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(core.loading.AutoConfig, "from_pretrained", fake_config)
    with pytest.raises(ModelLoadError):
        load_model(FIXTURES / "gpt2", AutoModelForCausalLM, revision="v1")
    assert seen["trust_remote_code"] is False and seen["revision"] == "v1"
