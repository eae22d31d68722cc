"""Loading a model and its tokenizer for one task head, from a local folder, a GGUF file or a hub id.

transformers' own errors for a missing model or a wrong head are long and point at the wrong fix
(a model that is merely not cached offline reads like a network fault). Every failure here is a
`ModelLoadError` or a `ValueError` whose message names the model and what to do instead. What is
checked in a checkpoint that loads lives in core/checkpoint.py; the hub probe and quiet loading in
core/hub.py.
"""

import importlib.util
from importlib import metadata
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from core.checkpoint import (
    LABELLED_TASKS,
    check_finite_weights,
    check_label_map,
    check_loading_info,
    check_trained_for,
    config_json_problem,
    damaged_weight_files,
    head_task,
)
from core.device import DTYPES, Placement, place_model, resolve_device, resolve_dtype
from core.hub import hub_is_offline, hub_is_reachable, quiet_loading, unreachable_message


class ModelLoadError(OSError):
    """The model or its tokenizer could not be found or read."""


_hub_is_offline = hub_is_offline  # looked up at call time, so a test can replace it


def _looks_like_path(name: str) -> bool:
    """A hub id is "name" or "org/name"; anything else with a separator is meant as a path."""
    return (name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1
            or name.endswith("/") or name.endswith(".gguf"))


GGUF_EXTRA = "`pip install 'nopipe[gguf]'` (in a clone of nopipe: `pip install -e '.[gguf]'`)"
GGUF_MINIMUM = (0, 10)  # the gguf version transformers reads


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def missing_gguf_packages() -> list[str]:
    """The packages transformers needs to read GGUF files that are absent (or, for gguf, too old)."""
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if "gguf" not in missing and _version_tuple(metadata.version("gguf")) < GGUF_MINIMUM:
        missing.append(f"gguf>={'.'.join(map(str, GGUF_MINIMUM))} (found {metadata.version('gguf')})")
    return missing


def check_gguf_support() -> None:
    """transformers reads GGUF files with two optional packages; without them it fails deep inside
    (and its message asks for torch, which is there)."""
    missing = missing_gguf_packages()
    if missing:
        raise ModelLoadError(f"loading a GGUF file needs the {' and '.join(missing)} package(s); install nopipe's "
                             f"gguf extra: {GGUF_EXTRA}")


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


def _hub_options(name: str, filename: str | None, revision) -> dict:
    """Extra from_pretrained arguments for a hub id: none when the hub answers; `local_files_only`
    when it does not but the model is cached (so no half-minute of retries); else a one-line error."""
    if Path(name).is_dir() or _hub_is_offline() or hub_is_reachable():
        return {}
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, filename or "config.json", revision=revision), str):
        return {"local_files_only": True}
    raise ModelLoadError(unreachable_message(name))


def _check_config_json(name: str) -> None:
    """transformers reports a config.json it cannot parse as whatever it was loading (a tokenizer...)."""
    problem = config_json_problem(Path(name)) if Path(name).is_dir() else None
    if problem:
        raise ModelLoadError(f"the config of {name!r} is broken: {problem}. Fix the file, or save the model "
                             "again (model.save_pretrained(folder))")


def _source(model, gguf_file, revision) -> tuple[str, str | None, dict]:
    """(folder or hub id, gguf file name, extra from_pretrained arguments), refusing a broken config.json."""
    name, gguf_file = resolve_source(model, gguf_file)
    _check_config_json(name)
    return name, gguf_file, _hub_options(name, gguf_file, revision)


def load_config(model, *, revision=None, trust_remote_code=False, gguf_file=None,
                verbose=False) -> PretrainedConfig:
    """The model's config, which tells its architecture before any weight is read."""
    name, gguf_file, hub = _source(model, gguf_file, revision)
    try:
        with quiet_loading(verbose):
            return AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                              gguf_file=gguf_file, **hub)
    except OSError as error:
        if Path(name).is_dir():
            raise ModelLoadError(f"{name!r} holds no readable config.json (or GGUF file): {error}") from error
        raise _not_available(name, "the model", error) from error
    except (ValueError, StrictDataclassError) as error:
        if "trust_remote_code" in str(error):
            raise ValueError(f"{name!r} needs code from its repository to run; pass trust_remote_code=True "
                             "only if you trust that code") from error
        raise ValueError(f"the config of {name!r} cannot be used: {_one_line(error)}") from error


