"""ONNX Runtime as a peer of the encoder tasks, in float32 and in dynamic int8.

This is what users of optimum's ORTModel get: the model exported to ONNX (torch.onnx.export, opset 17),
run by an onnxruntime InferenceSession, and for int8 the file that
`onnxruntime.quantization.quantize_dynamic` makes (int8 weights, activations quantized per batch).
optimum itself is not a dependency, so the export is done here, once per model, into the bench cache.

The session replaces only the forward pass of nopipe's own task runner: tokenizing, length-sorted
batches of 32 and postprocessing are the same code for both systems, so the ratio measures the
engines, and the answers come in the same form (the agreement check reads them).
"""

import hashlib
import logging
import shutil
import types
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from benchmarks.models import cache_lock, cache_root
from benchmarks.suite import NotAvailable, System

OPSET = 17


def onnx_files(folder: Path, head: str) -> dict[str, Path]:
    """{"float32": model.onnx, "int8": model.int8.onnx} of `folder`, exported and quantized on first use.

    Cached under the folder's name and a digest of its files' sizes and times (a rebuilt model is
    exported again); a half-written export is never taken for a finished one.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise NotAvailable("onnxruntime is not installed (pip install onnxruntime onnx, or the 'bench' extra)") from error
    stamp = "".join(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns};"
                    for path in sorted(folder.iterdir()) if path.is_file())
    target = cache_root() / "onnx" / f"{folder.name}-{hashlib.sha256((stamp + head).encode()).hexdigest()[:12]}"
    files = {"float32": target / "model.onnx", "int8": target / "model.int8.onnx"}
    with cache_lock(target):
        if not files["int8"].is_file():
            building = target.with_name(target.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            export(folder, head, building / "model.onnx")
            with _quiet_root_logger():  # quantize_dynamic advises pre-processing on the root logger
                quantize_dynamic(str(building / "model.onnx"), str(building / "model.int8.onnx"),
                                 weight_type=QuantType.QInt8)
            shutil.rmtree(target, ignore_errors=True)
            building.rename(target)
    return files


@contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def export(folder: Path, head: str, path: Path) -> None:
    """torch.onnx.export of the `head` model with batch and sequence axes left free (TorchScript exporter:
    the dynamo one needs onnxscript, which is not installed)."""
    import transformers

    model = getattr(transformers, head).from_pretrained(str(folder), dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    sample = dict(tokenizer(["a short text", "and a longer one than that"], padding=True, return_tensors="pt"))
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    with torch.inference_mode():
        outputs = list(model(**{name: sample[name] for name in names}))
    axes = {name: {0: "batch", 1: "sequence"} for name in names + outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (), str(path), kwargs={name: sample[name] for name in names}, input_names=names,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def ort_session(path: Path, threads: int):
    """A CPU InferenceSession on `threads` intra-op threads (one inter-op), all graph optimizations on."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_forward(runner, session):
    """A `forward(features) -> logits` for `runner` that runs `session` instead of the torch model."""
    from core.windows import pad_features

    wanted = [entry.name for entry in session.get_inputs()]
    names = [entry.name for entry in session.get_outputs()]

    def forward(features: list[dict]) -> torch.Tensor:
        batch = pad_features(runner.tokenizer, features)
        values = session.run(names, {name: batch[name].numpy() for name in wanted})
        output = types.SimpleNamespace(**{name: torch.from_numpy(value) for name, value in zip(names, values)})
        return runner.logits_of(output).float()
    return forward


def ort_system(module: str, class_name: str, folder: Path, head: str, dtype: str, threads: int, call) -> System:
    """nopipe's `tasks.<module>.<class_name>` with its forward pass run by ONNX Runtime (`dtype` file).

    The torch weights are dropped after loading (only the config stays), so the row's memory is ONNX Runtime's.
    """
    def load():
        from benchmarks.peers import task_class

        path = onnx_files(folder, head)[dtype]
        runner = task_class(module, class_name).from_pretrained(str(folder), device="cpu", dtype="float32")
        runner.model = types.SimpleNamespace(config=runner.model.config)
        runner.forward = session_forward(runner, ort_session(path, threads))
        return lambda case: call(runner, case)
    return System("ONNX Runtime", dtype, load,
                  entry=f"onnxruntime {dtype} (intra_op_num_threads={threads}) in nopipe's {class_name}")
