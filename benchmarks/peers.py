"""The systems compared: nopipe's task classes and decoding loop, and the peers it is measured
against (the transformers pipeline, `model.generate()`, CTranslate2).

Every constructor returns a `System` whose `load()` does the expensive part (reading weights,
converting) and returns a `run(case) -> (units, outputs)`. Imports are lazy: a task module that is
not written yet, or an optional package that is not installed, makes that system "not available"
in the report instead of stopping the run.
"""

import hashlib
import importlib
import shutil
import warnings
from pathlib import Path

import torch

from benchmarks.models import cache_lock, cache_root
from benchmarks.suite import NotAvailable, System


def import_systems(ctranslate2: bool = True) -> None:
    """Import what the systems run on, and start torch, before the first is measured, so that its
    load time and memory do not include importing nopipe's tasks, transformers' pipelines or CTranslate2
    (a worker of another system leaves CTranslate2 out: its OpenMP runtime has no business there)."""
    import contextlib
    import pkgutil

    import transformers.pipelines  # noqa: F401

    import tasks

    for module in pkgutil.iter_modules(tasks.__path__):
        with contextlib.suppress(Exception):  # a broken module is reported by the system that needs it
            importlib.import_module(f"tasks.{module.name}")
    if ctranslate2:
        with contextlib.suppress(ImportError):
            importlib.import_module("ctranslate2")
    # torch's thread pool and kernels allocate on first use: let that happen outside every measurement.
    with torch.inference_mode():
        torch.nn.functional.linear(torch.ones(64, 256), torch.ones(256, 256)).softmax(-1)


# ---- nopipe ---------------------------------------------------------------------------------
def task_class(module: str, name: str):
    """tasks.<module>.<name>, or NotAvailable while that module is not written yet."""
    try:
        loaded = importlib.import_module(f"tasks.{module}")
    except ModuleNotFoundError as error:
        if error.name in (f"tasks.{module}", "tasks"):
            raise NotAvailable(f"tasks/{module}.py does not exist yet") from error
        raise
    if not hasattr(loaded, name):
        raise NotAvailable(f"tasks/{module}.py has no {name} yet")
    return getattr(loaded, name)


def nopipe_task(module: str, name: str, folder: Path, dtype: str, call, **load_options) -> System:
    """A nopipe task class; `call(runner, case)` runs a case and returns (units, outputs).

    load_options go to `from_pretrained` (e.g. src_lang/tgt_lang for M2M100).
    """
    def load():
        runner = task_class(module, name).from_pretrained(str(folder), device="cpu", dtype=dtype, **load_options)
        return lambda case: call(runner, case)
    return System("nopipe", dtype, load, entry=f"tasks.{module}.{name}")


def nopipe_decoding(folder: Path, head: str, dtype: str, call) -> System:
    """nopipe's own loop `decoding.generate` on a model placed by core (used until the task class exists)."""
    def load():
        import transformers

        from core.loading import load_model
        from decoding import generate

        model, _ = load_model(str(folder), getattr(transformers, head), device="cpu", dtype=dtype)
        return lambda case: call(lambda ids, mask, **settings: generate(model, ids, mask, **settings), case)
    return System("nopipe", dtype, load, entry="decoding.generate")


# ---- transformers -------------------------------------------------------------------------------
def hf_pipeline(task: str, folder: Path, batch_size: int | None, call) -> System:
    """transformers.pipeline(task) as users write it; batch_size None keeps the pipeline's default."""
    def load():
        from transformers import pipeline

        pipe = pipeline(task, model=str(folder), device="cpu")
        if task == "text-generation" and pipe.tokenizer.pad_token is None:
            pipe.tokenizer.pad_token = pipe.tokenizer.eos_token  # GPT-2 has none; batching needs one
        options = {} if batch_size is None else {"batch_size": batch_size}
        return lambda case: call(pipe, case, options)
    name = "pipeline (default batch)" if batch_size is None else f"pipeline (batch_size={batch_size})"
    return System(name, "float32", load, entry=f"transformers.pipeline('{task}')")


def hf_generate(folder: Path, head: str, call) -> System:
    """`model.generate()` of transformers on the float32 model."""
    def load():
        import transformers

        model = getattr(transformers, head).from_pretrained(str(folder), dtype=torch.float32).eval()

        def generate(ids, mask, **settings):
            with torch.inference_mode():
                return model.generate(ids, attention_mask=mask, **settings)
        return lambda case: call(generate, case)
    return System("generate()", "float32", load, entry="transformers model.generate()")


# ---- CTranslate2 ----------------------------------------------------------------------------
def ct2_folder(folder: Path) -> Path:
    """The CTranslate2 conversion of `folder` (float32 weights; int8 is chosen when loading).

    Conversions are cached under the folder's name and a digest of its files' sizes and times, so
    a rebuilt model or fixture is converted again.
    """
    try:
        from ctranslate2.converters import TransformersConverter  # noqa: F401 - is it installed?
    except ImportError as error:
        raise NotAvailable("ctranslate2 is not installed (pip install ctranslate2, or the 'bench' extra)") from error
    stamp = "".join(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns};"
                    for path in sorted(folder.iterdir()) if path.is_file())
    target = cache_root() / "ct2" / f"{folder.name}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    with cache_lock(target):  # the float32 and int8 workers start together
        if not (target / "model.bin").is_file():
            convert_ct2(folder, target)
    return target


def convert_ct2(folder: Path, target: Path) -> None:
    converting = target.with_name(target.name + ".converting")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from ctranslate2.converters import TransformersConverter

            TransformersConverter(str(folder)).convert(str(converting), force=True)
        except Exception as error:  # noqa: BLE001 - a converter that fails on transformers 5 is a result
            shutil.rmtree(converting, ignore_errors=True)
            raise NotAvailable(f"CTranslate2 conversion failed: {type(error).__name__}: "
                               f"{str(error).splitlines()[0][:200]}") from error
    shutil.rmtree(target, ignore_errors=True)
    converting.rename(target)  # only a finished conversion is ever loaded


def ct2_system(folder: Path, compute_type: str, threads: int, kind: str, call) -> System:
    """A CTranslate2 Generator (kind="generator") or Translator; `call(model, case)` runs a case."""
    def load():
        import ctranslate2

        converted = ct2_folder(folder)
        model = getattr(ctranslate2, kind.capitalize())(str(converted), device="cpu", compute_type=compute_type,
                                                         inter_threads=1, intra_threads=threads)
        return lambda case: call(model, case)
    return System("CTranslate2", "float32" if compute_type == "float32" else "int8", load,
                  entry=f"ctranslate2.{kind.capitalize()}(compute_type='{compute_type}')")


# ---- llama.cpp (optional) ---------------------------------------------------------------------
def llama_cpp_system(threads: int, call) -> System:
    """llama.cpp (llama-cpp-python) on SmolLM2's own GGUF file (Q4_1: 4-bit weights, so it reads a quarter
    of int8's bytes; a peer users pick for small chat models). Optional: never installed by nopipe, since
    it compiles for many minutes; without it the row says so."""
    def load():
        try:
            import llama_cpp
        except ImportError as error:
            raise NotAvailable("llama_cpp is not installed (pip install llama-cpp-python; it compiles for "
                               "many minutes)") from error
        from core.defaults import find_smollm2_gguf

        model = llama_cpp.Llama(model_path=str(find_smollm2_gguf()), n_threads=threads, n_ctx=1024, verbose=False)
        return lambda case: call(model, case)
    return System("llama.cpp", "q4_1", load, entry=f"llama_cpp.Llama(SmolLM2 Q4_1 GGUF, n_threads={threads})")