def _one_line(error: Exception) -> str:
    """An exception's message on one line (transformers' validation errors span several)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _head_class_name(head, config: PretrainedConfig) -> str:
    """The class `head` (an AutoModelFor* class) would build for this config, or raise if none."""
    mapping = head._model_mapping
    if type(config) not in mapping:
        supported = sorted({config_class.model_type for config_class in mapping
                            if getattr(config_class, "model_type", "")})
        raise ValueError(f"a {config.model_type} model cannot be used with {head.__name__}: the architecture "
                         f"has no such head. Use a checkpoint of one of: {', '.join(supported)}")
    return mapping[type(config)].__name__


def check_config_fits(name: str, config: PretrainedConfig, head, allow_other_head: bool = False) -> str:
    """Refuse, before any weight is read, a checkpoint that cannot answer for `head`'s task: no such
    head in its architecture, trained for another task (unless `allow_other_head`), or a label map
    with gaps. Returns the class name `head` builds."""
    head_name = _head_class_name(head, config)
    if not allow_other_head:
        check_trained_for(name, config, head, head_name)
    if head_task(head) in LABELLED_TASKS:
        check_label_map(name, config)
    return head_name


def _check_weight_files(name: str, gguf_file: str | None) -> None:
    """Name a damaged local weights file (safetensors itself says only "incomplete metadata")."""
    damaged = damaged_weight_files(Path(name)) if gguf_file is None and Path(name).is_dir() else []
    if damaged:
        path, problem = damaged[0]
        raise ModelLoadError(f"the weights file {path} is damaged: {problem}. Download or save it again")


def _read_weights(name: str, head, load_dtype, verbose: bool, **options):
    """`head.from_pretrained` with misshapen tensors reported (not raised with a table, nor left random)."""
    try:
        with quiet_loading(verbose):
            return head.from_pretrained(name, dtype=load_dtype, output_loading_info=True,
                                        ignore_mismatched_sizes=True, **options)
    except SafetensorError as error:
        raise ModelLoadError(f"a weights file of {name!r} could not be read ({error}); download or save it "
                             "again") from error
    except (RuntimeError, ValueError) as error:
        if "PytorchStreamReader" not in str(error):  # the model class or torch refused a size in the config
            raise ValueError(f"the model of {name!r} could not be built from its config ({_one_line(error)}); "
                             "check the sizes in it") from error
        files = ", ".join(str(path) for path in sorted(Path(name).glob("*.bin"))) or name
        raise ModelLoadError(f"the weights file {files} is damaged (torch cannot read it: "
                             f"{str(error).split('.')[0]}). Download or save it again") from error
    except OSError as error:
        if Path(name).is_dir():
            raise ModelLoadError(f"the weights in {name!r} could not be read: {error}") from error
        raise _not_available(name, "the weights", error) from error


def load_model(model, head, *, revision=None, trust_remote_code=False, gguf_file=None, device=None,
               dtype="auto", many_rows: bool = True, allow_other_head: bool = False,
               verbose: bool = False) -> tuple[PreTrainedModel, Placement]:
    """Load the weights for `head` (e.g. AutoModelForQuestionAnswering) and place them
    (`many_rows`: see core.device.place_model).

    Refused (README "Loading a model, and what it refuses"): a checkpoint trained for another task
    (`allow_other_head=True` accepts one whose weights fit), one whose weights lack the head or do
    not fit its config (transformers would fill them with random numbers), weights holding NaN or inf.
    `verbose=True` shows transformers' progress bars and load report.
    """
    config = load_config(model, revision=revision, trust_remote_code=trust_remote_code, gguf_file=gguf_file,
                         verbose=verbose)
    name, gguf_file, hub = _source(model, gguf_file, revision)
    head_name = check_config_fits(name, config, head, allow_other_head)
    _check_weight_files(name, gguf_file)
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    load_dtype = DTYPES.get(resolved_dtype, torch.float32)  # int8 quantizes a float32 model
    loaded, info = _read_weights(name, head, load_dtype, verbose, revision=revision,
                                 trust_remote_code=trust_remote_code, gguf_file=gguf_file, **hub)
    check_loading_info(name, head_name, info)
    check_finite_weights(name, loaded)
    return place_model(loaded, resolved_device, resolved_dtype, many_rows=many_rows)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "source.spm", "tokenizer.model")


def _has_tokenizer_files(folder: Path) -> bool:
    """transformers 5 builds an empty tokenizer (special tokens only) from a folder with no vocabulary,
    which would silently turn every word into <unk>; a missing tokenizer must be an error instead."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_has_vocabulary(name: str, tokenizer) -> None:
    """transformers 5 builds a tokenizer of special tokens only from a tokenizer_config.json without
    its vocabulary; every word would become the unknown token."""
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise ModelLoadError(f"the tokenizer in {name!r} has only its {len(tokenizer)} special tokens and no "
                             "vocabulary (tokenizer_config.json without tokenizer.json, vocab.txt or a "
                             f"sentencepiece model): every word would become {tokenizer.unk_token}. Save the whole "
                             "tokenizer next to the model (tokenizer.save_pretrained(folder)), or pass tokenizer=")


def load_tokenizer(model, *, revision=None, trust_remote_code=False, gguf_file=None, require_fast=False,
                   why_fast="this task needs character offsets", verbose=False):
    """Load the tokenizer that was saved with the model; `require_fast` refuses a Python-only one."""
    name, gguf_file, hub = _source(model, gguf_file, revision)
    if Path(name).is_dir() and gguf_file is None and not _has_tokenizer_files(Path(name)):
        raise ModelLoadError(f"no tokenizer files in {name!r} (looked for {', '.join(TOKENIZER_FILES[:4])}, ...); "
                             "save the tokenizer next to the model (tokenizer.save_pretrained(folder)), "
                             "or pass tokenizer=")
    try:
        with quiet_loading(verbose):
            tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                                      gguf_file=gguf_file, **hub)
    except (OSError, ValueError, TypeError) as error:
        if not Path(name).is_dir():
            raise _not_available(name, "the tokenizer", error) from error
        raise ModelLoadError(f"no usable tokenizer in {name!r} ({error.__class__.__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}); save the tokenizer next to "
                             "the model (tokenizer.save_pretrained(folder)), or pass tokenizer=") from error
    check_has_vocabulary(name, tokenizer)
    if require_fast:
        check_fast_tokenizer(tokenizer, why_fast)
    return tokenizer


def check_fast_tokenizer(tokenizer, why: str) -> None:
    """Offsets and word ids only exist in the Rust ("fast") tokenizers."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is a slow (Python) tokenizer, but {why}: a fast tokenizer "
                         "is required. Save one with tokenizer.json next to the model (converting with "
                         "AutoTokenizer.from_pretrained(folder) then save_pretrained usually works)")
