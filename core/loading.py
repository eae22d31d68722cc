"""Loading a model and its tokenizer for one task head, from a local folder, a GGUF file or a hub id.

transformers' own errors for a missing model or a wrong head are long and point at the wrong fix
(a model that is merely not cached offline reads like a network fault). Every failure here is a
`ModelLoadError` or a `ValueError` whose message names the model and what to do instead.
"""

import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from core.device import DTYPES, Placement, place_model, resolve_device, resolve_dtype


class ModelLoadError(OSError):
    """The model or its tokenizer could not be found or read."""


def _hub_is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(name: str) -> bool:
    """A hub id is "name" or "org/name"; anything else with a separator is meant as a path."""
    return (name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1
            or name.endswith("/") or name.endswith(".gguf"))


def check_gguf_support() -> None:
    """transformers reads GGUF files with two optional packages; without them it fails deep inside."""
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelLoadError(f"loading a GGUF file needs the {' and '.join(missing)} package(s); install them with "
                             "`pip install 'nopipe[gguf]'` (or `pip install gguf accelerate`)")


def resolve_source(model, gguf_file: str | None = None) -> tuple[str, str | None]:
    """Split `model` into (folder or hub id, gguf file name). A path to a .gguf file is accepted as is."""
    name, gguf_file = _split_source(model, gguf_file)
    if gguf_file is not None:
        check_gguf_support()
    return name, gguf_file


def _split_source(model, gguf_file: str | None) -> tuple[str, str | None]:
    if isinstance(model, Path):
        model = str(model)
    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"model must be a local folder, a .gguf file or a hub id such as 'gpt2', got {model!r}")
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {model!r} does not exist; check the path")
        return str(path.parent), path.name
    path = Path(model).expanduser()
    if path.is_dir():
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise ModelLoadError(f"gguf_file={gguf_file!r} is not in the folder {model!r}")
        return str(path), gguf_file
    if path.exists():
        raise ModelLoadError(f"model={model!r} is a file, not a model folder; pass the folder that holds "
                             "config.json, or a .gguf file")
    if _looks_like_path(model):
        raise ModelLoadError(f"model folder {model!r} does not exist; check the path, or pass a hub id "
                             "such as 'distilbert/distilbert-base-uncased-finetuned-sst-2-english'")
    return model, gguf_file


def _not_available(name: str, what: str, error: Exception) -> ModelLoadError:
    if _hub_is_offline():
        reason = (f"HF_HUB_OFFLINE=1 is set and {what} for {name!r} is not in the local cache. "
                  f"Download it once on a machine with network (`hf download {name}`), "
                  "or pass the path of a local folder that holds it")
    else:
        reason = (f"{what} for {name!r} could not be loaded: it is not a local folder, and the hub could not "
                  f"be reached or has no such model ({error.__class__.__name__}: {str(error).splitlines()[0]}). "
                  "Check the name and your network, or pass the path of a local folder")
    return ModelLoadError(reason)


def load_config(model, *, revision=None, trust_remote_code=False, gguf_file=None) -> PretrainedConfig:
    """The model's config, which tells its architecture before any weight is read."""
    name, gguf_file = resolve_source(model, gguf_file)
    try:
        return AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                          gguf_file=gguf_file)
    except OSError as error:
        if Path(name).is_dir():
            raise ModelLoadError(f"{name!r} holds no readable config.json (or GGUF file): {error}") from error
        raise _not_available(name, "the model", error) from error
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise ValueError(f"{name!r} needs code from its repository to run; pass trust_remote_code=True "
                             "only if you trust that code") from error
        raise


def _head_class_name(head, config: PretrainedConfig) -> str:
    """The class `head` (an AutoModelFor* class) would build for this config, or raise if none."""
    mapping = head._model_mapping
    if type(config) not in mapping:
        supported = sorted({config_class.model_type for config_class in mapping
                            if getattr(config_class, "model_type", "")})
        raise ValueError(f"a {config.model_type} model cannot be used with {head.__name__}: the architecture "
                         f"has no such head. Use a checkpoint of one of: {', '.join(supported)}")
    return mapping[type(config)].__name__


def load_model(model, head, *, revision=None, trust_remote_code=False, gguf_file=None,
               device=None, dtype="auto", many_rows: bool = True) -> tuple[PreTrainedModel, Placement]:
    """Load the weights for `head` (e.g. AutoModelForQuestionAnswering) and place them
    (`many_rows`: see core.device.place_model).

    A checkpoint whose own weights do not include the head (GPT-2 given to question answering) is
    refused: transformers would fill the head with random numbers and answer nonsense.
    """
    config = load_config(model, revision=revision, trust_remote_code=trust_remote_code, gguf_file=gguf_file)
    head_name = _head_class_name(head, config)
    name, gguf_file = resolve_source(model, gguf_file)
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    load_dtype = DTYPES.get(resolved_dtype, torch.float32)  # int8 quantizes a float32 model
    try:
        loaded, info = head.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                            gguf_file=gguf_file, dtype=load_dtype, output_loading_info=True)
    except OSError as error:
        if Path(name).is_dir():
            raise ModelLoadError(f"the weights in {name!r} could not be read: {error}") from error
        raise _not_available(name, "the weights", error) from error
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise ValueError(f"{name!r} has no trained weights for {head_name} (missing: {', '.join(missing[:4])}"
                         f"{', ...' if len(missing) > 4 else ''}); it was not fine-tuned for this task. "
                         "Use a checkpoint trained for it")
    placed, placement = place_model(loaded, resolved_device, resolved_dtype, many_rows=many_rows)
    return placed, placement


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "source.spm", "tokenizer.model")


def _has_tokenizer_files(folder: Path) -> bool:
    """transformers 5 builds an empty tokenizer (special tokens only) from a folder with no vocabulary,
    which would silently turn every word into <unk>; a missing tokenizer must be an error instead."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(model, *, revision=None, trust_remote_code=False, gguf_file=None, require_fast=False,
                   why_fast="this task needs character offsets"):
    """Load the tokenizer that was saved with the model; `require_fast` refuses a Python-only one."""
    name, gguf_file = resolve_source(model, gguf_file)
    if Path(name).is_dir() and gguf_file is None and not _has_tokenizer_files(Path(name)):
        raise ModelLoadError(f"no tokenizer files in {name!r} (looked for {', '.join(TOKENIZER_FILES[:4])}, ...); "
                             "save the tokenizer next to the model (tokenizer.save_pretrained(folder)), "
                             "or pass tokenizer=")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                                  gguf_file=gguf_file)
    except (OSError, ValueError, TypeError) as error:
        if not Path(name).is_dir():
            raise _not_available(name, "the tokenizer", error) from error
        raise ModelLoadError(f"no usable tokenizer in {name!r} ({error.__class__.__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}); save the tokenizer next to "
                             "the model (tokenizer.save_pretrained(folder)), or pass tokenizer=") from error
    if require_fast:
        check_fast_tokenizer(tokenizer, why_fast)
    return tokenizer


def check_fast_tokenizer(tokenizer, why: str) -> None:
    """Offsets and word ids only exist in the Rust ("fast") tokenizers."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is a slow (Python) tokenizer, but {why}: a fast tokenizer "
                         "is required. Save one with tokenizer.json next to the model (converting with "
                         "AutoTokenizer.from_pretrained(folder) then save_pretrained usually works)")
